from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

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


# ------------------------------------------------------------------------------------------- type checks on load
@dataclass
class Typed(Config):
    flag: bool = True
    count: int = 700
    ratio: float = 0.5
    label: str = "a"
    maybe: int | None = None
    either: int | tuple[int, int] = 4
    mode: Literal["fast", "slow"] = "fast"
    values: list[float] = field(default_factory=lambda: [1.0])
    pair: tuple[float, float] = (0.0, 1.0)
    table: dict[str, int] = field(default_factory=dict)
    inner: Inner | None = None


@pytest.mark.parametrize(
    ("key", "value", "where", "expected", "received"),
    [
        ("flag", "no", "flag", "bool", "'no' (str)"),
        ("flag", 1, "flag", "bool", "1 (int)"),
        ("count", "700", "count", "int", "'700' (str)"),
        ("count", 700.0, "count", "int", "700.0 (float)"),
        ("count", True, "count", "int", "True (bool)"),
        ("ratio", "0.5", "ratio", "float", "'0.5' (str)"),
        ("ratio", None, "ratio", "float", "None (NoneType)"),
        ("label", 3, "label", "str", "3 (int)"),
        ("maybe", "3", "maybe", "int | None", "'3' (str)"),
        ("either", [1, 2, 3], "either", "int | tuple[int, int]", "[1, 2, 3] (list)"),
        ("mode", "medium", "mode", "Literal['fast', 'slow']", "'medium' (str)"),
        ("values", [1.0, "2"], "values[1]", "float", "'2' (str)"),
        ("values", 1.0, "values", "list[float]", "1.0 (float)"),
        ("pair", [0.0], "pair", "tuple[float, float]", "[0.0] (list)"),
        ("table", {"a": "1"}, "table.a", "int", "'1' (str)"),
        ("inner", [8], "inner", "Inner | None", "[8] (list)"),
    ],
)
def test_wrong_type_is_refused_with_key_type_and_value(key, value, where, expected, received):
    with pytest.raises(InputError) as info:
        Typed.from_dict({key: value})
    assert str(info.value) == f"Typed.{where}: expected {expected}, got {received}"


def test_nested_wrong_type_names_the_full_key():
    with pytest.raises(InputError, match=r"Typed\.inner\.rank: expected int, got '8' \(str\)"):
        Typed.from_dict({"inner": {"rank": "8"}})
    with pytest.raises(InputError, match=r"Typed\.inner: unknown key\(s\) \['rnak'\]"):
        Typed.from_dict({"inner": {"rnak": 8}})
    with pytest.raises(InputError, match=r"Inner: expected a JSON object"):
        Inner.from_dict([8])


def test_good_values_load_with_their_types():
    config = Typed.from_dict(
        {
            "flag": False,
            "count": 3,
            "ratio": 2,
            "maybe": 5,
            "either": [3, 4],
            "mode": "slow",
            "values": [1, 2.5],
            "pair": [1, 2],
            "table": {"x": 1},
            "inner": {"rank": 2, "alpha": 1},
        }
    )
    assert config.flag is False and config.count == 3
    assert config.ratio == 2.0 and isinstance(config.ratio, float)
    assert config.maybe == 5 and config.either == (3, 4) and config.mode == "slow"
    assert config.values == [1.0, 2.5] and all(isinstance(v, float) for v in config.values)
    assert config.pair == (1.0, 2.0) and config.table == {"x": 1}
    assert config.inner == Inner(rank=2, alpha=1.0)
    assert Typed.from_dict({"maybe": None, "inner": None}).inner is None
    assert Typed.from_dict({"either": 7}).either == 7


def test_validate_hook_runs_on_construction_and_load():
    @dataclass
    class Ranged(Config):
        size: int = 1

        def validate(self):
            if self.size < 1:
                raise InputError("size must be >= 1")
            return self

    with pytest.raises(InputError, match="size must be >= 1"):
        Ranged(size=0)
    with pytest.raises(InputError, match="size must be >= 1"):
        Ranged.from_dict({"size": 0})


def test_package_configs_refuse_wrong_types():
    from granseg.predict.hierarchy import HierarchyConfig

    with pytest.raises(InputError, match=r"HierarchyConfig\.refine: expected bool, got 'no'"):
        HierarchyConfig.from_dict({"refine": "no"})
    with pytest.raises(InputError, match=r"HierarchyConfig\.n_superpixels: expected int, got '700'"):
        HierarchyConfig.from_dict({"n_superpixels": "700"})


# ------------------------------------------------------------------------ every Config in the package round-trips
def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def _import_package_modules() -> None:
    import granseg

    root = Path(granseg.__file__).parent
    for path in sorted(root.rglob("*.py")):
        if path.name == "__main__.py":
            continue
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        try:
            importlib.import_module(name)
        except ImportError as exc:  # an optional extra that is not installed (e.g. the web app)
            missing = getattr(exc, "name", None) or ""
            if missing.split(".")[0] == "granseg":
                raise


def test_every_package_config_round_trips_its_own_json(tmp_path):
    _import_package_modules()
    classes = sorted(
        {c for c in _all_subclasses(Config) if c.__module__.startswith("granseg.")}, key=lambda c: c.__name__
    )
    names = {c.__name__ for c in classes}
    # the configs known when this test was written must all be found (the walk itself is tested)
    assert {"HierarchyConfig", "UnSAMv2Config", "PseudoLabelConfig", "SynthConfig", "TrainConfig"} <= names
    for cls in classes:
        config = cls()
        path = tmp_path / f"{cls.__name__}.json"
        config.to_json(path)
        loaded = cls.from_json(path)
        assert loaded == config, cls.__name__
        assert json.loads(loaded.to_json()) == json.loads(path.read_text()), cls.__name__
