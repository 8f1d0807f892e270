"""Common types for evaluation datasets.

A dataset is an ordered list of samples (one image each, sorted by name so runs are deterministic); loading a
sample gives the ``H x W x 3`` uint8 RGB image and its instances, each an ``H x W`` bool mask plus an optional
``H x W`` bool ignore mask (pixels left out of IoU and of the clicker's error maps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from granseg.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class Instance:
    """One object or part to segment. ``mask``/``ignore``: ``H x W`` bool."""

    id: str
    mask: np.ndarray
    ignore: np.ndarray | None = None


@dataclass
class Sample:
    """One image and the instances to evaluate on it."""

    id: str
    image: np.ndarray
    instances: list[Instance] = field(default_factory=list)


class EvalDataset:
    """Base class: subclasses fill ``self.items`` (one entry per image, any picklable value) and implement
    :meth:`load_item`. Instances of one image are evaluated in the order returned."""

    name = "dataset"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise InputError(f"dataset folder {self.root} does not exist")
        self.items: list = []

    def __len__(self) -> int:
        return len(self.items)

    def item_id(self, index: int) -> str:
        return str(self.items[index])

    def load(self, index: int) -> Sample:
        return self.load_item(self.items[index])

    def load_item(self, item) -> Sample:  # pragma: no cover - abstract
        raise NotImplementedError

    def restrict(self, ids: list[str] | None) -> None:
        """Keep only the samples whose id is in ``ids`` (``--subset``), in the dataset's order."""
        if not ids:
            return
        wanted = set(ids)
        kept = [item for i, item in enumerate(self.items) if self.item_id(i) in wanted]
        if not kept:
            raise InputError(f"--subset matched none of the {len(self.items)} samples of {self.name}")
        self.items = kept


def read_gray(path: Path) -> np.ndarray:
    """A mask file as ``H x W`` int32; colour files take the max over channels (isegm convention)."""
    from PIL import Image

    with Image.open(path) as im:
        array = np.asarray(im)  # palette images give their indices, which are the labels
    array = array.astype(np.int32)
    if array.ndim == 3:
        array = array[..., :3].max(axis=2)
    return array


def find_with_stem(folder: Path, stem: str, suffixes=IMAGE_SUFFIXES) -> Path | None:
    for suffix in suffixes:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"expected an image folder at {folder}")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
