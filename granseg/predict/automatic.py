"""Whole-image ("automatic") mask generation over any :class:`BasePredictor`, the UnSAMv2 recipe (docs/eval.md).

A regular grid of ``points_per_side x points_per_side`` single positive clicks (cell centres, in pixels of the
original image) is sent to the predictor at every requested granularity. Per g, masks are kept when

* their score (the predicted IoU for neural models) reaches ``pred_iou_thresh_low_g`` (0.65) for g < 0.5 and
  ``pred_iou_thresh_high_g`` (0.5) otherwise;
* their stability score reaches ``stability_thresh`` (0.7), when the predictor returns full-resolution
  ``logits`` in ``Prediction.extra`` (IoU of the masks at logit thresholds ``+offset`` and ``-offset``); masks of
  predictors without logits skip this test;

then identical masks are merged (highest score kept), box NMS at IoU ``box_nms_thresh`` (0.7) runs per g, and the
result is the union over g without cross-g NMS. Output: granseg mask records (COCO RLE ``segmentation``, ``area``,
``bbox``, ``score``, ``granularity``, ``point_coords``), sorted by decreasing score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from granseg.config import Config
from granseg.predict.base import GRANULARITY_LEVELS, BasePredictor


@dataclass
class AutomaticConfig(Config):
    points_per_side: int = 64
    granularities: tuple[float, ...] = GRANULARITY_LEVELS
    pred_iou_thresh_low_g: float = 0.65
    pred_iou_thresh_high_g: float = 0.5
    stability_thresh: float = 0.7
    stability_offset: float = 1.0
    box_nms_thresh: float = 0.7
    min_area: int = 1


def point_grid(height: int, width: int, per_side: int) -> np.ndarray:
    """``(per_side**2, 2)`` float64 (x, y) cell centres, row-major."""
    offsets = (np.arange(per_side) + 0.5) / per_side
    xs = np.minimum(offsets * width, width - 1)
    ys = np.minimum(offsets * height, height - 1)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def box_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by greedy NMS on ``(N, 4)`` xyxy boxes, highest score first (ties: lower index first)."""
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores)))
    boxes = np.asarray(boxes, dtype=np.float64)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    suppressed = np.zeros(len(boxes), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        x0 = np.maximum(boxes[i, 0], boxes[:, 0])
        y0 = np.maximum(boxes[i, 1], boxes[:, 1])
        x1 = np.minimum(boxes[i, 2], boxes[:, 2])
        y1 = np.minimum(boxes[i, 3], boxes[:, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        union = areas[i] + areas - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        suppressed |= overlap > threshold
    return np.asarray(keep, dtype=np.int64)


def stability_score(logits: np.ndarray, offset: float) -> float:
    high = np.count_nonzero(logits > offset)
    low = np.count_nonzero(logits > -offset)
    return 1.0 if low == 0 else high / low


class AutomaticSegmenter:
    """Grid-of-points automatic masks at every g (see the module docstring)."""

    def __init__(self, predictor: BasePredictor, config: AutomaticConfig | None = None) -> None:
        self.predictor = predictor
        self.config = config or AutomaticConfig()

    def generate(self, image: np.ndarray, quiet: bool = True) -> list[dict]:
        """Records for ``image`` (``H x W x 3`` uint8)."""
        from granseg.io.masks import masks_to_records
        from granseg.utils.progress import progress

        cfg = self.config
        self.predictor.set_image(image)
        height, width = self.predictor.image_size
        levels = np.asarray(cfg.granularities, dtype=np.float64)
        candidates: dict[float, dict[str, dict]] = {float(g): {} for g in levels}
        points = point_grid(height, width, cfg.points_per_side)
        for point in progress(points, desc="points", quiet=quiet):
            prediction = self.predictor.predict(point[None], [1], granularity=levels)
            logits = prediction.extra.get("logits")
            for k, g in enumerate(levels):
                mask = prediction.masks[k]
                area = int(np.count_nonzero(mask))
                if area < cfg.min_area:
                    continue
                score = float(prediction.scores[k])
                threshold = cfg.pred_iou_thresh_low_g if g < 0.5 else cfg.pred_iou_thresh_high_g
                if score < threshold:
                    continue
                if (
                    logits is not None
                    and stability_score(np.asarray(logits[k]), cfg.stability_offset) < cfg.stability_thresh
                ):
                    continue
                record = masks_to_records(mask[None], [score], [g], point[None])[0]
                key = record["segmentation"]["counts"]
                known = candidates[float(g)].get(key)
                if known is None or score > known["score"]:
                    candidates[float(g)][key] = record
        records: list[dict] = []
        for g in levels:
            found = list(candidates[float(g)].values())
            if not found:
                continue
            boxes = np.asarray(
                [
                    [r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2], r["bbox"][1] + r["bbox"][3]]
                    for r in found
                ]
            )
            keep = box_nms(boxes, np.asarray([r["score"] for r in found]), cfg.box_nms_thresh)
            records.extend(found[i] for i in keep)
        records.sort(key=lambda r: -r["score"])
        return records
