"""Divide stage: instance discovery by MaskCut-style normalised cuts on the patch affinity graph.

``maskcut`` repeatedly bipartitions the patch graph (nodes = patches, edge weights = thresholded cosine
affinity of their features, as in MaskCut: ``A = [cos > tau]`` with ``eps`` for the rest), taking the second
smallest generalised eigenvector of ``(D - A) x = lambda D x``; patches already claimed by a found mask get zero
features (so they only connect to the rest with ``eps``) before the next cut. Foreground is the side holding the
eigenvector's largest magnitude entry, unless that side holds 3 or 4 image corners (then it is the background);
the mask is the connected component that contains that seed. Each cut gets a confidence in [0, 1]: the mean
affinity inside the mask minus the mean affinity across its boundary to the rest.

``select_instances`` then applies the keep rules: an instance needs confidence > ``min_confidence``, area >
``min_area_frac`` of the image, and is dropped when more than ``containment`` of it lies inside a larger kept
instance, in which case it becomes a *part* of that instance, unless it is larger than ``nest_min_frac`` of the
image: then it is an instance of its own NESTED in that one (the top of its own hierarchy, granularity 1; the
group or the object-plus-surroundings around it stays an instance too). ``merge_external_masks`` adds masks from a
detector or from ground truth (SA-1B / COCO JSON, the UnSAMv2+ path) before those rules run.
``stuff_regions`` (the stuff pass) turns the area no kept instance covers into extra "stuff" instances.

Masks are H x W bool in the pixels of the image given to :func:`divide`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from granseg.errors import InputError
from granseg.regions.superpixels import snap_to_superpixels, superpixels  # noqa: F401  (re-exported)


@dataclasses.dataclass
class DivideMask:
    """One divide-stage mask: ``mask`` H x W bool, ``score`` in [0, 1], ``source`` ("maskcut" | "external")."""

    mask: np.ndarray
    score: float
    source: str = "maskcut"


@dataclasses.dataclass
class Instance:
    """A kept instance and the divide masks found to be its parts (each > ``containment`` inside it).
    ``parent``: index (in the instance list) of the larger instance this one is nested in, or None."""

    mask: np.ndarray
    score: float
    source: str
    parts: list[DivideMask] = dataclasses.field(default_factory=list)
    parent: int | None = None


# --------------------------------------------------------------------------------------- normalised cut
def patch_affinity(features: np.ndarray, tau: float = 0.15, eps: float = 1e-5) -> np.ndarray:
    """Binary MaskCut affinity of (N, C) L2-normalised features: 1 where cosine > ``tau``, else ``eps``."""
    cosine = features @ features.T
    return np.where(cosine > tau, 1.0, eps)


def second_eigenvector(affinity: np.ndarray) -> tuple[np.ndarray, float]:
    """Second smallest generalised eigenvector ``x`` of ``(D - A) x = lambda D x`` and its ``lambda``.

    Computed as ``D^-1/2 y`` with ``y`` the second largest eigenvector of ``D^-1/2 A D^-1/2`` (Lanczos, so an
    N x N dense affinity costs a few matrix-vector products rather than a full eigendecomposition).
    Deterministic (fixed start vector); the sign is arbitrary.
    """
    from scipy.sparse.linalg import eigsh

    n = affinity.shape[0]
    degree = affinity.sum(axis=1)
    inv_sqrt = 1.0 / np.sqrt(np.maximum(degree, 1e-12))
    normalised = affinity * inv_sqrt[:, None] * inv_sqrt[None, :]
    if n <= 64:
        values, vectors = np.linalg.eigh(normalised)
        order = np.argsort(values)[::-1]
        values, vectors = values[order[:2]], vectors[:, order[:2]]
    else:
        start = np.random.default_rng(0).standard_normal(n) + np.sqrt(degree)
        values, vectors = eigsh(normalised, k=2, which="LA", v0=start, tol=1e-6, maxiter=5000)
        order = np.argsort(values)[::-1]
        values, vectors = values[order], vectors[:, order]
    vector = vectors[:, 1] * inv_sqrt
    return vector, float(1.0 - values[1])


def _corner_count(partition: np.ndarray) -> int:
    return int(partition[0, 0]) + int(partition[0, -1]) + int(partition[-1, 0]) + int(partition[-1, -1])


def ncut_bipartition(
    features: np.ndarray,
    active: np.ndarray | None = None,
    tau: float = 0.15,
    eps: float = 1e-5,
    cosine: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """One MaskCut step on an (h, w, C) feature grid.

    ``active``: (h, w) bool, patches still available; the cut is computed on the graph of the active patches
    only (MaskCut zeroes the features of claimed patches instead, which lets the second eigenvector separate
    claimed from unclaimed patches rather than split the unclaimed ones).
    ``cosine``: optional precomputed (h*w, h*w) patch cosine matrix (saves the product when cutting often).
    Returns the foreground (h, w) bool (the connected component of the seed patch; empty when nothing is
    left to cut) and its confidence.
    """
    from scipy import ndimage

    h, w, c = features.shape
    active = np.ones((h, w), dtype=bool) if active is None else np.asarray(active, dtype=bool)
    flat = features.reshape(h * w, c).astype(np.float64)
    nodes = np.flatnonzero(active.reshape(-1))
    empty = np.zeros((h, w), dtype=bool)
    if len(nodes) < 2:
        return empty, 0.0
    if cosine is None:
        affinity = patch_affinity(flat[nodes], tau=tau, eps=eps)
    else:  # precomputed (N, N) cosine of all patches, shared by every cut of the image
        affinity = np.where(cosine[np.ix_(nodes, nodes)] > tau, 1.0, eps)
    vector, _ = second_eigenvector(affinity)
    side = vector > vector.mean()
    seed = int(np.argmax(np.abs(vector)))
    partition = np.zeros(h * w, dtype=bool)
    partition[nodes[side]] = True
    if _corner_count(partition.reshape(h, w)) >= 3 or not side[seed]:
        partition[nodes] = ~side
        vector = -vector
    seed_patch = int(nodes[int(np.argmax(vector))])
    labels, _ = ndimage.label(partition.reshape(h, w))
    seed_label = labels.reshape(-1)[seed_patch]
    if seed_label == 0:
        return empty, 0.0
    foreground = labels == seed_label
    return foreground, cut_confidence(flat, foreground.reshape(-1), active)


def cut_confidence(flat: np.ndarray, foreground: np.ndarray, active: np.ndarray | None) -> float:
    """Mean cosine inside the foreground minus mean cosine between it and the rest of the active patches,
    clipped to [0, 1]. (N, C) features, (N,) bool foreground."""
    rest = ~foreground if active is None else (~foreground & active.reshape(-1))
    fg = flat[foreground]
    if len(fg) == 0 or not rest.any():
        return 0.0
    fg_mean = fg.mean(axis=0)
    inside = float(fg_mean @ fg_mean)  # = mean pairwise cosine (including self pairs)
    across = float(fg_mean @ flat[rest].mean(axis=0))
    return float(np.clip(inside - across, 0.0, 1.0))


def maskcut(
    features: np.ndarray,
    num_masks: int = 4,
    tau: float = 0.15,
    min_patches: int = 2,
    active: np.ndarray | None = None,
    split_depth: int = 1,
    split_masks: int = 3,
    cosine: np.ndarray | None = None,
) -> list[tuple[np.ndarray, float]]:
    """Up to ``num_masks`` successive cuts on an (h, w, C) grid: list of ((h, w) bool, confidence).

    ``split_depth`` > 0 also cuts inside every found mask (``split_masks`` cuts, recursively): a single cut
    often returns several touching objects as one foreground, and its sub-cuts separate them (they become
    that instance's parts, or instances of their own when the outer mask is dropped).
    """
    h, w, c = features.shape
    if cosine is None:
        flat = features.reshape(h * w, c).astype(np.float32)
        cosine = flat @ flat.T
    active = np.ones((h, w), dtype=bool) if active is None else active.copy()
    results = []
    for _ in range(num_masks):
        if active.sum() < 2 * min_patches:
            break
        foreground, confidence = ncut_bipartition(features, active=active, tau=tau, cosine=cosine)
        if foreground.sum() < min_patches:
            break
        results.append((foreground, confidence))
        active &= ~foreground
        if split_depth > 0 and foreground.sum() >= 8 * min_patches:
            results.extend(
                maskcut(
                    features, split_masks, tau, min_patches, foreground, split_depth - 1, split_masks, cosine
                )
            )
    return results


def upsample_grid_mask(grid_mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w) bool patch mask -> (height, width) bool, bilinear on the 0/1 map then threshold 0.5."""
    import cv2

    soft = cv2.resize(grid_mask.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return soft > 0.5


def divide(
    features: np.ndarray,
    image_shape: tuple[int, int],
    num_masks: int = 4,
    tau: float = 0.15,
    split_depth: int = 1,
    split_masks: int = 3,
) -> list[DivideMask]:
    """MaskCut masks of one image: ``features`` (h, w, C) grid, masks returned at ``image_shape`` (H, W)."""
    height, width = image_shape
    cuts = maskcut(features, num_masks=num_masks, tau=tau, split_depth=split_depth, split_masks=split_masks)
    return [DivideMask(upsample_grid_mask(grid, height, width), score) for grid, score in cuts]


# --------------------------------------------------------------------------------------- keep rules
def containment_matrix(masks: Sequence[np.ndarray]) -> np.ndarray:
    """(K, K) matrix: entry [i, j] = fraction of mask i's area inside mask j (vectorised)."""
    if len(masks) == 0:
        return np.zeros((0, 0))
    stack = np.stack([np.asarray(m, dtype=bool).reshape(-1) for m in masks]).astype(np.float32)
    overlap = stack @ stack.T
    areas = np.maximum(stack.sum(axis=1), 1.0)
    return overlap / areas[:, None]


def _iou_from_containment(inside: np.ndarray, areas: np.ndarray) -> np.ndarray:
    overlap = inside * areas[:, None]
    return overlap / np.maximum(areas[:, None] + areas[None, :] - overlap, 1.0)


def select_instances(
    candidates: Sequence[DivideMask],
    min_confidence: float = 0.3,
    min_area_frac: float = 0.05,
    containment: float = 0.8,
    duplicate_iou: float = 0.9,
    nest_min_frac: float = 0.0,
) -> list[Instance]:
    """Apply the keep rules; see the module docstring. Larger masks are considered first.

    Every candidate with enough confidence ends up either as an instance, as a part of one (> ``containment``
    inside it, any area; of the smallest such instance), as a nested instance (inside one but larger than
    ``nest_min_frac`` > 0 of the image; ``Instance.parent`` names the instance it is nested in), or dropped
    (too small and not inside any instance, or a duplicate: IoU > ``duplicate_iou`` with a mask already
    accepted).
    """
    good = [c for c in candidates if c.score > min_confidence and c.mask.any()]
    if not good:
        return []
    image_area = good[0].mask.size
    order = sorted(range(len(good)), key=lambda i: (-int(good[i].mask.sum()), -good[i].score))
    good = [good[i] for i in order]
    inside = containment_matrix([c.mask for c in good])
    iou = _iou_from_containment(inside, np.array([c.mask.sum() for c in good], dtype=np.float64))
    instances: list[Instance] = []
    owner_index: list[int] = []  # index into `good` of each instance
    accepted: list[int] = []
    for index, candidate in enumerate(good):
        if accepted and iou[index, accepted].max() > duplicate_iou:
            continue  # the same region found twice (e.g. by a sub-cut, or by MaskCut and a detector)
        accepted.append(index)
        parents = [k for k, j in enumerate(owner_index) if inside[index, j] > containment]
        area = candidate.mask.sum()
        parent = None
        if parents:  # the most containing instance; among equals the smallest (the latest: larger come first)
            parent = max(parents, key=lambda k: (inside[index, owner_index[k]], k))
            if not (nest_min_frac > 0 and area > max(nest_min_frac, min_area_frac) * image_area):
                instances[parent].parts.append(candidate)
                continue
        if area > min_area_frac * image_area:
            instances.append(Instance(candidate.mask, candidate.score, candidate.source, parent=parent))
            owner_index.append(index)
    return instances


# --------------------------------------------------------------------------------------- stuff pass
def stuff_regions(
    features: np.ndarray,
    covered: np.ndarray,
    theta: float = 0.5,
    min_area_frac: float = 0.05,
    superpixel_labels: np.ndarray | None = None,
) -> list[DivideMask]:
    """Regions of the image area that no instance covers ("stuff": sky, ground, walls), as extra instances.

    ``features`` (h, w, C) patch grid of the whole image; ``covered`` (H, W) bool, the union of the instances,
    in image pixels. The uncovered pixels are grouped by the conquer merging (:func:`~granseg.pseudo.conquer.
    merge_graph`, cosine of summed features of adjacent clusters >= ``theta``), starting from the
    ``superpixel_labels`` (H, W) cut by the uncovered area when given, else from the patches mostly uncovered.
    Each resulting connected region with area > ``min_area_frac`` of the image becomes a :class:`DivideMask`
    with ``source="stuff"``, clipped to the uncovered area; its score is its cut confidence (mean cosine inside
    minus mean cosine to the rest of the image, in [0, 1])."""
    return _merged_regions(features, covered, (theta,), min_area_frac, superpixel_labels, "stuff")


def merge_regions(
    features: np.ndarray,
    image_shape: tuple[int, int],
    thetas: Sequence[float],
    min_area_frac: float = 0.05,
    superpixel_labels: np.ndarray | None = None,
) -> list[DivideMask]:
    """Region proposals from the top of the merge hierarchy of the whole image: one greedy merging
    (:func:`~granseg.pseudo.conquer.merge_graph`) over the whole image, and at each of ``thetas`` every
    connected region > ``min_area_frac`` of the image, as a :class:`DivideMask` with ``source="merge"`` and its
    cut confidence as score (the same region at several thetas is returned once). They join the MaskCut
    candidates: objects that no normalised cut isolates (cut together with a neighbour) are often one cluster
    of the hierarchy."""
    covered = np.zeros(image_shape, dtype=bool)
    return _merged_regions(features, covered, thetas, min_area_frac, superpixel_labels, "merge")


def _merged_regions(
    features: np.ndarray,
    covered: np.ndarray,
    thetas: Sequence[float],
    min_area_frac: float,
    superpixel_labels: np.ndarray | None,
    source: str,
) -> list[DivideMask]:
    from scipy import ndimage

    from granseg.pseudo.conquer import grid_edges, merge_graph, patch_rows_cols, superpixel_graph

    height, width = covered.shape
    h, w, c = features.shape
    flat = features.reshape(h * w, c)
    free = ~np.asarray(covered, dtype=bool)
    if free.sum() <= min_area_frac * free.size:
        return []
    rows, cols = patch_rows_cols(height, width, h, w)
    patch_of_pixel = rows[:, None] * w + cols[None, :]
    if superpixel_labels is not None:
        unit_map, sums, sizes, edges = superpixel_graph(superpixel_labels, free, patch_of_pixel, flat)
    else:  # patches more than half uncovered are the units
        share = np.bincount(patch_of_pixel[free], minlength=h * w) / np.maximum(
            np.bincount(patch_of_pixel.reshape(-1), minlength=h * w), 1
        )
        active = share > 0.5
        edges = grid_edges(h, w)
        edges = edges[active[edges[:, 0]] & active[edges[:, 1]]]
        sums, sizes = flat.astype(np.float64), active.astype(np.float64)
        unit_map = np.where(free, patch_of_pixel, -1)
        unit_map[free & ~active[patch_of_pixel]] = -1
    if len(sizes) == 0:
        return []
    min_area = min_area_frac * covered.size
    pixels_per_patch = np.bincount(patch_of_pixel.reshape(-1), minlength=h * w)
    regions, seen = [], set()
    for level in merge_graph(sums, edges, sizes, thetas=tuple(thetas), min_size=1):
        region_map = np.where(unit_map >= 0, level.labels[np.maximum(unit_map, 0)], -1)
        areas = np.bincount(region_map[region_map >= 0])
        for value in np.flatnonzero(areas > min_area).tolist():  # smaller regions cannot hold a large piece
            components, count = ndimage.label(region_map == value)
            for index in range(1, count + 1):
                mask = components == index
                if mask.sum() <= min_area:
                    continue
                key = np.packbits(mask).tobytes()
                if key in seen:  # unchanged since a higher theta
                    continue
                seen.add(key)
                foreground = np.bincount(patch_of_pixel[mask], minlength=h * w) > 0.5 * pixels_per_patch
                score = cut_confidence(flat, foreground, None) if foreground.any() else 0.0
                regions.append(DivideMask(mask, score, source))
    return regions


# --------------------------------------------------------------------------------------- external masks
def merge_external_masks(
    candidates: Sequence[DivideMask], external: Sequence[DivideMask], replace: bool = False
) -> list[DivideMask]:
    """Candidates for :func:`select_instances` from MaskCut ``candidates`` plus ``external`` masks (a detector's
    output or ground truth). ``replace=True`` uses the external masks only (the official detector path)."""
    merged = list(external) if replace else list(candidates) + list(external)
    for item in merged:
        if item.mask.shape != merged[0].mask.shape:
            raise InputError("external masks must have the image's size")
    return merged


def load_external_masks(
    path: str | Path, image_name: str, height: int, width: int, default_score: float = 1.0
) -> list[DivideMask]:
    """Masks for one image from a JSON file: SA-1B per-image (``{"image": ..., "annotations": [...]}``), a COCO
    instances file (``images`` + ``annotations``, matched on ``file_name``), or a plain list of records with
    ``segmentation``. Segmentations may be RLE (compressed or not) or polygons. Masks that do not have the
    image's size are resized (nearest)."""
    from granseg.io.masks import decode_rle, polygons_to_mask

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read external masks {path}: {exc}") from None
    if isinstance(data, dict) and "images" in data and "annotations" in data:
        ids = {
            im["id"]
            for im in data["images"]
            if Path(im.get("file_name", "")).name == image_name
            or Path(im.get("file_name", "")).stem == image_name
        }
        annotations = [a for a in data["annotations"] if a.get("image_id") in ids]
        info = next((im for im in data["images"] if im["id"] in ids), {})
    elif isinstance(data, dict) and "annotations" in data:
        annotations, info = data["annotations"], data.get("image", {})
    elif isinstance(data, list):
        annotations, info = data, {}
    else:
        raise InputError(f"{path}: not an SA-1B, COCO or record-list JSON")
    src_h, src_w = int(info.get("height", height)), int(info.get("width", width))
    masks = []
    for annotation in annotations:
        segmentation = annotation.get("segmentation")
        if isinstance(segmentation, dict):
            mask = decode_rle(segmentation)
        elif isinstance(segmentation, list):
            mask = polygons_to_mask(segmentation, src_h, src_w)
        else:
            continue
        if mask.shape != (height, width):
            import cv2

            mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        score = float(annotation.get("score", annotation.get("predicted_iou", default_score)))
        masks.append(DivideMask(mask, score, "external"))
    return masks


def external_masks_for(source: Any, image_path: Path, height: int, width: int) -> list[DivideMask]:
    """Resolve ``source`` (a directory of per-image JSON named ``<stem>.json``, or one COCO JSON file) for
    one image; an image with no external file gets none."""
    if source is None:
        return []
    source = Path(source)
    if source.is_dir():
        candidate = source / f"{image_path.stem}.json"
        return load_external_masks(candidate, image_path.name, height, width) if candidate.is_file() else []
    return load_external_masks(source, image_path.name, height, width)
