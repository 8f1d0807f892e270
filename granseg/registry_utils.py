"""The one ``"module:attr"`` resolver used by every name registry (models, training tasks, datasets, predictors).

Registries store targets as strings so that listing names costs no heavy imports; :func:`resolve_target` imports
the module only when the target is needed. :func:`warn_duplicate` is the shared warning for a name registered twice.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def resolve_target(target: str) -> Any:
    """``"package.module:attr"`` (``attr`` may be dotted, e.g. ``Class.method``) -> the object.

    Raises ``ValueError`` for a malformed target, ``ImportError`` / ``AttributeError`` (naming the target) when
    the module or attribute does not exist."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"registry target {target!r} is not of the form 'package.module:attr'")
    value: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError as exc:
            raise AttributeError(
                f"registry target {target!r}: {module_name} has no attribute {attr!r}"
            ) from exc
    return value


def warn_duplicate(kind: str, name: str, old: str, new: str) -> None:
    """Warn that ``name`` was registered again (``old`` target replaced by ``new``)."""
    warnings.warn(f"{kind} {name!r} registered twice: {old} is replaced by {new}", UserWarning, stacklevel=3)
