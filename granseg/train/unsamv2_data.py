"""Training data for UnSAMv2: images with up to ``max_masks`` masks, each with its granularity g in [0.1, 1].

Sources (one :class:`DataSource` each, mixed by ``weight``; UnSAMv2+ mixes pseudo-labels with SA-1B ground truth):

* ``synth``: :mod:`granseg.synth` scenes generated on the fly, scene ``i`` = ``generate_scene(seed_offset + i)``;
  every node of the exact hierarchy (object, parts, sub-parts) with its exact granularity.
* ``pseudo``: a ``granseg pseudo-label`` output folder (``<stem>.json`` per image, :mod:`granseg.pseudo.schema`),
  images in ``images``. SA-1B (``<name>.json`` beside ``<name>.jpg``) has the same layout: give the same folder.
* ``coco``: one COCO JSON (``images`` / ``annotations``, polygons or RLE) and the image folder ``images``.

Annotations without a ``granularity`` field get one from their areas: each mask joins the hierarchy of the largest
mask that contains >= 90 % of it, and :func:`granseg.regions.granularity.granularity_from_areas` runs per hierarchy.

A :class:`MaskSample` is ``image`` ``H x W x 3`` uint8 RGB, ``masks`` ``N x H x W`` bool, ``granularity`` ``(N,)``.
Bad data (missing / unreadable image, malformed JSON file or annotation) raises :class:`BadSample` (the task skips
and counts it); malformed annotations inside a good file are dropped and counted in ``bad_annotations``.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np

from granseg.config import Config
from granseg.errors import InputError
from granseg.regions.granularity import granularity_from_areas
from granseg.synth import SynthConfig

SOURCE_KINDS = ("synth", "pseudo", "coco")
CONTAINMENT = 0.9


class BadSample(Exception):
    """A sample that cannot be used (its reason is the message); the trainer skips and counts it."""


@dataclasses.dataclass
class DataSource(Config):
    kind: str = "synth"  # "synth", "pseudo" (also SA-1B per-image JSON) or "coco"
    weight: float = 1.0  # mixing weight (relative to the other sources)
    synth: SynthConfig = dataclasses.field(default_factory=lambda: SynthConfig(size=128))
    num_scenes: int = 1000  # synth: dataset size
    seed_offset: int = 0  # synth: scene i is generate_scene(seed_offset + i)
    folder: str | None = None  # pseudo: folder of <stem>.json
    annotations: str | None = None  # coco: the JSON file
    images: str | None = None  # pseudo / coco: image folder (pseudo default: folder)

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise InputError(f"data.sources[].kind must be one of {SOURCE_KINDS}, got {self.kind!r}")
        if self.weight <= 0:
            raise InputError(f"data.sources[].weight must be > 0, got {self.weight}")
        if self.kind == "pseudo" and not self.folder:
            raise InputError("data.sources[] of kind 'pseudo' needs 'folder'")
        if self.kind == "coco" and not (self.annotations and self.images):
            raise InputError("data.sources[] of kind 'coco' needs 'annotations' and 'images'")
        if self.kind == "synth" and self.num_scenes < 1:
            raise InputError("data.sources[].num_scenes must be >= 1")


@dataclasses.dataclass
class UnSAMv2DataConfig(Config):
    sources: list[DataSource] = dataclasses.field(default_factory=lambda: [DataSource()])
    size: int | None = None  # mixed dataset length; None = sum of the sources' lengths
    max_masks: int = 30  # masks per image (a seeded random subset when there are more)
    min_area: int = 16  # masks smaller than this (pixels of the original image) are dropped
    flip: bool = True  # random horizontal flips
    # when an image has more than max_masks masks: draw the subset evenly over granularity (round-robin over the
    # g bins 0.1-0.2, ..., 0.9-1.0, random within a bin) instead of uniformly. Pseudo-labels are dominated by
    # small parts (on the 128 px synthetic scenes ~75 % of them have g < 0.2 and ~2 % g >= 0.9), so a uniform
    # subset almost never holds an instance and the model learns no whole objects (benchmarks/RESULTS.md #16).
    balance_granularity: bool = False

    def __post_init__(self) -> None:
        if not self.sources:
            raise InputError("data.sources must list at least one source")
        if self.max_masks < 1 or self.min_area < 1:
            raise InputError("data.max_masks and data.min_area must be >= 1")
        if self.size is not None and self.size < 1:
            raise InputError("data.size must be >= 1")


@dataclasses.dataclass
class MaskSample:
    image: np.ndarray  # H x W x 3 uint8
    masks: np.ndarray  # N x H x W bool
    granularity: np.ndarray  # (N,) float32
    key: str  # identifies the image (for logs)


def granularity_by_containment(masks: np.ndarray) -> np.ndarray:
    """``N x H x W`` bool -> ``(N,)`` granularity: hierarchies by >= 90 % containment in a larger mask."""
    count = len(masks)
    if count == 0:
        return np.zeros(0, dtype=np.float32)
    flat = masks.reshape(count, -1).astype(np.float32)
    areas = flat.sum(1)
    overlap = flat @ flat.T  # (N, N) intersections
    order = np.argsort(-areas, kind="stable")
    root = np.arange(count)
    for position, index in enumerate(order):
        for larger in order[:position]:
            if overlap[index, larger] >= CONTAINMENT * areas[index] and areas[larger] > areas[index]:
                root[index] = root[larger]
                break
    result = np.zeros(count, dtype=np.float32)
    for group in np.unique(root):
        members = np.flatnonzero(root == group)
        result[members] = granularity_from_areas(areas[members])
    return result


def balanced_subset(
    indices: np.ndarray, granularity: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` of ``indices`` (``(N,)`` int, ``granularity`` ``(N,)`` in [0.1, 1]) drawn evenly over g: the nine
    bins 0.1-0.2, ..., 0.9-1.0 (1.0 in the last) take turns in a random order each round (a fixed order would
    never reach the last bins when ``count`` < 9), each giving a random one of its members until it is empty.
    Returns the chosen indices sorted."""
    bins = np.clip(np.floor((np.asarray(granularity, np.float64) - 0.1) / 0.1 + 1e-6), 0, 8).astype(np.int64)
    queues = [list(rng.permutation(np.flatnonzero(bins == b))) for b in range(9)]
    picked: list[int] = []
    target = min(count, len(indices))
    while len(picked) < target:
        for b in rng.permutation(9):
            if queues[b] and len(picked) < target:
                picked.append(int(queues[b].pop()))
    return np.sort(np.asarray(indices)[picked])


