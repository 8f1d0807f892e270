"""Featureless areas of a region tree: adjacent leaves whose pixels all have about one colour.

A superpixel grid over a blank area (a white product backdrop, a clipped sky, a rendered fill) is no set of
regions: nothing tells its cells apart, so the tree merges them at heights near 0 in an arbitrary order, and a
click there would get those arbitrary unions as its granularity levels (and, when the blank area covers more than
``max_object_fraction`` of the picture, never the area itself). :func:`featureless_areas` finds such areas over
the leaves (:attr:`~granseg.regions.tree.RegionTree.leaf_spread`, ``leaf_lab``); :func:`area_start` is where a
click's chain reaches one.
"""

from __future__ import annotations

import numpy as np

from granseg.regions.tree import RegionTree


def featureless_areas(
    tree: RegionTree, max_spread: float, max_step: float = 1.0, max_range: float = 2.0
) -> np.ndarray:
    """``(n_leaves,)`` int64 per leaf rank: the id of the featureless area it lies in, -1 for none. A leaf is
    featureless when its pixels' RMS CIELAB distance to their mean is under ``max_spread``; two adjacent ones
    join when their means lie within ``max_step`` (closest pairs first) and the joined leaves' means stay within
    ``max_range`` of each other in every channel (a smooth gradient does not run on for ever). Areas of one leaf
    are -1 (nothing to join). A tree without ``leaf_spread`` has none."""
    n = tree.n_leaves
    out = np.full(n, -1, np.int64)
    if tree.leaf_spread is None or max_spread <= 0:
        return out
    featureless = tree.leaf_spread < max_spread
    keep = featureless[tree.edge_a] & featureless[tree.edge_b]
    a, b = tree.edge_a[keep].astype(np.int64), tree.edge_b[keep].astype(np.int64)
    mean = tree.leaf_lab.astype(np.float64)
    step = np.linalg.norm(mean[a] - mean[b], axis=1)
    order = np.argsort(step, kind="stable")
    order = order[step[order] < max_step]
    if not len(order):
        return out
    root = np.arange(n)
    low, high = mean.copy(), mean.copy()  # per joined set: the smallest / largest leaf mean per channel

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for e in order:
        ra, rb = find(int(a[e])), find(int(b[e]))
        if ra == rb:
            continue
        lo, hi = np.minimum(low[ra], low[rb]), np.maximum(high[ra], high[rb])
        if (hi - lo).max() > max_range:
            continue
        root[rb], low[ra], high[ra] = ra, lo, hi
    roots = np.array([find(i) for i in range(n)])
    sizes = np.bincount(roots, minlength=n)
    joined = sizes[roots] > 1
    _, ids = np.unique(roots[joined], return_inverse=True)
    out[joined] = ids
    return out


def area_start(tree: RegionTree, chain: list[int], area: np.ndarray, share: float = 0.95) -> int:
    """Index in ``chain`` (a click's regions from its leaf up) of the smallest region holding at least ``share``
    of the pixels of ``area`` (``(n_leaves,)`` bool over leaf ranks: a featureless area the click's leaf lies
    in); the last region when none does."""
    nodes = np.asarray(chain)
    leaf_area = tree.area[tree.leaf_node]
    inside = np.concatenate([[0.0], np.cumsum(np.where(area, leaf_area, 0.0))])
    held = inside[tree.hi[nodes]] - inside[tree.lo[nodes]]
    enough = np.flatnonzero(held >= share * inside[-1])
    return int(enough[0]) if len(enough) else len(nodes) - 1
