"""Whole-image ("automatic") mask generation at any granularity over any predictor (docs/auto.md).

:class:`AutomaticSegmenter` (:mod:`.segmenter`) runs the pipeline; :class:`AutomaticConfig` and the presets
(``official``, ``fast``) are in :mod:`.config`; candidate sources (batched decoder calls for UnSAMv2 / SAM-2, one
``predict`` per point for other models, colour clusters for Gen2Seg) in :mod:`.sources` and :mod:`.gen2seg`; the
part-whole tree in :mod:`.mask_tree`; the per-point reference loop in :mod:`.naive`; the ``hierarchy`` model's
whole-image masks read from its region tree (no grid) in :mod:`.region_tree`.
"""

from granseg.predict.automatic.config import PRESET_HELP, PRESETS, AutomaticConfig, preset_config
from granseg.predict.automatic.filters import box_iou, box_nms, point_grid, stability_scores
from granseg.predict.automatic.naive import naive_generate
from granseg.predict.automatic.segmenter import AutomaticSegmenter

__all__ = [
    "PRESETS",
    "PRESET_HELP",
    "AutomaticConfig",
    "AutomaticSegmenter",
    "box_iou",
    "box_nms",
    "naive_generate",
    "point_grid",
    "preset_config",
    "stability_scores",
]
