"""Predictors: the shared interface (base), UnSAMv2's embed-once predictor, whole-image and video."""

from granseg.predict.base import GRANULARITY_LEVELS, BasePredictor, Prediction, parse_granularity

__all__ = ["GRANULARITY_LEVELS", "BasePredictor", "Prediction", "parse_granularity"]
