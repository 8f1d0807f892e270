"""Slow end-to-end proofs (CPU, 1,000-step training runs of ~700-1,200 s CPU each): a tiny random SAM-2 trained by
``granseg train`` (task ``unsamv2``) on synthetic exact hierarchies (run (a)) and on the pseudo-labels the engine
mined from the same images alone (run (b)), evaluated on FRESH scenes against the untrained model and the no-g twin:
the predicted area grows with g, and parts at g = 0.1-0.3 and the object at g = 1 beat both. Run with ``-m slow``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_helpers import load_benchmark


def _bench():
    return load_benchmark("bench_unsamv2_train")


def _small_g(row: dict) -> float:
    return (row["part IoU g=0.1"] + row["part IoU g=0.2"] + row["part IoU g=0.3"]) / 3


# the benchmark's run (a) exactly (configs/tiny_synth.json: focal 2, labels under 82 px dropped, the best-of-3 term,
# the granularity loss ramped in over 700 steps; RESULTS.md "unsamv2 train" session-12 rows); NoC is not checked
# here, so fewer NoC instances
TRAINING = dict(
    steps=1000, max_masks=30, max_prompts=8, train_scenes=4000, correction_clicks=1, loss_resolution="low_res",
    hidden_size=128, model_image_size=256, granularity_sampling="nearest_level", focal=2.0, min_area=82,
    g_phase_multimask_weight=1.0, g_loss_ramp_steps=700,
)  # fmt: skip
PROOF = dict(
    **TRAINING,
    eval_scenes=20,
    tune_scenes=8,
    noc_instances=5,
    max_clicks=3,
    throughput_steps=2,
    small_steps=0,
)


@pytest.mark.slow  # ~35 min on the shared 2-core machine (one 1,000-step training run + evaluation)
@pytest.mark.timeout(5400)  # beyond the suite's 600 s default
def test_trained_model_orders_mask_area_by_g_on_fresh_scenes(tmp_path, monkeypatch):
    """What run (a) achieves (issue 16, after the init fix): on FRESH scenes the predicted area grows with the
    requested g (Spearman, pooled and per click) and the object at g = 1 beats the untrained model."""
    bench = _bench()
    monkeypatch.setattr(bench, "RESULTS", tmp_path)  # never overwrite the committed plot
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the training subprocess runs exactly as the benchmark's did
    rows = bench.run(bench.BenchSettings(**PROOF, runs="synth", work_dir=str(tmp_path)))["single_click"]
    ours, untrained = rows["(a) trained on synth GT"], rows["(d) untrained"]
    assert ours["Spearman pooled"] > 0.5 and ours["Spearman per click"] > 0.7, rows
    assert untrained["Spearman pooled"] < 0.2, rows
    assert ours["object IoU g=1.0"] > untrained["object IoU g=1.0"] + 0.03, rows
    assert (tmp_path / "unsamv2_train_miou_vs_g.png").is_file()


@pytest.mark.slow  # ~70 min on the shared 2-core machine (two 1,000-step training runs + evaluation)
@pytest.mark.timeout(9000)
def test_trained_model_segments_parts_and_objects_by_g_on_fresh_scenes(tmp_path, monkeypatch):
    """The full claim of issue 16 against the untrained model and the no-g twin (its best fixed output, chosen on
    the tune split): object at g = 1 and parts at g = 0.1-0.3 above both, g orders the area. Measured at this
    setting, training seed 0, on these 20 scenes: (a) 0.462 / 0.665, twin 0.411 / 0.481 (RESULTS.md)."""
    bench = _bench()
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    settings = bench.BenchSettings(**PROOF, runs="synth,nog", work_dir=str(tmp_path))
    rows = bench.run(settings)["single_click"]
    ours = rows["(a) trained on synth GT"]
    untrained = rows["(d) untrained"]
    no_g = next(v for k, v in rows.items() if k.startswith("(c) no-g"))
    assert ours["object IoU g=1.0"] > untrained["object IoU g=1.0"] + 0.2, rows
    assert ours["object IoU g=1.0"] > no_g["object IoU g=1.0"] + 0.03, rows
    assert _small_g(ours) > _small_g(untrained) + 0.1, rows
    assert _small_g(ours) > _small_g(no_g), rows
    assert ours["Spearman pooled"] > 0.5, rows


# run (b) (pseudo-labels mined by the engine from the 40 training scenes' images alone) against its twin (e), at
# configs/tiny_synth.json's loss and schedule (results/s12_seeds_b_vs_e_ramp_6.md), training seed 0
PSEUDO_PROOF = dict(
    TRAINING, train_scenes=40, eval_scenes=20, tune_scenes=8, noc_instances=0, max_clicks=3, throughput_steps=0,
    small_steps=0, balance_granularity=1, train_seed=0,
)  # fmt: skip


@pytest.mark.slow  # ~25 min CPU (mining 40 images, two 1,000-step trainings of ~700 s CPU each, evaluation)
@pytest.mark.timeout(9000)
def test_pseudo_label_model_segments_parts_and_objects_by_g_above_its_twin(tmp_path, monkeypatch):
    """The self-supervised path of issue 16 (run (b): no ground truth anywhere in training) against the untrained
    model and the no-g twin (e) trained on the same pseudo-labels and budget (its best fixed output per metric,
    chosen on the tune split), on the 20 fresh report scenes: parts at g = 0.1-0.3 and the object at g = 1 above
    both; g orders the mask area. Measured at this setting (seed 0): parts 0.394 vs twin 0.379 vs untrained
    0.051, object 0.453 vs 0.419 vs 0.112, Spearman per click 0.99."""
    bench = _bench()
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    settings = bench.BenchSettings(**PSEUDO_PROOF, runs="pseudo,nogpseudo", work_dir=str(tmp_path))
    rows = bench.run(settings)["single_click"]
    ours, untrained = rows["(b) trained on pseudo-labels"], rows["(d) untrained"]
    twin = next(v for k, v in rows.items() if k.startswith("(e) no-g"))
    assert _small_g(ours) > _small_g(untrained) + 0.2, rows
    assert ours["object IoU g=1.0"] > untrained["object IoU g=1.0"] + 0.2, rows
    assert _small_g(ours) > _small_g(twin), rows
    assert ours["object IoU g=1.0"] > twin["object IoU g=1.0"], rows
    assert ours["Spearman per click"] > 0.7, rows


def test_pretrain_stage_configs_parse_and_chain(tmp_path):
    """--pretrain-steps: stage 1 trains the whole model without g; the runs start from it with the recipe's set."""
    from granseg.train.trainer import load_train_config

    bench = _bench()
    settings = bench.BenchSettings(pretrain_steps=7, steps=3, work_dir=str(tmp_path))
    stage1 = load_train_config(json.dumps(bench.train_config(settings, "pretrain", tmp_path)))
    assert stage1.train_image_encoder and not stage1.cache_embeddings and stage1.steps == 7
    assert not stage1.model.granularity and stage1.model.lora is None and stage1.lr == settings.pretrain_lr
    for name in ("synth", "nog"):
        stage2 = bench.train_config(settings, name, tmp_path)
        assert stage2["init_from"] == str(tmp_path / "run_pretrain" / "model")
        assert stage2["extra_trainable"] == [] and "train_image_encoder" not in stage2
    assert bench.train_config(bench.BenchSettings(), "synth", tmp_path)["init_from"] is None


