"""Hostile and careless uses of the command line (issue 12): nothing lost, nothing clobbered.

Each case is a way a user can point an output at the wrong place, kill a write half-way, fill the disk, or feed a
file that is not what it claims; each must end with one ``error:`` line and exit 2 (or succeed safely), leave no
partial output set, and never replace a file the command did not create.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from granseg.cli import main
from granseg.errors import OutputError
from granseg.io.files import TEMP_PREFIX, atomic_write_bytes, clean_stale_temporaries
from granseg.io.outputs import OutputSet, format_granularity

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> bool:
    lines = [line for line in err.splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err


@pytest.fixture()
def image(tmp_path) -> Path:
    pixels = np.full((60, 80, 3), 120, np.uint8)
    pixels[15:45, 20:60] = (200, 40, 40)
    path = tmp_path / "scene.png"
    Image.fromarray(pixels).save(path)
    return path


def segment(image: Path, *extra: str) -> list[str]:
    return ["segment", str(image), "--point", "40,30", "--model", "hierarchy", "--quiet", *extra]


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ------------------------------------------------------------------------ 1. special files, clobbering
def test_dev_null_is_written_through_not_replaced(capsys, image):
    before = os.stat("/dev/null")
    code, _, err = run_cli(capsys, *segment(image, "--out", "/dev/null", "--format", "json"))
    after = os.stat("/dev/null")
    assert code == 0, err
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


def test_fifo_is_written_through_when_read_and_refused_when_not(capsys, tmp_path, image):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    code, _, err = run_cli(capsys, *segment(image, "--out", fifo, "--format", "json"))
    assert code == 2 and one_error_line(err) and "nobody reads" in err
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    time.sleep(0.2)  # the reader is blocked in open() now
    code, _, err = run_cli(capsys, *segment(image, "--out", fifo, "--format", "json"))
    reader.join(timeout=30)
    assert code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert json.loads(received[0])[0]["segmentation"]["size"] == [60, 80]


def test_symlink_output_writes_its_target_and_keeps_the_link(capsys, tmp_path, image):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    code, _, err = run_cli(capsys, *segment(image, "--out", link))
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text())[0]["segmentation"]["size"] == [60, 80]


def test_out_dash_writes_json_to_stdout(capsys, tmp_path, image):
    code, out, err = run_cli(capsys, *segment(image, "--out", "-"))
    assert code == 0, err
    assert json.loads(out)[0]["granularity"] == 1.0
    assert not (tmp_path / "-").exists() and not Path("-").exists()
    code, _, err = run_cli(capsys, *segment(image, "--out", "-", "--format", "png"))
    assert code == 2 and one_error_line(err)


@pytest.mark.parametrize("how", ["same", "relative", "symlink", "hardlink"])
def test_output_equal_to_the_input_is_refused(capsys, tmp_path, image, how, monkeypatch):
    original = image.read_bytes()
    if how == "same":
        out = image
    elif how == "relative":
        monkeypatch.chdir(tmp_path)
        out = Path("sub/../scene.png")
        (tmp_path / "sub").mkdir()
    elif how == "symlink":
        out = tmp_path / "alias.png"
        out.symlink_to(image)
    else:
        out = tmp_path / "hard.png"
        os.link(image, out)
    code, _, err = run_cli(capsys, *segment(image, "--out", out))
    assert code == 2 and one_error_line(err) and "input image" in err
    assert image.read_bytes() == original


def test_overlay_equal_to_out_is_refused_and_nothing_written(capsys, tmp_path, image):
    out = tmp_path / "mask.png"
    code, _, err = run_cli(capsys, *segment(image, "--out", out, "--overlay", out))
    assert code == 2 and one_error_line(err)
    assert not out.exists()


def test_granularities_get_exact_distinct_file_names(capsys, tmp_path, image):
    out = tmp_path / "mask.png"
    code, _, err = run_cli(capsys, *segment(image, "--out", out, "--granularity", "0.11,0.14,0.95"))
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.glob("mask_g*.png")) == [
        "mask_g0.11.png",
        "mask_g0.14.png",
        "mask_g0.95.png",
    ]
    assert [format_granularity(g) for g in (0.1, 1.0, 0.3 + 1e-12, 0.125)] == ["0.1", "1.0", "0.3", "0.125"]


def test_two_granularities_with_one_file_name_are_refused(capsys, tmp_path, image):
    out = tmp_path / "mask.png"
    code, _, err = run_cli(capsys, *segment(image, "--out", out, "--granularity", "0.5,0.50001"))
    assert code == 2 and one_error_line(err) and "two outputs" in err
    assert not list(tmp_path.glob("mask*"))


# ------------------------------------------------------------------------ 2. all-or-nothing, filesystem errors
KILLED_WRITER = r"""
import os, sys, time
import granseg.io.outputs as outputs
phase = sys.argv[2]
real_replace, real_write_temp = os.replace, outputs.write_temp
calls = {"replace": 0, "temp": 0}
def slow_replace(a, b):
    real_replace(a, b)
    if str(b).endswith(".png"):
        calls["replace"] += 1
        if phase == "rename" and calls["replace"] == 3:
            print("ready", flush=True); time.sleep(60)
