"""Pseudo-label engine pipeline: JSON output and schema, resume, killed workers and jobs, Dask, the CLI, external
ground truth, version checks (split from tests/test_pseudo.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pseudo_helpers import FAST

from granseg.pseudo.features import DinoFeatures
from granseg.pseudo.pipeline import PseudoLabelConfig, run_pipeline

REPO_ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------- pipeline
def _write_scenes(folder: Path, count: int, size: int = 96) -> list[Path]:
    import cv2

    from granseg.synth import SynthConfig, generate_scene

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(count):
        scene = generate_scene(seed=seed, config=SynthConfig(size=size))
        path = folder / f"scene_{seed:02d}.png"
        cv2.imwrite(str(path), scene.image[..., ::-1])
        paths.append(path)
    return paths


def _outputs(out_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out_dir.glob("*.json")) if p.name.startswith("scene_")}


def test_pipeline_json_schema_pycocotools_failures_and_resume(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    from pycocotools import mask as mask_utils

    from granseg.pseudo.schema import PSEUDO_LABEL_SCHEMA

    images = tmp_path / "images"
    _write_scenes(images, 2)
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (images / "notes.txt").write_text("ignored: not an image extension")
    out = tmp_path / "labels"
    config = PseudoLabelConfig(**FAST)
    summary = run_pipeline(images, out, config, viz=True)
    assert summary["done"] == 2 and summary["failed"] == 1
    failures = json.loads((out / "failures.json").read_text())
    assert [f["image"] for f in failures] == ["broken.jpg"] and "ImageDecodeError" in failures[0]["error"]
    assert PseudoLabelConfig.from_json(out / "config.json") == config
    assert sorted(p.name for p in (out / "viz").iterdir()) == ["scene_00.png", "scene_01.png"]
    for path in sorted(out.glob("scene_*.json")):
        doc = json.loads(path.read_text())
        jsonschema.validate(doc, PSEUDO_LABEL_SCHEMA)
        assert doc["annotations"], f"{path.name}: no masks"
        by_instance: dict[int, list] = {}
        for ann in doc["annotations"]:
            rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
            mask = mask_utils.decode(rle)
            assert mask.shape == (96, 96) and int(mask.sum()) == ann["area"]
            assert ann["is_part"] == (ann["is_conquer"] or not ann["is_divide"] or ann["is_part"])
            assert ann["is_divide"] != ann["is_conquer"]
            by_instance.setdefault(ann["instance_id"], []).append(ann)
        for anns in by_instance.values():
            roots = [a for a in anns if not a["is_part"]]
            assert len(roots) == 1 and roots[0]["granularity"] == 1.0
            assert all(a["granularity"] <= 1.0 for a in anns)
            if len(anns) > 1:
                assert min(a["granularity"] for a in anns) == 0.1
    before = _outputs(out)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("scene_*.json")}
    again = run_pipeline(images, out, config, resume=True)
    assert again["skipped"] == 2 and again["done"] == 0 and again["failed"] == 1
    assert (
        _outputs(out) == before and {p.name: p.stat().st_mtime_ns for p in out.glob("scene_*.json")} == stamps
    )
    from granseg.errors import InputError

    with pytest.raises(InputError, match="--resume"):
        run_pipeline(images, out, config)
    with pytest.raises(InputError, match="different configuration"):
        run_pipeline(images, out, PseudoLabelConfig(**{**FAST, "num_cuts": 3}), resume=True)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _start_cli(images: Path, out: Path, config_path: Path, workers: int, resume: bool = False):
    command = [
        sys.executable,
        "-m",
        "granseg",
        "pseudo-label",
        str(images),
        "--out",
        str(out),
        "--config",
        str(config_path),
        "--workers",
        str(workers),
        "--quiet",
    ]
    if resume:
        command.append("--resume")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _job_with_reference(tmp_path: Path, count: int) -> tuple[Path, Path, Path]:
    """For a CLI job to kill and resume: ``count`` scenes (``tmp_path/images``), the FAST engine config as JSON
    (``tmp_path/config.json``) and the in-process labels of those images with it (``tmp_path/reference``)."""
    images = tmp_path / "images"
    _write_scenes(images, count)
    config_path = tmp_path / "config.json"
    PseudoLabelConfig(**FAST).to_json(config_path)
    reference = tmp_path / "reference"
    run_pipeline(images, reference, PseudoLabelConfig.from_json(config_path))
    return images, config_path, reference


def _resume_cli(images: Path, out: Path, config_path: Path, workers: int) -> None:
    """Runs the CLI job in ``out`` again with ``--resume`` to its end; it must succeed."""
    resumed = _start_cli(images, out, config_path, workers=workers, resume=True)
    _, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr.decode()


def test_kill_a_worker_then_resume_gives_identical_files(tmp_path):
    images, config_path, reference = _job_with_reference(tmp_path, 8)
    out = tmp_path / "killed"
    process = _start_cli(images, out, config_path, workers=2)
    deadline = time.time() + 60
    killed = False
    while time.time() < deadline and process.poll() is None:
        if len(list(out.glob("scene_*.json"))) >= 1:
            workers = [
                pid for pid in _children(process.pid) if "spawn" in Path(f"/proc/{pid}/cmdline").read_text()
            ]
            if workers:
                os.kill(workers[0], signal.SIGKILL)
                killed = True
                break
        time.sleep(0.05)
    process.communicate(timeout=60)
    assert killed, "the run finished before a worker could be killed; make the workload larger"
    assert process.returncode != 0
    assert len(list(out.glob("scene_*.json"))) < 8

    _resume_cli(images, out, config_path, workers=2)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert _outputs(out) == _outputs(reference)
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]
    assert sorted({e["image"] for e in lines if e["status"] == "ok"}) == sorted(
        p.name for p in images.iterdir()
    )


def test_kill_the_whole_job_then_resume(tmp_path):
    images, config_path, reference = _job_with_reference(tmp_path, 6)
    out = tmp_path / "killed"
    process = _start_cli(images, out, config_path, workers=1)
    deadline = time.time() + 60
    while time.time() < deadline and process.poll() is None and len(list(out.glob("scene_*.json"))) < 2:
        time.sleep(0.02)
    process.kill()
    process.communicate(timeout=30)
    (out / "manifest.jsonl").open("a").write('{"image": "scene_05.png", "sta')  # a torn last line
    _resume_cli(images, out, config_path, workers=1)
    assert _outputs(out) == _outputs(reference)


def test_dask_local_cluster_matches_in_process(tmp_path):
    pytest.importorskip("distributed")
    images = tmp_path / "images"
    _write_scenes(images, 2)
    (images / "bad.png").write_bytes(b"nope")
    config = PseudoLabelConfig(**FAST)
    run_pipeline(images, tmp_path / "local", config)
    summary = run_pipeline(images, tmp_path / "dask", config, workers=1, backend="dask")
    assert summary["done"] == 2 and summary["failed"] == 1
    assert _outputs(tmp_path / "dask") == _outputs(tmp_path / "local")


def test_cli_pseudo_label_writes_labels(tmp_path, capsys):
    from granseg.cli import main

    images = tmp_path / "images"
    _write_scenes(images, 1)
    config_path = tmp_path / "config.json"
    PseudoLabelConfig(**FAST).to_json(config_path)
    code = main(
        ["pseudo-label", str(images), "--out", str(tmp_path / "out"), "--config", str(config_path), "--viz"]
    )
    assert code == 0
    assert (tmp_path / "out" / "scene_00.json").is_file() and (
        tmp_path / "out" / "viz" / "scene_00.png"
    ).is_file()
    assert "1 labelled" in capsys.readouterr().err
    assert main(["pseudo-label", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")]) == 2


def test_engine_runs_on_a_tiny_dinov3_with_registers():
    import torch
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    from granseg.pseudo.pipeline import pseudo_label_image
    from granseg.synth import SynthConfig, generate_scene

    torch.manual_seed(0)
    config = DINOv3ViTConfig(
        patch_size=16,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_register_tokens=4,
    )
    extractor = DinoFeatures(DINOv3ViTModel(config))
    image = generate_scene(seed=3, config=SynthConfig(size=128)).image
    engine = PseudoLabelConfig(
        features="unused", divide_long_side=128, conquer_long_side=96, refine_segments=0
    )
    masks, fields = pseudo_label_image(image, engine, extractor=extractor)
    assert masks.shape[1:] == (128, 128) and len(masks) == len(fields) >= 1
    for mask, field in zip(masks, fields):
        assert mask.any() and 0.1 <= field["granularity"] <= 1.0


def test_external_ground_truth_masks_become_instances(tmp_path):
    from granseg.io import decode_rle, encode_rle
    from granseg.synth import SynthConfig, generate_scene

    images = tmp_path / "images"
    _write_scenes(images, 1)
    scene = generate_scene(seed=0, config=SynthConfig(size=96))
    objects = [o.mask for o in scene.objects() if o.mask.mean() > 0.05]
    assert objects
    coco = {
        "images": [{"id": 1, "file_name": "scene_00.png", "height": 96, "width": 96}],
        "annotations": [{"image_id": 1, "segmentation": encode_rle(m), "score": 1.0} for m in objects],
    }
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    config = PseudoLabelConfig(**{**FAST, "refine_segments": 0}, external_masks=str(tmp_path / "gt.json"))
    config.external_only = True
    run_pipeline(images, tmp_path / "out", config)
    doc = json.loads((tmp_path / "out" / "scene_00.json").read_text())
    roots = [
        decode_rle(a["segmentation"]) for a in doc["annotations"] if not a["is_part"] and not a["is_stuff"]
    ]
    assert len(roots) == len(objects)
    for mask in objects:
        assert any((root == mask).all() for root in roots)
    union = np.any(objects, axis=0)
    for ann in doc["annotations"]:  # the stuff pass only covers what the given instances leave
        if ann["is_stuff"]:
            assert not (decode_rle(ann["segmentation"]) & union).any()


def test_resume_refuses_a_config_from_an_earlier_engine_version(tmp_path):
    """A config.json without the newer fields must not be resumed with their (different) defaults."""
    from granseg.errors import InputError

    images = tmp_path / "images"
    _write_scenes(images, 1)
    out = tmp_path / "labels"
    config = PseudoLabelConfig(**FAST)
    run_pipeline(images, out, config)
    saved = json.loads((out / "config.json").read_text())
    del saved["stuff_theta"]
    (out / "config.json").write_text(json.dumps(saved))
    with pytest.raises(InputError, match="earlier engine version"):
        run_pipeline(images, out, config, resume=True)
