from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from granseg.config import Config
from granseg.errors import InputError


@dataclass
class Inner(Config):
    rank: int = 8
    alpha: float = 16.0


@dataclass
class Outer(Config):
    name: str = "x"
    sizes: tuple[int, ...] = (1, 2, 3)
    inner: Inner = field(default_factory=Inner)
    optional: float | None = None


def test_json_round_trip(tmp_path):
    config = Outer(name="y", sizes=(4, 5), inner=Inner(rank=4, alpha=2.5), optional=0.5)
    path = tmp_path / "config.json"
    config.to_json(path)
    assert Outer.from_json(path) == config
    assert Outer.from_json(config.to_json()) == config


def test_unknown_key_is_an_error():
    with pytest.raises(InputError, match="unknown key"):
        Outer.from_dict({"nmae": "typo"})


def test_missing_file_and_bad_json(tmp_path):
    with pytest.raises(InputError, match="not found"):
        Outer.from_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="invalid JSON"):
        Outer.from_json(bad)


def test_int_promoted_to_float():
    assert Inner.from_dict({"alpha": 3}).alpha == 3.0
