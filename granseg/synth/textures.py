"""Colour sampling and texture painting for the synthetic world (vectorised numpy/OpenCV, no pixel loops).

Colours are float RGB in [0, 1]. Textures are evaluated on a crop of the image grid (global pixel coordinates,
so a pattern continues across crops) and blend two colours ``c1`` (base) and ``c2`` (accent).
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np


def hsv_colour(hue: float, saturation: float, value: float) -> np.ndarray:
    """(3,) float RGB in [0, 1] of an HSV triple (hue wraps around, s and v are clipped to [0, 1])."""
    saturation = min(max(float(saturation), 0.0), 1.0)
    value = min(max(float(value), 0.0), 1.0)
    return np.array(colorsys.hsv_to_rgb(float(hue) % 1.0, saturation, value))


def accent_colour(rng: np.random.Generator, base: np.ndarray, strength: float) -> np.ndarray:
    """A colour near ``base`` (same hue family) that a texture alternates with: brighter or darker by ``strength``."""
    hue, sat, val = colorsys.rgb_to_hsv(*(min(max(float(c), 0.0), 1.0) for c in base))
    shift = strength if val < 0.55 else -strength
    return hsv_colour(hue + rng.uniform(-0.03, 0.03), sat * rng.uniform(0.8, 1.1), val + shift)


def paint_texture(
    kind: str,
    rng: np.random.Generator,
    box: tuple[int, int, int, int],
    c1: np.ndarray,
    c2: np.ndarray,
    scale: float,
) -> np.ndarray:
    """Texture of family ``kind`` over the crop ``box`` = (y0, x0, y1, x1) (exclusive ends) of the image grid.

    ``scale`` (px) sets the pattern period (stripe width, checker cell, dot spacing, noise cell).
    Returns (y1 - y0, x1 - x0, 3) float32 RGB in [0, 1].
    """
    y0, x0, y1, x1 = box
    h, w = y1 - y0, x1 - x0
    if kind == "flat":
        weight = np.zeros((h, w), dtype=np.float32)
    elif kind == "noise":
        cell = max(2.0, scale * rng.uniform(0.3, 0.6))
        grid = rng.uniform(0, 1, (int(np.ceil(h / cell)) + 2, int(np.ceil(w / cell)) + 2)).astype(np.float32)
        big = cv2.resize(
            grid, (int(grid.shape[1] * cell), int(grid.shape[0] * cell)), interpolation=cv2.INTER_CUBIC
        )
        weight = np.clip(big[:h, :w], 0, 1)
    else:
        angle = rng.uniform(0, np.pi)
        yy = np.arange(y0, y1, dtype=np.float32)[:, None]
        xx = np.arange(x0, x1, dtype=np.float32)[None, :]
        cos_a, sin_a = np.float32(np.cos(angle)), np.float32(np.sin(angle))
        u = xx * cos_a + yy * sin_a  # (h, w) by broadcasting
        v = yy * cos_a - xx * sin_a
        period = max(4.0, scale * rng.uniform(0.25, 0.5))
        phase = rng.uniform(0, period)
        if kind == "stripes":
            weight = (np.mod(u + phase, period) < period * rng.uniform(0.35, 0.65)).astype(np.float32)
        elif kind == "checker":
            weight = ((np.floor((u + phase) / period) + np.floor((v + phase) / period)) % 2).astype(
                np.float32
            )
        elif kind == "dots":
            du = np.mod(u + phase, period) - period / 2
            dv = np.mod(v + phase, period) - period / 2
            weight = (du * du + dv * dv < (period * rng.uniform(0.2, 0.35)) ** 2).astype(np.float32)
        elif kind == "gradient":
            lo, hi = u.min(), u.max()
            weight = (u - lo) / max(hi - lo, 1.0)
        else:
            raise ValueError(f"unknown texture family {kind!r}")
    c1 = np.asarray(c1, dtype=np.float32)
    c2 = np.asarray(c2, dtype=np.float32)
    return c1 + weight[..., None] * (c2 - c1)
