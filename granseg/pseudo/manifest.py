"""The bookkeeping files of a pseudo-label output folder.

``manifest.jsonl``: one JSON line appended and fsynced per finished image (the source of truth for ``resume``;
an image's files count only once its line exists). ``failures.json``: the images that could not be labelled,
with the reason (rewritten atomically at the end of every run).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from granseg.errors import InputError
from granseg.io.files import atomic_write_json

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MANIFEST = "manifest.jsonl"
FAILURES = "failures.json"


def list_images(images_dir: Path) -> list[Path]:
    """Image files directly in ``images_dir`` (by extension, sorted by name)."""
    if not images_dir.is_dir():
        raise InputError(f"not a directory: {images_dir}")
    return sorted(p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_manifest(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Latest manifest entry per image name; a torn last line (killed mid-append) is ignored."""
    entries: dict[str, dict[str, Any]] = {}
    path = out_dir / MANIFEST
    if not path.is_file():
        return entries
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "image" in entry:
            entries[entry["image"]] = entry
    return entries


class Manifest:
    """Append-only JSONL; each line is written with one ``write`` and fsynced."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            with open(path, "ab") as handle:  # terminate a line torn by a kill
                handle.write(b"\n")
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, entry: dict[str, Any]) -> None:
        os.write(self.fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def write_failures(out_dir: Path, failures: list[dict[str, Any]]) -> None:
    atomic_write_json(out_dir / FAILURES, sorted(failures, key=lambda f: f["image"]), indent=1)
