"""Typed, JSON-serialisable configuration dataclasses (no Hydra).

Every config in the package derives from :class:`Config`. ``to_json``/``from_json`` round-trip exactly.
Loading (``from_dict`` / ``from_json``) checks every value against its field's annotation and refuses unknown
keys, so that a typo or a wrong type in a config file is an error naming the key, the expected type and the value
received (``{"refine": "no"}`` must not load as a truthy string). Supported annotations: ``bool``, ``int``,
``float`` (an integer is accepted and stored as a float), ``str``, ``Path``, ``None`` / ``Optional[X]`` /
``X | Y``, ``Literal[...]``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``, ``dict[str, X]``, ``Any`` and nested
dataclasses (nested :class:`Config` subclasses are checked the same way). Value checks beyond types live in one
place per config: its ``__post_init__``, or a ``validate()`` method, which the base ``__post_init__`` calls.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from granseg.errors import InputError

C = TypeVar("C", bound="Config")


class _Mismatch(Exception):
    """``value`` at ``path`` does not fit ``annotation`` (reported as one InputError by :func:`convert_value`)."""

    def __init__(self, path: str, annotation: Any, value: Any) -> None:
        super().__init__(path)
        self.path, self.annotation, self.value = path, annotation, value


def type_name(annotation: Any) -> str:
    """A readable name of a type annotation: ``int``, ``float | None``, ``tuple[float, ...]``."""
    if annotation is type(None):
        return "None"
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _convert_sequence(value: Any, annotation: Any, path: str) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if not isinstance(value, list | tuple):
        raise _Mismatch(path, annotation, value)
    if origin is list:
        return [_convert(v, args[0] if args else Any, f"{path}[{i}]") for i, v in enumerate(value)]
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        item = args[0] if args else Any
        return tuple(_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value))
    if len(args) != len(value):
        raise _Mismatch(path, annotation, value)
    return tuple(_convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))


def _convert_union(value: Any, annotation: Any, path: str) -> Any:
    args = typing.get_args(annotation)
    if value is None and type(None) in args:
        return None
    # exact matches first, so that 3 in an ``int | float`` field stays an int and True never becomes 1.0
    ordered = sorted((a for a in args if a is not type(None)), key=lambda a: a is not type(value))
    for arg in ordered:
        try:
            return _convert(value, arg, path)
        except _Mismatch:
            continue
    raise _Mismatch(path, annotation, value)


def convert_value(value: Any, annotation: Any, path: str = "value") -> Any:
    """``value`` (parsed JSON) checked against ``annotation`` and rebuilt where JSON loses the type (tuples,
    nested dataclasses, ints in float fields). Raises :class:`InputError` naming ``path`` on a mismatch."""
    try:
        return _convert(value, annotation, path)
    except _Mismatch as bad:
        raise InputError(
            f"{bad.path}: expected {type_name(bad.annotation)}, got {bad.value!r} ({type(bad.value).__name__})"
        ) from None


def _convert(value: Any, annotation: Any, path: str) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or annotation is object:
        return value
    if origin in (typing.Union, types.UnionType):
        return _convert_union(value, annotation, path)
    if origin is typing.Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _Mismatch(path, annotation, value)
    if origin in (tuple, list):
        return _convert_sequence(value, annotation, path)
    if origin is dict or annotation is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _Mismatch(path, annotation, value)
        item = args[1] if len(args) == 2 else Any
        return {k: _convert(v, item, f"{path}.{k}") for k, v in value.items()}
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise _Mismatch(path, annotation, value)
        if issubclass(annotation, Config):
            return annotation._from_dict(value, path)
        return annotation(**value)
    if _scalar_fits(value, annotation):
        return float(value) if annotation is float else Path(value) if annotation is Path else value
    raise _Mismatch(path, annotation, value)


def _scalar_fits(value: Any, annotation: Any) -> bool:
    if annotation is type(None) or annotation is None:
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return _is_int(value)
    if annotation is float:
        return _is_int(value) or isinstance(value, float)
    if annotation is Path:
        return isinstance(value, str | Path)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    raise TypeError(f"config annotation {annotation!r} is not supported by Config.from_dict")


@dataclasses.dataclass
class Config:
    """Base class: ``dataclasses.asdict`` plus strict, type-checked JSON load/save."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self):
        """Value checks beyond types (ranges, allowed strings); InputError on a bad value. Called on
        construction by the base ``__post_init__`` (a subclass with its own ``__post_init__`` checks there)."""
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            from granseg.io.files import atomic_write_text

            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Build from parsed JSON, checking each value against its field's annotation (see the module
        docstring). InputError names the first bad key, its expected type and the value received."""
        return cls._from_dict(data, cls.__name__)

    @classmethod
    def _from_dict(cls: type[C], data: Any, path: str) -> C:
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a JSON object ({cls.__name__}), got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(f"{path}: unknown key(s) {unknown}; known: {sorted(names)}")
        kwargs = {k: convert_value(v, hints.get(k, Any), f"{path}.{k}") for k, v in data.items()}
        return cls(**kwargs)

    @classmethod
    def from_json(cls: type[C], path_or_text: str | Path) -> C:
        return cls.from_dict(read_json(path_or_text, cls.__name__))


def read_json(path_or_text: str | Path, what: str = "config") -> Any:
    """Parse JSON given as text (starting with ``{``) or as a file path; InputError on a missing file or bad JSON."""
    text = str(path_or_text)
    if not text.lstrip().startswith("{"):
        path = Path(path_or_text)
        if not path.is_file():
            raise InputError(f"config file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{what}: {path} is not a JSON text file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what}: invalid JSON ({exc})") from exc
