"""Image sources of the web app: uploads and a folder confined to ``--images DIR``.

Every opened image gets an id (the first 16 hex digits of the SHA-256 of its file bytes) and a folder
``<workdir>/images/<id>/`` holding ``meta.json`` (name, source, width, height), ``display.jpg`` (what the browser
shows, EXIF orientation applied) and, for uploads, the original bytes (so a restarted server can embed it again).
Pixels are ``H x W x 3`` uint8 RGB as :func:`granseg.load_image` returns them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from granseg.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm"}
MAX_LISTED = 10_000
_ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")


class OutsideFolderError(InputError):
    """A requested path that is not inside the ``--images`` folder (``..``, absolute, or a symlink out)."""


class NotFoundError(InputError):
    """An image id or folder entry that does not exist."""


def check_image_id(image_id: str) -> str:
    """``image_id`` if it is 16 lowercase hex digits (ids never reach the file system otherwise)."""
    if not isinstance(image_id, str) or not _ID_PATTERN.match(image_id):
        raise NotFoundError(f"unknown image id {image_id!r}")
    return image_id


def confined_path(root: Path, relative: str) -> Path:
    """The file ``relative`` names inside ``root``; refuses ``..``, absolute paths and symlinks leading out."""
    if not isinstance(relative, str) or not relative or "\x00" in relative or "\\" in relative:
        raise OutsideFolderError("a folder path is relative, with '/' separators")
    parts = PurePosixPath(relative)
    if parts.is_absolute() or ".." in parts.parts or relative.startswith("~"):
        raise OutsideFolderError(f"{relative!r} is outside the image folder")
    root = root.resolve()
    resolved = (root / parts).resolve()
    if not resolved.is_relative_to(root):
        raise OutsideFolderError(f"{relative!r} is outside the image folder")
    if not resolved.is_file():
        raise NotFoundError(f"no image {relative!r} in the image folder")
    return resolved


def list_folder(root: Path) -> list[str]:
    """Image files under ``root`` (relative posix paths, sorted); symlinks resolving outside are left out."""
    root = root.resolve()
    found: list[str] = []
    for directory, subdirs, files in os.walk(root, followlinks=False):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(directory) / name
            if not path.resolve().is_relative_to(root) or not path.resolve().is_file():
                continue
            found.append(path.relative_to(root).as_posix())
            if len(found) >= MAX_LISTED:
                return sorted(found)
    return sorted(found)


class ImageStore:
    """Opened images: metadata on disk, decoded pixels in a small in-memory LRU (``keep`` images)."""

    def __init__(self, workdir: Path, images_dir: Path | None, max_pixels: int, keep: int = 4) -> None:
        self.root = Path(workdir) / "images"
        self.root.mkdir(parents=True, exist_ok=True)
        self.images_dir = None if images_dir is None else Path(images_dir).resolve()
        self.max_pixels = int(max_pixels)
        self._keep = max(1, int(keep))
        self._pixels: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    # ---- opening -------------------------------------------------------------------------------------------
    def open_bytes(self, data: bytes, name: str) -> dict[str, Any]:
        """Decode an uploaded file (refused with :class:`ImageDecodeError` if it is not a usable image)."""
        image_id = hashlib.sha256(data).hexdigest()[:16]
        suffix = Path(name).suffix.lower()
        suffix = suffix if suffix in IMAGE_SUFFIXES else ".bin"
        folder = self.root / image_id
        if (folder / "meta.json").is_file():
            return self.meta(image_id)
        rgb = self._decode(data, name)
        from granseg.io.files import atomic_write_bytes

        atomic_write_bytes(folder / f"original{suffix}", data)
        return self._register(image_id, rgb, {"name": _safe_name(name), "source": f"original{suffix}"})

    def open_folder(self, relative: str) -> dict[str, Any]:
        """Open ``relative`` from the ``--images`` folder (confined to it)."""
        if self.images_dir is None:
            raise NotFoundError("the server was started without --images DIR")
        path = confined_path(self.images_dir, relative)
        data = path.read_bytes()
        image_id = hashlib.sha256(data).hexdigest()[:16]
        if (self.root / image_id / "meta.json").is_file():
            return self.meta(image_id)
        rgb = self._decode(data, relative)
        return self._register(image_id, rgb, {"name": Path(relative).name, "source": f"folder:{relative}"})

    def _decode(self, data: bytes, name: str) -> np.ndarray:
        from granseg import load_image
        from granseg.errors import ImageDecodeError

        try:
            return load_image(data, max_pixels=self.max_pixels)
        except ImageDecodeError as exc:
            message = (
                str(exc)
                .replace("<bytes>", repr(_safe_name(name)))
                .replace(" (raise it with --max-pixels)", "")
            )
            raise ImageDecodeError(message) from None

    def _register(self, image_id: str, rgb: np.ndarray, fields: dict[str, Any]) -> dict[str, Any]:
        import cv2

        from granseg.io.files import atomic_write_bytes, atomic_write_json

        folder = self.root / image_id
        ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise InputError("could not encode the image for display")
        atomic_write_bytes(folder / "display.jpg", jpeg.tobytes())
        meta = {"id": image_id, **fields, "height": int(rgb.shape[0]), "width": int(rgb.shape[1])}
        atomic_write_json(folder / "meta.json", meta, indent=1)
        self._remember(image_id, rgb)
        return meta

    # ---- reading -------------------------------------------------------------------------------------------
    def meta(self, image_id: str) -> dict[str, Any]:
        path = self.root / check_image_id(image_id) / "meta.json"
        if not path.is_file():
            raise NotFoundError(f"unknown image id {image_id!r}")
        return json.loads(path.read_text())

    def display_path(self, image_id: str) -> Path:
        self.meta(image_id)
        return self.root / image_id / "display.jpg"

    def pixels(self, image_id: str) -> np.ndarray:
        """``H x W x 3`` uint8 RGB of an opened image (decoded again from its source after a restart)."""
        with self._lock:
            if image_id in self._pixels:
                self._pixels.move_to_end(image_id)
                return self._pixels[image_id]
        meta = self.meta(image_id)
        source = meta["source"]
        if source.startswith("folder:"):
            if self.images_dir is None:
                raise NotFoundError(f"{meta['name']} came from an --images folder this server was not given")
            data = confined_path(self.images_dir, source[len("folder:") :]).read_bytes()
        else:
            data = (self.root / image_id / Path(source).name).read_bytes()
        rgb = self._decode(data, meta["name"])
        self._remember(image_id, rgb)
        return rgb

    def _remember(self, image_id: str, rgb: np.ndarray) -> None:
        with self._lock:
            self._pixels[image_id] = rgb
            self._pixels.move_to_end(image_id)
            while len(self._pixels) > self._keep:
                self._pixels.popitem(last=False)

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """Opened images, newest first (``meta`` plus ``objects``, the number of committed objects)."""
        entries = []
        for meta_path in self.root.glob("*/meta.json"):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                continue
            objects_path = meta_path.parent / "objects.json"
            count = 0
            if objects_path.is_file():
                try:
                    count = len(json.loads(objects_path.read_text()).get("objects", []))
                except (OSError, ValueError):
                    count = 0
            entries.append((meta_path.stat().st_mtime, {**meta, "objects": count}))
        entries.sort(key=lambda item: -item[0])
        return [meta for _, meta in entries[:limit]]


def _safe_name(name: str) -> str:
    """A display file name: the last path component, printable, at most 120 characters."""
    base = PurePosixPath(str(name).replace("\\", "/")).name or "upload"
    return "".join(ch for ch in base if ch.isprintable())[:120] or "upload"
