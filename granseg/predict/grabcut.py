"""Classical click-driven predictor: OpenCV GrabCut seeded by the clicks and an optional box.

Seeds, on the image resized so that its long side is ``long_side`` px (default 400; smaller images are kept):

* everything starts as "probably background";
* a "probably foreground" disk of radius ``first_click_radius`` around the first positive click;
* every positive click is a small "definite foreground" disk, every negative click a small "definite
  background" disk (radius ``click_radius``);
* with a box: outside the box is "definite background", inside "probably foreground" (OpenCV's rectangle
  initialisation), then the clicks as above; the answer is clipped to the box;
* ``cv2.grabCut(..., mode=GC_INIT_WITH_MASK)`` then ``GC_EVAL``, one iteration per call, ``iterations`` in all
  or fewer once ``max_seconds`` have passed (the time is bounded by one iteration past the limit); foreground =
  definite or probable foreground, upsampled to the original size (nearest).

Degenerate seeds are not handed to OpenCV: when the foreground or the background seeds hold fewer than
``MIN_DISTINCT_COLORS`` distinct colours (a flat image, a click in a flat corner), OpenCV's k-means++ cannot
place its 5 centres and ``grabCut`` never returns; the seeded foreground is the answer then.

Radii are fractions of the resized long side. The granularity is ignored (one answer for every g). OpenCV's
GrabCut seeds its k-means from OpenCV's global RNG; it is reset before each call so results are deterministic.
Registered as ``grabcut-baseline`` (the classical baseline of the evaluation, docs/eval.md).
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
    max_seconds: float = 10.0  # no further iteration starts after this long


MIN_DISTINCT_COLORS = 10  # OpenCV's GMMs have 5 components; k-means++ needs more distinct samples than that


class GrabCutBaselinePredictor(BasePredictor):
    """:class:`BasePredictor` over ``cv2.grabCut``; ``granularity`` is ignored, ``mask_input`` too; the box is
    used."""

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

    def segment(self, points: np.ndarray, labels: np.ndarray, box: np.ndarray | None = None) -> np.ndarray:
        """``H x W`` bool foreground at the original size for ``(N, 2)`` (x, y) clicks, ``(N,)`` labels and an
        optional ``(4,)`` box (x0, y0, x1, y1), all in pixels of the original image."""
        import cv2

        assert self._small is not None
        seeds, clip = self._seeds(points, labels, box)
        if _has_enough_colors(self._small, seeds):
            self._grabcut(seeds)
        foreground = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
        if clip is not None:
            foreground &= clip
        height, width = self.image_size
        if foreground.shape != (height, width):
            foreground = cv2.resize(foreground, (width, height), interpolation=cv2.INTER_NEAREST)
        return foreground.astype(bool)

    def _seeds(self, points, labels, box) -> tuple[np.ndarray, np.ndarray | None]:
        """GrabCut's ``h x w`` uint8 seed map at the working size, and the box as a 0/1 map (or None)."""
        import cv2

        small_h, small_w = self._small.shape[:2]
        long_side = max(small_h, small_w)
        seeds = np.full((small_h, small_w), cv2.GC_PR_BGD, dtype=np.uint8)
        clip = None
        if box is not None:
            x0, y0, x1, y1 = (float(v) * self._scale for v in box)
            c0, r0 = min(int(np.floor(x0)), small_w - 1), min(int(np.floor(y0)), small_h - 1)
            c1, r1 = max(int(np.ceil(x1)), c0 + 1), max(int(np.ceil(y1)), r0 + 1)
            clip = np.zeros((small_h, small_w), dtype=np.uint8)
            clip[r0:r1, c0:c1] = 1
            seeds[:] = cv2.GC_BGD
            seeds[r0:r1, c0:c1] = cv2.GC_PR_FGD
        scaled = [(int(round(x * self._scale)), int(round(y * self._scale))) for x, y in points]
        scaled = [(min(x, small_w - 1), min(y, small_h - 1)) for x, y in scaled]
        positives = [p for p, label in zip(scaled, labels) if label == 1]
        if positives and box is None:
            radius = max(1, int(round(self.config.first_click_radius * long_side)))
            cv2.circle(seeds, positives[0], radius, int(cv2.GC_PR_FGD), thickness=-1)
        small_radius = max(1, int(round(self.config.click_radius * long_side)))
        for point, label in zip(scaled, labels):
            value = cv2.GC_FGD if label == 1 else cv2.GC_BGD
            cv2.circle(seeds, point, small_radius, int(value), thickness=-1)
        return seeds, clip

    def _grabcut(self, seeds: np.ndarray) -> None:
        """Refine ``seeds`` in place: one GrabCut iteration per call until ``iterations`` or ``max_seconds``."""
        import time

        import cv2

        cv2.setRNGSeed(self.config.seed)
        bgd_model = np.zeros((1, 65), np.float64)
        fgd_model = np.zeros((1, 65), np.float64)
        start = time.monotonic()
        for iteration in range(self.config.iterations):
            mode = cv2.GC_INIT_WITH_MASK if iteration == 0 else cv2.GC_EVAL
            cv2.grabCut(self._small, seeds, None, bgd_model, fgd_model, 1, mode)
            if time.monotonic() - start > self.config.max_seconds:
                break

    def _predict(self, points, labels, box, granularity, mask_input) -> Prediction:
        mask = self.segment(points, labels, box)
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


def _has_enough_colors(image: np.ndarray, seeds: np.ndarray) -> bool:
    """Both the foreground and the background seeds hold at least ``MIN_DISTINCT_COLORS`` distinct colours."""
    import cv2

    packed = image.astype(np.int32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.int32)
    for values in ((cv2.GC_FGD, cv2.GC_PR_FGD), (cv2.GC_BGD, cv2.GC_PR_BGD)):
        region = packed[np.isin(seeds, values)]
        if len(np.unique(region[: 1 << 20])) < MIN_DISTINCT_COLORS:
            return False
    return True
