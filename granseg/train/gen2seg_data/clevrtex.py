"""ClevrTex (Karazija et al. 2021, Oxford VGG) in its published layout (one of the paper's alternative sources)::

    ROOT/[clevrtex_VARIANT/]B/CLEVRTEX_VARIANT_NNNNNN.png         the image (240 x 320, RGB or RGBA)
    ROOT/[clevrtex_VARIANT/]B/CLEVRTEX_VARIANT_NNNNNN_flat.png    the mask: per-pixel object index, 0 = background

``B`` is the bucket folder (``0`` .. ``49``, 1000 images each); ``VARIANT`` is ``full``, ``pbg``, ``vbg``, ``grassbg``,
``camo`` or ``outd``. Scenes are fully annotated, so the background is labelled (0); objects keep their index.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from granseg.train.gen2seg_data.base import RawSample, SkipSample, check_labels, layout_error

EXPECTED = "B/CLEVRTEX_VARIANT_NNNNNN.png with B/CLEVRTEX_VARIANT_NNNNNN_flat.png masks (B = bucket 0..49)"
_IMAGE = re.compile(r"^CLEVRTEX_[a-z]+_\d{6}\.png$")


class ClevrTexSource:
    """Images of a ClevrTex root. ``raw(index)`` -> :class:`RawSample` (every object has category ``object``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.frames = sorted(p for p in self.root.rglob("CLEVRTEX_*.png") if _IMAGE.match(p.name))
        if not self.frames:
            raise layout_error("ClevrTex", self.root, EXPECTED)

    def __len__(self) -> int:
        return len(self.frames)

    def raw(self, index: int) -> RawSample:
        from PIL import Image

        from granseg.io import load_image

        path = self.frames[int(index)]
        image = load_image(path)
        mask_path = path.with_name(path.stem + "_flat.png")
        ids = None
        if mask_path.is_file():
            with Image.open(mask_path) as handle:
                if handle.mode not in ("P", "L"):
                    raise SkipSample(f"mask PNG in mode {handle.mode}, expected an indexed image")
                ids = np.asarray(handle).astype(np.int64)
        labels = check_labels(ids, image, mask_path.name)
        categories = {int(k): "object" for k in np.unique(labels[labels > 0])}
        return RawSample(image, labels, categories, name=path.relative_to(self.root).as_posix())
