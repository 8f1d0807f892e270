"""Superpixels: the leaves of every region hierarchy in granseg (the ``hierarchy`` predictor's merge tree and
the pseudo-label engine's conquer / region-proposal merging), plus snapping masks to them.

Labels are ``(H, W)`` int64 in pixels of the image given; SLIC (scikit-image) runs on a copy whose long side is
at most ``max_side`` (area interpolation) and is upsampled with nearest neighbour.

Noisy, low-contrast images: scikit-image's ``slic`` stretches the image's intensity range to [0, 1] before its
CIELAB conversion, so on a picture spanning a narrow range its noise outweighs the compactness term, the clusters
come out as pixel speckle and the connectivity step chains the specks into a few huge segments (a grey picture with
Gaussian noise of sigma 3 / 255 gives one segment; two halves 20 grey levels apart under noise of sigma 10 give one
segment across both). :func:`superpixels` checks for that (:func:`degenerate`) and then clusters the CIELAB of the
image without the stretch (compactness in CIELAB units, as the SLIC paper), Gaussian-smoothed with sigma 1, then 2
pixels, as long as the result is still degenerate. At the region tree's settings photographs and the synthetic
scenes never trigger it (165 BSDS500 / GrabCut / DAVIS / COCO photos and 200 scenes: largest segment at most 13.4 x
the mean size, at least 0.63 x the segments asked), so their segments are those of a plain ``slic`` call.
"""

from __future__ import annotations

import cv2
import numpy as np

# collapsed SLIC (module docstring): a segment over 25 x the mean size asked (photographs: <= 13.4 x), or fewer
# than 0.3 x the segments asked (photographs: >= 0.63 x); then the unstretched CIELAB, smoothed with these sigmas
DEGENERATE_SIZE, DEGENERATE_COUNT = 25.0, 0.3
NOISY_SIGMAS = (1.0, 2.0)
# internal_image: a picture whose 99.5th percentile value is under this (of 255) is stretched (a dark picture)
DARK_TOP = 100.0


