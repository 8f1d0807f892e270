"""pseudo-label under stress (issue 12): memory budget, one run per folder, workers that die with their parent,
only our own temporaries cleaned, failed images reported by the exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from granseg.errors import InputError
from granseg.io.files import TEMP_PREFIX
from granseg.pseudo.lock import LOCK_FILE, OutputLock
from granseg.pseudo.memory import plan_memory
from granseg.pseudo.pipeline import PseudoLabelConfig, process_image, run_pipeline

REPO_ROOT = Path(__file__).resolve().parents[1]
FAST = dict(divide_long_side=96, conquer_long_side=64, num_cuts=2, split_cuts=2, refine_segments=200)


def write_scenes(folder: Path, count: int, size=96) -> list[Path]:
    import cv2

    from granseg.synth import SynthConfig, generate_scene

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(count):
        scene = generate_scene(seed, SynthConfig(size=size))
        path = folder / f"scene_{seed:02d}.png"
        cv2.imwrite(str(path), scene.image[..., ::-1])
        paths.append(path)
    return paths


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = task / "children"
            if children.exists():
                for child in children.read_text().split():
                    found.append(int(child))
                    todo.append(int(child))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def start_cli(images: Path, out: Path, config: Path, workers: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "granseg", "pseudo-label", str(images), "--out", str(out)]
    command += ["--config", str(config), "--workers", str(workers), "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# ----------------------------------------------------------------------------------------------- 3. memory
def test_masks_stay_at_working_size_until_encoded(tmp_path):
    """Peak Python-tracked memory of one 3 MP image stays far below K full-size masks (15 masks here: the
    engine used to stack them all at 2000 x 1500 before encoding, ~100 MB)."""
    import cv2

    from granseg.synth import SynthConfig, generate_scene

    scene = generate_scene(0, SynthConfig(size=(150, 200)))
    big = cv2.resize(scene.image, (2000, 1500), interpolation=cv2.INTER_NEAREST)
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), big[..., ::-1])
    config = PseudoLabelConfig(**FAST, work_long_side=256).to_dict()
    assert process_image(str(path), str(tmp_path), config)["status"] == "ok"  # imports, caches
    tracemalloc.start()
    try:
        result = process_image(str(path), str(tmp_path), config)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result["status"] == "ok" and result["masks"] >= 10
    assert peak < 20 * 2000 * 1500, f"peak {peak / 2**20:.0f} MB"
    document = json.loads((tmp_path / "big.json").read_text())
    assert document["image"]["height"] == 1500 and document["annotations"][0]["segmentation"]["size"] == [
        1500,
        2000,
    ]


def test_memory_plan_reduces_then_refuses():
    full = plan_memory(3000, 4000, 1024, 2048)
    assert full.decode_long_side is None and full.work_long_side == 1024
    reduced = plan_memory(6000, 8000, 1024, 700)
    assert reduced.decode_long_side is not None and reduced.work_long_side < 1024
    assert reduced.estimate_mb <= 700
    with pytest.raises(InputError, match="memory budget"):
        plan_memory(6000, 8000, 1024, 160)
    assert plan_memory(6000, 8000, 1024, 0).decode_long_side is None  # 0 = no budget


def test_budget_reduces_one_image_and_fails_another(tmp_path):
    import cv2

    from granseg.pseudo.memory import estimate_mb

    images = tmp_path / "images"
    write_scenes(images, 1, size=96)
    big = cv2.resize(cv2.imread(str(images / "scene_00.png")), (1600, 1200), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(images / "big.jpg"), big)
    budget = int(estimate_mb(1200, 1600, 1024, None)) - 1  # the big photo does not fit at full size
    config = PseudoLabelConfig(**FAST, memory_budget_mb=budget)
    summary = run_pipeline(images, tmp_path / "out", config)
    assert summary["done"] == 2 and summary["failed"] == 0
    entries = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    reduced = {e["image"]: e.get("work_long_side") for e in entries}
    assert reduced["scene_00.png"] is None and reduced["big.jpg"] < 1024
    document = json.loads((tmp_path / "out" / "big.json").read_text())
    assert document["annotations"][0]["segmentation"]["size"] == [1200, 1600]  # full size all the same
    small_only = int(estimate_mb(96, 96, 1024, None)) + 1  # the 96 px scene fits, the photo does not at all
    summary = run_pipeline(images, tmp_path / "tiny", PseudoLabelConfig(**FAST, memory_budget_mb=small_only))
    assert summary["failed"] == 1 and "memory budget" in summary["failures"][0]["error"]
    assert summary["done"] == 1


def test_memory_error_fails_one_image_not_the_run(tmp_path, monkeypatch):
    import granseg.pseudo.pipeline as pipeline

    images = tmp_path / "images"
    write_scenes(images, 3)
    real = pipeline.label_at_work_size

    def exhausted(image, config, image_path=None, *args, **kwargs):
        if image_path is not None and image_path.name == "scene_01.png":
            raise MemoryError()
        return real(image, config, image_path, *args, **kwargs)

    monkeypatch.setattr(pipeline, "label_at_work_size", exhausted)
    summary = run_pipeline(images, tmp_path / "out", PseudoLabelConfig(**FAST))
    assert summary["done"] == 2 and summary["failed"] == 1
    assert (
        summary["failures"][0]["image"] == "scene_01.png" and "MemoryError" in summary["failures"][0]["error"]
    )


# ----------------------------------------------------------------------------------------------- 4. orphans
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_exit_when_the_parent_is_killed(tmp_path, sig):
    images = tmp_path / "images"
    write_scenes(images, 12, size=160)
    config = tmp_path / "config.json"
    PseudoLabelConfig(**FAST).to_json(config)
    process = start_cli(images, tmp_path / "out", config, workers=2)
    deadline = time.time() + 60
    workers: list[int] = []
    while time.time() < deadline and process.poll() is None:
        workers = [p for p in descendants(process.pid) if "spawn" in Path(f"/proc/{p}/cmdline").read_text()]
        if len(workers) >= 2:
            break
        time.sleep(0.05)
    assert len(workers) >= 2, "the workers never started"
    everyone = descendants(process.pid)  # the workers and multiprocessing's resource tracker
    os.kill(process.pid, sig)
    process.communicate(timeout=30)
    deadline = time.time() + 15
    while time.time() < deadline and any(alive(p) for p in everyone):
        time.sleep(0.1)
    survivors = [p for p in everyone if alive(p)]
    for pid in survivors:  # do not leak them into the rest of the test session
        os.kill(pid, signal.SIGKILL)
    assert not survivors


# ----------------------------------------------------------------------------------------------- 5. lock
def test_second_run_into_one_folder_stops_naming_the_holder(tmp_path, capsys):
    from granseg.cli import main

    images = tmp_path / "images"
    write_scenes(images, 1)
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from granseg.pseudo.lock import OutputLock; "
            "OutputLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)",
            str(out),
        ],
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == b"held"
        start = time.perf_counter()
        with pytest.raises(InputError, match=f"PID {holder.pid}"):
            run_pipeline(images, out, PseudoLabelConfig(**FAST))
        assert time.perf_counter() - start < 5
        assert main(["pseudo-label", str(images), "--out", str(out), "--quiet"]) == 2
        assert f"PID {holder.pid}" in capsys.readouterr().err
        assert not (out / "manifest.jsonl").exists()
    finally:
        holder.kill()  # a crash: the kernel releases the flock
        holder.wait()
    summary = run_pipeline(images, out, PseudoLabelConfig(**FAST))
    assert summary["done"] == 1
    with OutputLock(out):  # released after the run
        assert (out / LOCK_FILE).read_text().strip() == str(os.getpid())


# ----------------------------------------------------------------------------------------------- 2. temporaries
def test_pseudo_label_keeps_the_users_tmp_files_and_removes_its_own(tmp_path):
    images = tmp_path / "images"
    write_scenes(images, 1)
    out = tmp_path / "out"
    (out / "viz").mkdir(parents=True)
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    users = [out / ".draft.tmp", out / ".scene_00.json.1234.tmp", out / "viz" / ".mine.tmp"]
    ours = [out / f"{TEMP_PREFIX}{process.pid}-x.tmp", out / "viz" / f"{TEMP_PREFIX}{process.pid}-y.tmp"]
    for path in users + ours:
        path.write_text("keep me")
    run_pipeline(images, out, PseudoLabelConfig(**FAST))
    assert all(p.read_text() == "keep me" for p in users)
    assert not any(p.exists() for p in ours)


# ----------------------------------------------------------------------------------------------- 8. exit code
def test_cli_exits_1_and_counts_when_some_images_failed(tmp_path, capsys):
    from granseg.cli import main

    images = tmp_path / "images"
    write_scenes(images, 2)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    config = tmp_path / "config.json"
    PseudoLabelConfig(**FAST).to_json(config)
    code = main(
        ["pseudo-label", str(images), "--out", str(tmp_path / "out"), "--config", str(config), "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == 1 and "1 of 3 images failed" in err
    assert sorted(p.name for p in (tmp_path / "out").glob("scene_*.json")) == [
        "scene_00.json",
        "scene_01.json",
    ]


def test_config_with_wrong_types_is_an_input_error():
    with pytest.raises(InputError, match="num_cuts"):
        PseudoLabelConfig.from_dict({"num_cuts": "x"}).validate()
    with pytest.raises(InputError, match="extra_taus"):
        PseudoLabelConfig.from_dict({"extra_taus": [0.3, "y"]}).validate()
    assert PseudoLabelConfig.from_dict({"ncut_tau": 1}).validate().ncut_tau == 1


def test_reduced_decode_of_a_jpeg_keeps_the_reported_size(tmp_path):
    import cv2

    from granseg.io.images import load_image, read_image_size

    pixels = np.random.default_rng(0).integers(0, 256, (1200, 1600, 3), dtype=np.uint8)
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), pixels)
    assert read_image_size(path) == (1200, 1600)
    small = load_image(path, reduce_long_side=400)
    assert small.shape == (300, 400, 3)
    assert load_image(path).shape == (1200, 1600, 3)
