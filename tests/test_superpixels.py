"""Superpixels on noisy, low-contrast pictures: scikit-image's SLIC stretches the intensity range, so noise can
collapse its segments into a few huge ones (granseg.regions.superpixels module docstring)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bench_helpers import load_benchmark
from skimage.segmentation import slic

from granseg.io.images import load_image
from granseg.regions.superpixels import degenerate, resize_long_side, superpixels

COFFEE = Path(__file__).resolve().parents[1] / "granseg" / "assets" / "coffee.jpg"
two_tone = load_benchmark("bench_blank_noisy").two_tone  # the benchmark's noisy two-tone picture


def leakage(labels: np.ndarray, region: np.ndarray) -> float:
    """Under-segmentation error: the share of pixels on the smaller side of ``region``'s outline in their segment
    (0: every segment on one side)."""
    sizes = np.bincount(labels.ravel())
    inside = np.bincount(labels[region], minlength=len(sizes))
    return float(np.minimum(inside, sizes - inside).sum() / labels.size)


@pytest.mark.parametrize("noise, step", [(3, 20), (10, 20), (20, 60)])
def test_noisy_low_contrast_picture_keeps_its_segments_and_edge(noise, step):
    image, left = two_tone(noise, step)
    plain = slic(image, n_segments=700, compactness=12.0, start_label=0, max_num_iter=10)
    assert degenerate(plain, 700)  # scikit-image alone collapses it (the reason for the fallback)
    labels = superpixels(image, 700, 12.0, max_side=400, iterations=10)
    assert not degenerate(labels, 700)
    assert len(np.unique(labels)) >= 0.6 * 700
    assert leakage(labels, left) < 0.01  # 0.0001-0.004 (scikit-image alone: 0.38-0.5)


def test_photograph_gets_plain_slic():
    image = load_image(COFFEE)
    labels = superpixels(image, 700, 12.0, max_side=max(image.shape[:2]), iterations=10)
    plain = slic(image, n_segments=700, compactness=12.0, start_label=0, max_num_iter=10)
    assert not degenerate(plain, 700)
    np.testing.assert_array_equal(labels, plain)


def test_degenerate_thresholds():
    grid = np.arange(100 * 100).reshape(100, 100) // 100  # 100 rows: 100 segments of 100 px
    assert not degenerate(grid, 100)
    assert degenerate(np.zeros((100, 100), np.int64), 100)  # one segment
    few = grid // 4  # 25 segments of 400 px: fewer than 0.3 x 100
    assert degenerate(few, 100)
    assert not degenerate(np.zeros((3, 3), np.int64), 100)  # tiny: at most 9 // 16 -> 1 segment asked


def test_hierarchy_click_on_noisy_two_tone_picture_answers_its_half():
    from granseg.predict.hierarchy import build_hierarchy

    image, left = two_tone(10, 20)
    predictor = build_hierarchy().create_predictor()
    predictor.set_image(image)
    mask = predictor.predict([[100, 150]], [1], granularity=1.0).masks[0]
    assert (mask & left).sum() / (mask | left).sum() > 0.95  # 0.5 before: one leaf for the whole picture


def test_internal_image_stretches_dark_pictures_only():
    from granseg.regions.superpixels import DARK_TOP, internal_image

    photo = load_image(COFFEE)
    small, scale = internal_image(photo, 448)
    plain, plain_scale = resize_long_side(photo, 448)
    np.testing.assert_array_equal(small, plain)  # a photograph: only resized
    assert scale == plain_scale
    dark = (photo.astype(np.float64) * 0.25).round().astype(np.uint8)
    assert np.percentile(dark, 99.5) < DARK_TOP
    out, _ = internal_image(dark, 448)
    low, high = np.percentile(out, [0.5, 99.5])
    assert low <= 2 and high >= 253  # auto-levels: the 0.5th-99.5th percentiles to 0-255
    assert np.corrcoef(out.ravel().astype(float), resize_long_side(dark, 448)[0].ravel())[0, 1] > 0.99


def test_hierarchy_on_a_dark_picture_uses_one_internal_image():
    from granseg.predict.hierarchy import build_hierarchy

    dark = (load_image(COFFEE).astype(np.float64) * 0.25).round().astype(np.uint8)
    predictor = build_hierarchy().create_predictor()
    predictor.set_image(
        dark
    )  # the pixel band's colour bins must be the tree's (asserted in tree_pixel_image)
    mask = predictor.predict([[330, 60]], [1], granularity=1.0).masks[0]
    assert mask.any() and not mask.all()
