"""Part-level datasets: PascalPart and PartImageNet.

* PascalPart: ``JPEGImages/<id>.jpg`` and ``Annotations_Part/<id>.mat`` (``anno.objects[i].parts[j].mask``).
  Each part of each object is one instance (id ``<object>-<part_name>``); with ``level="object"`` the object masks
  are used instead. No ignore label.
* PartImageNet: ``images/<split>/<name>.JPEG`` and ``annotations/<split>/<name>.png`` where each pixel holds a part
  class 0..39 and 40 = background. Each part class present in an image is one instance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from granseg.errors import InputError
from granseg.eval.datasets.base import EvalDataset, Instance, Sample, find_with_stem, read_gray
from granseg.io.images import load_image

PARTIMAGENET_BACKGROUND = 40


def read_pascal_part(mat_path: Path, level: str = "part") -> list[Instance]:
    """Instances of one PascalPart annotation file (``level`` "part" or "object")."""
    from scipy.io import loadmat

    anno = loadmat(mat_path)["anno"][0, 0]
    instances: list[Instance] = []
    for obj_index, obj in enumerate(anno["objects"][0]):
        obj_class = str(np.squeeze(obj["class"]))
        if level == "object":
            instances.append(Instance(f"{obj_index}-{obj_class}", np.asarray(obj["mask"]) > 0))
            continue
        parts = obj["parts"]
        if parts.size == 0:
            continue
        for part_index, part in enumerate(parts[0]):
            name = str(np.squeeze(part["part_name"]))
            mask = np.asarray(part["mask"]) > 0
            if mask.any():
                instances.append(Instance(f"{obj_index}-{obj_class}-{part_index}-{name}", mask))
    return instances


class PascalPartDataset(EvalDataset):
    name = "pascalpart"

    def __init__(self, root: str | Path, level: str = "part") -> None:
        super().__init__(root)
        self.level = level
        self.items = sorted(p.stem for p in (self.root / "Annotations_Part").glob("*.mat"))
        if not self.items:
            raise InputError(f"pascalpart: no .mat files in {self.root / 'Annotations_Part'}")

    def load_item(self, image_id: str) -> Sample:
        image_path = find_with_stem(self.root / "JPEGImages", image_id)
        if image_path is None:
            raise InputError(f"pascalpart: no image for {image_id}")
        instances = read_pascal_part(self.root / "Annotations_Part" / f"{image_id}.mat", self.level)
        return Sample(image_id, load_image(image_path), instances)


class PartImageNetDataset(EvalDataset):
    name = "partimagenet"

    def __init__(self, root: str | Path, split: str = "test") -> None:
        super().__init__(root)
        self.annotation_dir = self.root / "annotations" / split
        self.image_dir = self.root / "images" / split
        if not self.annotation_dir.is_dir():  # flat layout: annotations/, images/
            self.annotation_dir, self.image_dir = self.root / "annotations", self.root / "images"
        self.items = sorted(p.stem for p in self.annotation_dir.glob("*.png"))
        if not self.items:
            raise InputError(f"partimagenet: no annotation PNGs in {self.annotation_dir}")

    def load_item(self, name: str) -> Sample:
        image_path = find_with_stem(self.image_dir, name)
        if image_path is None:
            raise InputError(f"partimagenet: no image for {name}")
        labels = read_gray(self.annotation_dir / f"{name}.png")
        instances = [
            Instance(str(k), labels == k)
            for k in np.unique(labels)
            if k != PARTIMAGENET_BACKGROUND and k < 255
        ]
        return Sample(name, load_image(image_path), instances)
