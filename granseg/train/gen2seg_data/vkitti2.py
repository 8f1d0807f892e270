"""Virtual KITTI 2 (Cabon et al. 2020, NAVER LABS Europe) in its published layout: the ``vkitti_2.0.3_rgb`` and
``vkitti_2.0.3_instanceSegmentation`` archives, extracted side by side or into one folder::

    ROOT/[vkitti_2.0.3_rgb/]SceneSS/VARIATION/frames/rgb/Camera_K/rgb_NNNNN.jpg
    ROOT/[vkitti_2.0.3_instanceSegmentation/]SceneSS/VARIATION/frames/instanceSegmentation/Camera_K/instancegt_NNNNN.png

Frames are 375 x 1242. The instance PNG is an 8-bit indexed image whose value is the car's ``trackID + 1`` and 0
where there is no car: only cars are annotated, so label 0 becomes unlabelled background (``-2``: no pull to
black, but still an "other" pixel of the separation term, as the authors' ``no_bg``). Every instance is a ``car``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from granseg.train.gen2seg_data.base import RawSample, SkipSample, check_labels, layout_error
from granseg.train.losses import UNLABELLED

EXPECTED = (
    "SceneSS/VARIATION/frames/rgb/Camera_K/rgb_NNNNN.jpg with "
    "SceneSS/VARIATION/frames/instanceSegmentation/Camera_K/instancegt_NNNNN.png "
    "(optionally under vkitti_2.0.3_rgb/ and vkitti_2.0.3_instanceSegmentation/)"
)
_RGB = re.compile(r"(^|/)Scene\d{2}/[^/]+/frames/rgb/Camera_\d/rgb_\d{5}\.jpg$")


def instance_path(rgb_path: Path) -> Path:
    """The instancegt PNG that belongs to an rgb JPEG (same scene, variation, camera and frame number)."""
    parts = list(rgb_path.parts)
    parts = ["vkitti_2.0.3_instanceSegmentation" if p == "vkitti_2.0.3_rgb" else p for p in parts]
    frames = len(parts) - 1 - parts[::-1].index("frames")
    parts[frames + 1] = "instanceSegmentation"
    parts[-1] = "instancegt_" + rgb_path.stem.split("_")[-1] + ".png"
    return Path(*parts)


class VirtualKitti2Source:
    """Frames of a Virtual KITTI 2 root (see the module docstring). ``raw(index)`` -> :class:`RawSample`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.frames = sorted(
            p for p in self.root.rglob("rgb_*.jpg") if _RGB.search(p.relative_to(self.root).as_posix())
        )
        if not self.frames:
            raise layout_error("Virtual KITTI 2", self.root, EXPECTED)

    def __len__(self) -> int:
        return len(self.frames)

    def raw(self, index: int) -> RawSample:
        from PIL import Image

        from granseg.io import load_image

        rgb_path = self.frames[int(index)]
        image = load_image(rgb_path)
        mask_path = instance_path(rgb_path)
        ids = None
        if mask_path.is_file():
            with Image.open(mask_path) as handle:
                if handle.mode not in ("P", "L", "I", "I;16"):
                    raise SkipSample(f"instance PNG in mode {handle.mode}, expected an indexed image")
                ids = np.asarray(handle).astype(np.int64)
        ids = check_labels(ids, image, mask_path.name)
        labels = np.where(ids > 0, ids, UNLABELLED)
        categories = {int(k): "car" for k in np.unique(ids[ids > 0])}
        return RawSample(image, labels, categories, name=rgb_path.relative_to(self.root).as_posix())
