"""Random closed shapes as polygons, and their exact rasterisation.

Every shape family is drawn as a closed polygon outline (x, y offsets in pixels around a centre) and filled with
``cv2.fillPoly`` at 1/16 px precision, so a mask costs one OpenCV call whatever the family.
"""

from __future__ import annotations

import cv2
import numpy as np

_SUBPIXEL_BITS = 4
_CIRCLE_POINTS = 72
_THETA = np.linspace(0.0, 2.0 * np.pi, _CIRCLE_POINTS, endpoint=False)


def shape_outline(kind: str, rng: np.random.Generator, radius: float) -> np.ndarray:
    """Outline of a random shape of family ``kind`` with overall radius about ``radius`` px.

    Returns (N, 2) float64 (x, y) offsets from the shape's centre, randomly rotated and stretched (aspect 0.5..1).
    """
    theta = _THETA
    if kind == "ellipse":
        x, y = np.cos(theta), np.sin(theta)
    elif kind == "rectangle":
        x = np.array([-1.0, 1.0, 1.0, -1.0])
        y = np.array([-1.0, -1.0, 1.0, 1.0]) * 0.9
    elif kind == "polygon":
        count = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, count))
        # keep the vertices spread out so the polygon is not a sliver
        angles = np.sort((np.arange(count) + rng.uniform(-0.3, 0.3, count)) * 2 * np.pi / count + angles[0])
        r = rng.uniform(0.75, 1.0, count)
        x, y = r * np.cos(angles), r * np.sin(angles)
    elif kind == "star":
        tips = int(rng.integers(4, 8))
        angles = np.arange(2 * tips) * np.pi / tips
        r = np.where(np.arange(2 * tips) % 2 == 0, 1.0, rng.uniform(0.4, 0.65))
        x, y = r * np.cos(angles), r * np.sin(angles)
    elif kind == "superellipse":
        exponent = rng.uniform(0.7, 1.2) if rng.random() < 0.5 else rng.uniform(2.5, 5.0)  # pinched or boxy
        c, s = np.cos(theta), np.sin(theta)
        x = np.sign(c) * np.abs(c) ** (2.0 / exponent)
        y = np.sign(s) * np.abs(s) ** (2.0 / exponent)
    elif kind == "blob":
        r = np.ones_like(theta)
        for harmonic in range(2, 6):
            r += rng.uniform(0.0, 0.35 / harmonic) * np.cos(harmonic * theta + rng.uniform(0, 2 * np.pi))
        x, y = r * np.cos(theta), r * np.sin(theta)
    else:
        raise ValueError(f"unknown shape family {kind!r}")
    aspect = rng.uniform(0.5, 1.0)
    angle = rng.uniform(0.0, np.pi)
    x, y = x * radius, y * radius * aspect
    cos_a, sin_a = np.cos(angle), np.sin(angle)
    return np.stack([x * cos_a - y * sin_a, x * sin_a + y * cos_a], axis=1)


def rasterise(outline: np.ndarray, center: tuple[float, float], hw: tuple[int, int]) -> np.ndarray:
    """Fill ``outline`` (N, 2 x, y offsets) placed at ``center`` (x, y px) into an H x W bool mask."""
    canvas = np.zeros(hw, dtype=np.uint8)
    points = np.round((outline + np.asarray(center, dtype=np.float64)) * (1 << _SUBPIXEL_BITS)).astype(
        np.int32
    )
    cv2.fillPoly(canvas, [points], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return canvas.view(bool)
