"""Safe image decoding.

``load_image`` returns an ``H x W x 3`` ``uint8`` RGB array in the image's displayed orientation (EXIF applied),
whatever the file holds: JPEG/PNG/BMP/TIFF/WebP, grayscale, palette, RGBA/LA (alpha dropped), CMYK, 16-bit and
float images (scaled to 8 bits). It refuses, with :class:`~granseg.errors.ImageDecodeError`, files that are
missing, not images, corrupt or truncated, and images with more than ``max_pixels`` pixels (checked from the header,
before the pixels are decoded, so a decompression bomb costs nothing).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from granseg.errors import ImageDecodeError

DEFAULT_MAX_PIXELS = 50_000_000
SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "MPO", "GIF", "PPM")


def load_image(
    source: str | Path | bytes | np.ndarray, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode ``source`` (a path, encoded bytes or an array) to ``H x W x 3`` uint8 RGB.

    ``max_pixels=None`` lifts the size limit.
    """
    if isinstance(source, np.ndarray):
        return to_rgb_uint8(source)
    from PIL import Image, ImageFile, ImageOps

    ImageFile.LOAD_TRUNCATED_IMAGES = False
    name = "<bytes>"
    if isinstance(source, bytes | bytearray | memoryview):
        stream = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise ImageDecodeError(f"image not found: {path}")
        if not path.is_file():
            raise ImageDecodeError(f"not a file: {path}")
        stream = io.BytesIO(path.read_bytes())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            previous_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # we apply our own limit below, before decoding
            try:
                image = Image.open(stream)
            finally:
                Image.MAX_IMAGE_PIXELS = previous_limit
    # PIL raises UnidentifiedImageError, OSError, SyntaxError ... (their texts hold object addresses)
    except Exception:
        raise ImageDecodeError(f"cannot read image {name}: not a supported image file") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"cannot read image {name}: empty image ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageDecodeError(
            f"image {name} is {width}x{height} = {width * height / 1e6:.1f} MP, above the limit of "
            f"{max_pixels / 1e6:.1f} MP (raise it with --max-pixels)"
        )
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        array = _pil_to_array(image)
    except ImageDecodeError:
        raise
    except Exception as exc:
        raise ImageDecodeError(f"cannot read image {name}: corrupt or truncated file ({exc})") from None
    return to_rgb_uint8(array)


def _pil_to_array(image) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return np.asarray(image)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "1"):
        image = image.convert("RGB")
    return np.asarray(image)


def to_rgb_uint8(array: np.ndarray) -> np.ndarray:
    """Normalise an image array to ``H x W x 3`` uint8 RGB.

    Accepts ``H x W`` (gray), ``H x W x 1``, ``H x W x 3``, ``H x W x 4`` (alpha dropped); uint8 as is; other
    integer types scaled by their maximum (uint16 -> /257); floats in [0, 1] scaled by 255, floats beyond that
    range min-max normalised.
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageDecodeError(f"expected an H x W, H x W x 3 or H x W x 4 image, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageDecodeError(f"empty image of shape {array.shape}")
    array = array[..., :3]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == bool:
        return np.ascontiguousarray(array.astype(np.uint8) * 255)
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        if info.max > 255:
            top = 65535 if array.max(initial=0) <= 65535 else info.max
            scaled = array.astype(np.float64) * (255.0 / top)
            return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return np.clip(array, 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array.astype(np.float64))
        lo, hi = float(array.min()), float(array.max())
        if lo < 0.0 or hi > 1.0:
            array = (array - lo) / max(hi - lo, 1e-12)
        return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    raise ImageDecodeError(f"unsupported image dtype {array.dtype}")
