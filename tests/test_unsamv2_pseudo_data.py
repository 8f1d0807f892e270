"""UnSAMv2 training on pseudo-labels (issue 16, run b): the per-image mask subset drawn evenly over g, and the
benchmark's pseudo-label settings reaching the engine and the data config."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from bench_helpers import load_benchmark
from PIL import Image
from pycocotools import mask as mask_utils

from granseg.train.unsamv2_data import DataSource, MixedMaskDataset, UnSAMv2DataConfig, balanced_subset


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode()}


def test_balanced_subset_takes_every_bin_in_turn():
    granularity = np.asarray([0.1] * 100 + [1.0, 1.0] + [0.5] * 3)
    indices = np.arange(10, 10 + len(granularity))
    chosen = balanced_subset(indices, granularity, 6, np.random.default_rng(0))
    picked_g = sorted(granularity[chosen - 10].tolist())
    assert picked_g == [0.1, 0.1, 0.5, 0.5, 1.0, 1.0]  # two rounds over the three non-empty bins
    assert np.all(np.diff(chosen) > 0)  # sorted, no repeats
    again = balanced_subset(indices, granularity, 6, np.random.default_rng(0))
    np.testing.assert_array_equal(chosen, again)
    assert len(balanced_subset(indices[:3], granularity[:3], 6, np.random.default_rng(0))) == 3


def test_balanced_subset_reaches_every_bin_when_fewer_picks_than_bins():
    """8 picks, 9 non-empty bins: each bin (also 0.9-1.0, the last) is in most subsets (a fixed bin order never
    picked the last one)."""
    granularity = np.repeat(
        np.round(np.arange(0.1, 1.0, 0.1) + 0.05, 2), 10
    )  # 10 masks in each of the 9 bins
    indices = np.arange(len(granularity))
    top = [(granularity[balanced_subset(indices, granularity, 8, np.random.default_rng(s))] >= 0.9).any()
           for s in range(60)]  # fmt: skip
    assert 0.75 < np.mean(top) < 0.97  # 8 / 9 expected


def _pseudo_like_folder(tmp_path: Path) -> tuple[Path, Path]:
    """One 64 x 64 image labelled like the engine labels a small textured scene: one instance (g = 1) and 40
    tiny 4 x 4 parts (g = 0.1)."""
    folder, images = tmp_path / "labels", tmp_path / "images"
    folder.mkdir()
    images.mkdir()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(images / "scene.png")
    instance = np.zeros((64, 64), dtype=bool)
    instance[4:60, 4:60] = True
    annotations = [{"segmentation": _rle(instance), "granularity": 1.0, "instance_id": 1}]
    for k in range(40):
        part = np.zeros_like(instance)
        y, x = 4 + 4 * (k // 10), 4 + 4 * (k % 10)
        part[y : y + 4, x : x + 4] = True
        annotations.append({"segmentation": _rle(part), "granularity": 0.1, "instance_id": 1})
    document = {"image": {"file_name": "scene.png", "height": 64, "width": 64}, "annotations": annotations}
    (folder / "scene.json").write_text(json.dumps(document))
    return folder, images


def test_balanced_sampling_keeps_the_instance_that_a_uniform_subset_drops(tmp_path):
    folder, images = _pseudo_like_folder(tmp_path)
    source = DataSource(kind="pseudo", folder=str(folder), images=str(images))

    def instance_share(balance: bool) -> float:
        config = UnSAMv2DataConfig(sources=[source], max_masks=4, flip=False, balance_granularity=balance)
        dataset = MixedMaskDataset(config, seed=0)
        hits = []
        for seed in range(40):
            sample = dataset.load(0, np.random.default_rng(seed))
            assert len(sample.masks) == 4
            hits.append(bool((sample.granularity == 1.0).any()))
        return float(np.mean(hits))

    assert instance_share(True) == 1.0
    assert instance_share(False) < 0.4  # 4 of 41 masks: the instance is in ~10 % of the subsets


def test_balance_granularity_is_a_data_config_key():
    config = UnSAMv2DataConfig.from_dict({"balance_granularity": True})
    assert config.balance_granularity is True
    assert UnSAMv2DataConfig().balance_granularity is False  # the recipe's uniform subset stays the default


def _bench():
    return load_benchmark("bench_unsamv2_train")


def test_bench_pseudo_settings_reach_the_engine_and_only_run_b(tmp_path):
    from granseg.pseudo.pipeline import PseudoLabelConfig
    from granseg.train.trainer import load_train_config

    bench = _bench()
    overrides = bench.pseudo_engine_overrides("conquer_superpixels=300; refine_segments=300")
    assert overrides == {"conquer_superpixels": 300, "refine_segments": 300}
    engine = PseudoLabelConfig.from_dict(overrides).validate()  # what pseudo-label --config reads
    assert (engine.conquer_superpixels, engine.refine_segments) == (300, 300)
    settings = bench.BenchSettings(balance_granularity=1, work_dir=str(tmp_path))
    (tmp_path / "pseudo").mkdir()
    (tmp_path / "pseudo" / "a.json").write_text("{}")
    pseudo = load_train_config(json.dumps(bench.train_config(settings, "pseudo", tmp_path)))
    synth = load_train_config(json.dumps(bench.train_config(settings, "synth", tmp_path)))
    assert pseudo.data.balance_granularity is True
    assert synth.data.balance_granularity is False


def test_bench_nogpseudo_is_the_no_g_model_on_the_pseudo_labels(tmp_path):
    """Run (e), the apples-to-apples baseline for (b): the no-g architecture of (c) on the data of (b)."""
    from granseg.train.trainer import load_train_config

    bench = _bench()
    settings = bench.BenchSettings(balance_granularity=1, work_dir=str(tmp_path))
    (tmp_path / "pseudo").mkdir()
    (tmp_path / "pseudo" / "a.json").write_text("{}")
    configs = {
        name: load_train_config(json.dumps(bench.train_config(settings, name, tmp_path)))
        for name in ("pseudo", "nogpseudo", "nog")
    }
    assert configs["nogpseudo"].data == configs["pseudo"].data  # same labels, same sampler
    assert configs["nogpseudo"].data.sources[0].kind == "pseudo"
    assert configs["nogpseudo"].model.granularity is False and configs["pseudo"].model.granularity is True
    assert configs["nogpseudo"].model.sam2 == configs["nog"].model.sam2  # the architecture of (c)
    for key in ("steps", "batch_size", "lr", "max_prompts", "correction_clicks"):
        assert getattr(configs["nogpseudo"], key) == getattr(configs["pseudo"], key)


def test_bench_pseudo_scenes_mines_its_own_folders_for_b_and_e_only(tmp_path):
    """--pseudo-scenes N: runs (b) / (e) read the labels of training seeds 0..N-1 (images_N / pseudo_N) while
    (a) / (c) keep --train-scenes; 0 keeps the earlier folders (images / pseudo, --train-scenes images)."""
    from granseg.train.trainer import load_train_config

    bench = _bench()
    default = bench.BenchSettings(work_dir=str(tmp_path), train_scenes=40)
    assert bench.pseudo_folders(default, tmp_path) == (tmp_path / "images", tmp_path / "pseudo", 40)
    settings = bench.BenchSettings(work_dir=str(tmp_path), train_scenes=4000, pseudo_scenes=1000)
    images, labels, count = bench.pseudo_folders(settings, tmp_path)
    assert (images, labels, count) == (tmp_path / "images_1000", tmp_path / "pseudo_1000", 1000)
    labels.mkdir()
    (labels / "a.json").write_text("{}")
    for name in ("pseudo", "nogpseudo"):
        source = load_train_config(json.dumps(bench.train_config(settings, name, tmp_path))).data.sources[0]
        assert (source.kind, Path(source.folder), Path(source.images)) == ("pseudo", labels, images)
    synth = load_train_config(json.dumps(bench.train_config(settings, "synth", tmp_path))).data.sources[0]
    assert (synth.kind, synth.num_scenes) == ("synth", 4000)
    try:
        bench.pseudo_folders(bench.BenchSettings(pseudo_scenes=-1), tmp_path)
    except SystemExit as error:
        assert "--pseudo-scenes" in str(error)
    else:
        raise AssertionError("a negative --pseudo-scenes was accepted")


def test_bench_mining_reports_its_cpu_apart_and_reuses_the_labels(tmp_path, monkeypatch):
    """The engine really mines the saved training images (one label file per image); its CPU seconds are kept
    next to the labels, so a second bench run that reuses the folder reports the same cost without mining."""
    bench = _bench()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    images, labels = tmp_path / "images_2", tmp_path / "pseudo_2"
    bench.save_train_images(images, 2)
    assert sorted(p.name for p in images.iterdir()) == ["scene_00000.png", "scene_00001.png"]
    wall, cpu = bench.run_pseudo_label(images, labels)
    manifest = [json.loads(line) for line in (labels / "manifest.jsonl").read_text().splitlines()]
    assert sorted(entry["output"] for entry in manifest) == ["scene_00000.json", "scene_00001.json"]
    assert all(entry["status"] == "ok" and entry["masks"] > 0 for entry in manifest)
    assert 0 < cpu < 600 and wall > 0
    cost = json.loads((tmp_path / "pseudo_2_cpu_seconds.txt").read_text())
    assert cost == {"cpu_seconds": cpu, "wall_seconds": wall}
    stamp = (labels / "manifest.jsonl").stat().st_mtime_ns
    assert bench.run_pseudo_label(images, labels) == (wall, cpu)  # the recorded cost of the reused folder
    assert (labels / "manifest.jsonl").stat().st_mtime_ns == stamp  # reused, not re-mined
    report = sys.modules["unsamv2_train_report"]  # the bench's report module (imported by the bench)
    text = report._mined({"pseudo_images": 2, "pseudo_seconds": wall, "pseudo_cpu_seconds": cpu})
    assert "seeds 0-1 (2 images" in text and f"{cpu / 2:.2f} s CPU / image" in text
    assert report._mined({}) == "none (no run on pseudo-labels)"
    (tmp_path / "pseudo_2_cpu_seconds.txt").unlink()  # labels mined outside the bench: cost unknown, not 0
    wall, cpu = bench.run_pseudo_label(images, labels)
    assert cpu != cpu and wall != wall
    text = report._mined({"pseudo_images": 2, "pseudo_seconds": wall, "pseudo_cpu_seconds": cpu})
    assert text.endswith("cost not recorded (labels mined before this run)")
