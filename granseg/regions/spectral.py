"""Spectral globalisation of the local boundary map (the sPb of gPb: Maire et al. 2008, Arbelaez et al. 2011).

The local oriented gradients (:mod:`granseg.regions.gradients`) fire on every texture edge; a contour that closes
around a large region is not told apart from one inside a texture. gPb's remedy is a normalised-cuts embedding:

1. a local boundary probability ``pb`` in [0, 1] (here the mean oriented gradient, :func:`local_boundary`),
   max-pooled to a coarse grid (``SPECTRAL_LONG_SIDE`` pixels on the long side);
2. a sparse affinity between every pair of grid pixels ``i, j`` at most ``RADIUS`` apart, from the *intervening
   contour*: ``W_ij = exp(-max_{p on segment ij} pb(p) / RHO)`` (:func:`intervening_affinity`);
3. the ``N_VECTORS`` smallest non-trivial generalised eigenvectors ``(D - W) v = lambda D v``, ``D`` the degree
   matrix (:func:`generalised_eigenvectors`; computed as the largest eigenvectors of ``D^-1/2 W D^-1/2`` with
   ARPACK from a fixed start vector, so the result is deterministic);
4. ``sPb = sqrt(sum_k |grad(G_sigma * v_k)|^2 / lambda_k)``: the gradient magnitude of each eigenvector,
   weighted by ``1 / sqrt(lambda_k)`` (small eigenvalues are the global cuts), combined in quadrature
   (:func:`eigenvector_gradient`). gPb sums the per-vector oriented magnitudes; the quadrature sum is the same
   up to a constant for a single vector and is invariant to rotations within a subspace of equal eigenvalues,
   which an eigensolver does not pin down.

The embedding ``e_k = v_k / sqrt(lambda_k)`` itself is kept as a per-pixel vector too: the distance of two
regions' mean embeddings is a region-level version of the same cue (additive over merges, like the histograms
of :mod:`granseg.regions.learned`).

Eigenvectors are normalised to mean square 1 over the grid (their scale does not depend on the image size) and
the sign of each is arbitrary: everything computed from them (gradient magnitudes, distances) ignores the sign.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SPECTRAL_LONG_SIDE = 150  # long side of the grid the eigenproblem is solved on (pixels)
RADIUS = 4  # pixels of that grid: pairs at most this far apart are connected
RHO = 0.1  # W = exp(-intervening pb / RHO) (gPb's value)
N_VECTORS = 12  # non-trivial eigenvectors kept
PB_OFFSET, PB_RANGE = 0.15, 0.4  # local pb = clip((mean oriented gradient - offset) / range, 0, 1)
SMOOTH_SIGMA = 1.0  # Gaussian sigma (grid pixels) before the eigenvector gradients
EIGEN_TOLERANCE = 1e-3
DENSE_LIMIT = 400  # grids with at most this many pixels are solved densely


@dataclass
class SpectralCues:
    """The spectral cues of one image at the working resolution ``h x w``.

    boundary:    ``h x w`` float32 sPb (:func:`eigenvector_gradient`, resized from the grid).
    embedding:   ``(k, h, w)`` float32 ``v_k / sqrt(lambda_k)`` per pixel (resized from the grid).
    eigenvalues: ``(k,)`` float64 generalised eigenvalues, ascending (the trivial 0 excluded).
    """

    boundary: np.ndarray
    embedding: np.ndarray
    eigenvalues: np.ndarray


def local_boundary(combined: np.ndarray) -> np.ndarray:
    """``h x w`` float32 pb in [0, 1] of the ``h x w`` mean oriented gradient (fixed affine map, no per-image
    normalisation: the median photograph pixel maps to about 0.15, the 99th percentile to about 0.85)."""
    return np.clip((combined.astype(np.float32) - PB_OFFSET) / PB_RANGE, 0.0, 1.0)


def grid_shape(shape: tuple[int, int], long_side: int = SPECTRAL_LONG_SIDE) -> tuple[int, int]:
    """``(h, w)`` of the eigenproblem's grid for a working image of ``shape`` (never larger than it)."""
    factor = max(1.0, max(shape) / long_side)
    return max(1, int(round(shape[0] / factor))), max(1, int(round(shape[1] / factor)))


def offsets(radius: int) -> list[tuple[int, int]]:
    """``(dy, dx)`` of the half disc of radius ``radius`` (each unordered pixel pair once; no ``(0, 0)``)."""
    return [
        (dy, dx)
        for dy in range(radius + 1)
        for dx in range(-radius, radius + 1)
        if (dy > 0 or dx > 0) and dx * dx + dy * dy <= radius * radius
    ]


