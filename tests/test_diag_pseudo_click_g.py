"""The label-space diagnostic of issue 16's run (b) (benchmarks/diag_pseudo_click_g.py): g recomputed without small
chain members, the nearest-level range, and the per-click stats on a hand-made chain."""

from __future__ import annotations

import numpy as np
import pytest
from bench_helpers import load_benchmark


def _diag():
    return load_benchmark("diag_pseudo_click_g")


def _boxes(size, boxes):
    masks = np.zeros((len(boxes), size, size), bool)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        masks[k, y0:y1, x0:x1] = True
    return masks


def test_drop_small_granularity_renormalises_without_the_fragments():
    diag = _diag()
    # one instance: 20 x 20 (400 px), a 10 x 10 part (100 px), a 1 x 4 fragment (4 px); a lone instance (16 px)
    masks = _boxes(32, [(0, 0, 20, 20), (0, 0, 10, 10), (0, 0, 4, 1), (25, 25, 29, 29)])
    instances = np.array([1, 1, 1, 2])
    all_members = diag.drop_small_granularity(masks, instances, 0.0)
    # sqrt areas 20, 10, 2: the part at (10 - 2) / (20 - 2) x 0.9 + 0.1 = 0.5
    assert all_members == pytest.approx([1.0, 0.5, 0.1, 1.0])
    without = diag.drop_small_granularity(masks, instances, 0.02)  # the fragment (1 % of 400 px) is dropped
    assert without == pytest.approx([1.0, 0.1, 0.1, 1.0])  # the part is now the smallest kept member
    assert diag.kept_members(masks, instances, 0.02).tolist() == [True, True, False, True]


def test_nearest_range_is_the_g_interval_a_level_is_trained_on():
    from granseg.train.unsamv2_prompts import nearest_level_range

    levels = np.array([0.1, 0.5, 1.0])
    assert nearest_level_range(levels, 0.5) == pytest.approx((0.3, 0.75))
    assert nearest_level_range(levels, 0.1) == pytest.approx((0.1, 0.3))
    assert nearest_level_range(levels, 1.0) == pytest.approx((0.75, 1.0))
