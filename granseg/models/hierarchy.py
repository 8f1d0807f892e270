"""The weight-free ``hierarchy`` model: classical region hierarchy + click/granularity selection.

``set_image`` builds a merge tree of superpixels (:mod:`granseg.models.hierarchy_build`). ``predict`` answers
points/box/granularity prompts from it (:mod:`granseg.models.hierarchy_select`):

* Each positive click has a chain of nested regions (its leaf superpixel up to the root). The *top* of the chain
  (what g = 1.0 returns) is the region on the chain that is most *persistent* in the ultrametric (largest gap
  between the height at which it is complete and the height at which it merges into its parent), among regions
  covering between ``min_object_fraction`` and ``max_object_fraction`` of the image: the largest region before a
  strong-boundary merge, never the whole image.
* g maps to a region on the chain by the UnSAMv2 sqrt-area formula (:mod:`granseg.hierarchy_math`) with ``A_max`` = the top
  and ``A_min`` = the smallest chain region of at least ``part_min_fraction`` of the top's area.
* Negative clicks: inside the chosen regions, every superpixel goes to its nearest click under the ultrametric
  (the height of the lowest common ancestor, i.e. a seeded watershed cut of the hierarchy), so a negative click
  removes the sub-region it lies in. Several positive clicks give the union of their regions.
* Optional refinement (``refine=True``): a graph cut on the superpixel graph (scipy max-flow) with the clicks as
  hard constraints, unaries from the selected region and CIELAB colour models, and pairwise terms that are cheap
  to cut across strong boundaries; this lets corrective clicks move the answer beyond the tree's own splits.
* A box restricts candidate regions to those mostly inside it and clips the mask to it; a box without points
  uses its centre as the positive click.

Scores: boundary contrast of the mask, ``B_out / (B_out + B_in)`` where ``B_out`` is the mean boundary strength
along the mask's outline and ``B_in`` the mean over the superpixel borders inside it (0.5 = no contrast, close
to 1 = a region with a clear outline and a uniform inside).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from granseg.config import Config
from granseg.models.hierarchy_build import HierarchyParams, RegionTree, build_hierarchy_tree
from granseg.predict.base import BasePredictor, Prediction


@dataclass
class HierarchyConfig(Config):
    """Parameters of the weight-free hierarchy model (see docs/hierarchy.md)."""

    internal_long_side: int = 448
    n_superpixels: int = 700
    slic_compactness: float = 12.0
    boundary_weight: float = 1.0
    colour_weight: float = 1.0
    texture_weight: float = 0.3
    small_region_fraction: float = 0.004
    histogram_weight: float = 0.0
    min_object_fraction: float = 0.01
    max_object_fraction: float = 0.7
    part_min_fraction: float = 0.1
    salient_ratio: float = 2.0
    refine: bool = True
    refine_smoothness: float = 2.0
    refine_prior: float = 0.1
    refine_single_click: bool = False

    def build_params(self) -> HierarchyParams:
        return HierarchyParams(
            internal_long_side=self.internal_long_side,
            n_superpixels=self.n_superpixels,
            slic_compactness=self.slic_compactness,
            boundary_weight=self.boundary_weight,
            colour_weight=self.colour_weight,
            texture_weight=self.texture_weight,
            small_region_fraction=self.small_region_fraction,
            histogram_weight=self.histogram_weight,
        )


class HierarchyModel:
    """Weight-free model object (registry contract: ``.name`` and ``.create_predictor()``)."""

    name = "hierarchy"

    def __init__(self, config: HierarchyConfig | None = None, device: str = "cpu") -> None:
        self.config = config or HierarchyConfig()
        self.device = device  # unused: pure CPU

    def create_predictor(self) -> HierarchyPredictor:
        return HierarchyPredictor(self.config)


def build_hierarchy(device: str = "cpu", **overrides) -> HierarchyModel:
    """Registry builder: ``HierarchyConfig`` fields may be overridden by keyword."""
    return HierarchyModel(
        HierarchyConfig.from_dict({**HierarchyConfig().to_dict(), **overrides}), device=device
    )


class HierarchyPredictor(BasePredictor):
    """Predictor over a :class:`RegionTree`; see the module docstring for the selection rules."""

    model_name = "hierarchy"

    def __init__(self, config: HierarchyConfig | None = None) -> None:
        super().__init__()
        self.config = config or HierarchyConfig()
        self.tree: RegionTree | None = None

    def _set_image(self, image: np.ndarray) -> None:
        self.tree = build_hierarchy_tree(image, self.config.build_params())
        self._original_size = image.shape[:2]

    def _predict(self, points, labels, box, granularity, mask_input) -> Prediction:
        from granseg.models.hierarchy_select import select_masks

        assert self.tree is not None
        masks, scores = select_masks(
            self.tree, self.config, self._original_size, points, labels, box, granularity
        )
        return Prediction(masks=masks, scores=scores, granularity=np.asarray(granularity, dtype=np.float64))
