"""The isegm (RITM) layouts: GrabCut, Berkeley, DAVIS, COCO-MVal. One instance per image.

* GrabCut: ``data_GT/<name>.{jpg,bmp}`` images, ``boundary_GT/<name>.bmp`` masks; 0 = background, 128 = unlabelled
  band (ignore), > 128 = object (isegm ``GrabCutDataset``).
* Berkeley: ``images/``, ``masks/`` with the GrabCut conventions (isegm ``BerkeleyDataset`` derives from it).
* DAVIS (isegm's 345-frame interactive set): ``img/``, ``gt/``; object = any channel > 0, no ignore.
  The raw DAVIS-2016 layout (``JPEGImages/480p/<seq>/``, ``Annotations/480p/<seq>/``) is accepted too; sample ids
  are then ``<seq>/<frame>``.
* COCO-MVal: ``img/``, ``gt/`` like DAVIS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from granseg.errors import InputError
from granseg.eval.datasets.base import EvalDataset, Instance, Sample, find_with_stem, list_images, read_gray
from granseg.io.images import load_image


class PairedFolderDataset(EvalDataset):
    """Images in one folder, one mask per image (same stem) in another."""

    image_dir = "img"
    mask_dir = "gt"
    mask_suffixes: tuple[str, ...] = (".png", ".bmp", ".jpg")

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.items = [p.stem for p in list_images(self.root / self.image_dir)]
        if not self.items:
            raise InputError(f"no images in {self.root / self.image_dir}")

    def paths(self, stem: str) -> tuple[Path, Path]:
        image = find_with_stem(self.root / self.image_dir, stem)
        mask = find_with_stem(self.root / self.mask_dir, stem, self.mask_suffixes)
        if image is None or mask is None:
            raise InputError(f"{self.name}: no mask for image {stem} in {self.root / self.mask_dir}")
        return image, mask

    def decode_mask(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return raw > 0, None

    def load_item(self, stem: str) -> Sample:
        image_path, mask_path = self.paths(stem)
        mask, ignore = self.decode_mask(read_gray(mask_path))
        return Sample(stem, load_image(image_path), [Instance("0", mask, ignore)])


class GrabCutDataset(PairedFolderDataset):
    name = "grabcut"
    image_dir = "data_GT"
    mask_dir = "boundary_GT"

    def decode_mask(self, raw):
        return raw > 128, raw == 128


class BerkeleyDataset(GrabCutDataset):
    name = "berkeley"
    image_dir = "images"
    mask_dir = "masks"


class CocoMValDataset(PairedFolderDataset):
    name = "coco-mval"


class DavisDataset(PairedFolderDataset):
    """isegm layout (``img/``, ``gt/``) or raw DAVIS-2016 (``JPEGImages/480p``, ``Annotations/480p``)."""

    name = "davis"

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        self.raw_layout = not (root / "img").is_dir() and (root / "JPEGImages").is_dir()
        if not self.raw_layout:
            super().__init__(root)
            return
        EvalDataset.__init__(self, root)
        frames_root = _resolution_dir(root / "JPEGImages")
        self.frames_root = frames_root
        self.masks_root = root / "Annotations" / frames_root.name
        self.items = [
            f"{seq.name}/{frame.stem}"
            for seq in sorted(p for p in frames_root.iterdir() if p.is_dir())
            for frame in list_images(seq)
        ]

    def paths(self, stem: str) -> tuple[Path, Path]:
        if not self.raw_layout:
            return super().paths(stem)
        seq, frame = stem.split("/")
        image = find_with_stem(self.frames_root / seq, frame)
        mask = find_with_stem(self.masks_root / seq, frame, self.mask_suffixes)
        if image is None or mask is None:
            raise InputError(f"davis: missing frame or mask for {stem}")
        return image, mask


def _resolution_dir(folder: Path) -> Path:
    """``JPEGImages/480p`` when present (DAVIS), else the folder itself."""
    for name in ("480p", "Full-Resolution"):
        if (folder / name).is_dir():
            return folder / name
    return folder
