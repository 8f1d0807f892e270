"""BSDS500 boundaries: ``images/<split>/<id>.jpg`` and ``groundTruth/<split>/<id>.mat`` (K human annotations,
each with ``Boundaries`` (``H x W`` uint8 0/1) and ``Segmentation`` (region ids))."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from granseg.errors import InputError
from granseg.eval.datasets.base import find_with_stem
from granseg.io.images import load_image


def read_bsds_ground_truth(mat_path: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(boundaries, segmentations)``: K ``H x W`` bool boundary maps and K int32 label maps."""
    from scipy.io import loadmat

    cells = loadmat(mat_path)["groundTruth"][0]
    boundaries = [np.asarray(c["Boundaries"][0, 0]) > 0 for c in cells]
    segmentations = [np.asarray(c["Segmentation"][0, 0], dtype=np.int32) for c in cells]
    return boundaries, segmentations


class BSDS500:
    """Image ids of one split, sorted; :meth:`load` gives ``(image, boundaries)``."""

    name = "bsds500"

    def __init__(self, root: str | Path, split: str = "val") -> None:
        self.root = Path(root)
        self.split = split
        self.gt_dir = self.root / "groundTruth" / split
        self.image_dir = self.root / "images" / split
        if not self.gt_dir.is_dir():
            raise InputError(f"bsds500: no groundTruth/{split} folder under {self.root}")
        self.ids = sorted(p.stem for p in self.gt_dir.glob("*.mat"))

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, image_id: str) -> tuple[np.ndarray, list[np.ndarray]]:
        image_path = find_with_stem(self.image_dir, image_id)
        if image_path is None:
            raise InputError(f"bsds500: no image for {image_id}")
        boundaries, _ = read_bsds_ground_truth(self.gt_dir / f"{image_id}.mat")
        return load_image(image_path), boundaries
