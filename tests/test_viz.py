from __future__ import annotations

import numpy as np

from granseg.viz import granularity_colors, overlay_masks, tile


def test_overlay_changes_only_masked_pixels_without_outline():
    image = np.full((20, 30, 3), 100, np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[5:10, 5:15] = True
    out = overlay_masks(image, mask, np.array([[255, 0, 0]], np.uint8), alpha=0.5, outline=False)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[~mask], image[~mask])
    assert (out[mask][:, 0] > 150).all() and (out[mask][:, 1] < 60).all()


def test_granularity_colors_are_a_ramp():
    colors = granularity_colors([0.1, 0.55, 1.0]).astype(int)
    assert colors.shape == (3, 3)
    assert len({tuple(c) for c in colors}) == 3
    assert colors[0].sum() > colors[2].sum()  # small g bright (yellow), g = 1 dark (blue)


def test_tile_layout():
    images = [np.full((10, 12, 3), v, np.uint8) for v in (0, 50, 100)]
    grid = tile(images, columns=2, gap=2)
    assert grid.shape == (22, 26, 3)
    assert grid[0, 14, 0] == 50 and grid[12, 0, 0] == 100 and grid[15, 20, 0] == 255
