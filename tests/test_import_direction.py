"""Imports go one way: cli -> app / eval / pseudo / train -> predict -> models -> regions / io.

Every module of the package is parsed (ast, not imported) and every ``import granseg.X`` / ``from granseg.X
import ...`` in it, at any depth (lazy imports inside functions count), is checked against the layer order.
Shared foundation modules (errors, config, the registry resolver, small utilities) may be imported from any layer
and themselves import only the bottom layers (io, regions) and each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import granseg

PACKAGE_ROOT = Path(granseg.__file__).resolve().parent

# Top-level package name -> layer (higher layers may import lower ones, never the other way round).
LAYERS = {
    "__main__": 5,
    "cli": 5,
    "app": 4,
    "eval": 4,
    "pseudo": 4,
    "train": 4,
    "predict": 3,
    "models": 2,
    "regions": 1,
    "io": 1,
}
FOUNDATION = {"", "errors", "config", "registry_utils", "utils", "viz", "synth"}
# Known violations being removed on another branch. Each entry: (importing module prefix, imported module prefix).
ALLOWED: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = ("granseg", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_imports(path: Path, module: str) -> list[tuple[str, int]]:
    """``(imported granseg module, line)`` for every absolute or relative import of this package in ``path``
    (the source of ``module``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if path.name == "__init__.py" else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
    return [(name, line) for name, line in found if name == "granseg" or name.startswith("granseg.")]


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _allowed(importer: str, imported: str) -> bool:
    src, dst = _top(importer), _top(imported)
    if src == dst:
        return True
    if any(importer.startswith(a) and imported.startswith(b) for a, b in ALLOWED):
        return True
    if dst in FOUNDATION:
        return src not in ("io", "regions") or dst in ("", "errors")
    if src in FOUNDATION:
        return dst in ("io", "regions")  # the bottom layers (synth uses the granularity formula of regions)
    if src not in LAYERS or dst not in LAYERS:
        return False  # a new top-level package: give it a layer above
    if src == "io":
        return False  # io imports none of the layers
    return LAYERS[dst] < LAYERS[src] or (LAYERS[dst] == LAYERS[src] and dst != "io")


def _violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        importer = _module_name(path)
        for imported, line in _package_imports(path, importer):
            if not _allowed(importer, imported):
                bad.append(f"{path.relative_to(PACKAGE_ROOT.parent)}:{line}: {importer} imports {imported}")
    return bad


def test_imports_follow_the_layer_order():
    assert _violations() == []


def test_every_top_level_package_has_a_layer():
    tops = {_top(_module_name(path)) for path in PACKAGE_ROOT.rglob("*.py")}
    assert tops - set(LAYERS) - FOUNDATION == set()


def test_the_checker_sees_lazy_and_upward_imports(tmp_path):
    """The rule catches an upward import inside a function (what the loop models <-> predict was made of)."""
    assert not _allowed("granseg.models.unsamv2", "granseg.predict.unsamv2")
    assert not _allowed("granseg.io.files", "granseg.models.registry")
    assert not _allowed("granseg.predict.base", "granseg.cli")
    assert _allowed("granseg.predict.unsamv2", "granseg.models.unsamv2")
    source = tmp_path / "probe.py"
    source.write_text("import numpy\n\ndef f():\n    from granseg.predict.factory import create_predictor\n")
    assert _package_imports(source, "granseg.models.probe") == [("granseg.predict.factory", 4)]
    package = tmp_path / "__init__.py"
    package.write_text("from .registry import load_model\nfrom ..predict import base\n")
    assert _package_imports(package, "granseg.models") == [
        ("granseg.models.registry", 1),
        ("granseg.predict", 2),
    ]
