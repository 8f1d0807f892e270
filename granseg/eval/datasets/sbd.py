"""SBD (Hariharan et al.) instance masks, the isegm ``SBDEvaluationDataset`` layout.

``img/<id>.jpg``, ``inst/<id>.mat`` (``GTinst.Segmentation``: 0 = background, k = instance k), and the split
list ``val.txt`` (or ``train.txt``) with one id per line. Every instance of every listed image is evaluated.
SBD instance maps have no ignore label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from granseg.errors import InputError
from granseg.eval.datasets.base import EvalDataset, Instance, Sample, find_with_stem
from granseg.io.images import load_image


def read_sbd_instances(mat_path: Path) -> np.ndarray:
    """``H x W`` int32 instance-id map from an SBD ``inst/*.mat`` file."""
    from scipy.io import loadmat

    return np.asarray(loadmat(mat_path)["GTinst"][0][0][0], dtype=np.int32)


class SBDDataset(EvalDataset):
    name = "sbd"

    def __init__(self, root: str | Path, split: str = "val") -> None:
        super().__init__(root)
        split_file = self.root / f"{split}.txt"
        if split_file.is_file():
            self.items = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
        else:
            self.items = sorted(p.stem for p in (self.root / "inst").glob("*.mat"))
        if not self.items:
            raise InputError(f"sbd: no samples under {self.root}")

    def load_item(self, image_id: str) -> Sample:
        image_path = find_with_stem(self.root / "img", image_id)
        if image_path is None:
            raise InputError(f"sbd: no image for {image_id}")
        labels = read_sbd_instances(self.root / "inst" / f"{image_id}.mat")
        instances = [Instance(str(k), labels == k) for k in np.unique(labels) if k > 0 and k != 255]
        return Sample(image_id, load_image(image_path), instances)
