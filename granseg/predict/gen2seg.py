"""Point prompting of a Gen2Seg feature image (docs/gen2seg.md).

One positive click ``c = (x, y)`` (pixels of the original image) follows the paper exactly:

1. query ``q`` = Gaussian-weighted mean of the feature image around ``c`` (sigma = 0.01 x the image's longer side,
   at least 0.5 px);
2. similarity ``s = 1 / (||f - q|| + 1e-6)`` per pixel (features on the 0..255 scale), min-max to [0, 1];
3. joint bilateral filter of ``s`` guided by the feature image (window 9, sigma colour 75, sigma space 75);
4. mask = ``s > 3/255``.

Several clicks (the paper only says "per-pixel max" for several positive clicks; the rest is ours, see
docs/gen2seg.md and benchmarks/results/gen2seg.md for why and how the values were chosen):

* positives: per-pixel max of their filtered similarity maps, thresholded as above;
* negatives (``negative_rule``): each pixel is assigned to the clicks by feature distance, ``d+`` = distance to
  the nearest positive query, ``d-`` = to the nearest negative query. ``"nearest"``: keep the pixel iff
  ``d+ < d-`` (per pixel, no smoothing). ``"smoothed"`` (default): the soft assignment ``a = d- / (d+ + d-)``
  (0.5 on the decision boundary) is joint-bilateral filtered like the similarity maps and the pixel is kept iff
  ``a > 0.5``, so the cut follows edges of the guide instead of the feature image's patch blocks;
* guide (``multi_click_guide``): with more than one click every filter is guided by ``"image"`` (the input image
  at its full resolution, sigma colour ``multi_click_sigma_colour``) or ``"features"`` (the feature image, the
  paper's guide and sigma colour). A backbone's feature image comes from a coarse token grid (patch 14 for
  MAE-H, 4 px patches in the CPU benchmark), so its boundaries are blocky; the image is sharp. When no image is
  known (:meth:`Gen2SegPredictor.set_feature_image` without ``image``), the feature image guides;
* connectivity (``connected_components``): ``"several"`` (default) keeps, when there is more than one click, only
  the 8-connected components of the mask that contain a positive click; ``"always"`` does it for one click too
  (not the paper's rule), ``"none"`` never.

A box prompt is turned into a positive click at its centre. Granularity is ignored: Gen2Seg has no granularity
input, so every requested level gets the same mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from granseg.config import Config
from granseg.errors import InputError
from granseg.predict.base import BasePredictor, Prediction
from granseg.predict.bilateral import joint_bilateral_filter

NEGATIVE_RULES = ("smoothed", "nearest")
MULTI_CLICK_GUIDES = ("image", "features")
COMPONENT_RULES = ("several", "always", "none")


@dataclass
class PromptConfig(Config):
    """The paper's prompting (first six fields) and our multi-click rules (see the module docstring). Their
    defaults were chosen on seen-class scenes of benchmarks/bench_gen2seg.py (iterative protocol, NoC@85);
    ``multi_click_sigma_colour`` is on the image's 0..255 scale with OpenCV's L1-over-channels distance."""

    sigma_fraction: float = 0.01
    filter_diameter: int = 9
    sigma_colour: float = 75.0
    sigma_space: float = 75.0
    threshold: float = 3.0 / 255.0
    use_filter: bool = True
    negative_rule: str = "smoothed"
    multi_click_guide: str = "image"
    multi_click_sigma_colour: float = 30.0
    connected_components: str = "several"

    def __post_init__(self) -> None:
        if self.connected_components not in COMPONENT_RULES:
            raise InputError(
                f"connected_components must be one of {COMPONENT_RULES}, got {self.connected_components!r}"
            )
        if self.negative_rule not in NEGATIVE_RULES:
            raise InputError(f"negative_rule must be one of {NEGATIVE_RULES}, got {self.negative_rule!r}")
        if self.multi_click_guide not in MULTI_CLICK_GUIDES:
            raise InputError(
                f"multi_click_guide must be one of {MULTI_CLICK_GUIDES}, got {self.multi_click_guide!r}"
            )
        if self.sigma_colour <= 0 or self.sigma_space <= 0 or self.multi_click_sigma_colour <= 0:
            raise InputError("PromptConfig: sigmas must be > 0")

    @classmethod
    def paper(cls, **overrides) -> PromptConfig:
        """The paper's rules for every click count (feature-image guide, no connectivity) with the per-pixel
        negative rule: the behaviour before the multi-click rules were added."""
        defaults = {
            "negative_rule": "nearest",
            "multi_click_guide": "features",
            "connected_components": "none",
        }
        return cls(**{**defaults, **overrides})


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


def soft_assignment(positive_distance: np.ndarray, negative_distance: np.ndarray) -> np.ndarray:
    """``d- / (d+ + d-)`` in [0, 1]: > 0.5 where a pixel's feature is closer to a positive than to every negative
    query (0.5 where both distances are 0)."""
    total = positive_distance + negative_distance
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, negative_distance / safe, 0.5)


def components_at(mask: np.ndarray, points: np.ndarray, reach: float | None = None) -> np.ndarray:
    """The 8-connected components of ``mask`` that contain one of ``points`` (``(N, 2)`` x, y pixels). A point
    that falls just outside the mask (its own pixel filtered away) keeps the component nearest to it when that is
    within ``reach`` pixels (default 2 % of the image diagonal, at least 3 px), so a click never erases the object
    it was put on."""
    import cv2

    count, components = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    height, width = mask.shape
    rows = np.clip(np.round(points[:, 1]).astype(int), 0, height - 1)
    cols = np.clip(np.round(points[:, 0]).astype(int), 0, width - 1)
    chosen = set(components[rows, cols].tolist())
    outside = components[rows, cols] == 0
    if count > 1 and outside.any():
        reach = max(3.0, 0.02 * float(np.hypot(height, width))) if reach is None else reach
        ys, xs = np.nonzero(mask)
        for row, col in zip(rows[outside], cols[outside]):
            distance = np.hypot(ys - row, xs - col)
            nearest = int(np.argmin(distance))
            if distance[nearest] <= reach:
                chosen.add(int(components[ys[nearest], xs[nearest]]))
    chosen.discard(0)
    return np.isin(components, sorted(chosen))


class Gen2SegPredictor(BasePredictor):
    """Prompt a :class:`granseg.models.gen2seg.Gen2SegModel` with points. See the module docstring."""

    def __init__(self, model, config: PromptConfig | None = None) -> None:
        super().__init__()
        self.model = model
        self.model_name = getattr(model, "name", "gen2seg")
        self.config = config or PromptConfig()
        self._features: np.ndarray | None = None  # H x W x 3 float64, 0..255
        self._image: np.ndarray | None = None  # H x W x 3 uint8 (the multi-click guide)

    @property
    def feature_image(self) -> np.ndarray:
        """``H x W x 3`` float in [0, 255] of the current image."""
        if self._features is None:
            raise RuntimeError("call set_image first")
        return self._features

    def _set_image(self, image: np.ndarray) -> None:
        self._features = self.model.feature_image(image).astype(np.float64) * 255.0
        self._image = np.asarray(image, dtype=np.uint8)

    def set_feature_image(self, features: np.ndarray, image: np.ndarray | None = None) -> None:
        """Use a precomputed ``H x W x 3`` feature image in [0, 1] (e.g. from a batch) instead of the model;
        ``image`` (``H x W x 3`` uint8, same size) is the multi-click guide (without it the features guide)."""
        self._features = np.asarray(features, dtype=np.float64) * 255.0
        self._image = None
        if image is not None:
            image = np.asarray(image)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise InputError(f"image must be H x W x 3 uint8, got {image.dtype} {image.shape}")
            if image.shape[:2] != self._features.shape[:2]:
                raise InputError(
                    f"image {image.shape[1]}x{image.shape[0]} and feature image "
                    f"{self._features.shape[1]}x{self._features.shape[0]} differ in size"
                )
            self._image = image
        self._image_size = (int(features.shape[0]), int(features.shape[1]))

    def _guide(self, several_clicks: bool) -> tuple[np.ndarray, float]:
        """The bilateral filter's guide and sigma colour for one click or several."""
        cfg = self.config
        if several_clicks and cfg.multi_click_guide == "image" and self._image is not None:
            return self._image, cfg.multi_click_sigma_colour
        return self.feature_image, cfg.sigma_colour

    def _filter(self, values: np.ndarray, guide: tuple[np.ndarray, float]) -> np.ndarray:
        cfg = self.config
        if not cfg.use_filter:
            return values
        return joint_bilateral_filter(
            values, guide[0], cfg.filter_diameter, guide[1], cfg.sigma_space
        ).astype(np.float64)

    def _distance(self, x: float, y: float) -> np.ndarray:
        features = self.feature_image
        sigma = max(self.config.sigma_fraction * max(features.shape[:2]), 0.5)
        return feature_distance(features, gaussian_query(features, x, y, sigma))

    def click_map(self, x: float, y: float, several_clicks: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """For one click: ``(filtered similarity H x W in [0, 1], raw feature distance H x W)``; the filter's
        guide is the one for a single click (the paper's) unless ``several_clicks``."""
        distance = self._distance(x, y)
        return self._filter(similarity_map(distance), self._guide(several_clicks)), distance

    def _predict(self, points, labels, box, granularity, mask_input) -> Prediction:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        labels = np.asarray(labels).reshape(-1)
        if box is not None:
            centre = np.array([[(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0]])
            points = np.concatenate([points, centre])
            labels = np.concatenate([labels, [1]])
        several = len(points) > 1
        guide = self._guide(several)
        positive_maps, positive_distances, negative_distances = [], [], []
        for (x, y), label in zip(points, labels):
            if label == 1:
                similarity, distance = self.click_map(x, y, several)
                positive_maps.append(similarity)
                positive_distances.append(distance)
            else:
                negative_distances.append(self._distance(x, y))
        combined = np.max(positive_maps, axis=0)
        mask = combined > self.config.threshold
        extra = {"similarity": combined.astype(np.float32)}
        if negative_distances:
            positive_distance = np.min(positive_distances, axis=0)
            negative_distance = np.min(negative_distances, axis=0)
            if self.config.negative_rule == "nearest":
                mask &= positive_distance < negative_distance
            else:
                assignment = self._filter(soft_assignment(positive_distance, negative_distance), guide)
                mask &= assignment > 0.5
                extra["assignment"] = assignment.astype(np.float32)
        rule = self.config.connected_components
        if rule == "always" or (rule == "several" and several):
            mask = components_at(mask, points[labels == 1])
        score = float(combined[mask].mean()) if mask.any() else 0.0
        count = len(granularity)
        return Prediction(
            masks=np.repeat(mask[None], count, axis=0),
            scores=np.full(count, score),
            granularity=np.asarray(granularity, dtype=np.float64),
            extra=extra,
        )
