"""The predictor interface shared by every model (hierarchy, UnSAMv2, Gen2Seg, plain SAM-2).

Coordinate conventions: points are ``(x, y)`` in pixels of the original image (x to the right, y down, the
centre of the top-left pixel is (0.5, 0.5) in continuous terms but integer pixel indices are accepted as is);
boxes are ``(x0, y0, x1, y1)`` in the same pixels; masks are ``H x W`` bool at the original resolution.

A predictor embeds an image once (:meth:`BasePredictor.set_image`) and answers many prompts
(:meth:`BasePredictor.predict`). ``granularity`` is a float in [0.1, 1.0] (small = part, 1.0 = whole object),
a sequence of floats, or ``"all"`` for the ten levels 0.1, 0.2, ..., 1.0.
Subclasses implement ``_set_image`` and ``_predict``; this class validates and normalises the inputs.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from granseg.errors import InputError

GRANULARITY_MIN = 0.1
GRANULARITY_MAX = 1.0
GRANULARITY_LEVELS: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(1, 11))

Granularity = float | Sequence[float] | str


@dataclass
class Prediction:
    """Output of :meth:`BasePredictor.predict` for one prompt at K granularities.

    masks:        ``K x H x W`` bool, at the original image resolution.
    scores:       ``K`` float, the model's confidence (predicted IoU for neural models).
    granularity:  ``K`` float, the g each mask answers.
    low_res_logits: optional ``K x h x w`` float logits to feed back as a mask prompt (neural models).
    logits:       ``K x H x W`` float32 logits at the original resolution (``masks`` = logits > the model's mask
                  threshold, 0 for SAM-2 models); filled only when ``predict(..., return_logits=True)`` is asked of
                  a predictor with ``provides_logits`` (else None).
    """

    masks: np.ndarray
    scores: np.ndarray
    granularity: np.ndarray
    low_res_logits: np.ndarray | None = None
    logits: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def best(self) -> np.ndarray:
        """The highest-scoring mask, ``H x W`` bool."""
        return self.masks[int(np.argmax(self.scores))]


def parse_granularity(granularity: Granularity) -> np.ndarray:
    """Normalise a granularity argument (a float, a sequence, ``"all"`` or a string such as ``"0.2,0.8"``) to a
    float64 array of shape ``(K,)``; values must lie in [0.1, 1]."""
    if isinstance(granularity, str):
        if granularity.strip().lower() == "all":
            return np.asarray(GRANULARITY_LEVELS, dtype=np.float64)
        try:
            granularity = [float(part) for part in granularity.split(",")]
        except ValueError:
            raise InputError(
                f"granularity must be a number in [0.1, 1], a comma-separated list of them, or 'all', "
                f"got {granularity!r}"
            ) from None
    values = np.atleast_1d(np.asarray(granularity, dtype=np.float64))
    if values.ndim != 1 or values.size == 0:
        raise InputError("granularity must be a number, a non-empty list of numbers, or 'all'")
    bad = values[~np.isfinite(values) | (values < GRANULARITY_MIN - 1e-9) | (values > GRANULARITY_MAX + 1e-9)]
    if bad.size:
        raise InputError(f"granularity must lie in [0.1, 1.0], got {bad[0]:g}")
    return np.clip(values, GRANULARITY_MIN, GRANULARITY_MAX)


def validate_prompts(
    point_coords: Any, point_labels: Any, box: Any, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check prompts against an ``height x width`` image. Returns points ``(N, 2)`` float64 (x, y), labels
    ``(N,)`` int64 in {0, 1}, and box ``(4,)`` float64 or None. At least one point or a box is required."""
    if point_coords is None or len(np.atleast_1d(point_coords)) == 0:
        points = np.zeros((0, 2), dtype=np.float64)
    else:
        points = np.asarray(point_coords, dtype=np.float64).reshape(-1, 2)
    if point_labels is None:
        labels = np.ones(len(points), dtype=np.int64)
    else:
        labels = np.asarray(point_labels).reshape(-1).astype(np.int64)
    if len(labels) != len(points):
        raise InputError(f"{len(points)} points but {len(labels)} labels")
    if not np.isin(labels, (0, 1)).all():
        raise InputError("point labels must be 1 (positive) or 0 (negative)")
    for x, y in points:
        if not (np.isfinite(x) and np.isfinite(y)) or x < 0 or y < 0 or x > width - 1 or y > height - 1:
            raise InputError(f"point ({x:g}, {y:g}) is outside the {width}x{height} image")
    box_array = None
    if box is not None:
        box_array = np.asarray(box, dtype=np.float64).reshape(-1)
        if box_array.size != 4:
            raise InputError("a box is (x0, y0, x1, y1)")
        x0, y0, x1, y1 = box_array
        if not (x1 > x0 and y1 > y0):
            raise InputError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) must have x1 > x0 and y1 > y0")
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise InputError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is outside the {width}x{height} image")
    if len(points) == 0 and box_array is None:
        raise InputError("give at least one point or a box")
    if len(points) and not (labels == 1).any() and box_array is None:
        raise InputError("give at least one positive point (or a box)")
    return points, labels, box_array