def _decode(segmentation, height: int, width: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), str):
        rle = dict(segmentation, counts=segmentation["counts"].encode())
    else:
        raise ValueError("segmentation is neither polygons nor RLE")
    mask = mask_utils.decode(rle).astype(bool)
    if mask.shape != (height, width):
        raise ValueError(f"mask of shape {mask.shape}, image is {height} x {width}")
    return mask


def masks_from_annotations(
    annotations: list, height: int, width: int, bad: Counter
) -> tuple[np.ndarray, np.ndarray]:
    """Decode annotations (skipping crowd and malformed ones, counted in ``bad``) -> masks, granularity (NaN
    where the annotation has none)."""
    masks, values = [], []
    for annotation in annotations:
        try:
            if annotation.get("iscrowd", 0):
                continue
            mask = _decode(annotation["segmentation"], height, width)
            g = annotation.get("granularity")
            g = float("nan") if g is None else float(g)
            if not (np.isnan(g) or 0.0 <= g <= 1.0):
                raise ValueError(f"granularity {g} outside [0, 1]")
        except (KeyError, TypeError, ValueError, AttributeError):
            bad["bad_annotations"] += 1
            continue
        masks.append(mask)
        values.append(g)
    if not masks:
        return np.zeros((0, height, width), dtype=bool), np.zeros(0, dtype=np.float32)
    return np.stack(masks), np.asarray(values, dtype=np.float32)


def _complete_granularity(masks: np.ndarray, values: np.ndarray) -> np.ndarray:
    missing = np.isnan(values)
    if missing.any():
        values = values.copy()
        values[missing] = granularity_by_containment(masks)[missing]
    return np.clip(values, 0.1, 1.0).astype(np.float32)


