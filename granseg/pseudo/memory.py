"""Per-worker memory budget of the pseudo-label engine.

The engine works at a bounded size (``work_long_side``) and keeps its masks there; full-resolution pixels exist
only while the image is decoded and, one mask at a time, while a mask is upsampled and RLE-encoded at the end. The
peak of one image is therefore about::

    decode:  DECODE_BYTES_PER_PIXEL x H x W        (the decoded RGB image and its copies)
    work:    WORK_BYTES_PER_PIXEL x h x w           (features, superpixels, the K masks at the working size)
    encode:  ENCODE_BYTES_PER_PIXEL x H x W         (one upsampled mask, its Fortran copy, its RLE)

above the worker's baseline (Python + numpy + OpenCV). The constants are deliberate upper bounds: with them the
estimate is about twice the peaks measured by ``benchmarks/bench_pseudo_memory.py`` (12 MP: 973 MB estimated,
442 MB measured; 48 MP: 1420 vs 576), so that images richer in masks than the benchmark's still fit. :func:`plan_memory` fits an image into ``memory_budget_mb``: first by
decoding it directly at a reduced size (JPEG DCT scaling), then by lowering the working size down to
``MIN_WORK_LONG_SIDE``; an image that still does not fit is refused (recorded as a failure, never a crash).
"""

from __future__ import annotations

import dataclasses

from granseg.errors import InputError

BASELINE_MB = 150  # the worker before any image (interpreter, numpy, OpenCV, scikit-image; 45 MB measured)
DECODE_BYTES_PER_PIXEL = 9  # RGB uint8 decoded by PIL, its numpy copy, the oriented copy
WORK_BYTES_PER_PIXEL = 900  # ~460 measured (~130 masks at 1024 x 768); the K masks and the conquer crops
ENCODE_BYTES_PER_PIXEL = 4  # one upsampled bool mask, its uint8 Fortran copy, cv2's buffers
MIN_WORK_LONG_SIDE = 256


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """How one ``height x width`` image is processed: decoded at ``decode_long_side`` (None = full size),
    worked on at ``work_long_side``; ``estimate_mb`` is the expected peak of the worker."""

    work_long_side: int
    decode_long_side: int | None
    estimate_mb: float


def estimate_mb(height: int, width: int, work_long_side: int, decode_long_side: int | None) -> float:
    """Expected worker peak (MB) for an ``height x width`` image; see the module docstring."""
    long_side = max(height, width)
    work_scale = min(1.0, work_long_side / long_side)
    work_pixels = height * width * work_scale**2
    if decode_long_side is None or decode_long_side >= long_side:
        decoded_pixels = height * width
    else:  # decoded at a reduced size (up to 2x the requested long side: DCT scaling is by powers of two)
        decoded_pixels = height * width * min(1.0, 2.0 * decode_long_side / long_side) ** 2
    total = (
        DECODE_BYTES_PER_PIXEL * decoded_pixels
        + WORK_BYTES_PER_PIXEL * work_pixels
        + ENCODE_BYTES_PER_PIXEL * height * width
    )
    return BASELINE_MB + total / 2**20


def plan_memory(height: int, width: int, work_long_side: int, budget_mb: float) -> MemoryPlan:
    """The largest processing of an ``height x width`` image that fits ``budget_mb`` (0 = no budget).

    Raises :class:`InputError` (the image is recorded as failed) when even the smallest working size does not fit.
    """
    full = MemoryPlan(work_long_side, None, estimate_mb(height, width, work_long_side, None))
    if budget_mb <= 0 or full.estimate_mb <= budget_mb:
        return full
    side = min(work_long_side, max(height, width))
    while True:
        plan = MemoryPlan(side, side, estimate_mb(height, width, side, side))
        if plan.estimate_mb <= budget_mb:
            return plan
        if side <= MIN_WORK_LONG_SIDE:
            raise InputError(
                f"a {width}x{height} image needs about {plan.estimate_mb:.0f} MB even at a working size of "
                f"{side} px, above the worker memory budget of {budget_mb:.0f} MB (raise memory_budget_mb)"
            )
        side = max(MIN_WORK_LONG_SIDE, int(side * 0.8))
