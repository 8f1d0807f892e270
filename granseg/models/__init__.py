"""Model families (one file each) and the registry of named builders. Models build networks and load weights;
predictors for them are made in :mod:`granseg.predict.factory` (``load_predictor`` lives there)."""

from granseg.models.registry import list_models, load_model, register_model

__all__ = ["list_models", "load_model", "register_model"]
