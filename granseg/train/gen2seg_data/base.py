"""What every Gen2Seg training source shares: the raw sample, data cleaning, class filtering, skipping of bad
images, and the train-time geometry (square resize, fixed resize, random crop).

A source yields :class:`RawSample` for an index: an ``H x W x 3`` uint8 RGB image and an ``H x W`` int64 label map
(``0`` labelled background, ``>= 1`` instance ids, ``-1`` ignore, ``-2`` unlabelled background, see
:mod:`granseg.train.losses`), with the category name of each instance id. A source raises :class:`SkipSample`
for an image it cannot use (missing or mis-sized instance map, ...); :class:`CleanSource` turns that, and the
cleaning/filtering rules, into "use the next usable image" and counts what it skipped.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from granseg.errors import InputError
from granseg.train.losses import IGNORE_LABEL


class SkipSample(Exception):
    """An image a source cannot use; the message is the reason (counted, never fatal)."""


@dataclasses.dataclass
class RawSample:
    """image: ``H x W x 3`` uint8; labels: ``H x W`` int64; categories: instance id -> category name."""

    image: np.ndarray
    labels: np.ndarray
    categories: dict[int, str] = dataclasses.field(default_factory=dict)
    name: str = ""


@dataclasses.dataclass
class CleaningRules:
    """Data cleaning and the class-filtered variants (the paper's 5/10-class training sets).

    min_objects: images with fewer instances are dropped (the paper: no masks, or fewer than 10 objects);
    allowed: category names allowed to carry loss (None = all); inside the bounding box of every instance of
    another category no pixel carries loss; max_disallowed_fraction: drop the image when those boxes cover more
    of it than this (the paper: 35 %); images without any allowed instance are dropped.
    """

    min_objects: int = 1
    allowed: tuple[str, ...] | None = None
    max_disallowed_fraction: float = 0.35


def _dense_ids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, dense)``: the sorted instance ids (> 0) and the map with id ``ids[k]`` as ``k + 1`` (0 elsewhere)."""
    positive = labels > 0
    ids = np.unique(labels[positive])
    dense = np.zeros(labels.shape, dtype=np.int64)
    dense[positive] = np.searchsorted(ids, labels[positive]) + 1
    return ids, dense


def count_instances(labels: np.ndarray) -> int:
    return int(np.unique(labels[labels > 0]).size)


def apply_class_filter(sample: RawSample, rules: CleaningRules) -> RawSample:
    """Ignore (``-1``) the bounding box of every instance whose category is not allowed. Raises SkipSample when
    no allowed instance is left or the ignored boxes cover more than ``max_disallowed_fraction`` of the image."""
    if rules.allowed is None:
        return sample
    from scipy import ndimage

    allowed = {name.lower() for name in rules.allowed}
    labels = sample.labels.copy()
    ids, dense = _dense_ids(labels)
    ignored = np.zeros(labels.shape, dtype=bool)
    kept = 0
    for instance, box in zip(ids, ndimage.find_objects(dense)):  # one bounding box per instance, one pass
        if sample.categories.get(int(instance), "").lower() in allowed:
            kept += 1
        elif box is not None:
            ignored[box] = True
    if kept == 0:
        raise SkipSample("no instance of an allowed category")
    fraction = float(ignored.mean())
    if fraction > rules.max_disallowed_fraction:
        raise SkipSample(f"not-allowed categories cover more than {rules.max_disallowed_fraction:.0%}")
    labels[ignored] = IGNORE_LABEL
    return dataclasses.replace(sample, labels=labels)


def clean(sample: RawSample, rules: CleaningRules) -> RawSample:
    """Class filter, then the object count rule. Raises SkipSample with the reason."""
    sample = apply_class_filter(sample, rules)
    found = count_instances(sample.labels)
    if found == 0:
        raise SkipSample("no instance masks")
    if found < rules.min_objects:
        raise SkipSample(f"fewer than {rules.min_objects} objects")
    return sample


def check_labels(labels: np.ndarray | None, image: np.ndarray, name: str) -> np.ndarray:
    """The instance map of ``image`` or SkipSample (missing, or not the image's height x width)."""
    if labels is None:
        raise SkipSample("missing instance map")
    if labels.shape != image.shape[:2]:
        raise SkipSample("instance map size differs from the image")
    return labels


# ------------------------------------------------------------------------------------------------ geometry
@dataclasses.dataclass(frozen=True)
class Geometry:
    """How a raw sample becomes a training tensor. mode: ``"square"`` (resize to size x size), ``"resize"``
    (resize to ``height x width``) or ``"crop"`` (a random ``size x size`` crop, the image first scaled up if
    smaller; the crop position is a pure function of ``seed`` and the sample index)."""

    mode: str = "square"
    size: int = 224
    height: int = 0
    width: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("square", "resize", "crop"):
            raise InputError(f"geometry mode must be square, resize or crop, got {self.mode!r}")


def to_tensors(image: np.ndarray, labels: np.ndarray, geometry: Geometry, index: int):
    """``H x W x 3`` uint8 + ``H x W`` int -> ``3 x h x w`` float32 in [0, 1] + ``h x w`` int64 (labels nearest)."""
    tensor = (
        torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].float() / 255.0
    )
    label_tensor = torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64))[None, None].float()
    if geometry.mode == "crop":
        height, width = tensor.shape[-2:]
        scale = max(geometry.size / height, geometry.size / width, 1.0)
        if scale > 1.0:
            target = (int(np.ceil(height * scale)), int(np.ceil(width * scale)))
            tensor, label_tensor = _resize(tensor, label_tensor, target)
        height, width = tensor.shape[-2:]
        rng = np.random.default_rng([geometry.seed, int(index)])
        top = int(rng.integers(0, height - geometry.size + 1))
        left = int(rng.integers(0, width - geometry.size + 1))
        window = (
            slice(None),
            slice(None),
            slice(top, top + geometry.size),
            slice(left, left + geometry.size),
        )
        tensor, label_tensor = tensor[window], label_tensor[window]
    else:
        if geometry.mode == "square":
            target = (geometry.size, geometry.size)
        else:
            target = (geometry.height, geometry.width)
        tensor, label_tensor = _resize(tensor, label_tensor, target)
    return tensor[0].contiguous(), label_tensor[0, 0].long().contiguous()


