"""Safe image decoding and mask encoding (PNG, COCO RLE, polygons, COCO JSON), atomic writes."""

from granseg.io.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from granseg.io.images import DEFAULT_MAX_PIXELS, load_image, to_rgb_uint8
from granseg.io.masks import (
    decode_rle,
    encode_rle,
    mask_to_polygons,
    masks_to_records,
    polygons_to_mask,
    save_mask_png,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "decode_rle",
    "encode_rle",
    "load_image",
    "mask_to_polygons",
    "masks_to_records",
    "polygons_to_mask",
    "save_mask_png",
    "to_rgb_uint8",
]
