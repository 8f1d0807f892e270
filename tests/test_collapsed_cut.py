"""A single click's cut that collapsed onto the click answers its chain region (``single_click_min_cover``,
``regions.chains.keep_uncollapsed``)."""

from __future__ import annotations

import numpy as np

import granseg.predict.hierarchy as hierarchy
from granseg.predict.hierarchy import build_hierarchy
from granseg.regions import chains as ch
from granseg.regions.tree import TreeParams, build_region_tree
from tests.test_hierarchy import BODY, PART, box_mask, toy_image


def test_keep_uncollapsed_answers_the_region_within_the_last_answer():
    tree = build_region_tree(toy_image(), TreeParams())
    part = ch.selection_from_mask(tree, box_mask(PART))
    body = ch.selection_from_mask(tree, box_mask(BODY))
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
