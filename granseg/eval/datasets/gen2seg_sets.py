"""The other evaluation sets of the Gen2Seg paper, in their published layouts (``--data-root`` is the folder the
archive extracts to; ``--split`` picks the subset):

* ``dram`` (Cohen et al., DRAM: art paintings; ``DRAM_processed``)::

      test/images/<art movement>/<name>.jpg    test/labels/<art movement>/<name>.png

  The label PNG holds a class index per pixel (0 background, 255 unlabelled); each 8-connected region of one
  class is an instance (DRAM has semantic labels only); 255 pixels are the ignore mask.
* ``egohos`` (Zhang et al. 2022, egocentric hand-object segmentation), split ``test_indomain`` (default) or
  ``test_outdomain``::

      <split>/image/<name>.jpg    <split>/label/<name>.png      (0 background, 1 .. 8 hands / objects)

  Each non-zero label value of an image is one instance (left hand, right hand, the objects they touch).
* ``ishape`` (Yang et al. 2021), Cityscapes-style instance maps; split ``SUB`` or ``SUB/SPLIT`` (SUB one of
  antenna, branch, fence, hanger, log, wire; SPLIT default ``val``); without a split every sub-dataset's ``val``::

      <SUB>/<SPLIT>/image/<name>.jpg    <SUB>/<SPLIT>/instance_map/<name>.png   (16-bit, pixel = instance id, 0 none)

* ``pidray`` (Wang et al. 2021, X-ray baggage), COCO JSON; split ``easy`` (default), ``hard`` or ``hidden``::

      annotations/xray_test_<split>.json    <split>/<file_name>
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from granseg.errors import InputError
from granseg.eval.datasets.base import EvalDataset, Instance, Sample, find_with_stem, read_gray
from granseg.eval.datasets.coco import CocoJsonDataset
from granseg.io.images import load_image

ISHAPE_SUBSETS = ("antenna", "branch", "fence", "hanger", "log", "wire")


def _pairs(image_root: Path, mask_root: Path, what: str, expected: str) -> list[tuple[str, str]]:
    """``(image path, mask path)`` (as strings, relative to nothing) for every image with a same-stem mask."""
    if not image_root.is_dir() or not mask_root.is_dir():
        raise InputError(
            f"{what}: expected {expected}; {image_root if not image_root.is_dir() else mask_root} is missing"
        )
    pairs = []
    for image in sorted(p for p in image_root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        folder = mask_root / image.parent.relative_to(image_root)
        mask = find_with_stem(folder, image.stem, (".png",))
        if mask is not None:
            pairs.append((str(image), str(mask)))
    if not pairs:
        raise InputError(f"{what}: expected {expected}; found no image with a mask of the same name")
    return pairs


class _PairDataset(EvalDataset):
    def item_id(self, index: int) -> str:
        return Path(self.items[index][0]).stem

    def load_item(self, item) -> Sample:
        image_path, mask_path = item
        image = load_image(image_path)
        labels = read_gray(Path(mask_path)) if self.gray else _read_raw(Path(mask_path))
        if labels.shape != image.shape[:2]:
            raise InputError(f"{self.name}: {mask_path} is {labels.shape}, its image {image.shape[:2]}")
        return Sample(Path(image_path).stem, image, self.instances(labels))

    gray = True

    def instances(self, labels: np.ndarray) -> list[Instance]:  # pragma: no cover - abstract
        raise NotImplementedError


def _read_raw(path: Path) -> np.ndarray:
    """A (possibly 16-bit) single-channel PNG as int32, without any colour conversion."""
    from PIL import Image

    with Image.open(path) as handle:
        return np.asarray(handle).astype(np.int32)


class DramDataset(_PairDataset):
    name = "dram"

    def __init__(self, root: str | Path, split: str = "test") -> None:
        super().__init__(root)
        base = self.root / split
        self.items = _pairs(
            base / "images",
            base / "labels",
            "dram",
            f"{split}/images/<movement>/*.jpg + {split}/labels/<movement>/*.png",
        )

    def instances(self, labels: np.ndarray) -> list[Instance]:
        from scipy import ndimage

        ignore = labels == 255
        result = []
        for value in np.unique(labels):
            if value in (0, 255):
                continue
            regions, count = ndimage.label(labels == value, structure=np.ones((3, 3), bool))
            for k in range(1, count + 1):
                result.append(Instance(f"{value}_{k}", regions == k, ignore if ignore.any() else None))
        return result


class EgoHosDataset(_PairDataset):
    name = "egohos"

    def __init__(self, root: str | Path, split: str = "test_indomain") -> None:
        super().__init__(root)
        base = self.root / split
        self.items = _pairs(
            base / "image", base / "label", "egohos", f"{split}/image/*.jpg + {split}/label/*.png"
        )

    def instances(self, labels: np.ndarray) -> list[Instance]:
        return [Instance(str(v), labels == v) for v in np.unique(labels) if v != 0]


class IShapeDataset(_PairDataset):
    name = "ishape"
    gray = False

    def __init__(self, root: str | Path, split: str | None = None) -> None:
        super().__init__(root)
        subset, _, part = (split or "").partition("/")
        subsets = [subset] if subset else [s for s in ISHAPE_SUBSETS if (self.root / s).is_dir()]
        if not subsets or any(s not in ISHAPE_SUBSETS for s in subsets):
            raise InputError(
                f"ishape: expected sub-dataset folders {', '.join(ISHAPE_SUBSETS)} in {self.root}"
            )
        self.items = []
        for name in subsets:
            base = self.root / name / (part or "val")
            expected = f"{name}/{part or 'val'}/image/*.jpg + instance_map/*.png"
            self.items += _pairs(base / "image", base / "instance_map", "ishape", expected)

    def item_id(self, index: int) -> str:
        image = Path(self.items[index][0])
        return f"{image.parents[2].name}_{image.stem}"

    def instances(self, labels: np.ndarray) -> list[Instance]:
        return [Instance(str(v), labels == v) for v in np.unique(labels) if v != 0]


class PidRayDataset(CocoJsonDataset):
    name = "pidray"

    def __init__(self, root: str | Path, split: str = "easy") -> None:
        root = Path(root)
        annotation = root / "annotations" / f"xray_test_{split}.json"
        if not annotation.is_file():
            raise InputError(f"pidray: expected annotations/xray_test_{split}.json in {root}")
        super().__init__(root, annotation)
        if (root / split).is_dir():
            self.image_dir = root / split
