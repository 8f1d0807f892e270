"""Settings of whole-image mask generation and the named presets (``granseg auto --preset``).

``official`` is the UnSAMv2 whole-image recipe: a 64 x 64 grid of single positive clicks at every g in
0.1, 0.2, ..., 1.0; masks kept when their predicted IoU reaches 0.65 (g < 0.5) or 0.5 (g >= 0.5) and their
stability score reaches 0.7; box NMS at IoU 0.7 per g; the union over g (no cross-g NMS).

``fast`` does less work for CPUs: a 16 x 16 grid, levels visited coarse to fine with each level's points restricted
to the masks accepted at the coarser level before it (a fine part lies inside a coarser object), and point pruning
(a grid point already inside a mask accepted at the same g is not decoded). Its recall cost is measured in
benchmarks/results/auto.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from granseg.config import Config
from granseg.errors import InputError
from granseg.predict.base import GRANULARITY_LEVELS

MAX_POINTS_PER_SIDE = 256
SOURCES = ("auto", "grid", "tree")


@dataclass
class AutomaticConfig(Config):
    """points_per_side: grid size (``n x n`` cell centres); granularities: the g levels to sweep.

    pred_iou_thresh_low_g / _high_g: score thresholds for g < 0.5 / g >= 0.5.
    stability_thresh / stability_offset: IoU of the masks at logit thresholds ``+offset`` and ``-offset``
    (models that give logits; binary-mask models such as ``hierarchy`` have no logits and skip the test).
    stability_resolution: ``"low"`` computes it on the decoder's low-resolution logits over the image content,
    before any upsampling (batched path); ``"full"`` on the logits at the original size (what the per-point loop
    does; slower).
    box_nms_thresh: box IoU above which the lower-scoring mask of one g is dropped.
    min_area: smallest mask kept, in pixels of the original image.
    batched: decode point batches x all levels in one call when the predictor supports it (else the per-point
    loop); point_batch: points per decoder call.
    point_pruning: skip a grid point already inside a mask accepted at that g (speed/recall trade-off).
    coarse_to_fine: visit levels from coarse to fine; a level's points are those inside the masks accepted at the
    coarser level visited before it (the coarsest level uses the whole grid).
    dedup_iou: when > 0, masks of different g with IoU >= dedup_iou are merged into one record (smallest g kept,
    ``granularity_range`` records the levels that produced it).
    parent_containment: a mask's parent is a mask of the next coarser level covering >= this fraction of it.
    source: where candidates come from: ``"grid"`` (the point grid above, any model), ``"tree"`` (every region of
    the ``hierarchy`` model's region tree, :mod:`granseg.predict.automatic.region_tree`; no grid, no score or
    stability filter, nested-region NMS at ``tree_nms_iou``, the best ``max_masks`` kept) or ``"auto"`` (the tree
    for ``hierarchy``, the grid for every other model).
    """

    points_per_side: int = 64
    granularities: tuple[float, ...] = GRANULARITY_LEVELS
    pred_iou_thresh_low_g: float = 0.65
    pred_iou_thresh_high_g: float = 0.5
    stability_thresh: float = 0.7
    stability_offset: float = 1.0
    stability_resolution: Literal["low", "full"] = "low"
    box_nms_thresh: float = 0.7
    min_area: int = 1
    batched: bool = True
    point_batch: int = 32
    point_pruning: bool = False
    coarse_to_fine: bool = False
    dedup_iou: float = 0.0
    parent_containment: float = 0.8
    source: Literal["auto", "grid", "tree"] = "auto"
    tree_nms_iou: float = 0.9
    max_masks: int = 1000

    def validate(self) -> None:
        if not 1 <= self.points_per_side <= MAX_POINTS_PER_SIDE:
            raise InputError(f"points_per_side must be between 1 and {MAX_POINTS_PER_SIDE}")
        if not self.granularities:
            raise InputError("granularities must not be empty")
        if self.point_batch < 1:
            raise InputError("point_batch must be >= 1")
        if self.source not in SOURCES:
            raise InputError(f"source must be one of {', '.join(SOURCES)}")
        if self.max_masks < 1:
            raise InputError("max_masks must be >= 1")
        for name in ("box_nms_thresh", "dedup_iou", "parent_containment", "stability_thresh", "tree_nms_iou"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name} must lie in [0, 1]")

    def score_threshold(self, g: float) -> float:
        return self.pred_iou_thresh_low_g if g < 0.5 else self.pred_iou_thresh_high_g


PRESETS: dict[str, dict] = {
    "official": {},
    "fast": {"points_per_side": 16, "point_pruning": True, "coarse_to_fine": True, "point_batch": 8},
}

PRESET_HELP = {
    "official": "64x64 points, IoU 0.65 (g<0.5) / 0.5, stability 0.7, box NMS 0.7, union over g=0.1..1.0",
    "fast": "16x16 points, coarse-to-fine over g, point pruning (CPU; recall cost in docs/auto.md)",
}


def preset_config(name: str = "official", **overrides) -> AutomaticConfig:
    """The named preset with ``overrides`` (``None`` values are ignored)."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    return dataclasses.replace(AutomaticConfig(), **values)