def intervening_affinity(pb: np.ndarray, radius: int = RADIUS, rho: float = RHO):
    """``(N, N)`` scipy CSR symmetric affinity of the ``N = h * w`` pixels (row-major) of an ``h x w`` pb map:
    ``exp(-m / rho)`` for pairs at most ``radius`` apart, ``m`` the largest pb on the segment between them
    (both ends included, sampled at every grid step along its longer axis)."""
    from scipy import sparse

    height, width = pb.shape
    index = np.arange(height * width).reshape(height, width)
    rows, cols, values = [], [], []
    for dy, dx in offsets(radius):
        y1, x0, x1 = height - dy, max(0, -dx), min(width, width - dx)
        if y1 <= 0 or x1 <= x0:
            continue
        steps = max(abs(dy), abs(dx))
        largest = pb[:y1, x0:x1].copy()
        for s in range(1, steps + 1):
            sy, sx = int(round(dy * s / steps)), int(round(dx * s / steps))
            np.maximum(largest, pb[sy : y1 + sy, x0 + sx : x1 + sx], out=largest)
        rows.append(index[:y1, x0:x1].ravel())
        cols.append(index[dy : y1 + dy, x0 + dx : x1 + dx].ravel())
        values.append(np.exp(-largest.ravel().astype(np.float64) / rho))
    if not rows:
        return sparse.csr_matrix((height * width, height * width))
    a, b, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(values)
    size = height * width
    return sparse.csr_matrix((np.r_[v, v], (np.r_[a, b], np.r_[b, a])), shape=(size, size))


def generalised_eigenvectors(affinity, count: int = N_VECTORS) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` smallest non-trivial solutions of ``(D - W) v = lambda D v`` for an ``(N, N)`` affinity:
    ``(eigenvalues (k,), vectors (N, k))``, ascending, ``k = min(count, N - 1)``, each vector scaled to mean
    square 1. Deterministic (fixed ARPACK start vector; a dense solver for ``N <= DENSE_LIMIT``)."""
    from scipy import sparse

    size = affinity.shape[0]
    degree = np.asarray(affinity.sum(axis=1)).ravel() + 1e-12
    inv_sqrt = 1.0 / np.sqrt(degree)
    normalised = sparse.diags(inv_sqrt) @ affinity @ sparse.diags(inv_sqrt)
    wanted = min(count + 1, size)
    if size <= DENSE_LIMIT or wanted >= size - 1:
        from scipy.linalg import eigh

        mu, u = eigh(normalised.toarray())
        mu, u = mu[::-1][:wanted], u[:, ::-1][:, :wanted]
    else:
        from scipy.sparse.linalg import eigsh

        start = np.sqrt(degree) * (1.0 + 0.5 * np.cos(np.arange(size) * 0.7))  # not an eigenvector, fixed
        mu, u = eigsh(normalised, k=wanted, which="LA", v0=start, tol=EIGEN_TOLERANCE)
        order = np.argsort(-mu)
        mu, u = mu[order], u[:, order]
    vectors = u[:, 1:] * inv_sqrt[:, None]
    vectors /= np.sqrt(np.mean(vectors**2, axis=0, keepdims=True)) + 1e-12
    return np.maximum(1.0 - mu[1:], 1e-6), vectors


def eigenvector_gradient(
    vectors: np.ndarray, eigenvalues: np.ndarray, sigma: float = SMOOTH_SIGMA
) -> np.ndarray:
    """``h x w`` float32 ``sqrt(sum_k |grad(G_sigma * v_k)|^2 / lambda_k)`` of ``(k, h, w)`` eigenvector maps
    with ``(k,)`` eigenvalues (gradients per grid pixel; module docstring)."""
    total = np.zeros(vectors.shape[1:], np.float32)
    for vector, value in zip(vectors, eigenvalues):
        smooth = cv2.GaussianBlur(np.ascontiguousarray(vector, np.float32), (0, 0), sigma)
        gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
        total += (gx * gx + gy * gy) * np.float32(1.0 / (64.0 * value))  # Sobel = 8 x the derivative
    return np.sqrt(total)


def spectral_cues(combined: np.ndarray, long_side: int = SPECTRAL_LONG_SIDE) -> SpectralCues:
    """:class:`SpectralCues` of an ``h x w`` mean oriented-gradient map (``GradientCues.combined()``): pb max-
    pooled to the :func:`grid_shape` grid, eigenvectors there, sPb and the embedding resized back to ``h x w``."""
    height, width = combined.shape
    pb = local_boundary(combined)
    grid_h, grid_w = grid_shape((height, width), long_side)
    coarse = _max_pool(pb, grid_h, grid_w)
    eigenvalues, vectors = generalised_eigenvectors(intervening_affinity(coarse))
    maps = vectors.T.reshape(-1, grid_h, grid_w).astype(np.float32)
    boundary = eigenvector_gradient(maps, eigenvalues)
    scaled = maps * (1.0 / np.sqrt(eigenvalues)).astype(np.float32)[:, None, None]
    return SpectralCues(_resize(boundary, (height, width)), _resize(scaled, (height, width)), eigenvalues)


def _max_pool(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """``height x width`` largest value of each cell of an even split of the ``H x W`` map."""
    rows = np.linspace(0, values.shape[0], height + 1).astype(int)
    cols = np.linspace(0, values.shape[1], width + 1).astype(int)
    row_max = np.maximum.reduceat(values, rows[:-1], axis=0)
    return np.maximum.reduceat(row_max, cols[:-1], axis=1)


def _resize(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an ``h x w`` map or ``(k, h, w)`` stack to ``shape``."""
    if maps.shape[-2:] == shape:
        return np.ascontiguousarray(maps, np.float32)
    if maps.ndim == 2:
        return cv2.resize(maps, shape[::-1], interpolation=cv2.INTER_LINEAR)
    return np.stack([cv2.resize(m, shape[::-1], interpolation=cv2.INTER_LINEAR) for m in maps])
