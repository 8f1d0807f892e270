"""Masks to pictures for the browser: a tinted RGBA overlay (PNG) and small thumbnails (JPEG).

Masks are ``H x W`` bool at the image's resolution; colours are RGB tuples of uint8.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import numpy as np

CURRENT_COLOR = (30, 144, 255)
PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
]


def object_color(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _boundary(mask: np.ndarray) -> np.ndarray:
    import cv2

    eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT)
    return mask & ~eroded.astype(bool)


def overlay_png(
    masks: Sequence[np.ndarray], colors: Sequence[tuple[int, int, int]], alpha: int = 110
) -> bytes:
    """A palette PNG the size of the masks: each mask tinted with its colour at ``alpha`` (later masks on top),
    its outline opaque, transparent elsewhere. At most 127 distinct colours (palette PNG); a few ms for 0.25 MP."""
    import io

    from PIL import Image

    if len(masks) == 0:
        raise ValueError("overlay_png needs at least one mask")
    palette_colors = list(dict.fromkeys(tuple(int(v) for v in c) for c in colors))[:127]
    index = {color: k for k, color in enumerate(palette_colors)}
    labels = np.zeros(np.asarray(masks[0]).shape, dtype=np.uint8)
    for mask, color in zip(masks, colors):
        mask = np.asarray(mask, dtype=bool)
        k = index.get(tuple(int(v) for v in color), len(palette_colors) - 1)
        labels[mask] = 1 + 2 * k
        labels[_boundary(mask)] = 2 + 2 * k
    palette = [0, 0, 0]
    transparency = [0]
    for color in palette_colors:
        palette += [*color, *color]
        transparency += [alpha, 255]
    picture = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
    picture.putpalette(palette)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", transparency=bytes(transparency), compress_level=1)
    return buffer.getvalue()


def thumbnails(
    image: np.ndarray, masks: np.ndarray, width: int = 96, color: tuple[int, int, int] = CURRENT_COLOR
) -> list[bytes]:
    """One JPEG per mask of ``masks`` (``K x H x W`` bool): the image ``width`` pixels wide, the mask tinted."""
    import cv2

    height = max(1, round(image.shape[0] * width / image.shape[1]))
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    tint = np.asarray(color, dtype=np.float32)
    out = []
    for mask in masks:
        small_mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        picture = small.copy()
        picture[small_mask] = 0.45 * picture[small_mask] + 0.55 * tint
        picture[~small_mask] *= 0.6
        ok, encoded = cv2.imencode(
            ".jpg", np.ascontiguousarray(picture.astype(np.uint8)[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 80]
        )
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        out.append(encoded.tobytes())
    return out
