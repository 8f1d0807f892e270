"""Instance-label datasets for dense training (Gen2Seg): each sample is an image and an instance label map.

Sample: ``(image, labels)`` with image ``3 x S x S`` float32 in [0, 1] and labels ``S x S`` int64 (0 background,
>= 1 instance, -1 ignore), resized to the model's square input side ``S`` (image bilinear, labels nearest).

* :class:`SynthInstances`: procedural scenes (:mod:`granseg.synth`); scene ``i`` is ``generate_scene(seed_offset
  + i)``; instances are the scene's objects (``label_map("object")``).
* :class:`CocoInstances`: a COCO-style JSON (``images``/``annotations`` with polygon or RLE segmentations) and an
  image folder; larger annotations are painted first so small ones stay visible; ``iscrowd`` regions are ignored.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from granseg.config import Config
from granseg.errors import InputError
from granseg.synth import SynthConfig


@dataclasses.dataclass
class InstanceDataConfig(Config):
    source: str = "synth"  # "synth" or "coco"
    synth: SynthConfig = dataclasses.field(default_factory=lambda: SynthConfig(size=64))
    num_scenes: int = 10000
    seed_offset: int = 0
    cache: bool = False  # keep generated synthetic samples in memory (small images, many epochs)
    coco_json: str | None = None
    coco_images: str | None = None

    def __post_init__(self) -> None:
        if self.source not in ("synth", "coco"):
            raise InputError(f"data.source must be 'synth' or 'coco', got {self.source!r}")
        if self.source == "coco" and not (self.coco_json and self.coco_images):
            raise InputError("data.source 'coco' needs coco_json and coco_images")


def resize_sample(image: np.ndarray, labels: np.ndarray, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``H x W x 3`` uint8 + ``H x W`` int -> ``3 x S x S`` float [0, 1] + ``S x S`` int64."""
    tensor = (
        torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].float() / 255.0
    )
    label_tensor = torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64))[None, None].float()
    if tensor.shape[-2:] != (size, size):
        tensor = torch.nn.functional.interpolate(
            tensor, size=(size, size), mode="bilinear", align_corners=False
        )
        label_tensor = torch.nn.functional.interpolate(label_tensor, size=(size, size), mode="nearest")
    return tensor[0], label_tensor[0, 0].long()


class SynthInstances:
    def __init__(self, config: InstanceDataConfig, size: int) -> None:
        from granseg.synth import generate_scene

        self._generate = generate_scene
        self.config = config
        self.size = size
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return self.config.num_scenes

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if int(index) in self._cache:
            return self._cache[int(index)]
        scene = self._generate(seed=self.config.seed_offset + int(index), config=self.config.synth)
        sample = resize_sample(scene.image, scene.label_map("object"), self.size)
        if self.config.cache:
            self._cache[int(index)] = sample
        return sample


class CocoInstances:
    def __init__(self, config: InstanceDataConfig, size: int) -> None:
        from pycocotools.coco import COCO

        json_path = Path(config.coco_json or "")
        if not json_path.is_file():
            raise InputError(f"COCO annotation file not found: {json_path}")
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            self.coco = COCO(str(json_path))
        self.image_ids = sorted(self.coco.getImgIds())
        if not self.image_ids:
            raise InputError(f"{json_path} lists no images")
        self.root = Path(config.coco_images or "")
        self.size = size

    def __len__(self) -> int:
        return len(self.image_ids)

    def label_map(self, image_id: int) -> np.ndarray:
        info = self.coco.loadImgs(image_id)[0]
        labels = np.zeros((info["height"], info["width"]), dtype=np.int64)
        annotations = self.coco.loadAnns(self.coco.getAnnIds(imgIds=image_id))
        annotations = sorted(annotations, key=lambda a: -float(a.get("area", 0)))
        for number, annotation in enumerate(annotations, start=1):
            mask = self.coco.annToMask(annotation).astype(bool)
            labels[mask] = -1 if annotation.get("iscrowd", 0) else number
        return labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from granseg.io import load_image

        image_id = self.image_ids[int(index)]
        info = self.coco.loadImgs(image_id)[0]
        image = load_image(self.root / info["file_name"])
        labels = self.label_map(image_id)
        if labels.shape != image.shape[:2]:
            raise InputError(
                f"{info['file_name']}: image {image.shape[:2]} but annotations are for {labels.shape}"
            )
        return resize_sample(image, labels, self.size)


def build_instance_dataset(config: InstanceDataConfig, size: int):
    return SynthInstances(config, size) if config.source == "synth" else CocoInstances(config, size)
