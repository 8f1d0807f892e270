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

The merging is the region hierarchy's (:mod:`granseg.regions.merge` on the greedy loop of
:mod:`granseg.regions.agglomerate`, the one :func:`granseg.regions.tree.build_region_tree` runs): one merge tree
per instance, each theta a cut of it at ``1 - theta``. Mask decoding, containment and IoU are vectorised.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from granseg.regions.merge import (  # noqa: F401  (re-exported: the engine's merging lives in regions)
    DEFAULT_THETAS,
    MergeLevel,
    grid_edges,
    merge_graph,
    merge_hierarchy,
    superpixel_graph,
)


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
    min_part_frac: float = 0.0,
) -> list[ConquerMask]:
    """Parts of one instance. ``image`` H x W x 3 uint8, ``instance_mask`` H x W bool, ``extractor`` a
    :class:`~granseg.pseudo.features.FeatureExtractor`; ``long_side`` is rounded to a multiple of its patch size.
    ``protected``: masks (H x W bool) that win NMS besides the instance (e.g. its divide parts).
    ``superpixel_labels``: optional (H, W) int superpixel labels of the image; the merging then starts from the
    superpixels cut by the instance mask (see :func:`superpixel_graph`) instead of from single patches, so
    every emitted cluster follows image edges and lies inside the instance.
    ``featureless_spread`` > 0: a crop whose features report an ``appearance_spread`` below it (one flat colour
    or a uniform fine texture; the classical features) has no parts: only the position prior would cut it.
    ``min_part_frac``: a part must also cover this fraction of the instance's own pixel area (``min_patches``
    counts patches of the crop upsampled to ``long_side``, a few pixels of a small image: alone it lets every
    superpixel of a small instance through as a part).
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
    inst_crop = instance_mask[y0:y1, x0:x1]
    sp_crop = None if superpixel_labels is None else superpixel_labels[y0:y1, x0:x1]
    min_pixels = min_part_frac * float(inst_crop.sum())  # in the image's own pixels
    stack, scores = _level_masks(grid, inst_crop, sp_crop, thetas, min_patches, min_pixels)
    if stack is None:
        return []
    protected_crops = np.stack([inst_crop] + [np.asarray(m)[y0:y1, x0:x1] for m in protected])
    stack, scores = _keep_inside(stack, scores, inst_crop, protected_crops, inside, nms_iou, clip_to_instance)
    results = []
    for index in range(len(stack)):
        full = np.zeros(instance_mask.shape, dtype=bool)
        full[y0:y1, x0:x1] = stack[index]
        results.append(ConquerMask(full, float(scores[index])))
    return results


def outside_of(
    parts: list[ConquerMask], masks: Sequence[np.ndarray], containment: float
) -> list[ConquerMask]:
    """The ``parts`` of which at most ``containment`` lies inside each of ``masks`` (H x W bool each)."""
    if not masks or not parts:
        return parts
    inside = mask_containment(np.stack([p.mask for p in parts]), np.stack(masks))
    return [part for part, row in zip(parts, inside) if not (row > containment).any()]


def mask_containment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Ka, Kb) share of each mask of ``a`` (Ka, H, W) bool lying inside each mask of ``b`` (Kb, H, W)."""
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    return (fa @ fb.T) / np.maximum(fa.sum(1), 1.0)[:, None]


def _level_masks(grid, inst_crop, sp_crop, thetas, min_patches, min_pixels=0.0):
    """Masks ``(K, h, w)`` bool over the instance's box (``inst_crop`` ``h x w``) of the clusters every merge
    level emits, and their ``(K,)`` scores (the level's theta); ``(None, None)`` when nothing is emitted.
    ``grid``: ``(gh, gw, C)`` patch features of the box; ``sp_crop``: ``h x w`` superpixels or None. A cluster
    is emitted when it has >= ``min_patches`` patches and >= ``min_pixels`` pixels of the box."""
    gh, gw = grid.shape[:2]
    box_h, box_w = inst_crop.shape
    rows, cols = patch_rows_cols(box_h, box_w, gh, gw)
    pixels_per_patch = box_h * box_w / (gh * gw)
    if sp_crop is None:
        min_size = max(float(min_patches), min_pixels / pixels_per_patch)
        levels = merge_hierarchy(grid, thetas=thetas, min_patches=min_size)
        unit_map = None
    else:
        patch_of_pixel = rows[:, None] * gw + cols[None, :]
        unit_map, sums, sizes, edges = superpixel_graph(
            sp_crop, inst_crop, patch_of_pixel, grid.reshape(gh * gw, -1)
        )
        if len(sizes) < 2:
            return None, None
        min_size = max(min_patches * pixels_per_patch, min_pixels)
        levels = merge_graph(sums, edges, sizes, thetas=thetas, min_size=min_size)
    crop_masks, scores = [], []
    for level in levels:
        if not level.emitted:
            continue
        if unit_map is None:
            pixel_labels = level.labels[rows[:, None], cols[None, :]]  # (box_h, box_w)
        else:
            pixel_labels = np.where(unit_map >= 0, level.labels[np.maximum(unit_map, 0)], -1)
        crop_masks.append(pixel_labels[None] == np.asarray(level.emitted)[:, None, None])
        scores.extend([level.theta] * len(level.emitted))
    if not crop_masks:
        return None, None
    return np.concatenate(crop_masks), np.asarray(scores)


def _keep_inside(stack, scores, inst_crop, protected_crops, inside, nms_iou, clip_to_instance):
    """The masks of ``stack`` (``(K, h, w)`` bool) more than ``inside`` of which lies in ``inst_crop``, clipped
    to it when ``clip_to_instance``, non-empty, after NMS at ``nms_iou`` against each other and the
    ``protected_crops``; returns the kept masks and scores in priority order."""
    flat = stack.reshape(len(stack), -1)
    areas = flat.sum(axis=1)
    inside_frac = (flat & inst_crop.reshape(1, -1)).sum(axis=1) / np.maximum(areas, 1)
    keep = inside_frac > inside
    stack, scores = stack[keep], scores[keep]
    if clip_to_instance:
        stack = stack & inst_crop[None]
    nonempty = stack.reshape(len(stack), -1).any(axis=1)
    stack, scores = stack[nonempty], scores[nonempty]
    stride = max(1, int(np.ceil(max(inst_crop.shape) / 256)))
    kept = nms_with_protected(stack, protected_crops, iou_threshold=nms_iou, stride=stride)
    return stack[kept], scores[kept]


def patch_rows_cols(height: int, width: int, grid_h: int, grid_w: int) -> tuple[np.ndarray, np.ndarray]:
    """For an ``height x width`` pixel area covered by a ``grid_h x grid_w`` patch grid: the patch row of each
    pixel row and the patch column of each pixel column (by pixel centres), ``(height,)`` and ``(width,)``."""
    rows = np.minimum((np.arange(height) + 0.5) * grid_h / height, grid_h - 1).astype(np.int64)
    cols = np.minimum((np.arange(width) + 0.5) * grid_w / width, grid_w - 1).astype(np.int64)
    return rows, cols
