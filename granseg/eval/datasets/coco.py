"""COCO-style JSON (COCO, LVIS, EntitySeg ...) and SA-1B (one JSON per image with RLE masks).

* COCO: ``--data-root`` is the image folder and ``annotation`` the instances JSON; every non-crowd annotation is
  one instance; crowd regions of the same image are the ignore mask.
* SA-1B: ``<name>.jpg`` next to ``<name>.json`` holding ``{"image": {...}, "annotations": [{"segmentation":
  {"size": [h, w], "counts": str}, "id": ...}]}``. No ignore label.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from granseg.errors import InputError
from granseg.eval.datasets.base import EvalDataset, Instance, Sample, find_with_stem
from granseg.io.images import load_image


def annotation_to_mask(segmentation, height: int, width: int) -> np.ndarray:
    """Polygons, uncompressed RLE or compressed RLE -> ``H x W`` bool."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        rles = mask_utils.frPyObjects(segmentation, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = dict(segmentation)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
    return mask_utils.decode(rle).astype(bool)


class CocoJsonDataset(EvalDataset):
    name = "coco"

    def __init__(self, root: str | Path, annotation: str | Path | None = None, min_area: float = 0.0) -> None:
        super().__init__(root)
        if annotation is None:
            candidates = [
                *sorted(self.root.glob("*.json")),
                *sorted((self.root / "annotations").glob("*.json")),
                *sorted((self.root.parent / "annotations").glob("*.json")),
            ]
            if not candidates:
                raise InputError("coco: give the instances JSON (--annotations)")
            annotation = candidates[0]
        data = json.loads(Path(annotation).read_text())
        self.images = {img["id"]: img for img in data["images"]}
        self.categories = {c["id"]: c.get("name", "") for c in data.get("categories", [])}
        self.annotations: dict[int, list[dict]] = {}
        for ann in data.get("annotations", []):
            self.annotations.setdefault(ann["image_id"], []).append(ann)
        self.min_area = min_area
        self.image_dir = self._image_dir()
        self.items = sorted(i for i in self.images if i in self.annotations)

    def _image_dir(self) -> Path:
        first = next(iter(self.images.values()), None)
        if first is None:
            return self.root
        for folder in [self.root, *sorted(p for p in self.root.rglob("*") if p.is_dir())]:
            if (folder / first["file_name"]).is_file():
                return folder
        return self.root

    def item_id(self, index: int) -> str:
        return Path(self.images[self.items[index]]["file_name"]).stem

    def load_item(self, image_id: int) -> Sample:
        info = self.images[image_id]
        height, width = info["height"], info["width"]
        image = load_image(self.image_dir / info["file_name"])
        anns = sorted(self.annotations[image_id], key=lambda a: a["id"])
        crowd = np.zeros((height, width), dtype=bool)
        for ann in anns:
            if ann.get("iscrowd", 0):
                crowd |= annotation_to_mask(ann["segmentation"], height, width)
        instances = [
            Instance(
                str(ann["id"]),
                annotation_to_mask(ann["segmentation"], height, width),
                crowd if crowd.any() else None,
            )
            for ann in anns
            if not ann.get("iscrowd", 0) and ann.get("area", 1.0) >= self.min_area
        ]
        return Sample(Path(info["file_name"]).stem, image, instances)


class SA1BDataset(EvalDataset):
    name = "sa1b"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.items = sorted(p.stem for p in self.root.glob("*.json") if find_with_stem(self.root, p.stem))
        if not self.items:
            raise InputError(f"sa1b: no <name>.jpg + <name>.json pairs in {self.root}")

    def load_item(self, name: str) -> Sample:
        data = json.loads((self.root / f"{name}.json").read_text())
        image = load_image(find_with_stem(self.root, name))
        height, width = image.shape[:2]
        instances = [
            Instance(str(ann.get("id", k)), annotation_to_mask(ann["segmentation"], height, width))
            for k, ann in enumerate(data["annotations"])
        ]
        return Sample(name, image, instances)
