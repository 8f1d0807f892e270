"""Shared fixtures. Real benchmark subsets live beside the repo in ../shared/data; tests skip when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SAMPLE_IMAGE = REPO_ROOT / "granseg" / "assets" / "coffee.jpg"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_image_path() -> Path:
    return SAMPLE_IMAGE


@pytest.fixture(autouse=True)
def isolated_granseg_home(tmp_path_factory, monkeypatch):
    """Keep tests away from the user's checkpoint cache (so `--model auto` is deterministic)."""
    monkeypatch.setenv("GRANSEG_HOME", str(tmp_path_factory.mktemp("granseg_home")))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests with one torch thread (steadier timings, no oversubscription on small CI machines);
    use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_addoption(parser):
    parser.addoption(
        "--screenshots",
        default=None,
        help="folder for the browser tests' screenshots (default: pytest's tmp dir)",
    )
