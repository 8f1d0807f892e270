"""Oriented watershed transform (OWT, Arbelaez et al. 2011): the gradient *across* each leaf border.

The learned criterion's border features (:mod:`granseg.regions.learned`) average, along the border of two
regions, the oriented gradients of :mod:`granseg.regions.gradients` at their *largest* orientation. A leaf border
that runs through a texture, or cuts across a strong edge at an angle, then still collects a high value although
nothing separates the two sides in the direction the border actually runs. gPb-owt-ucm fixes this by reading, at
every border pixel, the oriented gradient at the orientation of the border itself (the arcs of its watershed are
approximated by straight segments for that).

Here the border's direction comes from the leaf map: the ``h x w`` indicator of border pixels (a pixel whose
right or lower neighbour lies in another leaf) is smoothed and its structure tensor, averaged over a small
window, gives the local unit normal ``n`` (the dominant eigenvector: across a line the smoothed indicator's
gradient points along the normal, on either side). The steerable form of the Pb gradient
(:func:`granseg.regions.gradients.gradient_tensor`) gives the chi2 difference across that normal exactly:
``owt = min(n^T J n, 4)``, never more than the largest-orientation gradient (equal where the border runs along
the edge).

All maps are ``h x w`` at the leaf map's resolution; ``x`` is the column, ``y`` the row.
"""

from __future__ import annotations

import cv2
import numpy as np

NORMAL_SIGMA = 1.0  # Gaussian sigma (pixels) of the border indicator before its gradient
NORMAL_WINDOW = 2.0  # Gaussian sigma (pixels) of the window the structure tensor is averaged over


def border_pixels(labels: np.ndarray) -> np.ndarray:
    """``h x w`` float32 1 where a pixel's right or lower neighbour has another label of the ``h x w`` ints."""
    out = np.zeros(labels.shape, np.float32)
    out[:, :-1][labels[:, 1:] != labels[:, :-1]] = 1.0
    out[:-1, :][labels[1:, :] != labels[:-1, :]] = 1.0
    return out


def border_normals(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(cos, sin)``, each ``h x w`` float32: the unit normal ``(nx, ny)`` of the leaf borders of ``labels``
    near every pixel (the dominant eigenvector of the border indicator's structure tensor; module docstring)."""
    smooth = cv2.GaussianBlur(border_pixels(labels), (0, 0), NORMAL_SIGMA)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    sxx = cv2.GaussianBlur(gx * gx, (0, 0), NORMAL_WINDOW)
    sxy = cv2.GaussianBlur(gx * gy, (0, 0), NORMAL_WINDOW)
    syy = cv2.GaussianBlur(gy * gy, (0, 0), NORMAL_WINDOW)
    angle = 0.5 * np.arctan2(2.0 * sxy, sxx - syy)
    return np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)


def owt_gradients(tensors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(G, h, w)`` float32 gradient across the leaf borders of ``labels`` (``h x w`` ints) of each of the
    ``(G, 3, h, w)`` structure tensors ``Jxx, Jxy, Jyy`` (:func:`granseg.regions.gradients.gradient_tensor`):
    ``min(n^T J n, 4)`` with ``n`` the :func:`border_normals`."""
    c, s = border_normals(labels)
    cc, cs, ss = c * c, 2.0 * c * s, s * s
    out = cc[None] * tensors[:, 0] + cs[None] * tensors[:, 1] + ss[None] * tensors[:, 2]
    return np.clip(out, 0.0, 4.0).astype(np.float32)
