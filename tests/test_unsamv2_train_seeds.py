"""benchmarks/unsamv2_train_seeds.py: the paired statistics that decide "above the no-g twin" over training seeds."""

from __future__ import annotations

import numpy as np
import pytest
from bench_helpers import load_benchmark


def _seeds():
    return load_benchmark("unsamv2_train_seeds")


def test_scene_bootstrap_resamples_whole_scenes():
    """One scene with a large difference and many clicks must widen the interval as ONE sample, not as many."""
    seeds = _seeds()
    diff = np.r_[np.full(50, 1.0), np.zeros(5)]  # scene 0: 50 clicks of +1; scenes 1-5: one click of 0 each
    scenes = np.r_[np.zeros(50, int), np.arange(1, 6)]
    low, high = seeds.scene_bootstrap(diff, scenes, rounds=4000)
    # a third of the resamples hold no scene 0 (mean 0); resampling clicks instead would give ~0.91 +- 0.08
    assert low == 0.0 and high > 0.95
    constant = seeds.scene_bootstrap(np.full(10, 0.2), np.arange(10), rounds=100)
    assert constant == pytest.approx((0.2, 0.2))


def test_t_interval_matches_hand_computation():
    seeds = _seeds()
    values = np.array([0.01, 0.03, -0.01, 0.05])
    half = 3.182446305284263 * values.std(ddof=1) / 2  # t(0.975, 3) x s / sqrt(4)
    low, high = seeds.t_interval(values)
    assert (low, high) == pytest.approx((0.02 - half, 0.02 + half))
    assert np.isnan(seeds.t_interval(np.array([0.1]))[0])


def test_per_click_averages_the_three_small_g_and_reads_g_one():
    """Masks at g = 0.1-0.3 equal to the part, 0.1 off by half: part value (0.5 + 1 + 1) / 3; object from g = 1."""
    seeds = _seeds()
    part = np.zeros((8, 8), bool)
    part[:4, :4] = True
    obj = np.zeros((8, 8), bool)
    obj[:, :4] = True
    sweep = np.zeros((1, 11, 8, 8), bool)
    sweep[0, 0, :2, :4] = True  # g = 0.1: half the part
    sweep[0, 1], sweep[0, 2] = part, part
    sweep[0, 9] = obj  # g = 1.0
    record = {"levels": {"part": part, "object": obj}}
    values = seeds.per_click([record], [sweep], 0)
    assert values["part IoU g=0.1-0.3"][0] == pytest.approx((0.5 + 1 + 1) / 3)
    assert values["object IoU g=1.0"][0] == 1.0


def test_include_refuses_results_scored_on_other_scenes(tmp_path):
    from granseg.errors import InputError

    seeds = _seeds()
    path = tmp_path / "earlier.json"
    path.write_text('{"first": 10000, "scenes": 300, "tune_scenes": 8, "pairs": [{"g model": "a"}]}')
    assert seeds.included_rows([str(path)], 10000, 300, 8) == [{"g model": "a"}]
    with pytest.raises(InputError, match="other scenes"):
        seeds.included_rows([str(path)], 10000, 100, 8)


def test_main_refuses_no_pairs_and_other_scenes_with_a_usage_error(tmp_path, capsys):
    """Nothing to score, or an --include scored on other scenes: exit 2 with one line, before any model loads."""
    seeds = _seeds()
    with pytest.raises(SystemExit) as exit_info:
        seeds.main(["--label", "x", "--tag", "t", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "at least one --pair or --include" in capsys.readouterr().err
    path = tmp_path / "earlier.json"
    path.write_text('{"first": 10000, "scenes": 300, "tune_scenes": 8, "pairs": []}')
    with pytest.raises(SystemExit) as exit_info:
        seeds.main(
            ["--label", "x", "--tag", "t", "--out", str(tmp_path), "--include", str(path), "--scenes", "5"]
        )
    assert exit_info.value.code == 2 and "other scenes" in capsys.readouterr().err
    assert not list(tmp_path.glob("t.*"))
