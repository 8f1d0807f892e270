"""Predictors for models: ``create_predictor(model, **options)`` and ``load_predictor(name_or_path, ...)``.

Models (:mod:`granseg.models`) build networks and load weights; the predictor that wraps a model is chosen here, by
the model's class (:data:`PREDICTORS`, ``"module:attr"`` pairs resolved on use, so nothing heavy is imported until
a predictor is made). Models of other families that still carry a ``create_predictor()`` method (the weight-free
hierarchy and the GrabCut baseline) are asked for theirs.
"""

from __future__ import annotations

import sys
from typing import Any

from granseg.errors import InputError
from granseg.models.registry import load_model
from granseg.registry_utils import resolve_target

# model class ("module:Class") -> predictor class ("module:Class"); the first isinstance match wins.
PREDICTORS: list[tuple[str, str]] = [
    ("granseg.models.unsamv2:UnSAMv2Model", "granseg.predict.unsamv2:UnSAMv2Predictor"),
    ("granseg.models.gen2seg:Gen2SegModel", "granseg.predict.gen2seg:Gen2SegPredictor"),
]


def predictor_class(model: Any):
    """The predictor class registered for ``model``'s class, or None."""
    for model_target, predictor_target in PREDICTORS:
        module_name = model_target.partition(":")[0]
        # only a model whose module is loaded can be an instance of its class: skip the import otherwise
        if module_name in sys.modules and isinstance(model, resolve_target(model_target)):
            return resolve_target(predictor_target)
    return None


def create_predictor(model: Any, **options: Any):
    """The predictor (a :class:`~granseg.predict.base.BasePredictor`) for ``model``; ``options`` go to its
    constructor (e.g. ``cache_dir=``, ``decoder=``, ``decoder_dtype=`` for SAM-2 / UnSAMv2; ``config=`` for
    Gen2Seg)."""
    cls = predictor_class(model)
    if cls is not None:
        return cls(model, **options)
    if hasattr(model, "create_predictor"):
        return model.create_predictor(**options)
    raise InputError(f"no predictor for model {getattr(model, 'name', type(model).__name__)!r}")


def predictor_options(model: Any) -> frozenset[str]:
    """The keyword options the predictor of ``model`` takes, as its class declares them (``options``); empty for
    predictors that take none."""
    cls = predictor_class(model)
    return frozenset(getattr(cls, "options", ())) if cls is not None else frozenset()


def load_predictor(name_or_path: str = "auto", device: str = "auto", **overrides: Any):
    """``create_predictor(load_model(name_or_path, device, **overrides))``."""
    return create_predictor(load_model(name_or_path, device=device, **overrides))
