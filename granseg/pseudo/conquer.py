"""Conquer stage: parts of one instance by iterative merging of patch clusters.

For an instance: crop its tight box, resize the long side to ``long_side`` (both sides multiples of the
patch size), take patch features, then start from one cluster per patch and greedily merge the most similar
4-connected adjacent pair (cosine of the clusters' summed features) while that similarity is >= theta, for
theta in ``thetas`` (0.9 .. 0.5) cumulatively. At the end of each level every cluster of >= ``min_patches``
patches that still has a neighbour is emitted; masks more than ``inside`` of whose area lies inside the instance
are kept (clipped to it), and NMS at IoU ``nms_iou`` removes duplicates, the protected masks (the instance and
its divide parts) always winning.

Optionally (``superpixel_labels``) the merging starts from the image's superpixels cut by the instance instead
of from single patches (:func:`superpixel_graph` builds that region graph, :func:`merge_graph` merges any
region graph), so every cluster follows image edges.

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
    superpixel_labels: np.ndarray | None = None,
    featureless_spread: float = 0.0,
) -> list[ConquerMask]:
    """Parts of one instance. ``image`` H x W x 3 uint8, ``instance_mask`` H x W bool, ``extractor`` a
    :class:`~granseg.pseudo.features.FeatureExtractor`; ``long_side`` is rounded to a multiple of its patch size.
    ``protected``: masks (H x W bool) that win NMS besides the instance (e.g. its divide parts).
    ``superpixel_labels``: optional (H, W) int superpixel labels of the image; the merging then starts from the
    superpixels cut by the instance mask (see :func:`superpixel_graph`) instead of from single patches, so
    every emitted cluster follows image edges and lies inside the instance.
    ``featureless_spread`` > 0: a crop whose features report an ``appearance_spread`` below it (one flat colour
    or a uniform fine texture; the classical features) has no parts: only the position prior would cut it.
    Returns masks in image pixels, ordered by level (theta high first) then cluster id."""
    from granseg.pseudo.features import resize_to_patch_multiple

    if not instance_mask.any():
        return []
    x0, y0, x1, y1 = instance_box(instance_mask)
    crop = image[y0:y1, x0:x1]
    patch = extractor.patch_size
    resized = resize_to_patch_multiple(crop, max(patch, int(round(long_side / patch)) * patch), patch)
    extracted = extractor.extract(resized)
    if extracted.is_featureless(featureless_spread):
        return []
    grid = extracted.features
    gh, gw = grid.shape[:2]
    box_h, box_w = y1 - y0, x1 - x0
    rows, cols = patch_rows_cols(box_h, box_w, gh, gw)
    inst_crop = instance_mask[y0:y1, x0:x1]
    if superpixel_labels is None:
        levels = merge_hierarchy(grid, thetas=thetas, min_patches=min_patches)
        unit_map = None
    else:
        patch_of_pixel = rows[:, None] * gw + cols[None, :]
        unit_map, sums, sizes, edges = superpixel_graph(
            superpixel_labels[y0:y1, x0:x1], inst_crop, patch_of_pixel, grid.reshape(gh * gw, -1)
        )
        if len(sizes) < 2:
            return []
        pixels_per_patch = box_h * box_w / (gh * gw)
        levels = merge_graph(sums, edges, sizes, thetas=thetas, min_size=min_patches * pixels_per_patch)
    crop_masks, scores = [], []
    for level in levels:
        if not level.emitted:
            continue
        if unit_map is None:
            pixel_labels = level.labels[rows[:, None], cols[None, :]]  # (box_h, box_w)
        else:
            pixel_labels = np.where(unit_map >= 0, level.labels[np.maximum(unit_map, 0)], -1)
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


def patch_rows_cols(height: int, width: int, grid_h: int, grid_w: int) -> tuple[np.ndarray, np.ndarray]:
    """For an ``height x width`` pixel area covered by a ``grid_h x grid_w`` patch grid: the patch row of each
    pixel row and the patch column of each pixel column (by pixel centres), ``(height,)`` and ``(width,)``."""
    rows = np.minimum((np.arange(height) + 0.5) * grid_h / height, grid_h - 1).astype(np.int64)
    cols = np.minimum((np.arange(width) + 0.5) * grid_w / width, grid_w - 1).astype(np.int64)
    return rows, cols


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
