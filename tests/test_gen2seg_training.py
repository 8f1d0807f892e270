"""Trainer (schedule, data order, accumulation, atomic resumable checkpoints), Gen2Seg task, COCO data, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from granseg.cli import main
from granseg.errors import InputError
from granseg.models.gen2seg import TINY_ARCHITECTURES, load_gen2seg
from granseg.train.gen2seg_task import Gen2SegTask, Gen2SegTrainConfig
from granseg.train.instance_data import CocoInstances, InstanceDataConfig
from granseg.train.trainer import Trainer, load_train_config, lr_factor, sample_indices

torch.set_num_threads(1)


def _config(tmp_path, name="run", **overrides) -> Gen2SegTrainConfig:
    mae = dict(TINY_ARCHITECTURES["mae"]["mae"], num_hidden_layers=1)
    data = {
        "model": {"backbone": "mae", "image_size": 32, "architecture": {"mae": mae}},
        "data": {"source": "synth", "synth": {"size": 48, "num_objects": [1, 2]}, "num_scenes": 6},
        "output_dir": str(tmp_path / name),
        "steps": 4,
        "batch_size": 1,
        "grad_accumulation": 2,
        "warmup_steps": 1,
        "lr": 1e-3,
        "save_every": 100,
        "log_every": 1,
    }
    data.update(overrides)
    return Gen2SegTrainConfig.from_dict(data)


def test_paper_recipe_defaults():
    cfg = Gen2SegTrainConfig()
    assert (cfg.lr, cfg.weight_decay, cfg.warmup_steps, cfg.schedule) == (6e-5, 1e-2, 100, "cosine")
    assert (cfg.batch_size, cfg.grad_accumulation, cfg.grad_clip, cfg.steps) == (2, 4, 1.0, 30000)


def test_warmup_then_cosine():
    cfg = Gen2SegTrainConfig(steps=300, warmup_steps=100)
    assert lr_factor(0, cfg) == pytest.approx(0.01) and lr_factor(99, cfg) == pytest.approx(1.0)
    assert lr_factor(200, cfg) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(299, cfg) == pytest.approx(0.5 * (1 + math.cos(math.pi * 199 / 200)))
    assert lr_factor(10_000, cfg) == pytest.approx(0.0)


def test_sample_order_is_a_seeded_permutation_split_across_processes():
    cfg = Gen2SegTrainConfig(batch_size=2, grad_accumulation=3)
    epoch = [i for s in range(2) for m in range(3) for i in sample_indices(cfg, 12, s, m, 0, 1)]
    assert sorted(epoch) == list(range(12))
    assert sample_indices(cfg, 12, 1, 2, 0, 1) == sample_indices(cfg, 12, 1, 2, 0, 1)
    rank0 = {i for m in range(3) for i in sample_indices(cfg, 12, 0, m, 0, 2)}
    rank1 = {i for m in range(3) for i in sample_indices(cfg, 12, 0, m, 1, 2)}
    assert not rank0 & rank1


def _weights(folder):
    return {k: v.clone() for k, v in load_gen2seg(folder).network.state_dict().items()}


def test_resume_matches_an_uninterrupted_run(tmp_path):
    straight = Trainer(Gen2SegTask(_config(tmp_path, "a"))).fit()
    trainer = Trainer(Gen2SegTask(_config(tmp_path, "b")))
    assert trainer.fit(stop_after=2) is None
    assert trainer.latest_checkpoint().name == "step_000002"
    assert not list((tmp_path / "b" / "checkpoints").glob(".*tmp"))  # no half-written folders left
    with pytest.raises(InputError, match="--resume"):
        Trainer(Gen2SegTask(_config(tmp_path, "b"))).fit()
    resumed = Trainer(Gen2SegTask(_config(tmp_path, "b"))).fit(resume=True)
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert json.loads((resumed / "train_config.json").read_text())["steps"] == 4


def test_accumulation_equals_a_bigger_batch(tmp_path):
    accumulated = Trainer(
        Gen2SegTask(_config(tmp_path, "acc", steps=1, batch_size=1, grad_accumulation=2))
    ).fit()
    big = Trainer(Gen2SegTask(_config(tmp_path, "big", steps=1, batch_size=2, grad_accumulation=1))).fit()
    a, b = _weights(accumulated), _weights(big)
    changed = False
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4, msg=key)
    initial = Trainer(Gen2SegTask(_config(tmp_path, "init"))).task.build_module().network.state_dict()
    changed = any(not torch.allclose(initial[k], a[k]) for k in a)
    assert changed


def test_training_lowers_the_instance_loss(tmp_path):
    cfg = _config(tmp_path, "learn", steps=12, warmup_steps=2, lr=3e-3, grad_accumulation=1, batch_size=2)
    Trainer(Gen2SegTask(cfg)).fit()
    log = [json.loads(line)["loss"] for line in (tmp_path / "learn" / "log.jsonl").read_text().splitlines()]
    assert np.mean(log[-3:]) < np.mean(log[:3])


def _coco(tmp_path):
    Image.fromarray(np.full((30, 40, 3), 128, np.uint8)).save(tmp_path / "a.png")
    annotations = [
        {
            "id": 1,
            "image_id": 7,
            "category_id": 1,
            "iscrowd": 0,
            "area": 600.0,
            "segmentation": [[0, 0, 30, 0, 30, 20, 0, 20]],
            "bbox": [0, 0, 30, 20],
        },
        {
            "id": 2,
            "image_id": 7,
            "category_id": 1,
            "iscrowd": 0,
            "area": 25.0,
            "segmentation": [[5, 5, 10, 5, 10, 10, 5, 10]],
            "bbox": [5, 5, 5, 5],
        },
        {
            "id": 3,
            "image_id": 7,
            "category_id": 1,
            "iscrowd": 1,
            "area": 50.0,
            "segmentation": [[32, 20, 39, 20, 39, 29, 32, 29]],
            "bbox": [32, 20, 7, 9],
        },
    ]
    coco = {
        "images": [{"id": 7, "file_name": "a.png", "height": 30, "width": 40}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "thing"}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    return InstanceDataConfig(source="coco", coco_json=str(tmp_path / "coco.json"), coco_images=str(tmp_path))


def test_coco_label_maps_small_on_top_and_crowd_ignored(tmp_path):
    data = CocoInstances(_coco(tmp_path), size=32)
    labels = data.label_map(7)
    assert labels[2, 2] > 0 and labels[7, 7] > 0 and labels[7, 7] != labels[2, 2]
    assert labels[25, 35] == -1 and labels[29, 0] == 0
    image, resized = data[0]
    assert image.shape == (3, 32, 32) and resized.shape == (32, 32)
    values = set(torch.unique(resized).tolist())
    assert {-1, 0} <= values and len(values - {-1, 0}) == 2


def test_cli_trains_on_coco_json_and_rejects_bad_configs(tmp_path, capsys):
    cfg = _config(tmp_path, "coco", steps=1, grad_accumulation=1, data=_coco(tmp_path).to_dict())
    cfg.to_json(tmp_path / "cfg.json")
    assert main(["train", "--config", str(tmp_path / "cfg.json"), "--device", "cpu", "--quiet"]) == 0
    assert (tmp_path / "coco" / "model" / "gen2seg_config.json").is_file()
    assert main(["train", "--config", str(tmp_path / "cfg.json"), "--device", "cpu", "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err
    bad = json.loads((tmp_path / "cfg.json").read_text()) | {"lerning_rate": 1}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert main(["train", "--config", str(tmp_path / "bad.json")]) == 2
    assert "unknown key" in capsys.readouterr().err
    with pytest.raises(InputError, match="unknown training task"):
        load_train_config('{"task": "nope"}')


def test_bf16_training_runs_and_exports(tmp_path):
    cfg = _config(tmp_path, "bf16", steps=1, grad_accumulation=1, precision="bf16")
    folder = Trainer(Gen2SegTask(cfg)).fit()
    record = json.loads((tmp_path / "bf16" / "log.jsonl").read_text().splitlines()[-1])
    assert math.isfinite(record["loss"])
    assert (
        load_gen2seg(folder).network.mae.vit.embeddings.patch_embeddings.projection.weight.dtype
        == torch.float32
    )