def _resize(tensor: torch.Tensor, labels: torch.Tensor, size: tuple[int, int]):
    if tuple(tensor.shape[-2:]) == tuple(size):
        return tensor, labels
    tensor = torch.nn.functional.interpolate(tensor, size=size, mode="bilinear", align_corners=False)
    return tensor, torch.nn.functional.interpolate(labels, size=size, mode="nearest")


# ------------------------------------------------------------------------------------------------ skipping
class CleanSource:
    """Wraps a source (``len`` + ``raw(index) -> RawSample``): ``sample(index)`` returns the tensors of the first
    usable image at or after ``index`` (wrapping around) and records each unusable one once in ``skipped``
    (reason -> count). Raises InputError when no image of the source is usable."""

    def __init__(self, source, rules: CleaningRules, geometry: Geometry, name: str) -> None:
        self.source = source
        self.rules = rules
        self.geometry = geometry
        self.name = name
        self._bad: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.source)

    @property
    def skipped(self) -> dict[str, int]:
        return dict(Counter(self._bad.values()))

    def sample(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        size = len(self.source)
        for step in range(size):
            position = (int(index) + step) % size
            if position in self._bad:
                continue
            try:
                raw = clean(self.source.raw(position), self.rules)
            except SkipSample as reason:
                self._bad[position] = str(reason)
                continue
            return to_tensors(raw.image, raw.labels, self.geometry, position)
        raise InputError(f"{self.name}: no usable image (skipped: {self.skipped})")

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = zip(*(self.sample(i) for i in indices))
        return torch.stack(images), torch.stack(labels)


def layout_error(dataset: str, root: Path, expected: str) -> InputError:
    """The error for a data root in the wrong layout: what was expected and what was found (a few entries)."""
    if not root.is_dir():
        found = "no such folder"
    else:
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
        found = ", ".join(entries[:8]) + (f", ... ({len(entries)} entries)" if len(entries) > 8 else "")
        found = found or "an empty folder"
    return InputError(f"{dataset} root {root}: expected {expected}; found {found}")
