"""Point prompting of a Gen2Seg feature image (DESIGN.md sec. 7).

For each click ``c = (x, y)`` (pixels of the original image):

1. query ``q`` = Gaussian-weighted mean of the feature image around ``c`` (sigma = 0.01 x the image's longer side,
   at least 0.5 px);
2. similarity ``s = 1 / (||f - q|| + 1e-6)`` per pixel (features on the 0..255 scale), min-max to [0, 1];
3. joint bilateral filter of ``s`` guided by the feature image (window 9, sigma colour 75, sigma space 75);

several positive clicks: per-pixel max of their filtered maps; the mask is ``map > 3/255``.
Negative clicks (beyond the paper): a pixel is kept only where its feature is closer to some positive query than
to every negative query. A box prompt is turned into a positive click at its centre.

Granularity is ignored: Gen2Seg has no granularity input, so every requested level gets the same mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from granseg.config import Config
from granseg.predict.base import BasePredictor, Prediction
from granseg.predict.bilateral import joint_bilateral_filter


@dataclass
class PromptConfig(Config):
    sigma_fraction: float = 0.01
    filter_diameter: int = 9
    sigma_colour: float = 75.0
    sigma_space: float = 75.0
    threshold: float = 3.0 / 255.0
    use_filter: bool = True


def gaussian_query(features: np.ndarray, x: float, y: float, sigma: float) -> np.ndarray:
    """Gaussian-weighted mean feature ``(C,)`` around pixel ``(x, y)`` of ``features`` (``H x W x C``)."""
    height, width = features.shape[:2]
    ys = np.arange(height, dtype=np.float64)[:, None]
    xs = np.arange(width, dtype=np.float64)[None, :]
    weights = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2.0 * sigma * sigma))
    weights /= weights.sum()
    return np.tensordot(weights, features.astype(np.float64), axes=([0, 1], [0, 1]))


def feature_distance(features: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``H x W`` Euclidean distance of each pixel's feature to ``query``."""
    return np.linalg.norm(features.astype(np.float64) - query[None, None, :], axis=-1)


def similarity_map(distance: np.ndarray) -> np.ndarray:
    """``1 / (d + 1e-6)`` min-max normalised to [0, 1] (``H x W`` float64)."""
    similarity = 1.0 / (distance + 1e-6)
    low, high = similarity.min(), similarity.max()
    if high - low <= 0:
        return np.ones_like(similarity)
    return (similarity - low) / (high - low)


class Gen2SegPredictor(BasePredictor):
    """Prompt a :class:`granseg.models.gen2seg.Gen2SegModel` with points. See the module docstring."""

    def __init__(self, model, config: PromptConfig | None = None) -> None:
        super().__init__()
        self.model = model
        self.model_name = getattr(model, "name", "gen2seg")
        self.config = config or PromptConfig()
        self._features: np.ndarray | None = None  # H x W x 3 float64, 0..255

    @property
    def feature_image(self) -> np.ndarray:
        """``H x W x 3`` float in [0, 255] of the current image."""
        if self._features is None:
            raise RuntimeError("call set_image first")
        return self._features

    def _set_image(self, image: np.ndarray) -> None:
        self._features = self.model.feature_image(image).astype(np.float64) * 255.0

    def set_feature_image(self, features: np.ndarray) -> None:
        """Use a precomputed ``H x W x 3`` feature image in [0, 1] (e.g. from a batch) instead of the model."""
        self._features = np.asarray(features, dtype=np.float64) * 255.0
        self._image_size = (int(features.shape[0]), int(features.shape[1]))

    def click_map(self, x: float, y: float) -> tuple[np.ndarray, np.ndarray]:
        """For one click: ``(filtered similarity H x W in [0, 1], raw feature distance H x W)``."""
        features = self.feature_image
        cfg = self.config
        sigma = max(cfg.sigma_fraction * max(features.shape[:2]), 0.5)
        distance = feature_distance(features, gaussian_query(features, x, y, sigma))
        similarity = similarity_map(distance)
        if cfg.use_filter:
            similarity = joint_bilateral_filter(
                similarity, features, cfg.filter_diameter, cfg.sigma_colour, cfg.sigma_space
            ).astype(np.float64)
        return similarity, distance

    def _predict(self, points, labels, box, granularity, mask_input) -> Prediction:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        labels = np.asarray(labels).reshape(-1)
        if box is not None:
            centre = np.array([[(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0]])
            points = np.concatenate([points, centre])
            labels = np.concatenate([labels, [1]])
        positive_maps, positive_distances, negative_distances = [], [], []
        for (x, y), label in zip(points, labels):
            if label == 1:
                similarity, distance = self.click_map(x, y)
                positive_maps.append(similarity)
                positive_distances.append(distance)
            else:
                sigma = max(self.config.sigma_fraction * max(self.feature_image.shape[:2]), 0.5)
                query = gaussian_query(self.feature_image, x, y, sigma)
                negative_distances.append(feature_distance(self.feature_image, query))
        combined = np.max(positive_maps, axis=0)
        mask = combined > self.config.threshold
        if negative_distances:
            mask &= np.min(positive_distances, axis=0) < np.min(negative_distances, axis=0)
        score = float(combined[mask].mean()) if mask.any() else 0.0
        count = len(granularity)
        return Prediction(
            masks=np.repeat(mask[None], count, axis=0),
            scores=np.full(count, score),
            granularity=np.asarray(granularity, dtype=np.float64),
            extra={"similarity": combined.astype(np.float32)},
        )
