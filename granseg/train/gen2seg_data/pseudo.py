"""Masks mined by ``granseg pseudo-label`` as Gen2Seg training data (training without any human label).

Layout: the image folder given to ``granseg pseudo-label`` and its ``--out`` folder, which holds one
``<stem>.json`` per image (``{"image": {"file_name", "height", "width"}, "annotations": [{"segmentation": RLE,
"area", "is_part", "is_stuff", ...}]}``, see docs/pseudo.md). The instances (``is_part`` false; stuff regions
too unless ``include_stuff`` is False) are painted largest first, so smaller ones stay visible. Pseudo-labels do
not cover every object, so by default the pixels no instance covers are unlabelled background (``-2``: no pull to
black, but "other" pixels of the separation term, like Virtual KITTI 2's); ``background="labelled"`` makes them
background (0) instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from granseg.train.gen2seg_data.base import RawSample, SkipSample, check_labels, layout_error
from granseg.train.losses import UNLABELLED

EXPECTED = "<stem>.json files written by `granseg pseudo-label` (with the images in the image folder)"
_NOT_LABELS = {"config.json", "failures.json"}


class PseudoLabelSource:
    def __init__(
        self,
        images: str | Path,
        labels: str | Path,
        include_stuff: bool = True,
        background: str = "unlabelled",
    ) -> None:
        from granseg.errors import InputError

        if background not in ("unlabelled", "labelled"):
            raise InputError(f"pseudo background must be 'unlabelled' or 'labelled', got {background!r}")
        self.images = Path(images)
        self.labels = Path(labels)
        self.include_stuff = include_stuff
        self.background = background
        self.files = sorted(p for p in self.labels.glob("*.json") if p.name not in _NOT_LABELS)
        if not self.files:
            raise layout_error("pseudo-label", self.labels, EXPECTED)
        if not self.images.is_dir():
            raise layout_error(
                "pseudo-label images", self.images, "the image folder given to granseg pseudo-label"
            )

    def __len__(self) -> int:
        return len(self.files)

    def raw(self, index: int) -> RawSample:
        from granseg.errors import InputError
        from granseg.io import decode_rle, load_image

        path = self.files[int(index)]
        try:
            record = json.loads(path.read_text())
            image = load_image(self.images / record["image"]["file_name"])
        except (OSError, ValueError, KeyError, InputError) as exc:
            raise SkipSample("missing or unreadable image or label file") from exc
        keep = [
            a
            for a in record.get("annotations", [])
            if not a.get("is_part", False) and (self.include_stuff or not a.get("is_stuff", False))
        ]
        fill = UNLABELLED if self.background == "unlabelled" else 0
        labels = np.full(image.shape[:2], fill, dtype=np.int64)
        categories = {}
        for number, annotation in enumerate(sorted(keep, key=lambda a: -float(a.get("area", 0))), start=1):
            mask = decode_rle(annotation["segmentation"])
            check_labels(mask, image, path.name)
            labels[mask] = number
            categories[number] = "stuff" if annotation.get("is_stuff") else "object"
        return RawSample(image, labels, categories, name=path.stem)