def test_wide_decoder_and_input_size_flags_reach_the_model_config(tmp_path):
    """--hidden-size / --model-image-size widen the decoder and enlarge the input; 0 keeps the tiny config."""
    from granseg.models.unsamv2 import tiny_config
    from granseg.train.trainer import load_train_config

    bench = _bench()
    settings = bench.BenchSettings(hidden_size=64, model_image_size=256, work_dir=str(tmp_path))
    for name in ("synth", "nog"):
        sam2 = load_train_config(json.dumps(bench.train_config(settings, name, tmp_path))).model.sam2
        assert (sam2.hidden_size, sam2.decoder_mlp_dim, sam2.iou_head_hidden_dim, sam2.image_size) == (
            64,
            128,
            64,
            256,
        )
    default = load_train_config(
        json.dumps(bench.train_config(bench.BenchSettings(), "synth", tmp_path))
    ).model
    assert default.sam2 == tiny_config().sam2


def test_encoder_dim_flag_widens_the_frozen_encoder_only(tmp_path):
    """--encoder-dim widens the random Hiera (stages x1/2/4/8); the decoder side and the input stay as set."""
    from granseg.models.unsamv2 import tiny_config
    from granseg.train.trainer import load_train_config

    bench = _bench()
    settings = bench.BenchSettings(encoder_dim=32, hidden_size=64, work_dir=str(tmp_path))
    for name in ("synth", "nog"):
        sam2 = load_train_config(json.dumps(bench.train_config(settings, name, tmp_path))).model.sam2
        assert (sam2.embed_dim, sam2.hidden_size, sam2.image_size) == (32, 64, tiny_config().sam2.image_size)
        assert list(sam2.to_hf().vision_config.backbone_config.embed_dim_per_stage) == [32, 64, 128, 256]


def test_tiny_synth_config_is_the_proofs_run_a(tmp_path):
    """configs/tiny_synth.json trains exactly what the slow proof (and the benchmark's run (a)) trains."""
    from granseg.train.trainer import load_train_config

    bench = _bench()
    proof = load_train_config(
        json.dumps(bench.train_config(bench.BenchSettings(**TRAINING), "synth", tmp_path))
    )
    shipped = load_train_config(Path(__file__).resolve().parents[1] / "configs" / "tiny_synth.json")
    assert shipped.model.sam2 == proof.model.sam2
    assert (shipped.model.granularity, shipped.model.lora) == (proof.model.granularity, proof.model.lora)
    keys = ("data", "correction_clicks", "loss", "loss_resolution", "granularity_sampling", "max_prompts",
            "steps", "batch_size", "lr", "warmup_steps", "min_lr_ratio", "seed", "extra_trainable", "init_from",
            "train_image_encoder", "cache_embeddings", "g_phase_multimask_weight", "g_loss_ramp_steps")  # fmt: skip
    assert {k: getattr(shipped, k) for k in keys} == {k: getattr(proof, k) for k in keys}
