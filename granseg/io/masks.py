"""Mask encoding: PNG, COCO RLE (pycocotools), polygons, and the package's JSON records.

Masks are ``H x W`` bool arrays; stacks are ``K x H x W``. RLE dicts are ``{"size": [H, W], "counts": str}``
(the COCO compressed form, ``counts`` decoded to ``str`` so that it is JSON-serialisable).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from granseg.errors import InputError
from granseg.io.files import atomic_write_bytes


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of an ``H x W`` bool mask; ``counts`` is a str."""
    from pycocotools import mask as mask_utils

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"encode_rle expects an H x W mask, got shape {mask.shape}")
    if mask.dtype == bool:  # one Fortran-order copy, viewed as uint8 (same bytes), not two
        fortran = np.asfortranarray(mask).view(np.uint8)
    else:
        fortran = np.asfortranarray(mask.astype(np.uint8))
    rle = mask_utils.encode(fortran)
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_rle`; also accepts uncompressed RLE (``counts`` a list of ints)."""
    from pycocotools import mask as mask_utils

    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise InputError("an RLE must be a dict with 'size' and 'counts'")
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        compressed = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    else:
        compressed = {
            "size": [height, width],
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
        }
    return mask_utils.decode(compressed).astype(bool)


def mask_bbox(mask: np.ndarray) -> list[float]:
    """Tight box ``[x, y, w, h]`` (COCO convention, pixels) of a bool mask; zeros for an empty mask."""
    rows = np.flatnonzero(np.any(mask, axis=1))  # not np.nonzero: 16 bytes per foreground pixel
    if len(rows) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    cols = np.flatnonzero(np.any(mask, axis=0))
    x0, y0 = int(cols[0]), int(rows[0])
    return [float(x0), float(y0), float(cols[-1] - x0 + 1), float(rows[-1] - y0 + 1)]


def mask_to_polygons(mask: np.ndarray, min_area: float = 1.0) -> list[list[float]]:
    """Outer contours of a bool mask as COCO polygons ``[x0, y0, x1, y1, ...]`` (pixel coordinates).

    Holes are not represented (COCO polygons cannot express them); use RLE for exact masks.
    """
    import cv2

    mask = np.ascontiguousarray(np.asarray(mask, dtype=np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        if len(contour) < 3 or cv2.contourArea(contour) < min_area:
            if len(contour) >= 1 and min_area <= 1.0 and cv2.contourArea(contour) == 0:
                # a thin or single-pixel component: keep it as its pixel square so it is not lost
                x, y, w, h = cv2.boundingRect(contour)
                polygons.append([x, y, x + w, y, x + w, y + h, x, y + h])
            continue
        polygons.append(contour.reshape(-1).astype(float).tolist())
    return [[float(v) for v in poly] for poly in polygons]


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons to an ``H x W`` bool mask (pycocotools convention)."""
    from pycocotools import mask as mask_utils

    if len(polygons) == 0:
        return np.zeros((height, width), dtype=bool)
    rles = mask_utils.frPyObjects([list(map(float, p)) for p in polygons], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def encode_mask_png(mask: np.ndarray) -> bytes:
    """PNG bytes of a bool mask (0/255) or a uint8/uint16 label map."""
    import cv2

    mask = np.asarray(mask)
    if mask.dtype == bool:
        mask = mask.astype(np.uint8) * 255
    ok, encoded = cv2.imencode(".png", mask)
    if not ok:
        raise InputError(f"could not encode a mask of shape {mask.shape} and dtype {mask.dtype} as PNG")
    return encoded.tobytes()


def save_mask_png(path: str | Path, mask: np.ndarray) -> Path:
    """Write a bool mask (or a label map of uint8/uint16) as PNG atomically; bool masks become 0/255."""
    return atomic_write_bytes(path, encode_mask_png(mask))


def masks_to_records(
    masks: np.ndarray,
    scores: Sequence[float],
    granularity: Sequence[float] | None = None,
    point_coords: np.ndarray | None = None,
    extra: Sequence[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One JSON record per mask: ``segmentation`` (COCO RLE, counts str), ``area``, ``bbox`` [x, y, w, h],
    ``score``, ``granularity``, ``point_coords`` (list of [x, y]), plus any ``extra`` fields per mask."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim == 2:
        masks = masks[None]
    records = []
    points = [] if point_coords is None else np.asarray(point_coords, dtype=float).reshape(-1, 2).tolist()
    for index, mask in enumerate(masks):
        record = {
            "segmentation": encode_rle(mask),
            "area": int(mask.sum()),
            "bbox": mask_bbox(mask),
            "score": float(scores[index]),
            "granularity": None if granularity is None else round(float(granularity[index]), 4),
            "point_coords": points,
        }
        if extra is not None:
            record.update(extra[index])
        records.append(record)
    return records


def records_to_coco(
    records: Sequence[dict[str, Any]], image_file: str, height: int, width: int, image_id: int = 1
) -> dict[str, Any]:
    """Wrap records in a minimal COCO results document (one image, category 1 = 'object')."""
    annotations = []
    for index, record in enumerate(records, start=1):
        ann = dict(record)
        ann.update({"id": index, "image_id": image_id, "category_id": 1, "iscrowd": 0})
        annotations.append(ann)
    return {
        "images": [{"id": image_id, "file_name": image_file, "height": height, "width": width}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "object"}],
    }


def label_map_to_records(labels: np.ndarray, granularity: float | None = None) -> list[dict[str, Any]]:
    """One record per region of an ``H x W`` int label map (a partition: every pixel one region), largest first,
    fields as :func:`masks_to_records` with ``score`` 1.0 (a partition has no confidence) and ``point_coords`` one
    ``[x, y]`` per region: its pixel farthest from the region's outline (inside it, also for a ring)."""
    import cv2
    from scipy import ndimage

    labels = np.asarray(labels)
    values, numbered = np.unique(labels, return_inverse=True)
    numbered = numbered.reshape(labels.shape).astype(np.int32)
    # distance of every pixel to the nearest pixel of another region (the image border counts as outside)
    outline = np.zeros(labels.shape, bool)
    outline[:, 1:] |= numbered[:, 1:] != numbered[:, :-1]
    outline[:, :-1] |= numbered[:, 1:] != numbered[:, :-1]
    outline[1:] |= numbered[1:] != numbered[:-1]
    outline[:-1] |= numbered[1:] != numbered[:-1]
    inner = np.pad(~outline, 1).astype(np.uint8)
    distance = cv2.distanceTransform(inner, cv2.DIST_L2, 3)[1:-1, 1:-1]
    index = np.arange(len(values))
    deepest = ndimage.maximum_position(distance, numbered, index)
    areas = np.bincount(numbered.ravel(), minlength=len(values))
    records = []
    for k in np.argsort(-areas, kind="stable"):
        mask = numbered == k
        y, x = deepest[k]
        records.extend(
            masks_to_records(mask, [1.0], None if granularity is None else [granularity], [[x, y]])
        )
    return records
