"""Type check of a parsed JSON config against a :class:`granseg.config.Config` dataclass *before* it is built, so
that a wrong type fails at start with the dotted name of the key (``data.sources[0].num_scenes``), not deep inside
a ``__post_init__`` or in the middle of a run."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from granseg.errors import InputError


def _json_matches(value: Any, annotation: Any, name: str) -> bool:
    """Does JSON ``value`` fit ``annotation`` (tuples as lists, dataclasses as objects, ints for floats)? Nested
    dataclass objects are checked recursively (raising with their own key names)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_json_matches(value, a, name) for a in args if not _is_dataclass_type(a)) or any(
            isinstance(value, dict) and check_json(value, a, name + ".") is None
            for a in args
            if _is_dataclass_type(a)
        )
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if _is_dataclass_type(annotation):
        if not isinstance(value, dict):
            return False
        check_json(value, annotation, name + ".")
        return True
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return len(args) == len(value) and all(
                _json_matches(v, a, f"{name}[{i}]") for i, (v, a) in enumerate(zip(value, args))
            )
        return all(_json_matches(v, args[0], f"{name}[{i}]") for i, v in enumerate(value)) if args else True
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _is_dataclass_type(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def check_json(data: dict, cls: type, prefix: str = "") -> None:
    """Raise :class:`InputError` naming the first unknown key or the first key whose JSON value does not fit the
    field's type in dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    for key, value in data.items():
        if key not in fields:
            raise InputError(f"unknown key {prefix + key!r} in the config; known: {sorted(fields)}")
        annotation = hints.get(key, Any)
        if not _json_matches(value, annotation, prefix + key):
            raise InputError(f"config key {prefix + key!r}: {value!r} is not of type {annotation}")
