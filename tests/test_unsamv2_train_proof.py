"""Slow end-to-end proof (CPU, ~25 min on a shared 2-core machine): a tiny random SAM-2 trained by
``granseg train`` (task ``unsamv2``) on synthetic exact hierarchies obeys g on FRESH scenes: small g gives the part
under the click, g = 1 the object, far better than the untrained model and than the same architecture trained
without g (its best fixed output); the predicted area grows with g. Run with ``-m slow``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_unsamv2_train.py"
    spec = importlib.util.spec_from_file_location("bench_unsamv2_train", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up in sys.modules
    spec.loader.exec_module(module)
    return module


def _small_g(row: dict) -> float:
    return (row["part IoU g=0.1"] + row["part IoU g=0.2"] + row["part IoU g=0.3"]) / 3


@pytest.mark.slow
@pytest.mark.xfail(
    reason="not achieved yet: with a frozen random encoder and a 10-min CPU budget the tiny model predicts empty "
    "masks (benchmarks/results/unsamv2_train.md)",
    strict=False,
)
def test_trained_model_obeys_g_on_fresh_scenes(tmp_path, monkeypatch):
    bench = _bench()
    monkeypatch.setattr(bench, "RESULTS", tmp_path)  # never overwrite the committed plot
    settings = bench.BenchSettings(
        steps=200, max_masks=8, train_scenes=40, eval_scenes=12, tune_scenes=6, noc_instances=10,
        max_clicks=5, throughput_steps=2, small_steps=0, runs="synth,nog", work_dir=str(tmp_path),
    )  # fmt: skip
    rows = bench.run(settings)["single_click"]
    ours = rows["(a) trained on synth GT"]
    untrained = rows["(d) untrained"]
    no_g = next(v for k, v in rows.items() if k.startswith("(c) no-g"))
    assert _small_g(ours) > _small_g(untrained) + 0.2, rows
    assert ours["object IoU g=1.0"] > untrained["object IoU g=1.0"] + 0.2, rows
    assert _small_g(ours) > _small_g(no_g), rows
    assert ours["Spearman pooled"] > 0.5, rows
    assert (tmp_path / "unsamv2_train_miou_vs_g.png").is_file()