def slow_write_temp(*args, **kwargs):
    calls["temp"] += 1
    if phase == "stage" and calls["temp"] == 6:
        print("ready", flush=True); time.sleep(60)
    return real_write_temp(*args, **kwargs)
outputs.os.replace = slow_replace
outputs.write_temp = slow_write_temp
out = outputs.OutputSet()
for i in range(10):
    out.put(os.path.join(sys.argv[1], f"mask_{i}.png"), b"png %d" % i)
out.commit()
"""


@pytest.mark.parametrize("phase", ["stage", "rename"])
def test_sigkill_mid_write_leaves_no_partial_set(tmp_path, phase):
    folder = tmp_path / "out"
    folder.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(folder), phase], stdout=subprocess.PIPE, env=env
    )
    assert process.stdout.readline().strip() == b"ready"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert any(p.name.startswith(TEMP_PREFIX) for p in folder.iterdir())  # killed with debris behind
    clean_stale_temporaries(folder)  # what the next run does first
    names = sorted(p.name for p in folder.iterdir())
    if phase == "stage":
        assert names == []  # no journal yet: the set is dropped whole
    else:
        assert names == [f"mask_{i}.png" for i in range(10)]  # journal: the set is completed whole
        assert (folder / "mask_7.png").read_bytes() == b"png 7"


def test_stale_cleanup_removes_only_our_temporaries_of_dead_processes(tmp_path):
    keep = [
        tmp_path / ".notes.tmp",
        tmp_path / ".mask.png.abc.tmp",
        tmp_path / f"{TEMP_PREFIX}{os.getpid()}-x.tmp",
        tmp_path / f"{TEMP_PREFIX}{os.getppid()}-x.tmp",
        tmp_path / f"{TEMP_PREFIX}notapid.tmp",
    ]
    stale = tmp_path / f"{TEMP_PREFIX}{dead_pid()}-abc.tmp"
    for path in [*keep, stale]:
        path.write_text("x")
    assert clean_stale_temporaries(tmp_path) == [stale]
    assert all(p.exists() for p in keep) and not stale.exists()


def test_failing_overlay_write_leaves_no_masks(capsys, tmp_path, image, monkeypatch):
    import granseg.io.outputs as outputs

    real = outputs.write_temp
    calls = []

    def fail_second(directory, data, tag=""):
        calls.append(directory)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(directory, data, tag)

    monkeypatch.setattr(outputs, "write_temp", fail_second)
    out, overlay = tmp_path / "mask.png", tmp_path / "overlay.png"
    code, _, err = run_cli(capsys, *segment(image, "--out", out, "--overlay", overlay))
    assert code == 2 and one_error_line(err) and "No space left" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.png"]


@pytest.mark.parametrize("failure", ["enospc", "erofs", "name-too-long", "parent-is-a-file"])
def test_filesystem_errors_are_one_error_line(capsys, tmp_path, image, monkeypatch, failure):
    out = tmp_path / "mask.json"
    if failure in ("enospc", "erofs"):
        code_ = errno.ENOSPC if failure == "enospc" else errno.EROFS

        def broken_fsync(fd):
            raise OSError(code_, os.strerror(code_))

        monkeypatch.setattr(os, "fsync", broken_fsync)
    elif failure == "name-too-long":
        out = tmp_path / ("m" * 300 + ".json")
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "mask.json"
    code, _, err = run_cli(capsys, *segment(image, "--out", out))
    assert code == 2 and one_error_line(err), err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX) or p.suffix == ".json"]


def test_atomic_write_errors_are_output_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="a file of that name exists|not a folder|Not a directory"):
        atomic_write_bytes(tmp_path / "file" / "a.bin", b"1")
    with pytest.raises(OutputError, match="folder"):
        atomic_write_bytes(tmp_path, b"1")
    with pytest.raises(OutputError, match="two outputs"):
        outputs = OutputSet()
        outputs.reserve(tmp_path / "a.png")
        outputs.reserve(tmp_path / "." / "a.png")


# ------------------------------------------------------------------------ 6. size and header before the pixels
def test_sparse_4gb_file_is_rejected_fast(capsys, tmp_path):
    from granseg.errors import ImageDecodeError
    from granseg.io import load_image

    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as handle:
        handle.write(b"\xff\xd8\xff\xe0")
        handle.truncate(4 * 2**30)
    start = time.perf_counter()
    with pytest.raises(ImageDecodeError, match="above the limit"):
        load_image(huge)
    assert time.perf_counter() - start < 1.0
    zeros = tmp_path / "zeros.jpg"
    with open(zeros, "wb") as handle:
        handle.truncate(4 * 2**30)
    start = time.perf_counter()
    with pytest.raises(ImageDecodeError, match="not a supported image"):
        load_image(zeros, max_bytes=None)  # no size limit: the signature check still reads 16 bytes only
    assert time.perf_counter() - start < 1.0
    code, _, err = run_cli(capsys, "segment", huge, "--point", "1,1", "--out", tmp_path / "m.png")
    assert code == 2 and one_error_line(err) and "--max-bytes" in err


def test_max_bytes_and_max_pixels_limits(capsys, tmp_path, image):
    size = image.stat().st_size
    code, _, err = run_cli(capsys, *segment(image, "--out", tmp_path / "a.png", "--max-bytes", str(size - 1)))
    assert code == 2 and "above the limit" in err
    code, _, err = run_cli(capsys, *segment(image, "--out", tmp_path / "a.png", "--max-bytes", str(size)))
    assert code == 0, err
    for flag in ("--max-pixels", "--max-bytes"):
        code, _, err = run_cli(capsys, *segment(image, "--out", tmp_path / "b.png", flag, "0"))
        assert code == 2 and one_error_line(err) and ">= 1" in err


# ------------------------------------------------------------------------ 7. grabcut-baseline
GRABCUT_FLAT = r"""
import numpy as np
from granseg.models.registry import load_model
predictor = load_model("grabcut-baseline").create_predictor()
for value in (7, 255):
    predictor.set_image(np.full((300, 400, 3), value, np.uint8))
    for point in ((0, 0), (399, 299), (399, 0)):
        mask = predictor.predict([point], [1]).masks[0]
        assert mask[point[1], point[0]], point
