"""Pb-like multi-scale oriented histogram gradients: the boundary cues of the learned region tree.

The probability-of-boundary detector of Martin, Fowlkes and Malik (and gPb, Arbelaez et al. 2011) compares, at
every pixel, orientation and scale, the histograms of a quantised channel in the two halves of a disc:
``G(x, theta, r) = chi2(h_left, h_right)`` for the lightness L, the colour channels a and b and a texton map.
Doing that literally costs ``bins x orientations x scales`` convolutions with half-disc masks per channel.

Here the half-disc difference is replaced by its steerable counterpart: with ``H_k = G_sigma * [bin = k]`` the
Gaussian-smoothed indicator of bin k, the difference of the two (Gaussian-weighted) half-disc histograms in the
direction ``n = (cos theta, sin theta)`` is ``~ 2 sigma (grad H_k . n)`` and ``(h_left + h_right) / 2 ~ H_k``, so

    chi2(x, theta) ~ sigma^2 * sum_k (grad H_k . n)^2 / H_k = sigma^2 * n^T J n,
    J = sum_k grad H_k grad H_k^T / H_k      (a 2 x 2 chi2-weighted structure tensor),

which is a quadratic form in ``n``: the eight orientations of Pb are evaluated from the three entries of ``J``
(one Gaussian blur and two derivative filters per bin and scale, all bins of a channel filtered at once by
OpenCV), and the oriented gradient kept per pixel is the largest over the eight orientations. Larger scales are
computed on a downsampled copy (a Gaussian pyramid: the same sigma at half the resolution is twice the radius)
and resized back, so the cost is dominated by the finest scale.

Channels: L, a, b quantised on fixed ranges (no per-image normalisation: the values are comparable across
images, which the learned merge criterion and the dataset-wide ODS threshold need), and a texton map: the
responses of a small filter bank (Gaussian first and second derivatives at two scales, a Laplacian of Gaussian
and a difference of Gaussians) clustered by k-means on the image itself (seeded, deterministic).

All maps are ``h x w`` at the resolution of the CIELAB image given (:func:`granseg.regions.cues.to_lab`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CHANNELS = ("L", "a", "b", "texton")
CHANNEL_BINS = {"L": 16, "a": 16, "b": 16, "texton": 24}
CHANNEL_RANGE = {
    "L": (0.0, 100.0),
    "a": (88.0, 168.0),
    "b": (88.0, 198.0),
}  # OpenCV 8-bit a, b: 128 = neutral
SCALES = (1.5, 3.0, 6.0)  # Gaussian sigma in pixels of the working image
N_ORIENTATIONS = 8
TEXTON_SAMPLES = 4000
KMEANS_ITERATIONS = 8


@dataclass
class GradientCues:
    """The cues of one image at the working resolution.

    gradients: ``(C * S, h, w)`` float32 oriented chi2 gradient, channel-major (``CHANNELS`` x ``SCALES``).
    codes:     ``(C, h, w)`` int64 bin index of each pixel in each channel (for region histograms).
    tensors:   ``(C * S, 3, h, w)`` float32 :func:`gradient_tensor` of each gradient (``gradient_cues(...,
               tensors=True)``; the oriented watershed transform reads the gradient across a boundary from them,
               :mod:`granseg.regions.owt`), else None.
    """

    gradients: np.ndarray
    codes: np.ndarray
    tensors: np.ndarray | None = None

    @property
    def names(self) -> list[str]:
        return [f"{c}@{s:g}" for c in CHANNELS for s in SCALES]

    def combined(self) -> np.ndarray:
        """``h x w`` float32 mean of all gradients (an unweighted Pb)."""
        return self.gradients.mean(axis=0)


def quantise(values: np.ndarray, low: float, high: float, bins: int) -> np.ndarray:
    """``h x w`` int64 bin of each value on ``bins`` equal steps of ``[low, high]`` (clipped)."""
    scaled = (values - low) * (bins / (high - low))
    return np.clip(scaled.astype(np.int64), 0, bins - 1)


def filter_bank(lightness: np.ndarray) -> np.ndarray:
    """``h x w x 12`` float32 texture responses of the lightness: Gaussian derivatives (x, y, xx, yy, xy) at
    sigma 1 and 2, a Laplacian of Gaussian (sigma 2) and a difference of Gaussians (1 vs 3)."""
    lightness = np.ascontiguousarray(lightness, dtype=np.float32)
    responses = []
    for sigma in (1.0, 2.0):
        smooth = cv2.GaussianBlur(lightness, (0, 0), sigma)
        for dx, dy in ((1, 0), (0, 1), (2, 0), (0, 2), (1, 1)):
            responses.append(cv2.Sobel(smooth, cv2.CV_32F, dx, dy, ksize=3))
    smooth = cv2.GaussianBlur(lightness, (0, 0), 2.0)
    responses.append(cv2.Laplacian(smooth, cv2.CV_32F, ksize=3))
    responses.append(cv2.GaussianBlur(lightness, (0, 0), 1.0) - cv2.GaussianBlur(lightness, (0, 0), 3.0))
    return np.stack(responses, axis=2)


def textons(lightness: np.ndarray, k: int = CHANNEL_BINS["texton"], seed: int = 0) -> np.ndarray:
    """``h x w`` int64 texton index: k-means (``k`` centres, k-means++ seeding, ``KMEANS_ITERATIONS`` Lloyd
    steps on ``TEXTON_SAMPLES`` pixels) of the :func:`filter_bank` responses, then nearest centre everywhere."""
    responses = filter_bank(lightness)
    flat = responses.reshape(-1, responses.shape[2])
    flat = flat / (np.linalg.norm(flat, axis=1, keepdims=True) + 2.0)  # contrast normalisation (Malik et al.)
    rng = np.random.default_rng(seed)
    sample = flat[rng.choice(len(flat), size=min(TEXTON_SAMPLES, len(flat)), replace=False)]
    centres = [sample[rng.integers(len(sample))]]
    closest = ((sample - centres[0]) ** 2).sum(1)
    for _ in range(1, min(k, len(sample))):
        total = closest.sum()
        pick = rng.choice(len(sample), p=closest / total) if total > 0 else rng.integers(len(sample))
        centres.append(sample[pick])
        closest = np.minimum(closest, ((sample - sample[pick]) ** 2).sum(1))
    centres = np.stack(centres)
    for _ in range(KMEANS_ITERATIONS):
        assign = _nearest(sample, centres)
        counts = np.bincount(assign, minlength=len(centres))
        sums = np.zeros_like(centres)
        np.add.at(sums, assign, sample)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return _nearest(flat, centres).reshape(lightness.shape)


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    distance = (centres * centres).sum(1)[None, :] - 2.0 * points @ centres.T
    return np.argmin(distance, axis=1)


def one_hot(codes: np.ndarray, bins: int) -> np.ndarray:
    """``h x w x bins`` float32 indicator of the bin of each pixel (``codes``: ``h x w`` ints in ``[0, bins)``)."""
    indicator = np.zeros(codes.shape + (bins,), np.float32)
    np.put_along_axis(indicator, codes[..., None], 1.0, axis=2)
    return indicator


def _oriented(indicator: np.ndarray, sigma: float, keep_tensor: bool = False):
    """``(gradient, tensor)``: the ``h x w`` float32 largest, over ``N_ORIENTATIONS`` orientations, steerable
    half-disc chi2 difference of the histograms of an ``h x w x K`` (soft) bin indicator at Gaussian scale
    ``sigma`` (module docstring), clipped at 4, and (``keep_tensor``; else None) its ``(3, h, w)`` float32
    tensor ``Jxx, Jxy, Jyy`` scaled so that ``n^T J n`` is the difference across a boundary of unit normal ``n``.
    One function on purpose: the orientation loop runs while the large ``h x w x K`` arrays are still allocated
    (split in two, the allocator returned and re-faulted their pages: +50 ms CPU per image at 448 px)."""
    shape = indicator.shape
    smooth = cv2.GaussianBlur(indicator, (0, 0), sigma).reshape(shape)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3).reshape(shape)  # 8 x the derivative
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3).reshape(shape)
    weight = smooth  # reused in place: 1 / (H_k + 0.02)
    weight += np.float32(0.02)
    np.reciprocal(weight, out=weight)
    weighted = gx * weight
    jxx = np.einsum("hwk,hwk->hw", weighted, gx)
    jxy = np.einsum("hwk,hwk->hw", weighted, gy)
    np.multiply(gy, weight, out=weighted)
    jyy = np.einsum("hwk,hwk->hw", weighted, gy)
    best = np.zeros(shape[:2], np.float32)
    for theta in np.arange(N_ORIENTATIONS) * (np.pi / N_ORIENTATIONS):
        c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
        np.maximum(best, c * c * jxx + 2 * c * s * jxy + s * s * jyy, out=best)
    scale = np.float32(sigma * sigma / 64.0)
    tensor = np.stack([jxx, jxy, jyy]) * scale if keep_tensor else None
    return np.minimum(best * scale, 4.0), tensor


def gradient_tensor(indicator: np.ndarray, sigma: float) -> np.ndarray:
    """``(3, h, w)`` float32 ``Jxx, Jxy, Jyy`` scaled so that ``n^T J n`` is the steerable half-disc chi2
    difference of the histograms of an ``h x w x K`` (soft) bin indicator across a boundary of unit normal ``n``
    (:func:`oriented_gradient` is its largest value over ``N_ORIENTATIONS`` normals, clipped at 4)."""
    return _oriented(indicator, sigma, keep_tensor=True)[1]


def oriented_gradient(indicator: np.ndarray, sigma: float) -> np.ndarray:
    """``h x w`` float32 largest, over ``N_ORIENTATIONS`` orientations, steerable half-disc chi2 difference of
    the histograms of an ``h x w x K`` (soft) bin indicator at Gaussian scale ``sigma`` (module docstring)."""
    return _oriented(indicator, sigma)[0]


def multiscale_gradients(codes_at, bins: int, shape: tuple[int, int], tensors: list | None = None) -> list:
    """One ``h x w`` (``shape``) :func:`oriented_gradient` per scale of ``SCALES``: scale ``i`` is computed at
    ``1 / 2**i`` of the resolution with sigma ``SCALES[i] / 2**i`` and resized back. ``codes_at(factor)`` gives
    the bin map at ``1 / factor`` of the resolution. ``tensors``: when a list, each scale's ``(3, h, w)``
    :func:`gradient_tensor` (resized back) is appended to it (for the oriented watershed transform)."""
    height, width = shape
    out = []
    for level, sigma in enumerate(SCALES):
        factor = 2**level if min(height, width) >= 2 ** (level + 3) else 1
        gradient, tensor = _oriented(one_hot(codes_at(factor), bins), sigma / factor, tensors is not None)
        if tensors is not None:
            tensors.append(np.stack([_resized(t, height, width) for t in tensor]))
        out.append(_resized(gradient, height, width))
    return out


def _resized(values: np.ndarray, height: int, width: int) -> np.ndarray:
    if values.shape == (height, width):
        return values
    return cv2.resize(values, (width, height), interpolation=cv2.INTER_LINEAR)


def _downsample(values: np.ndarray, factor: int, nearest: bool = False) -> np.ndarray:
    if factor == 1:
        return values
    size = (max(1, values.shape[1] // factor), max(1, values.shape[0] // factor))
    if nearest:
        return cv2.resize(values.astype(np.int32), size, interpolation=cv2.INTER_NEAREST).astype(np.int64)
    return cv2.resize(values, size, interpolation=cv2.INTER_AREA)


def gradient_cues(lab: np.ndarray, tensors: bool = False) -> GradientCues:
    """:class:`GradientCues` of an ``h x w x 3`` float32 CIELAB image (``granseg.regions.cues.to_lab``);
    ``tensors``: keep each gradient's structure tensor too (about 3x the memory of the gradients)."""
    lab = np.ascontiguousarray(lab, dtype=np.float32)
    shape = lab.shape[:2]
    codes, maps = [], []
    kept: list | None = [] if tensors else None
    for index, name in enumerate(CHANNELS):
        bins = CHANNEL_BINS[name]
        if name == "texton":
            full = textons(lab[..., 0])

            def codes_at(factor, full=full):
                return _downsample(full, factor, nearest=True)
        else:
            full = quantise(lab[..., index], *CHANNEL_RANGE[name], bins)

            def codes_at(factor, index=index, name=name, bins=bins):
                return quantise(_downsample(lab[..., index], factor), *CHANNEL_RANGE[name], bins)

        codes.append(full)
        maps.extend(multiscale_gradients(codes_at, bins, shape, kept))
    return GradientCues(np.stack(maps), np.stack(codes), np.stack(kept) if kept else None)
