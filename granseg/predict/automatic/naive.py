"""The per-point reference loop (what ``granseg auto`` did before the batched pipeline): one ``predict()`` call per
grid point at all levels, every mask at full resolution, filters applied mask by mask, one RLE per candidate.

Kept as the reference for the equivalence tests and the speed benchmark (benchmarks/bench_auto.py); the
stability filter uses the full-resolution logits (``predict(..., return_logits=True)``) of predictors that give
them. Same settings and output records as :class:`~granseg.predict.automatic.segmenter.AutomaticSegmenter` with
``stability_resolution="full"`` and no pruning, de-duplication or tree.
"""

from __future__ import annotations

import numpy as np

from granseg.predict.automatic.config import AutomaticConfig
from granseg.predict.automatic.filters import box_nms, point_grid
from granseg.predict.base import BasePredictor


def _stability(logits: np.ndarray, offset: float, threshold: float) -> float:
    high = np.count_nonzero(logits > threshold + offset)
    low = np.count_nonzero(logits > threshold - offset)
    return 1.0 if low == 0 else high / low


def naive_generate(
    predictor: BasePredictor,
    image: np.ndarray,
    config: AutomaticConfig | None = None,
    points: np.ndarray | None = None,
) -> list[dict]:
    """Records for ``image``; ``points`` (``(N, 2)`` x, y) replaces the grid (e.g. a fraction of it, for timing)."""
    from granseg.io.masks import masks_to_records

    cfg = config or AutomaticConfig()
    predictor.set_image(image)
    height, width = predictor.image_size
    levels = np.asarray(cfg.granularities, dtype=np.float64)
    candidates: dict[float, dict[str, dict]] = {float(g): {} for g in levels}
    grid = point_grid(height, width, cfg.points_per_side) if points is None else points
    with_logits = predictor.provides_logits
    for point in grid:
        options = {"return_logits": True} if with_logits else {}
        prediction = predictor.predict(point[None], [1], granularity=levels, **options)
        for k, g in enumerate(levels):
            mask = prediction.masks[k]
            area = int(np.count_nonzero(mask))
            score = float(prediction.scores[k])
            if area < max(1, cfg.min_area) or score < cfg.score_threshold(g):
                continue
            if (
                with_logits
                and _stability(prediction.logits[k], cfg.stability_offset, 0.0) < cfg.stability_thresh
            ):
                continue
            record = masks_to_records(mask[None], [score], [g], point[None])[0]
            known = candidates[float(g)].get(record["segmentation"]["counts"])
            if known is None or score > known["score"]:
                candidates[float(g)][record["segmentation"]["counts"]] = record
    records: list[dict] = []
    for g in levels:
        found = list(candidates[float(g)].values())
        if found:
            boxes = np.asarray([[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in (r["bbox"] for r in found)])
            keep = box_nms(boxes, np.asarray([r["score"] for r in found]), cfg.box_nms_thresh)
            records.extend(found[i] for i in keep)
    records.sort(key=lambda r: -r["score"])
    return records