def resize_long_side(image: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """Downscale ``image`` (H x W x C) so its long side is at most ``long_side`` (area interpolation).
    Returns the image and the scale (new size / old size, <= 1)."""
    height, width = image.shape[:2]
    scale = min(1.0, long_side / max(height, width))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def internal_image(image: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """The working copy a region tree is built on: ``image`` (``H x W x 3`` uint8 RGB) downscaled as
    :func:`resize_long_side`, and, where its 99.5th percentile value is under ``DARK_TOP`` (a dark picture),
    stretched linearly from its 0.5th-99.5th percentile range to 0-255 (auto-levels). The tree's cues
    (fixed-range CIELAB histograms, colour bins) otherwise see a dark picture's colours in a few bins and merge
    across its outlines (GrabCut 26-50 at 25 % brightness: first click 0.769 -> 0.824). The photographs of the
    benchmark sets (433: BSDS500 val, GrabCut, DAVIS frames, COCO sample: top 154 or more) and 1,000 synthetic
    scenes (125 or more) are not dark, so they are only resized. Stretching narrow but bright pictures too (range
    under 128) was tried: it raised the noise of low-contrast synthetic scenes with it (part IoU on the 13 such
    tune scenes 0.821 -> 0.731). Returns the copy and the scale (new size / old size)."""
    small, scale = resize_long_side(image, long_side)
    if small.ndim != 3 or small.dtype != np.uint8:
        return small, scale
    low, high = np.percentile(small, [0.5, 99.5])
    if high >= DARK_TOP or high <= low:
        return small, scale
    stretched = (small.astype(np.float32) - np.float32(low)) * np.float32(255.0 / (high - low))
    return np.clip(stretched, 0, 255).round().astype(np.uint8), scale


def superpixels(
    image: np.ndarray,
    segments: int = 1200,
    compactness: float = 10.0,
    max_side: int = 320,
    iterations: int = 5,
) -> np.ndarray:
    """(H, W) int64 SLIC superpixel labels 0..L-1 of an H x W x 3 uint8 image (for :func:`snap_to_superpixels`).

    Computed on a copy whose long side is at most ``max_side`` (labels upsampled, nearest) for speed."""
    from skimage.segmentation import slic

    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    small = image
    if scale < 1.0:
        small = cv2.resize(
            image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
        )
    labels = slic(small, n_segments=segments, compactness=compactness, start_label=0, max_num_iter=iterations)
    for sigma in NOISY_SIGMAS:
        if not degenerate(labels, segments):
            break
        labels = _slic_unstretched(small, segments, compactness, iterations, sigma)
    if scale < 1.0:
        labels = cv2.resize(labels.astype(np.int32), (width, height), interpolation=cv2.INTER_NEAREST)
    return labels.astype(np.int64)


def degenerate(labels: np.ndarray, segments: int) -> bool:
    """Whether ``(h, w)`` SLIC labels asked for ``segments`` segments collapsed (module docstring): a segment over
    ``DEGENERATE_SIZE`` x the mean size asked, or fewer than ``DEGENERATE_COUNT`` x the segments asked."""
    # at most one segment per 16 px (as the region tree asks), so a tiny picture is never "too few"
    segments = max(1, min(segments, labels.size // 16))
    sizes = np.bincount(labels.ravel())
    expected = labels.size / segments
    few = np.count_nonzero(sizes) < DEGENERATE_COUNT * segments
    return bool(sizes.max() > DEGENERATE_SIZE * expected or few)


def _slic_unstretched(
    image: np.ndarray, segments: int, compactness: float, iterations: int, sigma: float
) -> np.ndarray:
    """SLIC labels of an ``h x w x 3`` uint8 RGB image clustered in its CIELAB without scikit-image's stretch of
    the intensity range (module docstring), smoothed by a Gaussian of ``sigma`` pixels. ``slic`` still rescales
    what it is given to [0, 1]; dividing the compactness by the same span keeps the balance of colour and
    distance that of plain CIELAB."""
    from skimage.color import rgb2lab
    from skimage.segmentation import slic

    lab = rgb2lab(image.astype(np.float64) / 255.0)
    span = float(lab.max() - lab.min())
    return slic(
        lab,
        n_segments=segments,
        compactness=compactness / span if span > 0 else compactness,
        convert2lab=False,
        channel_axis=-1,
        start_label=0,
        max_num_iter=iterations,
        sigma=sigma,
    )


def watershed_superpixels(strength: np.ndarray, segments: int, compactness: float = 0.0) -> np.ndarray:
    """``h x w`` int64 labels ``0..L-1`` of a seeded watershed of a boundary map (``h x w`` float, high on
    boundaries), so every leaf border runs along a ridge of the map (as the oriented watershed of gPb-owt-ucm).

    Seeds: the lowest pixel of each cell of a regular grid of about ``segments`` cells (as SLIC moves its
    centres off edges); ``compactness`` > 0 gives the compact watershed (Neubert and Protzel 2014)."""
    from skimage.segmentation import watershed

    height, width = strength.shape
    step = max(2, int(round(np.sqrt(height * width / max(segments, 1)))))
    rows, cols = -(-height // step), -(-width // step)
    padded = np.full((rows * step, cols * step), np.inf, np.float64)
    padded[:height, :width] = cv2.GaussianBlur(strength.astype(np.float32), (0, 0), 1.0)
    blocks = padded.reshape(rows, step, cols, step).transpose(0, 2, 1, 3).reshape(rows, cols, step * step)
    best = np.argmin(blocks, axis=2)
    ys = (np.arange(rows)[:, None] * step + best // step).ravel()
    xs = (np.arange(cols)[None, :] * step + best % step).ravel()
    markers = np.zeros((height, width), np.int32)
    markers[ys, xs] = np.arange(1, ys.size + 1)
    labels = watershed(strength, markers, compactness=compactness)
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(height, width).astype(np.int64)


def snap_to_superpixels(masks: np.ndarray, labels: np.ndarray, majority: float = 0.5) -> np.ndarray:
    """Boundary refinement: each mask of (K, H, W) bool becomes the union of the superpixels (``labels``,
    (H, W) ints) it covers by more than ``majority``; blocky patch-grid edges then follow image edges.
    A mask that would vanish is kept as it was."""
    num = int(labels.max()) + 1
    sizes = np.bincount(labels.reshape(-1), minlength=num).astype(np.float64)
    flat_labels = labels.reshape(-1)
    refined = np.empty_like(masks)
    for index, mask in enumerate(masks):
        inside = np.bincount(flat_labels[mask.reshape(-1)], minlength=num)
        snapped = (inside / np.maximum(sizes, 1) > majority)[labels]
        refined[index] = snapped if snapped.any() else mask
    return refined
