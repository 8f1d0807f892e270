"""granseg: segmentation at any granularity.

Public API (heavy modules are imported on first use)::

    import granseg
    predictor = granseg.load_predictor("auto")       # hierarchy model when no neural checkpoint is cached
    predictor.set_image(granseg.load_image("photo.jpg"))
    out = predictor.predict(point_coords=[[120, 80]], granularity="all")   # one mask per g = 0.1 .. 1.0
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": "granseg.models.registry",
    "load_predictor": "granseg.predict.factory",
    "create_predictor": "granseg.predict.factory",
    "list_models": "granseg.models.registry",
    "register_model": "granseg.models.registry",
    "load_image": "granseg.io.images",
    "encode_rle": "granseg.io.masks",
    "decode_rle": "granseg.io.masks",
    "BasePredictor": "granseg.predict.base",
    "Prediction": "granseg.predict.base",
    "GRANULARITY_LEVELS": "granseg.predict.base",
    "AutomaticConfig": "granseg.predict.automatic",
    "AutomaticSegmenter": "granseg.predict.automatic",
    "UnSAMv2Predictor": "granseg.predict.unsamv2",
    "Gen2SegPredictor": "granseg.predict.gen2seg",
    "HierarchyModel": "granseg.predict.hierarchy",
    "HierarchyPredictor": "granseg.predict.hierarchy",
    "GransegError": "granseg.errors",
    "InputError": "granseg.errors",
}

# Public names that differ from the defining module's name.
_ALIASES = {"Predictor": "UnSAMv2Predictor"}
_LAZY["Predictor"] = "granseg.predict.unsamv2"

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'granseg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _ALIASES.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
