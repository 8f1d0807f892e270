"""Image decoding edge cases, mask encodings, atomic writes."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from granseg.errors import ImageDecodeError, InputError
from granseg.io import (
    atomic_write_json,
    decode_rle,
    encode_rle,
    load_image,
    mask_to_polygons,
    masks_to_records,
    polygons_to_mask,
    save_mask_png,
    to_rgb_uint8,
)


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture()
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_lossless_formats_round_trip(rgb, fmt, tmp_path):
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    path = tmp_path / f"image.{fmt.lower()}"
    path.write_bytes(_encode(Image.fromarray(rgb), fmt, **kwargs))
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (37, 53, 3)
    np.testing.assert_array_equal(out, rgb)


def test_jpeg_decodes_close(rgb, tmp_path):
    smooth = np.repeat(np.repeat(rgb[:4, :4], 10, 0), 10, 1)
    path = tmp_path / "image.jpg"
    path.write_bytes(_encode(Image.fromarray(smooth), "JPEG", quality=95))
    out = load_image(path)
    assert out.shape == smooth.shape
    assert np.abs(out.astype(int) - smooth.astype(int)).mean() < 6


def test_grayscale_becomes_three_equal_channels(rgb):
    gray = rgb[..., 0]
    out = load_image(_encode(Image.fromarray(gray), "PNG"))
    assert out.shape == (37, 53, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], gray)


def test_rgba_alpha_dropped(rgb):
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    out = load_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    np.testing.assert_array_equal(out, rgb)


def test_palette_image(rgb):
    image = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    out = load_image(_encode(image, "PNG"))
    np.testing.assert_array_equal(out, np.asarray(image.convert("RGB")))


def test_sixteen_bit_grayscale_scaled():
    values = np.array([[0, 257 * 100], [65535, 257 * 3]], dtype=np.uint16)
    out = load_image(_encode(Image.fromarray(values), "PNG"))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], np.array([[0, 100], [255, 3]], dtype=np.uint8))


def test_exif_orientation_applied():
    # 2 x 3 image with a marked corner; orientation 6 means "rotate 90 degrees clockwise to display"
    array = np.zeros((2, 3, 3), np.uint8)
    array[0, 0] = 255
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6
    out = load_image(_encode(image, "PNG", exif=exif))
    assert out.shape == (3, 2, 3)
    assert out[0, 1].tolist() == [255, 255, 255]  # top-left went to top-right


def test_missing_file(tmp_path):
    with pytest.raises(ImageDecodeError, match="not found"):
        load_image(tmp_path / "nope.jpg")


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageDecodeError, match="not a file"):
        load_image(tmp_path)


def test_not_an_image(tmp_path):
    path = tmp_path / "fake.png"
    path.write_bytes(b"this is text, not a PNG")
    with pytest.raises(ImageDecodeError, match="not a supported image"):
        load_image(path)


def test_truncated_jpeg_refused(rgb):
    data = _encode(Image.fromarray(np.repeat(np.repeat(rgb, 8, 0), 8, 1)), "JPEG", quality=90)
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_truncated_png_refused(rgb):
    data = _encode(Image.fromarray(rgb), "PNG")
    with pytest.raises(ImageDecodeError):
        load_image(data[: len(data) - 40])


def test_pixel_limit_checked_before_decoding():
    data = _encode(Image.new("L", (400, 300)), "PNG")
    with pytest.raises(ImageDecodeError, match="above the limit"):
        load_image(data, max_pixels=100_000)
    assert load_image(data, max_pixels=None).shape == (300, 400, 3)


def test_to_rgb_uint8_float_and_bad_shapes():
    out = to_rgb_uint8(np.array([[0.0, 0.5], [1.0, 0.25]]))
    assert out[..., 0].tolist() == [[0, 128], [255, 64]]
    with pytest.raises(ImageDecodeError):
        to_rgb_uint8(np.zeros((4, 4, 2)))
    with pytest.raises(ImageDecodeError):
        to_rgb_uint8(np.zeros((0, 4, 3)))


def _random_mask(seed: int, height=31, width=47) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((height, width)) > 0.6


@pytest.mark.parametrize("seed", range(5))
def test_rle_round_trip(seed):
    mask = _random_mask(seed)
    rle = encode_rle(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [31, 47]
    json.dumps(rle)
    np.testing.assert_array_equal(decode_rle(rle), mask)


def test_uncompressed_rle_decodes():
    mask = np.zeros((3, 4), bool)
    mask[1, 1:3] = True  # column-major runs: 4 zeros, 1 one, 2 zeros, 1 one, 4 zeros
    np.testing.assert_array_equal(decode_rle({"size": [3, 4], "counts": [4, 1, 2, 1, 4]}), mask)


def test_rle_rejects_non_mask():
    with pytest.raises(InputError):
        encode_rle(np.zeros((2, 2, 2), bool))


def test_polygons_round_trip_on_a_rectangle():
    mask = np.zeros((40, 60), bool)
    mask[5:20, 10:41] = True
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 1
    back = polygons_to_mask(polygons, 40, 60)
    iou = (back & mask).sum() / (back | mask).sum()
    assert iou > 0.9


def test_save_mask_png_round_trip(tmp_path):
    mask = _random_mask(3)
    path = save_mask_png(tmp_path / "sub" / "m.png", mask)
    out = np.asarray(Image.open(path))
    np.testing.assert_array_equal(out > 127, mask)
    assert set(np.unique(out)) <= {0, 255}


def test_records_fields():
    masks = np.stack([_random_mask(1), np.zeros((31, 47), bool)])
    records = masks_to_records(masks, [0.9, 0.1], [0.3, 1.0], np.array([[3.0, 4.0]]))
    assert records[0]["area"] == int(masks[0].sum())
    assert records[1]["bbox"] == [0.0, 0.0, 0.0, 0.0]
    assert records[0]["point_coords"] == [[3.0, 4.0]]
    assert records[1]["granularity"] == 1.0
    np.testing.assert_array_equal(decode_rle(records[0]["segmentation"]), masks[0])


def test_atomic_write_leaves_no_temp_on_failure(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}  # the old file survives a failed write
    assert sorted(os.listdir(tmp_path)) == ["out.json"]


@pytest.mark.parametrize("ext", [".png", ".tiff"])
def test_sixteen_bit_rgb_scaled(ext):
    import cv2

    values = np.random.default_rng(0).integers(0, 65536, size=(5, 6, 3)).astype(np.uint16)
    ok, encoded = cv2.imencode(ext, values[..., ::-1])  # OpenCV writes BGR
    assert ok
    out = load_image(encoded.tobytes())
    assert out.dtype == np.uint8 and out.shape == (5, 6, 3)
    assert np.abs(out.astype(float) - values / 257.0).max() <= 1.0


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    path = atomic_write_json(tmp_path / "p.json", [1])
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
