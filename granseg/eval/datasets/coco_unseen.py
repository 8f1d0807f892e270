"""COCO 2017 val without the categories Gen2Seg saw in training ("COCO-unseen"), reported per object size.

Layout: the official ``val2017/`` image folder (``--data-root``) and ``annotations/instances_val2017.json``
(``--annotations``, or found next to the images as for ``coco``). Instances whose category is in the excluded list
(``data/coco_seen_in_training.json``) are dropped, so are crowd annotations (they stay the ignore mask, as in
``coco``); images left without an instance are skipped. Size buckets use COCO's rule on the annotation ``area``:
small < 32^2, medium < 96^2, large otherwise. Dataset names: ``coco-unseen`` (every size), ``coco-unseen-small``,
``coco-unseen-medium``, ``coco-unseen-large``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from granseg.errors import InputError
from granseg.eval.datasets.coco import CocoJsonDataset

SIZE_RANGES = {"small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, float("inf"))}


def seen_categories() -> list[str]:
    """The category names of the packaged exclusion list."""
    text = resources.files("granseg.eval.datasets").joinpath("data/coco_seen_in_training.json").read_text()
    return list(json.loads(text)["excluded_category_names"])


class CocoUnseenDataset(CocoJsonDataset):
    name = "coco-unseen"
    size: str | None = None

    def __init__(
        self,
        root: str | Path,
        annotation: str | Path | None = None,
        excluded: list[str] | None = None,
        size: str | None = None,
    ) -> None:
        super().__init__(root, annotation)
        size = size if size is not None else self.size
        if size is not None and size not in SIZE_RANGES:
            raise InputError(f"coco-unseen: size must be one of {sorted(SIZE_RANGES)}, got {size!r}")
        names = self.categories
        excluded_names = set(seen_categories() if excluded is None else excluded)
        self.excluded_ids = {cid for cid, name in names.items() if name in excluded_names}
        low, high = SIZE_RANGES[size] if size is not None else (0.0, float("inf"))
        for image_id, anns in self.annotations.items():
            self.annotations[image_id] = [
                a
                for a in anns
                if a.get("iscrowd", 0)
                or (a.get("category_id") not in self.excluded_ids and low <= float(a.get("area", 0.0)) < high)
            ]
        self.items = [i for i in self.items if any(not a.get("iscrowd", 0) for a in self.annotations[i])]
        if not self.items:
            raise InputError(
                f"{self.name}: no image keeps an instance of an unseen category in that size range"
            )


class CocoUnseenSmallDataset(CocoUnseenDataset):
    name, size = "coco-unseen-small", "small"


class CocoUnseenMediumDataset(CocoUnseenDataset):
    name, size = "coco-unseen-medium", "medium"


class CocoUnseenLargeDataset(CocoUnseenDataset):
    name, size = "coco-unseen-large", "large"
