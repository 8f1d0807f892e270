"""Greedy merging of a region adjacency graph by feature cosine (the pseudo-label engine's merge hierarchy).

Start from one cluster per unit (a feature patch, or a superpixel cut by a mask with the sum of its pixels'
features), then greedily merge the most similar adjacent pair (cosine of the clusters' summed features) while
that similarity is >= theta, for theta in ``thetas`` (high to low) cumulatively; a snapshot of the labels is
taken at the end of each level. Used by the conquer stage (parts of one instance), the region proposals and the
stuff pass of :mod:`granseg.pseudo`.

Merging loops once per merge step over a sparse adjacency (a lazy max-heap of edge similarities, neighbour
sets per cluster, small-to-large relabelling); initial similarities are vectorised.
"""

from __future__ import annotations

import dataclasses
import heapq
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
    features: np.ndarray, thetas: Sequence[float] = DEFAULT_THETAS, min_patches: int = 4
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
    Returned levels hold (n,) labels."""
    n, c = features.shape
    sums = np.asarray(features, dtype=np.float64).copy()
    norms = np.maximum(np.linalg.norm(sums, axis=1), 1e-12)
    counts = np.ones(n, dtype=np.float64) if sizes is None else np.asarray(sizes, dtype=np.float64).copy()
    labels = np.arange(n, dtype=np.int64)
    members: list[list[int] | None] = [[i] for i in range(n)]
    neighbours: list[set[int]] = [set() for _ in range(n)]
    version = [0] * n
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    normed = sums / norms[:, None]
    similarity = np.einsum("ec,ec->e", normed[edges[:, 0]], normed[edges[:, 1]])
    for a, b in edges.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    heap = [(-s, min(a, b), max(a, b), 0, 0) for s, (a, b) in zip(similarity.tolist(), edges.tolist())]
    heapq.heapify(heap)
    pop, push = heapq.heappop, heapq.heappush
    last_emitted: dict[int, int] = {}  # cluster id -> version when emitted
    levels = []
    for theta in sorted(thetas, reverse=True):
        while heap and -heap[0][0] >= theta:
            _, a, b, va, vb = pop(heap)
            if version[a] != va or version[b] != vb or members[a] is None or members[b] is None:
                continue  # stale entry
            if len(members[a]) < len(members[b]):
                a, b = b, a  # keep the larger id list, relabel the smaller
            labels[members[b]] = a
            members[a].extend(members[b])
            members[b] = None
            sums[a] += sums[b]
            norms[a] = max(float(np.sqrt(sums[a] @ sums[a])), 1e-12)
            counts[a] += counts[b]
            version[a] += 1
            version[b] += 1
            nb_a = neighbours[a]
            for other in neighbours[b]:
                nb_o = neighbours[other]
                nb_o.discard(b)
                if other != a:
                    nb_o.add(a)
                    nb_a.add(other)
            nb_a.discard(b)
            neighbours[b] = set()
            if nb_a:
                others = list(nb_a)
                sims = (sums[others] @ sums[a]) / (norms[others] * norms[a])
                va = version[a]
                for other, sim in zip(others, sims.tolist()):
                    if a < other:
                        push(heap, (-sim, a, other, va, version[other]))
                    else:
                        push(heap, (-sim, other, a, version[other], va))
        emitted = []
        for cluster in np.unique(labels).tolist():
            if (
                counts[cluster] >= min_size
                and neighbours[cluster]
                and last_emitted.get(cluster) != version[cluster]
            ):
                emitted.append(cluster)
                last_emitted[cluster] = int(version[cluster])
        levels.append(MergeLevel(float(theta), labels.copy(), emitted))
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
