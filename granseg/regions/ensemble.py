"""Several learned region trees of one image, grown from different superpixel starts (for the ``ucm`` edge map).

One greedy merge tree commits to its leaves: a SLIC leaf border that misses an image contour by two pixels puts
the whole contour's UCM value two pixels off, and an early wrong merge removes a contour at every threshold. Trees
grown from other leaf sets (SLIC at other sizes, a watershed of the oriented-gradient map) make other such
mistakes; the mean of their ultrametric contour maps (:func:`granseg.eval.edge_maps.ensemble_contour_map`) keeps
what they agree on (the same idea as averaging hierarchies over several superpixel scales in MCG, Arbelaez et al.
2014, without its learned alignment).

The trees share the image's oriented-gradient cues (computed once); each start costs only its leaves and its
merge loop. Each uses the shipped merge criterion of its kind (``merge_weights_owt.json`` for SLIC leaves with the
oriented watershed transform, ``merge_weights_watershed.json`` for watershed leaves; fit on BSDS500 val 1-50 over
about 700 leaves).

The starts (:data:`UCM_STARTS`) were chosen on BSDS500 val 26-50 (tune; UCM ODS of one tree 0.625, with the OWT
0.633; mean of four starts 0.677, of these five 0.680; a sixth at the full image resolution did not help:
``benchmarks/diag_ucm_ensemble.py``, ``benchmarks/results/tree.md``). The ``hierarchy`` predictor answers
clicks on one tree: by default (``HierarchyConfig.tree_starts`` 2) the consensus of the first two of these
(:mod:`granseg.regions.consensus`), within the 1 s ``set_image`` budget that five trees would break;
``tree_starts=1`` gives the single tree (:func:`granseg.regions.tree.build_region_tree`, SLIC 700 without the OWT,
also ``--edge-map ucm-single``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from granseg.regions.cues import boundary_map, to_lab
from granseg.regions.gradients import gradient_cues
from granseg.regions.learned import default_model
from granseg.regions.superpixels import internal_image
from granseg.regions.tree import RegionTree, TreeParams, learned_tree


@dataclass(frozen=True)
class TreeStart:
    """One start of the ensemble: ``leaves`` (``"slic"`` or ``"watershed"``), about how many of them, and
    whether the merge reads the border gradients across the borders (``owt``, SLIC leaves only:
    :mod:`granseg.regions.owt`, ``merge_weights_owt.json``)."""

    leaves: str = "slic"
    n_superpixels: int = 700
    owt: bool = False

    @property
    def weights(self) -> str:
        """The key of the shipped merge weights of this start (:data:`granseg.regions.learned.WEIGHTS_FILES`)."""
        return self.leaves + ("-owt" if self.owt else "")


UCM_STARTS = (
    TreeStart("slic", 700, owt=True),  # the predictor's start (TreeParams' defaults) with the OWT
    TreeStart("watershed", 700),
    TreeStart("slic", 1000, owt=True),
    TreeStart("slic", 450, owt=True),
    TreeStart("watershed", 1000),
)


def build_region_trees(
    image: np.ndarray, params: TreeParams | None = None, starts: tuple[TreeStart, ...] = UCM_STARTS
) -> list[RegionTree]:
    """One learned :class:`~granseg.regions.tree.RegionTree` of the ``H x W x 3`` uint8 RGB ``image`` per start
    (``params``: the other tree parameters, e.g. the internal resolution and ``height_power``; the start sets
    ``n_superpixels``). The oriented-gradient cues are computed once and shared."""
    return ensemble_inputs(image, params, starts)[-1]


def ensemble_inputs(
    image: np.ndarray, params: TreeParams | None = None, starts: tuple[TreeStart, ...] = UCM_STARTS
):
    """``(small, lab, strength, scale, trees)``: the internal RGB image, its CIELAB, its boundary map, its
    factor to ``image`` and :func:`build_region_trees`' trees (for a tree built over them, e.g. the consensus
    tree of :mod:`granseg.regions.consensus`)."""
    params = params or TreeParams()
    small, scale = internal_image(image, params.internal_long_side)
    lab = to_lab(small)
    strength = boundary_map(lab, texture_weight=params.boundary_texture_weight)
    cues = gradient_cues(lab, tensors=any(start.owt for start in starts))
    trees = [
        learned_tree(
            small,
            lab,
            strength,
            scale,
            replace(params, n_superpixels=start.n_superpixels),
            start.leaves,
            start.owt,
            default_model(start.weights),
            cues=cues,
        )
        for start in starts
    ]
    return small, lab, strength, scale, trees
