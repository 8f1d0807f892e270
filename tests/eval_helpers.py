"""Shared helpers for the evaluation tests: the data folder, toy masks and PNG writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared(name: str) -> Path:
    """``../shared/data/NAME``, or skip the test where that benchmark subset is not present."""
    path = DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} not available")
    return path


def square(h, w, y0, y1, x0, x1):
    """``h x w`` bool mask with rows ``y0:y1`` and columns ``x0:x1`` set."""
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def write_png(path, array):
    """Write ``array`` as an image at ``path``, creating its folder."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def toy_coco(n_images=2, per_image=6, seed=0):
    """A toy COCO ground truth of random rectangles -> (COCO dict, [(image_id, H x W bool mask)])."""
    from granseg.io.masks import encode_rle

    rng = np.random.default_rng(seed)
    images, anns, masks = [], [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "file_name": f"im{i}.jpg", "height": 48, "width": 64})
        for _ in range(per_image):
            y, x = rng.integers(0, 30, 2)
            h, w = rng.integers(6, 18, 2)
            m = square(48, 64, y, y + h, x, x + w)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "segmentation": encode_rle(m),
                    "area": float(m.sum()),
                    "iscrowd": 0,
                    "category_id": 1,
                }
            )
            masks.append((i, m))
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}, masks
