"""Gen2Seg training sources in their published layouts: Hypersim, Virtual KITTI 2, ClevrTex (COCO lives in
:mod:`granseg.train.instance_data`), the cleaning rules, class-filtered variants and per-batch mixing."""

from granseg.train.gen2seg_data.base import CleaningRules, CleanSource, Geometry, RawSample, SkipSample
from granseg.train.gen2seg_data.clevrtex import ClevrTexSource
from granseg.train.gen2seg_data.hypersim import NYU40, HypersimSource
from granseg.train.gen2seg_data.vkitti2 import VirtualKitti2Source

__all__ = [
    "NYU40",
    "CleanSource",
    "CleaningRules",
    "ClevrTexSource",
    "Geometry",
    "HypersimSource",
    "RawSample",
    "SkipSample",
    "VirtualKitti2Source",
]
