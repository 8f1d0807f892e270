"""Typed, JSON-serialisable configuration dataclasses (no Hydra).

Every config in the package derives from :class:`Config`. ``to_json``/``from_json`` round-trip exactly;
unknown keys are an error (a typo in a config file must not be silently ignored); nested dataclass fields
and tuples are rebuilt from JSON lists/objects.
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


def _convert(value: Any, annotation: Any) -> Any:
    """Rebuild ``value`` (parsed JSON) into ``annotation``'s type where that matters (dataclasses, tuples)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg)
            except (TypeError, ValueError, InputError):
                continue
        return value
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        return annotation.from_dict(value) if issubclass(annotation, Config) else annotation(**value)
    if origin is tuple and isinstance(value, list | tuple):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in value)
        if args and len(args) == len(value):
            return tuple(_convert(v, a) for v, a in zip(value, args))
        return tuple(value)
    if origin is list and isinstance(value, list) and args:
        return [_convert(v, args[0]) for v in value]
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@dataclasses.dataclass
class Config:
    """Base class: ``dataclasses.asdict`` plus strict JSON load/save."""

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
        if not isinstance(data, dict):
            raise InputError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(f"{cls.__name__}: unknown key(s) {unknown}; known: {sorted(names)}")
        kwargs = {k: _convert(v, hints.get(k, Any)) for k, v in data.items()}
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
