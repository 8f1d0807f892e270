"""Classical click-driven baseline: OpenCV GrabCut seeded by the clicks (docs/eval.md).

Seeds, on the image resized so that its long side is ``long_side`` px (default 400; smaller images are kept):

* everything starts as "probably background";
* a "probably foreground" disk of radius ``first_click_radius`` around the first positive click;
* every positive click is a small "definite foreground" disk, every negative click a small "definite
  background" disk (radius ``click_radius``);
* ``cv2.grabCut(..., iterations=5, mode=GC_INIT_WITH_MASK)``, foreground = definite or probable foreground,
  upsampled to the original size (nearest).

Radii are fractions of the resized long side. The granularity is ignored (one answer for every g). OpenCV's
GrabCut seeds its k-means from OpenCV's global RNG; it is reset before each call so results are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from granseg.config import Config
from granseg.predict.base import BasePredictor, Prediction


@dataclass
class GrabCutBaselineConfig(Config):
    long_side: int = 400
    iterations: int = 5
    click_radius: float = 0.0125  # 5 px at 400 px
    first_click_radius: float = 0.2  # 80 px at 400 px
    seed: int = 0


class GrabCutBaselinePredictor(BasePredictor):
    """:class:`BasePredictor` over ``cv2.grabCut``; ``granularity`` is ignored, ``mask_input`` too."""

    model_name = "grabcut-baseline"

    def __init__(self, config: GrabCutBaselineConfig | None = None) -> None:
        super().__init__()
        self.config = config or GrabCutBaselineConfig()
        self._small: np.ndarray | None = None
        self._scale = 1.0

    def _set_image(self, image: np.ndarray) -> None:
        import cv2

        height, width = image.shape[:2]
        self._scale = min(1.0, self.config.long_side / max(height, width))
        if self._scale < 1.0:
            size = (max(1, round(width * self._scale)), max(1, round(height * self._scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        else:
            small = image
        self._small = np.ascontiguousarray(small[..., ::-1])  # OpenCV wants BGR

    def segment(self, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``H x W`` bool foreground at the original size for ``(N, 2)`` (x, y) clicks and ``(N,)`` labels."""
        import cv2

        assert self._small is not None
        small_h, small_w = self._small.shape[:2]
        long_side = max(small_h, small_w)
        seeds = np.full((small_h, small_w), cv2.GC_PR_BGD, dtype=np.uint8)
        scaled = [(int(round(x * self._scale)), int(round(y * self._scale))) for x, y in points]
        scaled = [(min(x, small_w - 1), min(y, small_h - 1)) for x, y in scaled]
        positives = [p for p, label in zip(scaled, labels) if label == 1]
        if positives:
            radius = max(1, int(round(self.config.first_click_radius * long_side)))
            cv2.circle(seeds, positives[0], radius, int(cv2.GC_PR_FGD), thickness=-1)
        small_radius = max(1, int(round(self.config.click_radius * long_side)))
        for point, label in zip(scaled, labels):
            value = cv2.GC_FGD if label == 1 else cv2.GC_BGD
            cv2.circle(seeds, point, small_radius, int(value), thickness=-1)
        has_fg = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).any()
        has_bg = np.isin(seeds, (cv2.GC_BGD, cv2.GC_PR_BGD)).any()
        if has_fg and has_bg:
            cv2.setRNGSeed(self.config.seed)
            bgd_model = np.zeros((1, 65), np.float64)
            fgd_model = np.zeros((1, 65), np.float64)
            cv2.grabCut(
                self._small, seeds, None, bgd_model, fgd_model, self.config.iterations, cv2.GC_INIT_WITH_MASK
            )
        foreground = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
        height, width = self.image_size
        if foreground.shape != (height, width):
            foreground = cv2.resize(foreground, (width, height), interpolation=cv2.INTER_NEAREST)
        return foreground.astype(bool)

    def _predict(self, points, labels, box, granularity, mask_input) -> Prediction:
        mask = self.segment(points, labels)
        k = len(granularity)
        return Prediction(
            masks=np.repeat(mask[None], k, axis=0),
            scores=np.ones(k, dtype=np.float64),
            granularity=np.asarray(granularity, dtype=np.float64),
        )


class GrabCutBaselineModel:
    """Registry model object: ``create_predictor()`` gives a :class:`GrabCutBaselinePredictor`."""

    name = "grabcut-baseline"

    def __init__(self, config: GrabCutBaselineConfig | None = None) -> None:
        self.config = config or GrabCutBaselineConfig()

    def create_predictor(self) -> GrabCutBaselinePredictor:
        return GrabCutBaselinePredictor(self.config)


def build_grabcut_baseline(device: str = "cpu", **overrides) -> GrabCutBaselineModel:
    """Registry builder (``device`` is irrelevant: OpenCV runs on the CPU)."""
    return GrabCutBaselineModel(GrabCutBaselineConfig.from_dict(overrides) if overrides else None)
