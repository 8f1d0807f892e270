"""Instance-label datasets for dense training (Gen2Seg): each sample is an image and an instance label map.

Sample: ``(image, labels)`` with image ``3 x S x S`` float32 in [0, 1] and labels ``S x S`` int64 (0 background,
>= 1 instance, -1 ignore), resized to the model's square input side ``S`` (image bilinear, labels nearest).

* :class:`SynthInstances`: procedural scenes (:mod:`granseg.synth`); scene ``i`` is ``generate_scene(seed_offset
  + i)``; instances are the scene's objects (``label_map("object")``).
* :class:`CocoInstances`: a COCO-style JSON (``images``/``annotations`` with polygon or RLE segmentations) and an
  image folder; larger annotations are painted first so small ones stay visible; ``iscrowd`` regions are ignored.
* the paper's sources in their published layouts (:mod:`granseg.train.gen2seg_data`): ``hypersim``, ``vkitti2``,
  ``clevrtex``, and ``mix`` (one source per micro-batch, drawn with ``mix_weights``: Hypersim 90 %, Virtual KITTI 2
  10 % by default). They go through :class:`~granseg.train.gen2seg_data.base.CleanSource`: unusable images are
  skipped and counted, the cleaning rules and the class-filtered variants apply, and the geometry is the paper's
  (``geometry="auto"``: SD at 480 x 640 (Hypersim) / 368 x 1024 (Virtual KITTI 2), ImageNet backbones on random
  ``image_size`` crops).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from granseg.config import Config
from granseg.errors import InputError
from granseg.synth import SynthConfig

SOURCES = ("synth", "coco", "hypersim", "vkitti2", "clevrtex", "pseudo", "mix")
GEOMETRIES = ("auto", "square", "resize", "crop")
# The paper's training sizes for Stable Diffusion ("resize" geometry), height x width.
SD_SIZES = {"hypersim": (480, 640), "vkitti2": (368, 1024), "clevrtex": (240, 320), "coco": (512, 512)}


@dataclasses.dataclass
class InstanceDataConfig(Config):
    source: str = "synth"  # one of SOURCES
    synth: SynthConfig = dataclasses.field(default_factory=lambda: SynthConfig(size=64))
    num_scenes: int = 10000
    seed_offset: int = 0
    cache: bool = False  # keep generated synthetic samples in memory (small images, many epochs)
    coco_json: str | None = None
    coco_images: str | None = None
    hypersim_root: str | None = None
    hypersim_split_csv: str | None = None  # metadata_images_split_scene_v1.csv; None = every frame
    vkitti2_root: str | None = None
    clevrtex_root: str | None = None
    pseudo_images: str | None = None  # the image folder given to `granseg pseudo-label`
    pseudo_labels: str | None = None  # its --out folder (<stem>.json per image)
    pseudo_include_stuff: bool = True
    pseudo_background: str = (
        "unlabelled"  # pixels no pseudo instance covers: "unlabelled" (-2) or "labelled" (0)
    )
    mix: tuple[str, ...] = ("hypersim", "vkitti2")  # the sources of "mix", one drawn per micro-batch
    mix_weights: tuple[float, ...] = (0.9, 0.1)
    hypersim_min_objects: int = 10  # the paper's cleaning: Hypersim frames with fewer objects are dropped
    allowed_categories: list[str] | None = None  # the 5/10-class variants; None = every category
    max_disallowed_fraction: float = 0.35
    geometry: str = "auto"  # GEOMETRIES; synth always uses "square"
    seed: int = 0  # random crops and the per-batch source draw

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise InputError(f"data.source must be one of {SOURCES}, got {self.source!r}")
        if self.geometry not in GEOMETRIES:
            raise InputError(f"data.geometry must be one of {GEOMETRIES}, got {self.geometry!r}")
        if self.source == "mix" and (
            len(self.mix) != len(self.mix_weights) or not self.mix or min(self.mix_weights) < 0
        ):
            raise InputError("data.mix and data.mix_weights need the same, non-zero length and weights >= 0")
        if self.source == "mix" and not set(self.mix) <= {
            "coco",
            "hypersim",
            "vkitti2",
            "clevrtex",
            "pseudo",
        }:
            raise InputError(
                f"data.mix may hold coco, hypersim, vkitti2, clevrtex and pseudo, got {list(self.mix)}"
            )
        for name in [self.source] if self.source != "mix" else list(self.mix):
            missing = {
                "coco": not (self.coco_json and self.coco_images),
                "hypersim": not self.hypersim_root,
                "vkitti2": not self.vkitti2_root,
                "clevrtex": not self.clevrtex_root,
                "pseudo": not (self.pseudo_images and self.pseudo_labels),
            }.get(name, False)
            if missing:
                needs = {"coco": "coco_json and coco_images", "pseudo": "pseudo_images and pseudo_labels"}
                needs = needs.get(name, f"{name}_root")
                raise InputError(f"data source {name!r} needs {needs}")


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
        return self.labels_and_categories(image_id)[0]

    def labels_and_categories(self, image_id: int) -> tuple[np.ndarray, dict[int, str]]:
        info = self.coco.loadImgs(image_id)[0]
        labels = np.zeros((info["height"], info["width"]), dtype=np.int64)
        annotations = self.coco.loadAnns(self.coco.getAnnIds(imgIds=image_id))
        annotations = sorted(annotations, key=lambda a: -float(a.get("area", 0)))
        names = {c["id"]: c.get("name", "") for c in self.coco.loadCats(self.coco.getCatIds())}
        categories = {}
        for number, annotation in enumerate(annotations, start=1):
            mask = self.coco.annToMask(annotation).astype(bool)
            labels[mask] = -1 if annotation.get("iscrowd", 0) else number
            categories[number] = names.get(annotation.get("category_id"), "")
        return labels, categories

    def raw(self, index: int):
        """:class:`~granseg.train.gen2seg_data.base.RawSample` of an image; SkipSample when the image file is
        missing or the annotations are for another size."""
        from granseg.io import load_image
        from granseg.train.gen2seg_data.base import RawSample, SkipSample, check_labels

        image_id = self.image_ids[int(index)]
        info = self.coco.loadImgs(image_id)[0]
        try:
            image = load_image(self.root / info["file_name"])
        except InputError as exc:
            raise SkipSample("missing or unreadable image") from exc
        labels, categories = self.labels_and_categories(image_id)
        return RawSample(image, check_labels(labels, image, info["file_name"]), categories, info["file_name"])

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


def _geometry(config: InstanceDataConfig, source: str, size: int, backbone: str):
    from granseg.train.gen2seg_data.base import Geometry

    mode = config.geometry
    if mode == "auto":
        mode = (
            ("resize" if backbone == "sd" else "crop")
            if source in SD_SIZES and source != "coco"
            else "square"
        )
    height, width = SD_SIZES.get(source, (size, size))
    return Geometry(mode=mode, size=size, height=height, width=width, seed=config.seed)


def build_source(config: InstanceDataConfig, name: str, size: int, backbone: str = "mae"):
    """One cleaned source (:class:`~granseg.train.gen2seg_data.base.CleanSource`) by name."""
    from granseg.train.gen2seg_data import ClevrTexSource, HypersimSource, VirtualKitti2Source
    from granseg.train.gen2seg_data.base import CleaningRules, CleanSource

    if name == "hypersim":
        source = HypersimSource(config.hypersim_root or "", config.hypersim_split_csv)
    elif name == "vkitti2":
        source = VirtualKitti2Source(config.vkitti2_root or "")
    elif name == "clevrtex":
        source = ClevrTexSource(config.clevrtex_root or "")
    elif name == "pseudo":
        from granseg.train.gen2seg_data.pseudo import PseudoLabelSource

        source = PseudoLabelSource(
            config.pseudo_images or "",
            config.pseudo_labels or "",
            config.pseudo_include_stuff,
            config.pseudo_background,
        )
    else:
        source = CocoInstances(config, size)
    allowed = tuple(config.allowed_categories) if config.allowed_categories is not None else None
    rules = CleaningRules(
        min_objects=config.hypersim_min_objects if name == "hypersim" else 1,
        allowed=allowed,
        max_disallowed_fraction=config.max_disallowed_fraction,
    )
    return CleanSource(source, rules, _geometry(config, name, size, backbone), name)


def build_instance_dataset(config: InstanceDataConfig, size: int, backbone: str = "mae"):
    """The training dataset: :class:`SynthInstances` (``__getitem__``) or a cleaned/mixed source (``batch``)."""
    if config.source == "synth":
        return SynthInstances(config, size)
    if config.source == "mix":
        from granseg.train.gen2seg_data.mixed import MixedSources

        sources = [build_source(config, name, size, backbone) for name in config.mix]
        return MixedSources(sources, config.mix_weights, seed=config.seed)
    return build_source(config, config.source, size, backbone)
