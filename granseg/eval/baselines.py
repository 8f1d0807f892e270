"""The classical click-driven baseline of the evaluation; the predictor lives in :mod:`granseg.predict.grabcut`
(registered as ``grabcut-baseline``). Kept so that ``granseg.eval.baselines`` imports keep working."""

from granseg.predict.grabcut import (
    GrabCutBaselineConfig,
    GrabCutBaselineModel,
    GrabCutBaselinePredictor,
    build_grabcut_baseline,
)

__all__ = [
    "GrabCutBaselineConfig",
    "GrabCutBaselineModel",
    "GrabCutBaselinePredictor",
    "build_grabcut_baseline",
]
