"""benchmarks/fit_merge.py: synthetic scenes as extra training images of the learned merge criterion."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bench_helpers import load_benchmark

from granseg.regions.learned import MergeModel
from granseg.synth import SynthConfig, generate_scene


def _refines(fine: np.ndarray, coarse: np.ndarray) -> bool:
    """Every label of ``fine`` lies inside a single label of ``coarse``."""
    pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()], 1), axis=0)
    return len(np.unique(pairs[:, 0])) == len(pairs)


def test_synth_segmentations_are_three_nested_levels():
    fit = load_benchmark("fit_merge")
    image, (objects, parts, subparts) = fit.synth_segmentations(30000)
    scene = generate_scene(seed=30000, config=SynthConfig(size=256))
    assert np.array_equal(image, scene.image)
    assert np.array_equal(objects, scene.label_map("object"))
    assert _refines(parts, objects) and _refines(subparts, parts)
    assert len(np.unique(objects)) < len(np.unique(parts)) < len(np.unique(subparts))
    for part in scene.level_nodes("part"):  # a part's own segment at the part level is the whole part
        assert (parts[part.mask] == part.id).all()


def test_fit_on_synthetic_scenes_only_writes_a_loadable_model(tmp_path):
    fit = load_benchmark("fit_merge")
    out = tmp_path / "weights.json"
    assert fit.main(["--fit", "0", "--synth", "2", "--rounds", "1", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["fit"]["data"] == "synthetic scenes 30000..30001"
    model = MergeModel.from_dict(data)
    assert np.isfinite(model.weights).all() and np.isfinite(model.bias)
    assert (model.weights <= 0)[:12].all()  # border features keep their monotone sign


def test_nothing_to_fit_on_is_a_clear_error(capsys, monkeypatch, tmp_path):
    fit = load_benchmark("fit_merge")
    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "images" / "val" / "100007.jpg").write_bytes(b"")  # an image there, but --fit 0
    monkeypatch.setattr(fit, "DATA", tmp_path)
    with pytest.raises(SystemExit) as exit_:
        fit.main(["--fit", "0", "--synth", "0"])
    assert exit_.value.code == 2
    assert "nothing to fit on: --fit 0 and no --synth scenes" in capsys.readouterr().err


def test_the_error_says_why_there_is_nothing_to_fit_on(capsys, monkeypatch, tmp_path):
    fit = load_benchmark("fit_merge")
    monkeypatch.setattr(fit, "DATA", tmp_path)  # no BSDS500 here
    with pytest.raises(SystemExit):
        fit.main(["--synth", "0"])
    assert f"no BSDS500 val image under {tmp_path}" in capsys.readouterr().err
    for bad in (["--synth", "-1"], ["--fit", "-2"], ["--rounds", "-1"]):
        with pytest.raises(SystemExit) as exit_:
            fit.main(bad)
        assert exit_.value.code == 2 and "must be >= 0" in capsys.readouterr().err


def test_the_weights_file_says_what_it_was_fit_on():
    fit = load_benchmark("fit_merge")
    assert fit.describe_data(["100007", "101027"], [30000, 30001, 30002]) == (
        "BSDS500 val, sorted ids 1..2 (100007..101027) + synthetic scenes 30000..30002"
    )
    assert fit.describe_data(["100007"], []) == "BSDS500 val, sorted ids 1..1 (100007..100007)"
