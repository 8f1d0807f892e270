"""Pictures the app sends to the browser: the palette PNG overlay and the granularity thumbnails."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from granseg.app import render


def test_overlay_tints_masks_outlines_them_and_leaves_the_rest_transparent():
    first = np.zeros((40, 60), dtype=bool)
    first[10:30, 10:30] = True
    second = np.zeros((40, 60), dtype=bool)
    second[20:35, 25:50] = True
    png = render.overlay_png([first, second], [(255, 0, 0), (0, 0, 255)], alpha=100)
    rgba = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
    assert rgba.shape == (40, 60, 4)
    assert tuple(rgba[15, 15]) == (255, 0, 0, 100)  # inside the first only
    assert tuple(rgba[10, 15]) == (255, 0, 0, 255)  # its outline, opaque
    assert tuple(rgba[25, 40]) == (0, 0, 255, 100)  # the second, drawn on top
    assert tuple(rgba[27, 27]) == (0, 0, 255, 100)  # overlap: the later mask wins
    assert rgba[0, 0, 3] == 0 and rgba[39, 59, 3] == 0  # outside: transparent
    assert (rgba[..., 3] > 0).sum() == (first | second).sum()


def test_thumbnails_one_per_mask_at_the_requested_width():
    image = np.full((40, 60, 3), 128, dtype=np.uint8)
    masks = np.zeros((10, 40, 60), dtype=bool)
    masks[:, 10:20, 10:20] = True
    pictures = render.thumbnails(image, masks, width=30)
    assert len(pictures) == 10
    thumb = np.asarray(Image.open(io.BytesIO(pictures[0])))
    assert thumb.shape == (20, 30, 3)
    assert thumb[7, 7, 2] > thumb[0, 0, 2] + 50  # the mask is tinted blue, the rest darkened
