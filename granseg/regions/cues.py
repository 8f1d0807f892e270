"""Per-pixel cues of the region hierarchy: CIELAB colour, a boundary-strength map and texture codes.

All maps are at the resolution of the image given (``h x w``); the boundary map is in about [0, 1.5] (divided by
its 99th percentile, so it does not depend on the image's contrast).

Boundary strength (Pb-like, weight-free) combines, over several Gaussian scales ``sigma``:

* the colour gradient: the largest rate of change of the CIELAB vector over orientations (Di Zenzo: square root
  of the largest eigenvalue of the colour structure tensor ``sum_c grad(c) grad(c)^T``), i.e. the oriented
  colour gradient at its best orientation;
* a texture gradient (``texture_weight``): the same oriented gradient of *texture channels*, the local energy
  of the lightness derivatives in four orientations smoothed at ``2 * sigma``, so the border between two
  differently textured areas is strong while edges inside one texture (stripes, grass) are not.
"""

from __future__ import annotations

import cv2
import numpy as np

LBP_POINTS = 8
LBP_BINS = LBP_POINTS + 2  # "uniform" LBP codes 0..P+1
COLOUR_BINS = (12, 16, 16)  # quantisation of (L, a, b) for the colour models of the click refinement


def to_lab(image: np.ndarray) -> np.ndarray:
    """``h x w x 3`` float32 CIELAB of an RGB uint8 image: L in [0, 100], a and b offset by 128 (OpenCV 8-bit)."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    return lab


def _structure_gradient(channels: np.ndarray, sigma: float) -> np.ndarray:
    """``h x w`` largest directional derivative (over orientations) of a multi-channel ``h x w x C`` image."""
    blurred = cv2.GaussianBlur(channels, (0, 0), sigma)
    if blurred.ndim == 2:
        blurred = blurred[..., None]
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)
    if gx.ndim == 2:
        gx, gy = gx[..., None], gy[..., None]
    jxx, jyy, jxy = (gx * gx).sum(2), (gy * gy).sum(2), (gx * gy).sum(2)
    trace_half = (jxx + jyy) / 2
    root = np.sqrt(((jxx - jyy) / 2) ** 2 + jxy * jxy)
    return np.sqrt(np.maximum(trace_half + root, 0.0))


def texture_channels(lightness: np.ndarray, sigma: float) -> np.ndarray:
    """``h x w x 4`` local energy of the lightness derivative in 4 orientations (0, 45, 90, 135 deg), smoothed
    with a Gaussian of ``2 * sigma``."""
    blurred = cv2.GaussianBlur(lightness, (0, 0), max(sigma / 2, 0.5))
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)
    diagonal = (gx + gy) * np.float32(0.7071)
    anti = (gx - gy) * np.float32(0.7071)
    energy = np.stack([np.abs(gx), np.abs(gy), np.abs(diagonal), np.abs(anti)], axis=2)
    return cv2.GaussianBlur(energy, (0, 0), 2 * sigma)


def boundary_map(
    lab: np.ndarray, scales: tuple[float, ...] = (1.0, 2.5), texture_weight: float = 0.0
) -> np.ndarray:
    """``h x w`` float32 boundary strength in about [0, 1.5] from an ``h x w x 3`` CIELAB image (see module)."""
    lab = np.ascontiguousarray(lab, dtype=np.float32)
    total = np.zeros(lab.shape[:2], np.float32)
    for sigma in scales:
        total += _structure_gradient(lab, sigma)
        if texture_weight:
            total += texture_weight * _structure_gradient(texture_channels(lab[..., 0], sigma), 2 * sigma)
    scale = float(np.percentile(total, 99)) + 1e-6
    return np.minimum(total / scale, 1.5)


def lbp_codes(image: np.ndarray) -> np.ndarray:
    """``h x w`` int64 uniform LBP codes (8 neighbours, radius 1; scikit-image) of an RGB uint8 image."""
    from skimage.feature import local_binary_pattern

    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return local_binary_pattern(gray, LBP_POINTS, 1, "uniform").astype(np.int64)


def colour_bins(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantised colour of every pixel: ``h x w`` int64 bin index into a ``COLOUR_BINS`` grid over CIELAB, and
    the ``(B, 3)`` Lab centre of every bin (B = product of ``COLOUR_BINS``)."""
    nl, na, nb = COLOUR_BINS
    li = np.clip((lab[..., 0] / 100.0 * nl).astype(np.int64), 0, nl - 1)
    ai = np.clip((lab[..., 1] / 256.0 * na).astype(np.int64), 0, na - 1)
    bi = np.clip((lab[..., 2] / 256.0 * nb).astype(np.int64), 0, nb - 1)
    grid = np.stack(np.meshgrid(np.arange(nl), np.arange(na), np.arange(nb), indexing="ij"), -1).reshape(
        -1, 3
    )
    centres = (grid + 0.5) * np.array([100.0 / nl, 256.0 / na, 256.0 / nb])
    return (li * na + ai) * nb + bi, centres


def used_bins(bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(used, index)`` of :func:`colour_bins`' ``h x w`` bin indices: the ``(U,)`` sorted bins that occur and
    every pixel's ``(h * w,)`` index into them, as ``np.unique(bins.ravel(), return_inverse=True)`` gives them
    (by counting over the ``COLOUR_BINS`` grid instead of sorting the pixels)."""
    counts = np.bincount(bins.ravel(), minlength=int(np.prod(COLOUR_BINS)))
    present = counts > 0
    return np.flatnonzero(present), (np.cumsum(present) - 1)[bins.ravel()]
