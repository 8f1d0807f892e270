"""Greedy merging of a region adjacency graph by feature cosine (the pseudo-label engine's merge hierarchy).

Start from one cluster per unit (a feature patch, or a superpixel cut by a mask with the sum of its pixels'
features), then greedily merge the most similar adjacent pair (cosine of the clusters' summed features) while
that similarity is >= theta, for theta in ``thetas`` (high to low) cumulatively; a snapshot of the labels is
taken at the end of each level. Used by the conquer stage (parts of one instance), the region proposals and the
stuff pass of :mod:`granseg.pseudo`.

The merging is the region tree's greedy loop (:mod:`granseg.regions.agglomerate`, the one
:func:`granseg.regions.tree.build_region_tree` runs) with ``1 - cosine`` as the distance; the levels are cuts of
the resulting merge tree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

DEFAULT_THETAS = (0.9, 0.8, 0.7, 0.6, 0.5)


@dataclasses.dataclass
class MergeLevel:
    """Snapshot after one theta level: ``labels`` (h, w) int64 cluster ids; ``emitted`` cluster ids."""

    theta: float
    labels: np.ndarray
    emitted: list[int]


def grid_edges(h: int, w: int) -> np.ndarray:
    """(E, 2) int64 patch-index pairs of the 4-connected (h, w) grid (row-major indices), each pair once."""
    index = np.arange(h * w).reshape(h, w)
    horizontal = np.stack([index[:, :-1].ravel(), index[:, 1:].ravel()], axis=1)
    vertical = np.stack([index[:-1, :].ravel(), index[1:, :].ravel()], axis=1)
    return np.concatenate([horizontal, vertical]).astype(np.int64)


def merge_hierarchy(
    features: np.ndarray, thetas: Sequence[float] = DEFAULT_THETAS, min_patches: float = 4
) -> list[MergeLevel]:
    """Greedy agglomerative merging of an (h, w, C) feature grid (see the module docstring).

    A cluster is emitted at a level when it has >= ``min_patches`` patches and at least one neighbour, and it
    changed since it was last emitted (an unchanged cluster is emitted once, at the first level it qualifies).
    Deterministic: ties are broken by the smaller (cluster, cluster) id pair.
    """
    h, w, c = features.shape
    levels = merge_graph(features.reshape(h * w, c), grid_edges(h, w), None, thetas, min_patches)
    for level in levels:
        level.labels = level.labels.reshape(h, w)
    return levels


def merge_graph(
    features: np.ndarray,
    edges: np.ndarray,
    sizes: np.ndarray | None = None,
    thetas: Sequence[float] = DEFAULT_THETAS,
    min_size: float = 4,
) -> list[MergeLevel]:
    """:func:`merge_hierarchy` on any region adjacency graph: ``features`` (n, C) summed features of n initial
    regions (patches, or superpixels with the sum of their pixels' features), ``edges`` (E, 2) adjacent region
    pairs, ``sizes`` (n,) their sizes (1 each when None; a cluster is emitted when its size >= ``min_size``).
    Returned levels hold (n,) labels: a cluster's label is the id of one of its regions (the one of its larger
    half at every merge).

    The merge tree is built by the region tree's greedy loop (:func:`granseg.regions.agglomerate.agglomerate`,
    distance ``1 - cosine``); level theta is its cut at height ``1 - theta``. Greedy merging pops the globally
    most similar pair, so a pair scored after a merge below theta involves a node made by it, whose height
    (the running maximum) is already above the cut: the cut holds exactly the merges the loop "while the best
    similarity >= theta" makes."""
    from granseg.regions.agglomerate import agglomerate

    n, c = features.shape
    if n == 0:
        return [MergeLevel(float(t), np.zeros(0, np.int64), []) for t in sorted(thetas, reverse=True)]
    total = 2 * n - 1
    sums = np.zeros((total, c))
    sums[:n] = features
    norms = np.zeros(total)
    norms[:n] = np.maximum(np.linalg.norm(sums[:n], axis=1), 1e-12)
    counts = np.zeros(total)
    counts[:n] = 1.0 if sizes is None else np.asarray(sizes, dtype=np.float64)
    rep = np.arange(total)  # representative region of each node (of its larger half)
    members = np.ones(total)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    edges = np.unique(np.sort(edges[edges[:, 0] != edges[:, 1]], axis=1), axis=0)
    neighbours: list[dict[int, np.ndarray]] = [dict() for _ in range(total)]
    none = np.zeros(1)
    for a, b in edges.tolist():
        neighbours[a][b] = neighbours[b][a] = none
    normed = sums[:n] / norms[:n, None]
    similarity = np.einsum("ec,ec->e", normed[edges[:, 0]], normed[edges[:, 1]])
    heap = [(1.0 - s, a, b) for s, (a, b) in zip(similarity.tolist(), edges.tolist())]

    def on_merge(a: int, b: int, node: int) -> None:
        sums[node] = sums[a] + sums[b]
        norms[node] = max(float(np.sqrt(sums[node] @ sums[node])), 1e-12)
        counts[node] = counts[a] + counts[b]
        members[node] = members[a] + members[b]
        larger = a if (members[a], -rep[a]) >= (members[b], -rep[b]) else b
        rep[node] = rep[larger]

    def score_new(node: int, others: list[int], _borders) -> list:
        sims = (sums[others] @ sums[node]) / (norms[others] * norms[node])
        return [(1.0 - s, node, o) for s, o in zip(sims.tolist(), others)]

    parent, _, height, made = agglomerate(n, neighbours, heap, on_merge, score_new)
    return _cut_levels(parent, height, n, made, thetas, counts, min_size, rep)


