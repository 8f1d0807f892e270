"""Every data file the package ships is listed in pyproject.toml's package-data, so a wheel (a non-editable
install) carries it: before session 17 the learned tree's merge weights (granseg/regions/*.json) were missing
from the wheel and the default `hierarchy` model could not load there."""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _package_data_patterns() -> list[str]:
    """The ``granseg = [...]`` list of ``[tool.setuptools.package-data]`` (tomllib is Python 3.11+; the project
    supports 3.10)."""
    section = (ROOT / "pyproject.toml").read_text().split("[tool.setuptools.package-data]", 1)[1]
    line = next(row for row in section.splitlines() if row.startswith("granseg = "))
    return ast.literal_eval(line.split("=", 1)[1].strip())


def test_every_data_file_of_the_package_is_package_data():
    patterns = _package_data_patterns()
    package = ROOT / "granseg"
    data = [
        path.relative_to(package).as_posix()
        for path in package.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc", ".tmp"} and "__pycache__" not in path.parts
    ]
    assert "regions/merge_weights.json" in data and "regions/union_pieces.json" in data

    def listed(name: str, pattern: str) -> bool:  # setuptools' "*" stays within one folder
        return name.count("/") == pattern.count("/") and fnmatch(name, pattern)

    missing = [name for name in data if not any(listed(name, pattern) for pattern in patterns)]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
