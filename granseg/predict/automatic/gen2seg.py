"""Whole-image masks of a Gen2Seg model: its instance-colour image clustered into regions at every g.

Gen2Seg paints every instance in its own colour (``Gen2SegPredictor.feature_image``, ``H x W x 3`` on 0..255) and
has no granularity input. Whole-image masks come from graph-based clustering of that colour image
(Felzenszwalb-Huttenlocher, scikit-image's ``felzenszwalb``): its ``scale`` grows geometrically with g, from
``scale_min`` at g = 0.1 (many small regions, parts) to ``scale_max`` at g = 1 (few large ones, objects), and
regions smaller than ``min_fraction`` of the image are merged into neighbours. A region's score is its colour
coherence ``1 - mean distance to its mean colour / (mean + that distance)`` in [0, 1] (1 = uniform colour).
The regions then go through the same tail as point-prompted models (``min_area``, box NMS per g, the union over g,
de-duplication and the part-whole tree) so Gen2Seg can be scored on AR@1000 like the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from granseg.config import Config


@dataclass
class ColourClusterConfig(Config):
    scale_min: float = 64.0
    scale_max: float = 4096.0
    sigma: float = 0.0  # the colour image is already smooth; blurring makes slivers along boundaries
    min_fraction: float = 0.0005

    def scale(self, g: float) -> float:
        t = (min(max(g, 0.1), 1.0) - 0.1) / 0.9
        return float(self.scale_min * (self.scale_max / self.scale_min) ** t)


def colour_regions(features: np.ndarray, g: float, config: ColourClusterConfig | None = None) -> np.ndarray:
    """``H x W x 3`` colour image (0..255) -> ``H x W`` int label map (0-based) at granularity ``g``."""
    from skimage.segmentation import felzenszwalb

    cfg = config or ColourClusterConfig()
    height, width = features.shape[:2]
    min_size = max(1, int(cfg.min_fraction * height * width))
    return felzenszwalb(
        np.asarray(features, dtype=np.float64), scale=cfg.scale(g), sigma=cfg.sigma, min_size=min_size
    )


def region_scores(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(n_labels,)`` colour coherence of each region (see the module docstring)."""
    flat = labels.ravel()
    count = int(flat.max()) + 1
    pixels = features.reshape(-1, features.shape[-1]).astype(np.float64)
    sizes = np.bincount(flat, minlength=count).astype(np.float64)
    means = np.stack([np.bincount(flat, pixels[:, c], minlength=count) for c in range(pixels.shape[1])], 1)
    means /= np.maximum(sizes, 1)[:, None]
    spread = np.bincount(flat, np.linalg.norm(pixels - means[flat], axis=1), minlength=count)
    spread /= np.maximum(sizes, 1)
    scale = np.linalg.norm(means, axis=1) + spread + 1e-6
    return 1.0 - spread / scale


class ColourClusterSource:
    """Region masks of a :class:`~granseg.predict.gen2seg.Gen2SegPredictor`'s feature image, per g."""

    def __init__(self, predictor, config: ColourClusterConfig | None = None) -> None:
        self.predictor = predictor
        self.config = config or ColourClusterConfig()

    def set_image(self, image: np.ndarray) -> None:
        self.predictor.set_image(image)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.predictor.image_size

    def regions(self, g: float) -> tuple[np.ndarray, np.ndarray]:
        """``(H x W int labels, (n,) scores)`` at ``g``."""
        features = self.predictor.feature_image
        labels = colour_regions(features, g, self.config)
        return labels, region_scores(features, labels)
