"""Conquer stage: parts of one instance by iterative merging of patch clusters.

For an instance: crop its tight box, resize the long side to ``long_side`` (both sides multiples of the
patch size), take patch features, then start from one cluster per patch and greedily merge the most similar
4-connected adjacent pair (cosine of the clusters' summed features) while that similarity is >= theta, for
theta in ``thetas`` (0.9 .. 0.5) cumulatively. At the end of each level every cluster of >= ``min_patches``
patches that still has a neighbour is emitted; masks more than ``inside`` of whose area lies inside the instance
are kept (clipped to it), and NMS at IoU ``nms_iou`` removes duplicates, the protected masks (the instance and
its divide parts) always winning.

Merging loops once per merge step over a sparse adjacency (a lazy max-heap of edge similarities, neighbour
sets per cluster, small-to-large relabelling); initial similarities, mask decoding, containment and IoU are
vectorised.
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
    n = h * w
    sums = features.reshape(n, c).astype(np.float64).copy()
    norms = np.maximum(np.linalg.norm(sums, axis=1), 1e-12)
    counts = np.ones(n, dtype=np.int64)
    labels = np.arange(n, dtype=np.int64)
    members: list[list[int] | None] = [[i] for i in range(n)]
    neighbours: list[set[int]] = [set() for _ in range(n)]
    version = [0] * n
    edges = grid_edges(h, w)
    normed = sums / norms[:, None]
    similarity = np.einsum("ec,ec->e", normed[edges[:, 0]], normed[edges[:, 1]])
    for a, b in edges.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    heap = [(-s, a, b, 0, 0) for s, (a, b) in zip(similarity.tolist(), edges.tolist())]
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
                counts[cluster] >= min_patches
                and neighbours[cluster]
                and last_emitted.get(cluster) != version[cluster]
            ):
                emitted.append(cluster)
                last_emitted[cluster] = int(version[cluster])
        levels.append(MergeLevel(float(theta), labels.reshape(h, w).copy(), emitted))
    return levels


@dataclasses.dataclass
class ConquerMask:
    """A part found by merging: ``mask`` H x W bool (image pixels); ``score`` = theta of its level."""

    mask: np.ndarray
    score: float


def mask_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Ka, Kb) IoU between two stacks of flattened bool masks (Ka, P) and (Kb, P)."""
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return inter / np.maximum(union, 1.0)


def nms_with_protected(
    candidates: np.ndarray, protected: np.ndarray, iou_threshold: float = 0.8, stride: int = 1
) -> np.ndarray:
    """Greedy NMS over ``candidates`` (K, H, W) bool in priority order; ``protected`` (P, H, W) masks always
    survive and suppress candidates too. IoU is computed on a ``stride``-subsampled grid. Returns kept indices."""
    if len(candidates) == 0:
        return np.zeros(0, dtype=np.int64)
    cand = candidates[:, ::stride, ::stride].reshape(len(candidates), -1)
    prot = protected[:, ::stride, ::stride].reshape(len(protected), -1)
    suppressed = np.zeros(len(cand), dtype=bool)
    if len(prot):
        suppressed |= (mask_iou_matrix(cand, prot) > iou_threshold).any(axis=1)
    pairwise = mask_iou_matrix(cand, cand)
    keep = []
    for index in range(len(cand)):
        if suppressed[index]:
            continue
        keep.append(index)
        suppressed |= pairwise[index] > iou_threshold
    return np.asarray(keep, dtype=np.int64)


def instance_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight box (x0, y0, x1, y1), exclusive ends, in pixels of the mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def conquer(
    image: np.ndarray,
    instance_mask: np.ndarray,
    extractor,
    long_side: int = 768,
    thetas: Sequence[float] = DEFAULT_THETAS,
    min_patches: int = 4,
    inside: float = 0.9,
    nms_iou: float = 0.8,
    protected: Sequence[np.ndarray] = (),
    clip_to_instance: bool = True,
) -> list[ConquerMask]:
    """Parts of one instance. ``image`` H x W x 3 uint8, ``instance_mask`` H x W bool, ``extractor`` a
    :class:`~granseg.pseudo.features.FeatureExtractor`; ``long_side`` is rounded to a multiple of its patch size.
    ``protected``: masks (H x W bool) that win NMS besides the instance (e.g. its divide parts).
    Returns masks in image pixels, ordered by level (theta high first) then cluster id."""
    from granseg.pseudo.features import resize_to_patch_multiple

    if not instance_mask.any():
        return []
    x0, y0, x1, y1 = instance_box(instance_mask)
    crop = image[y0:y1, x0:x1]
    patch = extractor.patch_size
    resized = resize_to_patch_multiple(crop, max(patch, int(round(long_side / patch)) * patch), patch)
    grid = extractor.extract(resized).features
    gh, gw = grid.shape[:2]
    levels = merge_hierarchy(grid, thetas=thetas, min_patches=min_patches)
    box_h, box_w = y1 - y0, x1 - x0
    rows = np.minimum((np.arange(box_h) + 0.5) * gh / box_h, gh - 1).astype(np.int64)
    cols = np.minimum((np.arange(box_w) + 0.5) * gw / box_w, gw - 1).astype(np.int64)
    inst_crop = instance_mask[y0:y1, x0:x1]
    crop_masks, scores = [], []
    for level in levels:
        if not level.emitted:
            continue
        pixel_labels = level.labels[rows[:, None], cols[None, :]]  # (box_h, box_w)
        stack = pixel_labels[None] == np.asarray(level.emitted)[:, None, None]
        crop_masks.append(stack)
        scores.extend([level.theta] * len(level.emitted))
    if not crop_masks:
        return []
    stack = np.concatenate(crop_masks)
    flat = stack.reshape(len(stack), -1)
    areas = flat.sum(axis=1)
    inside_frac = (flat & inst_crop.reshape(1, -1)).sum(axis=1) / np.maximum(areas, 1)
    keep = inside_frac > inside
    stack, scores = stack[keep], np.asarray(scores)[keep]
    if clip_to_instance:
        stack = stack & inst_crop[None]
    nonempty = stack.reshape(len(stack), -1).any(axis=1)
    stack, scores = stack[nonempty], scores[nonempty]
    protected_crops = np.stack([inst_crop] + [np.asarray(m)[y0:y1, x0:x1] for m in protected])
    stride = max(1, int(np.ceil(max(box_h, box_w) / 256)))
    kept = nms_with_protected(stack, protected_crops, iou_threshold=nms_iou, stride=stride)
    results = []
    for index in kept.tolist():
        full = np.zeros(instance_mask.shape, dtype=bool)
        full[y0:y1, x0:x1] = stack[index]
        results.append(ConquerMask(full, float(scores[index])))
    return results
