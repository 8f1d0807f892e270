"""The two fallbacks of a single click's answers (both read each level's reference, the chain region its cut
started from): a cut flooding past ``max_object_fraction`` of the image (``cap_single_answers``,
``regions.chains.cap_nested``) and a cut collapsed onto the click (``single_click_min_cover``,
``regions.chains.keep_uncollapsed``) each answer the chain region instead."""

from __future__ import annotations

import numpy as np

import granseg.predict.hierarchy as hierarchy
from granseg.predict.hierarchy import build_hierarchy
from granseg.regions import chains as ch
from granseg.regions.tree import TreeParams, build_region_tree
from tests.test_hierarchy import BODY, PART, box_mask, toy_image


def _toy_part_and_body():
    """The toy image's region tree and the leaf selections of its PART and BODY boxes."""
    tree = build_region_tree(toy_image(), TreeParams())
    return tree, ch.selection_from_mask(tree, box_mask(PART)), ch.selection_from_mask(tree, box_mask(BODY))


def test_cap_nested_replaces_a_flooded_level_by_its_own_chain_region():
    tree, part, body = _toy_part_and_body()
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


def test_keep_uncollapsed_answers_the_region_within_the_last_answer():
    tree, part, body = _toy_part_and_body()
    speck = np.zeros(tree.n_leaves, bool)
    speck[np.flatnonzero(part)[0]] = True  # a cut left with one leaf of the part
    selections = np.stack([speck, part, speck])
    off = selections.copy()
    ch.keep_uncollapsed(tree, off, [part, part, body], 0.0)
    assert (off == selections).all()  # off: nothing replaced
    kept = selections.copy()
    ch.keep_uncollapsed(tree, kept, [part, None, body], 0.3)
    assert (kept[2] == body).all()  # the last answer collapsed: its region
    assert (kept[0] == part).all()  # within the last answer (the body holds the part)
    assert (kept[1] == part).all()  # no region: left as is
    small_top = np.stack([speck, part.copy()])
    ch.keep_uncollapsed(tree, small_top, [body, part], 0.3)
    assert (small_top[0] == part).all()  # the body's fallback cut to the last answer (the part)


def test_a_collapsed_single_click_cut_answers_the_chain_region(monkeypatch):
    """Every cut of one click made to collapse onto the click's leaf (as on a camouflaged object): without the
    option the answers are that speck; with it each g answers a chain region (nested, holding the click)."""
    image = toy_image()

    def collapsed(tree, jobs, *args, **kwargs):
        return [np.isin(np.arange(tree.n_leaves), job.positives) for job in jobs]

    monkeypatch.setattr(hierarchy, "grabcut_many", collapsed)

    def areas(**overrides) -> list[float]:
        predictor = build_hierarchy(pixel_band=0, object_prior_radius=0.0, **overrides).create_predictor()
        predictor.set_image(image)
        masks = predictor.predict([[65, 70]], [1], granularity=[0.1, 1.0]).masks
        assert all(m[70, 65] for m in masks)
        return [float(m.mean()) for m in masks]

    assert max(areas(single_click_min_cover=0.0)) < 0.01
    small, large = areas(single_click_min_cover=0.3)
    assert 0.01 < small <= large
