"""``granseg video``: outputs, several objects, and bad input (error: ..., exit 2, only complete files)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from granseg.cli import main
from granseg.cli.video import parse_obj
from granseg.eval.video import jaccard
from granseg.synth.motion import generate_moving_scene

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def clip():
    return generate_moving_scene(seed=1, n_frames=8, size=96)


def _folder(tmp_path, frames):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def _point(clip, node, t=0):
    x, y = clip.point(node, t)
    return f"{x:g},{y:g}"


def test_parse_obj():
    spec = parse_obj("10,20; neg=5,6 ;g=0.3;f=4;30,40")
    assert spec.points == [(10, 20), (30, 40)] and spec.negatives == [(5, 6)]
    assert spec.granularity == 0.3 and spec.frame == 4
    for bad in ("g=0.3", "10,20;h=1", "10,20;f=x"):
        with pytest.raises(Exception, match="--obj"):
            parse_obj(bad)


def test_one_object_writes_a_png_per_frame(tmp_path, capsys, clip):
    folder = _folder(tmp_path, clip.frames)
    node = clip.objects[1].part_ids[0]  # the front object: never hidden
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        capsys,
        "video",
        str(folder),
        "--model",
        "hierarchy",
        "--point",
        _point(clip, node, 3),
        "--frame",
        "3",
        "--granularity",
        "1.0",
        "--out",
        str(out),
        "--overlay",
        str(tmp_path / "o.gif"),
        "--quiet",
    )
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"f{i:03d}.png" for i in range(8)]
    masks = [cv2.imread(str(out / n), cv2.IMREAD_UNCHANGED) for n in names]
    assert set(np.unique(masks[5])) <= {0, 255}
    assert jaccard(clip.masks[node][5], masks[5] > 0) > 0.7
    assert (tmp_path / "o.gif").stat().st_size > 0


def test_several_objects_get_their_ids(tmp_path, capsys, clip):
    folder = _folder(tmp_path, clip.frames)
    a, b = clip.objects[
        1
    ].part_ids  # g = 0.5: the part (g = 1 answers the whole object since issue 18's click work)
    out = tmp_path / "out"
    code, _, err = run_cli(
        capsys,
        "video",
        str(folder),
        "--model",
        "hierarchy",
        "--obj",
        f"{_point(clip, a)};g=0.5",
        "--obj",
        f"{_point(clip, b, 4)};g=0.5;f=4",
        "--out",
        str(out),
        "--quiet",
    )
    assert code == 0, err
    label = cv2.imread(str(out / "f002.png"), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(label)) == {0, 1, 2}, "object 2 (prompted on frame 4) reaches frame 2 backward"
    assert jaccard(clip.masks[a][2], label == 1) > 0.6 and jaccard(clip.masks[b][2], label == 2) > 0.6


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such folder"),
        ("frame_range", "out of range"),
        ("outside", "outside"),
        ("mixed_sizes", "one size"),
        ("unreadable", "cannot be read"),
        ("not_empty", "not an empty folder"),
    ],
)
def test_bad_input_is_one_line_and_leaves_complete_files(tmp_path, capsys, clip, case, message):
    folder = _folder(tmp_path, clip.frames)
    out = tmp_path / "out"
    args = ["--point", "40,40"]
    if case == "missing":
        folder = tmp_path / "nope"
    elif case == "frame_range":
        args += ["--frame", "8"]
    elif case == "outside":
        args = ["--point", "400,40"]
    elif case == "mixed_sizes":
        cv2.imwrite(str(folder / "f005.png"), np.zeros((60, 96, 3), np.uint8))
    elif case == "unreadable":
        (folder / "f005.png").write_bytes(b"\x89PNG broken")
    elif case == "not_empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    code, stdout, err = run_cli(
        capsys,
        "video",
        str(folder),
        "--model",
        "hierarchy",
        *args,
        "--direction",
        "forward",
        "--out",
        str(out),
    )
    assert code == 2 and err.startswith("error:") and message in err and len(err.strip().splitlines()) == 1
    if case in ("mixed_sizes", "unreadable"):
        written = sorted(p.name for p in out.iterdir())
        assert written == [f"f{i:03d}.png" for i in range(5)], "frames before the bad one, no temp files"
        for name in written:
            assert cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED).shape == (96, 96)
    elif case == "not_empty":
        assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    else:
        assert not out.exists()


def test_eval_video_track_and_reclick(tmp_path, capsys):
    """`eval video` on a synthetic clip in the DAVIS layout, with both propagation modes."""
    import json

    scene = generate_moving_scene(seed=2, n_frames=10, size=96)
    node = scene.objects[1].part_ids[0]
    for t in range(10):
        frame = cv2.cvtColor(scene.frames[t], cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(_mkdir(tmp_path / "davis" / "JPEGImages" / "480p" / "s") / f"{t:05d}.png"), frame)
        mask = scene.masks[node][t].astype(np.uint8) * 255
        cv2.imwrite(str(_mkdir(tmp_path / "davis" / "Annotations" / "480p" / "s") / f"{t:05d}.png"), mask)
    scores = {}
    for mode in ("track", "reclick"):
        out = tmp_path / mode
        code, _, err = run_cli(
            capsys,
            "eval",
            "video",
            "--model",
            "hierarchy",
            "--data-root",
            str(tmp_path / "davis"),
            "--propagation",
            mode,
            "--out",
            str(out),
            "--quiet",
        )
        assert code == 0, err
        scores[mode] = json.loads((out / "metrics.json").read_text())["metrics"]["J"]
    # The session tracker (motion first mask + flow + GrabCut, GrabCut seeded) scores J 0.868 on this clip; the
    # earlier snapping tracker scored above 0.9 here but 0.151 J&F on DAVIS (now 0.369): a known trade.
    assert scores["track"] > 0.85 and 0.0 <= scores["reclick"] <= 1.0, scores


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.parametrize("case", ["out_is_input", "overlay_is_video"])
def test_never_overwrites_an_input(tmp_path, capsys, clip, case):
    folder = _folder(tmp_path, clip.frames)
    source, out, overlay = folder, tmp_path / "out", []
    if case == "out_is_input":
        out = folder
    else:
        source = tmp_path / "clip.mp4"
        writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 96))
        for frame in clip.frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        overlay = ["--overlay", str(tmp_path / "." / "clip.mp4")]
    before = {p: p.read_bytes() for p in [*folder.iterdir(), source] if p.is_file()}
    code, _, err = run_cli(
        capsys, "video", str(source), "--model", "hierarchy", "--point", "40,40", "--out", str(out), *overlay
    )
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    assert ("not an empty folder" if case == "out_is_input" else "refusing to overwrite") in err
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(folder.iterdir()) == sorted(p for p in before if p.parent == folder)
    if case != "out_is_input":
        assert not out.exists()


def test_a_failed_write_leaves_complete_frames_and_no_temporaries(tmp_path, capsys, clip, monkeypatch):
    """The fourth frame's write fails (disk full): exit 2, frames 0-2 complete, nothing else in the folder."""
    import errno

    import granseg.io.outputs as outputs_module

    real_write_temp, calls = outputs_module.write_temp, []

    def failing_write_temp(directory, data, tag=""):
        calls.append(directory)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_temp(directory, data, tag)

    monkeypatch.setattr(outputs_module, "write_temp", failing_write_temp)
    folder = _folder(tmp_path, clip.frames)
    out = tmp_path / "out"
    code, _, err = run_cli(
        capsys,
        "video",
        str(folder),
        "--model",
        "hierarchy",
        "--point",
        _point(clip, clip.objects[1].node_id),
        "--out",
        str(out),
    )
    assert code == 2 and err.startswith("error: cannot write") and "No space left" in err, err
    written = sorted(p.name for p in out.iterdir())
    assert written == ["f000.png", "f001.png", "f002.png"], written
    for name in written:
        assert cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED).shape == (96, 96)