print("ok")
"""


def test_grabcut_flat_image_clicked_in_a_corner_returns():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run(
        [sys.executable, "-c", GRABCUT_FLAT], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_grabcut_honours_the_box(capsys, tmp_path, image):
    from granseg.io import load_image
    from granseg.predict.grabcut import GrabCutBaselinePredictor

    predictor = GrabCutBaselinePredictor()
    predictor.set_image(load_image(image))
    mask = predictor.predict(box=(18, 13, 62, 47)).masks[0]
    assert mask[20:40, 25:55].mean() > 0.9  # the red rectangle
    assert not mask[:13].any() and not mask[:, :18].any() and not mask[48:].any()
    out = tmp_path / "box.png"
    code, _, err = run_cli(
        capsys, "segment", image, "--box", "18,13,62,47", "--model", "grabcut-baseline", "--out", out
    )
    assert code == 0, err
    assert np.asarray(Image.open(out)).any()


def test_grabcut_time_is_bounded(monkeypatch):
    import granseg.predict.grabcut as grabcut

    rng = np.random.default_rng(0)
    predictor = grabcut.GrabCutBaselinePredictor(
        grabcut.GrabCutBaselineConfig(iterations=50, max_seconds=0.0)
    )
    predictor.set_image(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    calls = []
    real = grabcut.GrabCutBaselinePredictor._grabcut

    def counted(self, seeds):
        import cv2

        original = cv2.grabCut

        def one(*args):
            calls.append(args[-2])
            return original(*args)

        monkeypatch.setattr(cv2, "grabCut", one)
        real(self, seeds)

    monkeypatch.setattr(grabcut.GrabCutBaselinePredictor, "_grabcut", counted)
    predictor.predict([[80, 60]], [1])
    assert calls == [1]  # one iteration, then the time limit stops it


def test_eval_baselines_module_still_imports():
    from granseg.eval.baselines import GrabCutBaselinePredictor
    from granseg.predict.grabcut import GrabCutBaselinePredictor as moved

    assert GrabCutBaselinePredictor is moved


# ------------------------------------------------------------------------ 8. smaller ones
def test_bad_option_values_are_one_error_line(capsys, tmp_path, image):
    binary = tmp_path / "config.bin"
    binary.write_bytes(b"\x80\x81\x00\xff{")
    cases = [
        segment(
            image,
            "--out",
            tmp_path / "a.png",
            "--model",
            "unsamv2-tiny-random",
            "--embedding-cache-gb",
            "nan",
        ),
        segment(
            image,
            "--out",
            tmp_path / "a.png",
            "--model",
            "unsamv2-tiny-random",
            "--embedding-cache",
            str(binary),
        ),
        ["train", "--config", str(binary)],
        ["pseudo-label", str(tmp_path), "--out", str(tmp_path / "o"), "--config", '{"num_cuts": "x"}'],
        ["pseudo-label", str(tmp_path), "--out", str(tmp_path / "o"), "--config", '{"thetas": ["a"]}'],
    ]
    for argv in cases:
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and one_error_line(err), (argv, err)
    assert not (tmp_path / "a.png").exists()


def _evil_pickle(path: Path) -> None:
    import torch

    class Payload:
        def __reduce__(self):
            return (print, ("PICKLE EXECUTED",))

    torch.save({"weight": Payload()}, path)


def test_dino_and_gen2seg_folders_with_a_pickled_bin_are_refused(capsys, tmp_path):
    from transformers import Dinov2Config, Dinov2Model, ViTMAEConfig, ViTMAEForPreTraining

    import granseg.models.gen2seg as g2s

    dino = tmp_path / "dino"
    Dinov2Model(Dinov2Config(**g2s.TINY_ARCHITECTURES["dino-vae"]["dino"])).save_pretrained(dino)
    (dino / "model.safetensors").unlink()
    _evil_pickle(dino / "pytorch_model.bin")
    images = tmp_path / "images"
    images.mkdir()
    capsys.readouterr()  # progress bars of save_pretrained
    code, out, err = run_cli(capsys, "pseudo-label", images, "--out", tmp_path / "o", "--features", dino)
    assert code == 2 and one_error_line(err) and "pickled" in err
    mae = tmp_path / "mae"
    arch = g2s.TINY_ARCHITECTURES["mae"]["mae"]
    ViTMAEForPreTraining(ViTMAEConfig(image_size=48, **arch)).save_pretrained(mae)
    (mae / "model.safetensors").unlink()
    _evil_pickle(mae / "pytorch_model.bin")
    capsys.readouterr()
    code, out, err = run_cli(
        capsys, "segment", SAMPLE, "--point", "5,5", "--model", mae, "--out", tmp_path / "m.png"
    )
    assert code == 2 and one_error_line(err), err
    assert "PICKLE EXECUTED" not in out + err


SAMPLE = REPO_ROOT / "granseg" / "assets" / "coffee.jpg"


def test_failed_set_image_forgets_the_previous_image():
    from granseg.errors import InputError
    from granseg.predict.grabcut import GrabCutBaselinePredictor

    predictor = GrabCutBaselinePredictor()
    predictor.set_image(np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(InputError):
        predictor.set_image(np.zeros((20, 20, 7), np.uint8))
    with pytest.raises(InputError, match="set_image"):
        predictor.predict([[5, 5]], [1])


def test_overlay_of_a_huge_photo_is_capped(capsys, tmp_path):
    wide = tmp_path / "wide.png"
    pixels = np.full((300, 5000, 3), 90, np.uint8)
    pixels[100:200, 2000:3000] = 230
    Image.fromarray(pixels).save(wide)
    overlay = tmp_path / "overlay.png"
    code, _, err = run_cli(
        capsys, *segment(wide, "--out", tmp_path / "m.png", "--overlay", overlay, "--granularity", "0.5,1.0")
    )
    assert code == 0, err
    width, height = Image.open(overlay).size
    assert max(width, height) <= 2048 and min(width, height) > 10
    assert Image.open(tmp_path / "m_g0.5.png").size == (5000, 300)  # the masks stay full size


def test_auto_writes_to_stdout_and_refuses_clobbering(capsys, tmp_path, image):
    base = [
        "auto",
        str(image),
        "--model",
        "hierarchy",
        "--points-per-side",
        "4",
        "--granularity",
        "0.5",
        "--quiet",
    ]
    code, out, err = run_cli(capsys, *base, "--out", "-")
    assert code == 0, err
    assert isinstance(json.loads(out), list)
    code, _, err = run_cli(capsys, *base, "--out", image, "--format", "json")
    assert code == 2 and one_error_line(err) and "input image" in err
    target = tmp_path / "masks.json"
    code, _, err = run_cli(capsys, *base, "--out", target, "--overlay", target)
    assert code == 2 and one_error_line(err) and not target.exists()


@pytest.mark.parametrize("kind", ["protocol-4 pickle", "pickle with code"])
def test_legacy_pickles_give_only_the_error_line(capsys, tmp_path, kind):
    import pickle

    path = tmp_path / "legacy.pt"
    if kind == "protocol-4 pickle":
        path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    else:
        _evil_pickle(path)
    command = [
        sys.executable,
        "-m",
        "granseg",
        "segment",
        str(SAMPLE),
        "--point",
        "5,5",
        "--model",
        str(path),
    ]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "m.png")],
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and one_error_line(done.stderr), done.stderr  # no torch warning before it
    assert "\x1b[" not in done.stderr and "PICKLE EXECUTED" not in done.stdout + done.stderr
