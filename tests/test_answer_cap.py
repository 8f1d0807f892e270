"""A single click's answers capped at ``max_object_fraction`` of the image (``cap_single_answers``,
``regions.chains.cap_nested``)."""

from __future__ import annotations

import numpy as np

from granseg.predict.hierarchy import build_hierarchy
from granseg.regions import chains as ch
from granseg.regions.tree import TreeParams, build_region_tree
from tests.test_hierarchy import BODY, PART, box_mask, toy_image


def test_cap_nested_replaces_a_flooded_level_by_its_own_chain_region():
    tree = build_region_tree(toy_image(), TreeParams())
    part = ch.selection_from_mask(tree, box_mask(PART))
    body = ch.selection_from_mask(tree, box_mask(BODY))
    flood = np.ones(tree.n_leaves, bool)
    selections = np.stack([part, flood, flood, body])
    ch.cap_nested(tree, selections, [part, part, body, None], 0.7)
    assert (selections[0] == part).all() and (selections[1] == part).all()
    assert (selections[2] == body).all()  # its own region, not the level below
    assert (selections[3] == body).all()  # under the cap: kept
    none = np.stack([flood])
    ch.cap_nested(tree, none, [None], 0.7)
    assert none[0].all()  # no region to fall back to: left as is


def test_a_single_click_never_answers_more_than_the_cap():
    """A click on the beige background (67 % of the image) with the cap at 50 %: the chain top is a piece of the
    background under the cap, and its cut floods the whole background. With the cap the answers stay under it."""
    image = toy_image()

    def largest(**overrides) -> float:
        predictor = build_hierarchy(pixel_band=0, max_object_fraction=0.5, **overrides).create_predictor()
        predictor.set_image(image)
        masks = predictor.predict([[10, 10]], [1], granularity=[0.1, 0.5, 1.0]).masks
        return max(float(m.mean()) for m in masks)

    assert largest(cap_single_answers=False) > 0.6
    assert largest() <= 0.5
