"""Guards on a correction click's answer (issue 18, the per-click curve must not fall): sign-consistent
corrections, the split guard, the colour vote and the watershed of a negative click's removal
(granseg.regions.reach)."""

from __future__ import annotations

import numpy as np
import pytest

from granseg.predict.hierarchy import HierarchyConfig, build_hierarchy
from granseg.regions import chains as ch
from granseg.regions.reach import (
    boundary_watershed,
    colour_vote,
    guard_correction,
    guard_split,
    leaves_within,
    splits_clicks,
)
from granseg.regions.tree import TreeParams, build_region_tree
from tests.test_hierarchy import BODY, box_mask, toy_image


@pytest.fixture(scope="module")
def tree():
    return build_region_tree(toy_image(), TreeParams())


def leaf_at(tree, x: int, y: int) -> int:
    return int(tree.leaf_map[y, x])


def band(tree, rows: slice) -> np.ndarray:
    """The body's leaves with most of their pixels in ``rows`` (a band across the body)."""
    return ch.selection_from_mask(tree, box_mask((rows, BODY[1])))


def test_sign_guard_lets_a_positive_click_only_add_and_a_negative_one_only_remove(tree):
    previous = ch.selection_from_mask(tree, box_mask(BODY))
    body_click, outside = leaf_at(tree, 75, 40), leaf_at(tree, 140, 140)
    cut = previous.copy()
    cut[band(tree, slice(100, 130))] = False  # the cut also dropped the body's lower part
    cut[outside] = True
    off = HierarchyConfig(correction_sign=False, correction_split_guard=False, correction_colour_vote=0.0)
    on = HierarchyConfig(correction_sign=True, correction_split_guard=False, correction_colour_vote=0.0)
    leaves, labels = np.array([body_click, outside]), np.array([1, 1])
    out = guard_correction(tree, cut, previous, leaves, labels, (140, 140), on)
    assert out[previous].all() and out[outside]
    assert guard_correction(tree, cut, previous, leaves, labels, (140, 140), off) is cut
    # a negative click in the body's lower part: a cut that also adds background leaves only removes
    lower = leaf_at(tree, 75, 120)
    cut = previous.copy()
    cut[lower] = False
    cut[outside] = True
    out = guard_correction(
        tree, cut, previous, np.array([body_click, lower]), np.array([1, 0]), (75, 120), on
    )
    assert not out[outside] and not out[lower] and not (out & ~previous).any()


def test_split_guard_refuses_a_negative_click_that_cuts_the_object_in_two(tree):
    previous = ch.selection_from_mask(tree, box_mask(BODY))
    positives = np.array([leaf_at(tree, 75, 40), leaf_at(tree, 75, 120)])  # the body's top and bottom
    middle = band(tree, slice(72, 88))
    assert middle.any()
    cut = previous & ~middle  # a negative click at the body's left edge took a band across the body
    assert splits_clicks(tree, previous, cut, positives)
    corner = previous & ~band(tree, slice(120, 130))  # the bottom edge only: both clicks still joined
    assert not splits_clicks(tree, previous, corner, positives)
    assert guard_split(tree, corner, previous, positives, 33, 80, 8.0) is corner
    out = guard_split(tree, cut, previous, positives, 33, 80, 8.0)
    near = leaves_within(tree, 33, 80, 8.0)
    np.testing.assert_array_equal(out, np.where(near, cut, previous))  # edited within the radius only
    assert not splits_clicks(tree, previous, out, positives)
    # a radius that still cuts the body in two: the previous answer itself
    np.testing.assert_array_equal(guard_split(tree, cut, previous, positives, 33, 80, 200.0), previous)


def test_colour_vote_keeps_the_flips_that_look_like_the_click(tree):
    """A positive click in the green disc; the cut adds the disc and beige background, where an earlier negative
    click sits: the disc stays added, the beige leaves go back."""
    previous = ch.selection_from_mask(tree, box_mask(BODY))
    disc = leaf_at(tree, 165, 80)
    beige = ch.selection_from_mask(tree, box_mask((slice(135, 160), slice(0, 200))))
    green = ch.selection_from_mask(
        tree, (np.mgrid[:160, :200][0] - 80) ** 2 + (np.mgrid[:160, :200][1] - 165) ** 2 <= 400
    )
    cut = previous | beige | green
    others = np.array([leaf_at(tree, 10, 150)])  # the earlier negative click, on the beige background
    out = colour_vote(tree, cut, previous, disc, others)
    assert out[green].all() and not out[beige].any() and out[previous].all()
    assert colour_vote(tree, cut, previous, disc, np.array([], int)) is cut  # no click of the other label


def test_sign_guard_reaches_the_predictor():
    """The previous answer = the body plus a stray beige patch in the corner; a positive correction click beside
    the body. By default the cut (and ``keep_connected``) drops the patch: a positive click removed area far from
    itself. With ``correction_sign`` no leaf of the previous answer is lost."""
    image = toy_image()
    previous = box_mask(BODY) | box_mask((slice(140, 158), slice(150, 198)))
    logits = np.where(previous, 10.0, -10.0).astype(np.float32)[None]

    def lost(**overrides) -> int:
        predictor = build_hierarchy(pixel_band=0, **overrides).create_predictor()
        predictor.set_image(image)
        mask = predictor.predict([[75, 80], [125, 80]], [1, 1], granularity=1.0, mask_input=logits).masks[0]
        tree = predictor.tree
        kept = np.isin(tree.leaf_map, np.flatnonzero(ch.selection_from_mask(tree, previous)))
        return int((kept & ~mask).sum())

    assert lost(correction_sign=False) > 500
    assert lost() == 0  # the default


def test_boundary_watershed_gives_back_what_the_click_reaches_only_over_a_strong_boundary(tree):
    """The previous answer = the body plus a beige spill below it; a negative click in the spill. The cut removes
    the spill and also the body's lower band: the band lies across the body's strong outline from the click and
    joins the kept body over weak boundaries, so it goes back; the spill stays removed."""
    spill = ch.selection_from_mask(tree, box_mask((slice(131, 155), BODY[1])))
    body = ch.selection_from_mask(tree, box_mask(BODY))
    previous = body | spill
    click = leaf_at(tree, 75, 145)
    lower = band(tree, slice(110, 130))
    cut = previous & ~spill & ~lower
    out = boundary_watershed(tree, cut, previous, click)  # costs: the tree's ultrametric of adjacent leaves
    assert out[lower].all() and not out[spill].any() and out[body].all()
    strength = boundary_watershed(tree, cut, previous, click, by_tree=False)  # the mean boundary strength
    assert strength[lower].all() and not strength[spill].any()
    config = HierarchyConfig(correction_watershed=True)
    leaves, labels = np.array([leaf_at(tree, 75, 40), click]), np.array([1, 0])
    np.testing.assert_array_equal(
        guard_correction(tree, cut, previous, leaves, labels, (75, 145), config), out
    )
    off = guard_correction(
        tree, cut, previous, leaves, labels, (75, 145), HierarchyConfig(correction_watershed=False)
    )
    assert not off[lower].any()  # without the option the band stays removed
