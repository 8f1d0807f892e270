"""Model families (one file each) and the registry of named builders."""

from granseg.models.registry import list_models, load_model, load_predictor, register_model

__all__ = ["list_models", "load_model", "load_predictor", "register_model"]
