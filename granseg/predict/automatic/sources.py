"""Where whole-image candidate masks come from: a predictor prompted with (point, g) pairs.

A source answers :meth:`decode` for ``N`` pairs at once: ``points (N, 2)`` (x, y) pixels of the original image and
``granularity (N,)``. Two kinds:

* :class:`BatchedSamSource` (UnSAMv2 and plain SAM-2): every pair is one prompt of one decoder call on the image
  embedded once (the fast decoder's per-image state is shared by all of them); it returns the decoder's
  low-resolution logits, and only the masks that survive the filters are upsampled (:meth:`full_logits`).
* :class:`PointSource` (any :class:`~granseg.predict.base.BasePredictor`: ``hierarchy``, baselines, ...): one
  ``predict()`` call per point at all of that point's levels, full-resolution masks (and logits when the predictor
  provides them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from granseg.predict.base import BasePredictor

FULL_RES_BUDGET_BYTES = 2**26  # full-resolution masks held per PointSource call batch (64 MB)
MAX_PROMPTS_PER_CALL = 64  # (point, g) prompts per batched decoder call (~256 MB of image tokens at 1024 px)


@dataclass
class Decoded:
    """Candidates for ``N`` (point, g) pairs.

    scores: ``(N,)`` float (the predicted IoU for neural models).
    logits: ``(N, h, w)`` float32 or None; low resolution when ``low_res`` (see :meth:`BatchedSamSource.content`
            and :meth:`BatchedSamSource.full_logits`), else ``(N, H, W)`` at the original size.
    masks:  ``(N, H, W)`` bool numpy array at the original size, for sources without logits (else None).
    """

    scores: torch.Tensor
    logits: torch.Tensor | None
    masks: np.ndarray | None
    low_res: bool


class _PredictorSource:
    """What every source shares: the wrapped predictor holds the image."""

    def __init__(self, predictor: BasePredictor, mask_threshold: float) -> None:
        self.predictor = predictor
        self.mask_threshold = mask_threshold

    @property
    def image_size(self) -> tuple[int, int]:
        return self.predictor.image_size

    def set_image(self, image: np.ndarray) -> None:
        self.predictor.set_image(image)


class PointSource(_PredictorSource):
    """One ``predictor.predict`` call per point (all of the point's levels in one call)."""

    low_res = False

    def __init__(self, predictor: BasePredictor) -> None:
        super().__init__(predictor, 0.0)

    def max_pairs(self, levels: int) -> int:
        """Pairs per :meth:`decode` call that keep the full-resolution masks under the memory budget."""
        height, width = self.image_size
        return max(levels, FULL_RES_BUDGET_BYTES // max(1, height * width * 5) // levels * levels)

    def decode(self, points: np.ndarray, granularity: np.ndarray) -> Decoded:
        """Pairs sharing a point are answered by one ``predict`` call (in first-seen order)."""
        with_logits = self.predictor.provides_logits
        groups: dict[tuple, list[int]] = {}
        for index, key in enumerate(map(tuple, np.asarray(points, np.float64))):
            groups.setdefault(key, []).append(index)
        options = {"return_logits": True} if with_logits else {}
        order, scores, masks, logits = [], [], [], []
        for key, indices in groups.items():
            prediction = self.predictor.predict(
                np.asarray([key]), [1], granularity=granularity[indices], **options
            )
            order.extend(indices)
            scores.append(np.asarray(prediction.scores, dtype=np.float64))
            masks.append(np.asarray(prediction.masks, dtype=bool))
            if with_logits:
                logits.append(np.asarray(prediction.logits, dtype=np.float32))
        inverse = np.argsort(np.asarray(order))  # back to the order of the pairs
        score_array = torch.from_numpy(np.concatenate(scores)[inverse])
        if with_logits:
            return Decoded(score_array, torch.from_numpy(np.concatenate(logits)[inverse]), None, False)
        return Decoded(score_array, None, np.concatenate(masks)[inverse], False)


class BatchedSamSource(_PredictorSource):
    """All (point, g) pairs of a batch as prompts of one decoder call (UnSAMv2 / plain SAM-2 predictors)."""

    low_res = True

    def __init__(self, predictor) -> None:
        super().__init__(predictor, float(predictor.model.config.mask_threshold))

    def max_pairs(self, levels: int) -> int:
        """Prompts per decoder call: the fast decoder keeps every prompt's image tokens (``h w x C`` floats, 4 MB
        at 1024 px) until the masks are projected, so a call is capped at :data:`MAX_PROMPTS_PER_CALL`."""
        return max(levels, MAX_PROMPTS_PER_CALL)

    def decode(self, points: np.ndarray, granularity: np.ndarray) -> Decoded:
        """Low-res logits ``(N, 4h, 4w)`` (the whole padded model frame) and scores ``(N,)``."""
        low_res, scores = self.predictor.decode_points(points, granularity)
        return Decoded(scores, low_res.float(), None, True)

    def content(self, logits: torch.Tensor) -> torch.Tensor:
        """The part of ``(N, 4h, 4w)`` low-res logits that covers the image (the padding cropped away)."""
        size = self.predictor.input_size
        content_h, content_w = self.predictor.content_shape
        low_h, low_w = logits.shape[-2:]
        return logits[..., : -(-content_h * low_h // size), : -(-content_w * low_w // size)]

    def full_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """``(n, 4h, 4w)`` low-res logits -> ``(n, H, W)`` logits at the original size (as ``predict`` does)."""
        return self.predictor.upsample_to_image(logits)


def grid_source(predictor: BasePredictor, batched: bool = True):
    """The source for ``predictor``: colour clusters for Gen2Seg (no point prompts), batched decoding when the
    predictor supports it and ``batched``, else one ``predict`` per point."""
    from granseg.predict.automatic.gen2seg import ColourClusterSource
    from granseg.predict.gen2seg import Gen2SegPredictor

    if isinstance(predictor, Gen2SegPredictor):
        return ColourClusterSource(predictor)
    if batched and predictor.batched_points:
        return BatchedSamSource(predictor)
    return PointSource(predictor)
