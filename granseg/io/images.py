"""Safe image decoding.

``load_image`` returns an ``H x W x 3`` ``uint8`` RGB array in the image's displayed orientation (EXIF applied),
whatever the file holds: JPEG/PNG/BMP/TIFF/WebP, grayscale, palette, RGBA/LA (alpha dropped), CMYK, 16-bit and
float images (scaled to 8 bits). It refuses, with :class:`~granseg.errors.ImageDecodeError`, files that are
missing, not images, corrupt or truncated, files larger than ``max_bytes`` (checked with ``stat``), files whose first
bytes are no known image signature, and images with more than ``max_pixels`` pixels (checked from the header,
before the pixels are decoded, so a decompression bomb costs nothing). A file is read lazily: a rejected file
costs its first bytes, not its size.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np

from granseg.errors import ImageDecodeError, InputError

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 256 * 2**20  # 256 MiB: a 50 MP photo is ~25 MB as JPEG, ~150 MB as 8-bit PNG/TIFF
# leading bytes of the formats below (MPO is JPEG; PPM/PGM/PBM are P1..P7)
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*", b"GIF87a", b"GIF89a")
SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "MPO", "GIF", "PPM")


def load_image(
    source: str | Path | bytes | np.ndarray,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    reduce_long_side: int | None = None,
) -> np.ndarray:
    """Decode ``source`` (a path, encoded bytes or an array) to ``H x W x 3`` uint8 RGB.

    ``max_pixels=None`` / ``max_bytes=None`` lift the limits; values below 1 are an error.
    ``reduce_long_side``: decode at a reduced size whose long side is still at least this many pixels (JPEG:
    DCT scaling by 1/2, 1/4 or 1/8 while decoding, so the full-size pixels never exist; other formats: an
    integer reduction after decoding), for callers that work at a smaller size anyway. Arrays are returned as
    they are.
    """
    if isinstance(source, np.ndarray):
        return to_rgb_uint8(source)
    _check_limit("max_pixels", max_pixels)
    _check_limit("max_bytes", max_bytes)
    with _open_source(source, max_bytes) as (stream, name):
        return _decode(stream, name, max_pixels, reduce_long_side)


def read_image_size(
    source: str | Path | bytes,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> tuple[int, int]:
    """``(H, W)`` of the image as :func:`load_image` would return it (EXIF orientation applied), read from the
    header only; the same checks and errors as :func:`load_image`."""
    _check_limit("max_pixels", max_pixels)
    _check_limit("max_bytes", max_bytes)
    with _open_source(source, max_bytes) as (stream, name):
        image = _open_checked(stream, name, max_pixels)
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)  # EXIF Orientation: 5-8 swap the axes
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def _check_limit(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InputError(f"{name} must be a whole number >= 1 (got {value!r})")


@contextlib.contextmanager
def _open_source(source, max_bytes: int | None):
    """``(binary stream, display name)`` after the size and signature checks; the file is read lazily."""
    if isinstance(source, bytes | bytearray | memoryview):
        stream = io.BytesIO(bytes(source))
        name, size = "<bytes>", len(stream.getbuffer())
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise ImageDecodeError(f"image not found: {path}")
        if not path.is_file():
            raise ImageDecodeError(f"not a file: {path}")
        size = path.stat().st_size
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise ImageDecodeError(f"cannot read image {path}: {exc.strerror or exc}") from None
    try:
        if max_bytes is not None and size > max_bytes:
            raise ImageDecodeError(
                f"image {name} is {size / 2**20:.1f} MiB, above the limit of {max_bytes / 2**20:.1f} MiB "
                "(raise it with --max-bytes)"
            )
        if not _known_signature(stream.read(16)):
            raise ImageDecodeError(f"cannot read image {name}: not a supported image file")
        stream.seek(0)
        yield stream, name
    finally:
        stream.close()


def _known_signature(head: bytes) -> bool:
    if head.startswith(_SIGNATURES):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return len(head) >= 2 and head[:1] == b"P" and head[1:2] in b"1234567"


def _open_checked(stream, name: str, max_pixels: int | None):
    """A lazily-loaded PIL image after the pixel-count check (from the header)."""
    from PIL import Image, ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = False
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
    return image


def _decode(stream, name: str, max_pixels: int | None, reduce_long_side: int | None = None) -> np.ndarray:
    from PIL import ImageOps

    image = _open_checked(stream, name, max_pixels)
    try:
        factor = 1 if reduce_long_side is None else max(1, max(image.size) // max(1, reduce_long_side))
        if factor > 1 and image.format in ("JPEG", "MPO"):
            width, height = image.size
            image.draft(image.mode, (-(-width // factor), -(-height // factor)))
        image.load()
        factor = 1 if reduce_long_side is None else max(1, max(image.size) // max(1, reduce_long_side))
        if factor > 1:
            if image.mode not in ("RGB", "RGBA", "L", "LA", "I", "F", "I;16"):
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            image = image.reduce(factor)
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


def encode_rgb_png(image: np.ndarray) -> bytes:
    """PNG bytes of an ``H x W x 3`` uint8 RGB image."""
    import cv2

    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(np.asarray(image)[..., ::-1]))
    if not ok:
        raise InputError(f"could not encode an image of shape {np.shape(image)} as PNG")
    return encoded.tobytes()


def fit_long_side(image: np.ndarray, long_side: int, nearest: bool = False) -> np.ndarray:
    """``image`` (``H x W [x C]``, uint8 or bool) shrunk so that its long side is at most ``long_side`` px
    (area interpolation, or nearest for masks / ``nearest=True``); smaller images are returned as they are."""
    import cv2

    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if image.dtype == bool:
        return cv2.resize(image.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return cv2.resize(np.ascontiguousarray(image), size, interpolation=interpolation)
