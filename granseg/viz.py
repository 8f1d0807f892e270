"""Pictures for people: mask overlays on the image.

``overlay_masks`` draws ``K x H x W`` bool masks over an ``H x W x 3`` uint8 image, each in its own colour with
its outline; ``granularity_colors`` maps g in [0.1, 1] to a colour ramp (small g = warm/yellow, g = 1 = deep
blue) so pictures of several granularities read the same everywhere in the package.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def granularity_colors(granularity: Sequence[float]) -> np.ndarray:
    """``K x 3`` uint8 RGB colours for granularities in [0.1, 1] (viridis ramp, reversed)."""
    import cv2

    g = np.clip((np.asarray(granularity, dtype=np.float64) - 0.1) / 0.9, 0.0, 1.0)
    ramp = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_VIRIDIS)[:, 0, ::-1]
    return ramp[np.rint((1.0 - g) * 255).astype(int)]


def distinct_colors(count: int, seed: int = 0) -> np.ndarray:
    """``count x 3`` uint8 RGB colours, well spread in hue, deterministic."""
    import cv2

    hues = (np.arange(count) * 0.618033988749895 + (seed % 7) * 0.1) % 1.0
    hsv = np.stack([hues * 179, np.full(count, 200), np.full(count, 255)], axis=1).astype(np.uint8)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]


def overlay_masks(
    image: np.ndarray,
    masks: np.ndarray,
    colors: np.ndarray | None = None,
    alpha: float = 0.45,
    outline: bool = True,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Blend masks over ``image`` (``H x W x 3`` uint8). Larger masks are drawn first so small ones stay visible.

    points: optional ``(N, 2)`` clicks (x, y) drawn as green (label 1) / red (label 0) dots.
    Returns a new ``H x W x 3`` uint8 image.
    """
    import cv2

    masks = np.asarray(masks, dtype=bool)
    if masks.ndim == 2:
        masks = masks[None]
    colors = distinct_colors(len(masks)) if colors is None else np.asarray(colors, dtype=np.uint8)
    canvas = image.astype(np.float32).copy()
    order = np.argsort([-m.sum() for m in masks], kind="stable")
    for index in order:
        mask = masks[index]
        color = colors[index].astype(np.float32)
        canvas[mask] = (1.0 - alpha) * canvas[mask] + alpha * color
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    if outline:
        for index in order:
            contours, _ = cv2.findContours(
                masks[index].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
            )
            cv2.drawContours(canvas, contours, -1, tuple(int(c) for c in colors[index]), 1)
    if points is not None:
        radius = max(3, round(max(image.shape[:2]) / 150))
        labels = np.ones(len(points), int) if labels is None else np.asarray(labels)
        for (x, y), label in zip(np.asarray(points).reshape(-1, 2), labels):
            color = (0, 220, 0) if label == 1 else (230, 0, 0)
            cv2.circle(canvas, (round(x), round(y)), radius + 1, (255, 255, 255), -1)
            cv2.circle(canvas, (round(x), round(y)), radius, color, -1)
    return canvas


def tile(
    images: Sequence[np.ndarray], columns: int, gap: int = 4, captions: Sequence[str] | None = None
) -> np.ndarray:
    """Arrange same-size ``H x W x 3`` uint8 images in a grid (white gaps), with optional captions."""
    import cv2

    height, width = images[0].shape[:2]
    rows = (len(images) + columns - 1) // columns
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, np.uint8)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        cell = np.ascontiguousarray(image[:height, :width])
        if captions is not None:
            cv2.putText(cell, captions[index], (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3)
            cv2.putText(cell, captions[index], (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
        grid[
            r * (height + gap) : r * (height + gap) + height, c * (width + gap) : c * (width + gap) + width
        ] = cell
    return grid


def save_rgb_png(path, image: np.ndarray):
    """Write an ``H x W x 3`` uint8 RGB image as PNG atomically."""
    import cv2

    from granseg.io.files import atomic_write_bytes

    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError("could not encode image as PNG")
    return atomic_write_bytes(path, encoded.tobytes())