def _load_image(path: Path) -> np.ndarray:
    from granseg.io import load_image

    if not path.is_file():
        raise BadSample(f"missing image {path}")
    try:
        return load_image(path)
    except Exception as exc:  # any decoder failure is bad data, not a crash
        raise BadSample(f"unreadable image {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from exc


class SynthSource:
    def __init__(self, source: DataSource) -> None:
        self.source = source

    def __len__(self) -> int:
        return self.source.num_scenes

    def load(self, index: int, bad: Counter) -> MaskSample:
        from granseg.synth import generate_scene

        seed = self.source.seed_offset + index
        scene = generate_scene(seed=seed, config=self.source.synth)
        nodes = list(scene.nodes)
        if not nodes:
            raise BadSample(f"synth scene {seed} has no nodes")
        masks = np.stack([node.mask for node in nodes])
        values = np.asarray([node.granularity for node in nodes], dtype=np.float32)
        return MaskSample(scene.image, masks, values, f"synth:{seed}")


class PseudoSource:
    """A folder of per-image JSON files (pseudo-label engine output, or SA-1B)."""

    def __init__(self, source: DataSource) -> None:
        self.folder = Path(source.folder or "")
        if not self.folder.is_dir():
            raise InputError(f"data source folder not found: {self.folder}")
        reserved = {"config.json", "failures.json"}
        self.files = sorted(p for p in self.folder.glob("*.json") if p.name not in reserved)
        if not self.files:
            raise InputError(f"{self.folder} holds no per-image JSON files")
        self.images = Path(source.images) if source.images else self.folder

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int, bad: Counter) -> MaskSample:
        path = self.files[index]
        try:
            document = json.loads(path.read_text())
            info = document["image"]
            height, width = int(info["height"]), int(info["width"])
            annotations = list(document["annotations"])
            file_name = str(info["file_name"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BadSample(f"malformed label file {path.name}: {exc}") from exc
        image = _load_image(self.images / file_name)
        if image.shape[:2] != (height, width):
            raise BadSample(f"{file_name}: image {image.shape[:2]} but labels for {(height, width)}")
        masks, values = masks_from_annotations(annotations, height, width, bad)
        return MaskSample(image, masks, _complete_granularity(masks, values), path.stem)


class CocoSource:
    def __init__(self, source: DataSource) -> None:
        path = Path(source.annotations or "")
        if not path.is_file():
            raise InputError(f"COCO annotation file not found: {path}")
        try:
            data = json.loads(path.read_text())
            self.image_info = {int(i["id"]): i for i in data["images"]}
            annotations = [a for a in data.get("annotations", []) if isinstance(a, dict)]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not a COCO JSON ({exc})") from exc
        self.by_image: dict[int, list] = {i: [] for i in self.image_info}
        for annotation in annotations:
            if annotation.get("image_id") in self.by_image:
                self.by_image[annotation["image_id"]].append(annotation)
        self.ids = sorted(self.image_info)
        if not self.ids:
            raise InputError(f"{path} lists no images")
        self.images = Path(source.images or "")

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int, bad: Counter) -> MaskSample:
        info = self.image_info[self.ids[index]]
        try:
            height, width, file_name = int(info["height"]), int(info["width"]), str(info["file_name"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BadSample(f"malformed image entry {info!r}") from exc
        image = _load_image(self.images / file_name)
        if image.shape[:2] != (height, width):
            raise BadSample(f"{file_name}: image {image.shape[:2]} but annotations for {(height, width)}")
        masks, values = masks_from_annotations(self.by_image[self.ids[index]], height, width, bad)
        return MaskSample(image, masks, _complete_granularity(masks, values), file_name)


def build_source(source: DataSource):
    return {"synth": SynthSource, "pseudo": PseudoSource, "coco": CocoSource}[source.kind](source)


class MixedMaskDataset:
    """Index ``i`` -> (source, item), a pure function of ``(seed, i)``: the source is drawn by weight, the item
    uniformly within it (with one source: item ``i mod len``). ``load(i, rng)`` applies the mask subset and flip."""

    def __init__(self, config: UnSAMv2DataConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.sources = [build_source(s) for s in config.sources]
        weights = np.asarray([s.weight for s in config.sources], dtype=np.float64)
        self.probabilities = weights / weights.sum()
        self.size = config.size or sum(len(s) for s in self.sources)
        self.counts: Counter = Counter()

    def __len__(self) -> int:
        return self.size

    def locate(self, index: int) -> tuple[int, int]:
        if len(self.sources) == 1:
            return 0, index % len(self.sources[0])
        rng = np.random.default_rng([self.seed, 7919, index])
        which = int(rng.choice(len(self.sources), p=self.probabilities))
        return which, int(rng.integers(len(self.sources[which])))

    def load(self, index: int, rng: np.random.Generator) -> MaskSample:
        """The sample at ``index`` with at most ``max_masks`` masks of >= ``min_area`` pixels, maybe flipped.
        Raises :class:`BadSample` (counted in ``counts``) for unusable data."""
        which, item = self.locate(index)
        try:
            sample = self.sources[which].load(item, self.counts)
            keep = sample.masks.reshape(len(sample.masks), -1).sum(1) >= self.config.min_area
            if not keep.any():
                raise BadSample(f"{sample.key}: no mask of >= {self.config.min_area} pixels")
        except BadSample:
            self.counts["skipped_samples"] += 1
            raise
        chosen = np.flatnonzero(keep)
        if len(chosen) > self.config.max_masks and self.config.balance_granularity:
            chosen = balanced_subset(chosen, sample.granularity[chosen], self.config.max_masks, rng)
        elif len(chosen) > self.config.max_masks:
            chosen = np.sort(rng.choice(chosen, self.config.max_masks, replace=False))
        masks, values, image = sample.masks[chosen], sample.granularity[chosen], sample.image
        if self.config.flip and rng.random() < 0.5:
            image, masks = image[:, ::-1], masks[:, :, ::-1]
        return MaskSample(np.ascontiguousarray(image), np.ascontiguousarray(masks), values, sample.key)
