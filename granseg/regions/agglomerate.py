"""Greedy pairwise merging of a region adjacency graph: the loop both region trees share.

Nodes ``0 .. n-1`` are the leaves; each merge of the closest live pair ``(a, b)`` makes node ``c = n, n+1, ...``
with ``height[c] = max(distance, height[a], height[b])`` (heights never decrease towards the root). Borders are
per-pair values that add (numpy arrays): the border of ``c`` with a neighbour is the sum of its children's.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import numpy as np


def agglomerate(
    n: int,
    neighbours: list[dict[int, np.ndarray]],
    heap: list[tuple[float, int, int]],
    on_merge: Callable[[int, int, int], None],
    score_new: Callable[[int, list[int], list[np.ndarray]], list[tuple[float, int, int]]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Merge until the heap is empty.

    ``neighbours``: ``2n - 1`` dicts ``node -> border`` (filled for the leaves, updated in place); ``heap``: the
    leaves' ``(distance, a, b)`` entries (heapified here); ``on_merge(a, b, c)`` updates the caller's node
    statistics before the borders change; ``score_new(c, others, borders)`` gives the new node's entries.
    Returns ``parent``, ``children`` ``(m, 2)``, ``height`` over the ``m`` nodes made, and ``m``."""
    total = 2 * n - 1
    parent = np.full(total, -1, np.int64)
    children = np.full((total, 2), -1, np.int64)
    height = np.zeros(total)
    alive = np.zeros(total, bool)
    alive[:n] = True
    next_id = n
    heapq.heapify(heap)
    while heap:
        d, a, b = heapq.heappop(heap)
        if not (alive[a] and alive[b]):
            continue
        c = next_id
        next_id += 1
        alive[a] = alive[b] = False
        alive[c] = True
        parent[a] = parent[b] = c
        children[c] = (a, b)
        height[c] = max(d, height[a], height[b])
        on_merge(a, b, c)
        merged: dict[int, np.ndarray] = {}
        for src in (a, b):
            for nb, border in neighbours[src].items():
                if nb not in (a, b):
                    merged[nb] = merged[nb] + border if nb in merged else border
                    del neighbours[nb][src]
            neighbours[src] = {}
        neighbours[c] = merged
        for nb, border in merged.items():
            neighbours[nb][c] = border
        if merged:
            others = list(merged)
            for entry in score_new(c, others, [merged[o] for o in others]):
                heapq.heappush(heap, entry)
    return parent[:next_id], children[:next_id], height[:next_id], next_id