class BasePredictor(abc.ABC):
    """Embed once, decode many. See the module docstring for conventions."""

    model_name: str = "unknown"
    #: ``predict(..., return_logits=True)`` fills ``Prediction.logits`` (subclasses that set this accept the
    #: ``return_logits`` keyword in ``_predict``).
    provides_logits: bool = False
    #: the predictor has ``decode_points(points (N, 2), granularity (N,))``: N single-click prompts in one call
    #: (used by whole-image generation, :mod:`granseg.predict.automatic`).
    batched_points: bool = False

    def __init__(self) -> None:
        self._image_size: tuple[int, int] | None = None  # (H, W) of the original image

    @property
    def is_image_set(self) -> bool:
        return self._image_size is not None

    @property
    def image_size(self) -> tuple[int, int]:
        if self._image_size is None:
            raise InputError("call set_image(image) before predict()")
        return self._image_size

    def set_image(self, image: np.ndarray) -> None:
        """Embed an ``H x W x 3`` uint8 RGB image (other layouts are converted, see ``io.to_rgb_uint8``)."""
        from granseg.io.images import to_rgb_uint8

        self._image_size = None  # a failed call must not leave the previous image answering
        image = to_rgb_uint8(image)
        self._set_image(image)
        self._image_size = (int(image.shape[0]), int(image.shape[1]))

    def reset_image(self) -> None:
        self._image_size = None

    def predict(
        self,
        point_coords: np.ndarray | Sequence[Sequence[float]] | None = None,
        point_labels: np.ndarray | Sequence[int] | None = None,
        box: np.ndarray | Sequence[float] | None = None,
        granularity: Granularity = 1.0,
        mask_input: np.ndarray | None = None,
        return_logits: bool = False,
    ) -> Prediction:
        """Segment the object or part indicated by the prompts at each requested granularity.

        point_coords: ``(N, 2)`` (x, y) pixels; point_labels: ``(N,)`` 1 = positive, 0 = negative (default all 1);
        box: ``(x0, y0, x1, y1)`` pixels; granularity: float, list, or "all";
        mask_input: optional ``(1 or K) x h x w`` low-res logits from a previous call (models that support it);
        return_logits: also return the full-resolution logits (``Prediction.logits``; an InputError for predictors
        without ``provides_logits``).
        Returns a :class:`Prediction` with one mask per granularity, in the order given.
        """
        if return_logits and not self.provides_logits:
            raise InputError(f"{type(self).__name__} gives binary masks, no logits")
        height, width = self.image_size
        points, labels, box_array = validate_prompts(point_coords, point_labels, box, height, width)
        levels = parse_granularity(granularity)
        options = {"return_logits": True} if return_logits else {}
        prediction = self._predict(points, labels, box_array, levels, mask_input, **options)
        if return_logits and (
            prediction.logits is None or prediction.logits.shape != (len(levels), height, width)
        ):
            raise RuntimeError(
                f"{type(self).__name__} did not return {len(levels)} x {height} x {width} logits"
            )
        if prediction.masks.shape != (len(levels), height, width):
            raise RuntimeError(
                f"{type(self).__name__} returned masks of shape {prediction.masks.shape}, "
                f"expected {(len(levels), height, width)}"
            )
        return prediction

    @abc.abstractmethod
    def _set_image(self, image: np.ndarray) -> None:
        """Embed a validated ``H x W x 3`` uint8 image."""

    @abc.abstractmethod
    def _predict(
        self,
        points: np.ndarray,
        labels: np.ndarray,
        box: np.ndarray | None,
        granularity: np.ndarray,
        mask_input: np.ndarray | None,
    ) -> Prediction:
        """Validated inputs: points ``(N, 2)`` float64, labels ``(N,)`` int64, box ``(4,)`` or None,
        granularity ``(K,)`` float64 in [0.1, 1]. Must return K masks of the original image size."""
