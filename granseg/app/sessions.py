"""Committed objects per image, autosaved atomically to ``<workdir>/images/<id>/objects.json``.

An object is a dict: ``id`` (int, per image), ``name``, ``points`` (list of [x, y] pixels), ``labels`` (1 positive,
0 negative), ``box`` ([x0, y0, x1, y1] or None), ``granularity`` (float in [0.1, 1]), ``hidden``, ``score``, and
its mask as ``segmentation`` (COCO RLE, counts str) with ``area`` and ``bbox`` ([x, y, w, h]). Every change is
written before the request returns (write to a temporary file, fsync, rename), so closing the tab or killing the
server loses no committed object.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from granseg.app.images import NotFoundError, check_image_id
from granseg.errors import InputError

MAX_NAME = 200
MAX_OBJECTS = 5000


def mask_fields(mask: np.ndarray) -> dict[str, Any]:
    """``segmentation`` / ``area`` / ``bbox`` of an ``H x W`` bool mask."""
    from granseg.io.masks import encode_rle, mask_bbox

    return {"segmentation": encode_rle(mask), "area": int(mask.sum()), "bbox": mask_bbox(mask)}


def clean_name(name: Any) -> str:
    if not isinstance(name, str):
        raise InputError("an object name is a string")
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:MAX_NAME]
    if not name:
        raise InputError("an object name cannot be empty")
    return name


class ObjectStore:
    """Objects of every image; loaded lazily from disk, each change saved atomically."""

    def __init__(self, images_root: Path) -> None:
        self.root = Path(images_root)
        self._objects: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()

    def _path(self, image_id: str) -> Path:
        return self.root / check_image_id(image_id) / "objects.json"

    def _load(self, image_id: str) -> dict[str, Any]:
        if image_id not in self._objects:
            if not (self.root / check_image_id(image_id) / "meta.json").is_file():
                raise NotFoundError(f"unknown image id {image_id!r}")
            path = self._path(image_id)
            doc = {"version": 1, "next_id": 1, "objects": []}
            if path.is_file():
                doc = json.loads(path.read_text())
            self._objects[image_id] = doc
        return self._objects[image_id]

    def _save(self, image_id: str) -> None:
        from granseg.io.files import atomic_write_json

        atomic_write_json(self._path(image_id), self._objects[image_id])

    def list(self, image_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(obj) for obj in self._load(image_id)["objects"]]

    def get(self, image_id: str, object_id: int) -> dict[str, Any]:
        with self._lock:
            for obj in self._load(image_id)["objects"]:
                if obj["id"] == object_id:
                    return dict(obj)
        raise NotFoundError(f"no object {object_id} on this image")

    def add(self, image_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Append an object (``fields`` without ``id``); returns it with its new id."""
        with self._lock:
            doc = self._load(image_id)
            if len(doc["objects"]) >= MAX_OBJECTS:
                raise InputError(f"at most {MAX_OBJECTS} objects per image")
            obj = {"id": doc["next_id"], "hidden": False, **fields}
            obj["name"] = clean_name(obj.get("name") or f"object {obj['id']}")
            doc["next_id"] += 1
            doc["objects"].append(obj)
            self._save(image_id)
            return dict(obj)

    def update(self, image_id: str, object_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Change some fields of an object (``name``, ``hidden``, or a re-edit's prompts and mask)."""
        allowed = {"name", "hidden", "points", "labels", "box", "granularity", "score", *mask_fields_keys()}
        unknown = set(changes) - allowed
        if unknown:
            raise InputError(f"cannot change {', '.join(sorted(unknown))}")
        if "name" in changes:
            changes = {**changes, "name": clean_name(changes["name"])}
        if "hidden" in changes and not isinstance(changes["hidden"], bool):
            raise InputError("hidden is true or false")
        with self._lock:
            doc = self._load(image_id)
            for obj in doc["objects"]:
                if obj["id"] == object_id:
                    obj.update(changes)
                    self._save(image_id)
                    return dict(obj)
        raise NotFoundError(f"no object {object_id} on this image")

    def delete(self, image_id: str, object_id: int) -> None:
        with self._lock:
            doc = self._load(image_id)
            kept = [obj for obj in doc["objects"] if obj["id"] != object_id]
            if len(kept) == len(doc["objects"]):
                raise NotFoundError(f"no object {object_id} on this image")
            doc["objects"] = kept
            self._save(image_id)


def mask_fields_keys() -> tuple[str, ...]:
    return ("segmentation", "area", "bbox")
