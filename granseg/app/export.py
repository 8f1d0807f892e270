"""Exports of an image's committed objects, and re-import of a COCO export to keep editing.

* ``coco``: a :func:`granseg.io.masks.records_to_coco` document. Each annotation is a granseg mask record
  (``segmentation`` COCO RLE, ``area``, ``bbox``, ``score``, ``granularity``, ``point_coords``) plus the
  pseudo-label fields (``instance_id``, ``is_part``/``is_divide``/``is_conquer`` false) and the app's own
  (``name``, ``point_labels``, ``box``, ``hidden``). The document also carries ``image`` (file name, height, width),
  so it reads as a pseudo-label file and as ``granseg eval whole-image`` predictions.
* ``png``: a zip of one 0/255 PNG per object plus ``labels.png`` (uint16, object id per pixel, later objects on
  top) and ``objects.json`` (id, name, granularity).
* ``polygons``: JSON with each object's outer contours as COCO polygons ``[x0, y0, x1, y1, ...]``.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

import numpy as np

from granseg.errors import InputError


def _masks(objects: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    from granseg.io.masks import decode_rle

    if not objects:
        return np.zeros((0, height, width), dtype=bool)
    return np.stack([decode_rle(obj["segmentation"]) for obj in objects])


def coco_document(meta: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The COCO RLE export (see the module docstring)."""
    from granseg.io.masks import masks_to_records, records_to_coco

    height, width = int(meta["height"]), int(meta["width"])
    extra = [
        {
            "name": obj["name"],
            "point_coords": [[float(x), float(y)] for x, y in obj.get("points", [])],
            "point_labels": [int(v) for v in obj.get("labels", [])],
            "box": obj.get("box"),
            "hidden": bool(obj.get("hidden", False)),
            "instance_id": int(obj["id"]),
            "is_part": False,
            "is_divide": False,
            "is_conquer": False,
        }
        for obj in objects
    ]
    records = masks_to_records(
        _masks(objects, height, width),
        [min(1.0, max(0.0, float(obj.get("score", 1.0)))) for obj in objects],
        [float(obj["granularity"]) for obj in objects],
        extra=extra,
    )
    document = records_to_coco(records, meta["name"], height, width)
    document["image"] = {"file_name": meta["name"], "height": height, "width": width}
    return document


def polygons_document(meta: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, Any]:
    from granseg.io.masks import mask_to_polygons

    masks = _masks(objects, int(meta["height"]), int(meta["width"]))
    return {
        "image": {"file_name": meta["name"], "height": meta["height"], "width": meta["width"]},
        "objects": [
            {
                "id": obj["id"],
                "name": obj["name"],
                "granularity": obj["granularity"],
                "bbox": obj["bbox"],
                "area": obj["area"],
                "polygons": mask_to_polygons(mask),
            }
            for obj, mask in zip(objects, masks)
        ],
    }


def png_zip(meta: dict[str, Any], objects: list[dict[str, Any]]) -> bytes:
    import cv2

    height, width = int(meta["height"]), int(meta["width"])
    masks = _masks(objects, height, width)
    labels = np.zeros((height, width), dtype=np.uint16)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for obj, mask in zip(objects, masks):
            labels[mask] = int(obj["id"])
            ok, encoded = cv2.imencode(".png", mask.astype(np.uint8) * 255)
            if not ok:
                raise RuntimeError("PNG encoding failed")
            slug = re.sub(r"[^A-Za-z0-9_-]+", "_", obj["name"])[:40].strip("_") or "object"
            archive.writestr(f"masks/{int(obj['id']):04d}_{slug}.png", encoded.tobytes())
        ok, encoded = cv2.imencode(".png", labels)
        if not ok:
            raise RuntimeError("PNG encoding failed")
        archive.writestr("labels.png", encoded.tobytes())
        index = [{"id": o["id"], "name": o["name"], "granularity": o["granularity"]} for o in objects]
        archive.writestr("objects.json", json.dumps({"image": meta["name"], "objects": index}, indent=1))
    return buffer.getvalue()


def objects_from_export(document: Any, height: int, width: int) -> list[dict[str, Any]]:
    """Objects (without ids) from a COCO export, a pseudo-label file or a list of granseg records.

    Masks are taken as they are (RLE of size ``height x width``); clicks and g come back when present.
    """
    from granseg.app.sessions import mask_fields
    from granseg.io.masks import decode_rle

    records = document.get("annotations") if isinstance(document, dict) else document
    if not isinstance(records, list):
        raise InputError("an export is a COCO document with 'annotations' or a list of mask records")
    objects = []
    for index, record in enumerate(records, start=1):
        if not isinstance(record, dict) or "segmentation" not in record:
            raise InputError(f"annotation {index} has no 'segmentation'")
        rle = record["segmentation"]
        if not isinstance(rle, dict) or [int(v) for v in rle.get("size", [])] != [height, width]:
            raise InputError(f"annotation {index} is not an RLE mask of this image's size {width}x{height}")
        mask = decode_rle(rle)
        if not mask.any():
            continue
        points = record.get("point_coords") or []
        labels = record.get("point_labels") or [1] * len(points)
        granularity = record.get("granularity")
        objects.append(
            {
                "name": str(record.get("name") or f"imported {index}"),
                "points": [[float(x), float(y)] for x, y in points],
                "labels": [int(v) for v in labels][: len(points)],
                "box": record.get("box"),
                "granularity": 1.0 if granularity is None else min(1.0, max(0.1, float(granularity))),
                "hidden": bool(record.get("hidden", False)),
                "score": float(record.get("score", 1.0)),
                **mask_fields(mask),
            }
        )
    return objects