def _cut_levels(parent, height, n: int, made: int, thetas, counts, min_size: float, rep) -> list[MergeLevel]:
    """The :class:`MergeLevel` of each theta (high to low): the tree's cut at height ``1 - theta``; a cluster is
    emitted the first time it is in a cut with size >= ``min_size`` and a neighbour (a parent in the tree)."""
    levels, emitted_before = [], set()
    for theta in sorted(thetas, reverse=True):
        inside = np.zeros(made, bool)
        inside[:n] = True
        inside[n:] = height[n:made] <= 1.0 - theta
        top = np.arange(made)
        for node in range(made - 1, -1, -1):  # parents have larger ids: assigned before their children
            up = parent[node]
            if up >= 0 and inside[up]:
                top[node] = top[up]
        clusters = np.unique(top[:n])
        emitted = []
        for node in clusters.tolist():
            if counts[node] >= min_size and parent[node] >= 0 and node not in emitted_before:
                emitted.append(node)
                emitted_before.add(node)
        labels = rep[top[:n]].astype(np.int64)
        emitted = sorted(int(rep[node]) for node in emitted)
        levels.append(MergeLevel(float(theta), labels, emitted))
    return levels


def superpixel_graph(
    superpixels: np.ndarray, inside: np.ndarray, patch_of_pixel: np.ndarray, patch_features: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Region adjacency graph of the superpixels of a crop, cut by a mask, for :func:`merge_graph`.

    ``superpixels`` (h, w) int labels, ``inside`` (h, w) bool (the instance), ``patch_of_pixel`` (h, w) int index
    of the feature patch under each pixel, ``patch_features`` (P, C). A unit is the part of one superpixel inside
    the mask. Returns ``unit_map`` (h, w) int (unit id, -1 outside), ``sums`` (U, C) the sum over each unit's
    pixels of their patch feature, ``sizes`` (U,) pixels, ``edges`` (E, 2) 4-adjacent unit pairs (each once)."""
    from scipy import sparse

    unit_map = np.full(superpixels.shape, -1, dtype=np.int64)
    _, units = np.unique(superpixels[inside], return_inverse=True)
    unit_map[inside] = units.reshape(-1)
    count = int(units.max()) + 1 if units.size else 0
    if count == 0:
        return unit_map, np.zeros((0, patch_features.shape[1])), np.zeros(0), np.zeros((0, 2), np.int64)
    incidence = sparse.csr_matrix(
        (np.ones(units.size, dtype=np.float32), (units.reshape(-1), patch_of_pixel[inside])),
        shape=(count, len(patch_features)),
    )  # duplicate (unit, patch) entries are summed: pixel counts
    sums = np.asarray(incidence @ patch_features.astype(np.float32), dtype=np.float64)
    sizes = np.bincount(units.reshape(-1), minlength=count).astype(np.float64)
    pairs = []
    for a, b in ((unit_map[:, :-1], unit_map[:, 1:]), (unit_map[:-1, :], unit_map[1:, :])):
        valid = (a >= 0) & (b >= 0) & (a != b)
        lo, hi = np.minimum(a[valid], b[valid]), np.maximum(a[valid], b[valid])
        pairs.append(lo * count + hi)
    codes = np.unique(np.concatenate(pairs))
    edges = np.stack([codes // count, codes % count], axis=1).astype(np.int64)
    return unit_map, sums, sizes, edges
