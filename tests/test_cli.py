"""The `granseg` command from outside: exit codes, one-line errors, no partial outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from granseg.cli import main
from granseg.io import decode_rle

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def small_image(tmp_path_factory):
    """A 96 x 128 image: a red square with a blue inner square on a gray background."""
    image = np.full((96, 128, 3), 128, np.uint8)
    image[20:80, 30:100] = (220, 30, 30)
    image[40:60, 55:75] = (30, 30, 220)
    path = tmp_path_factory.mktemp("img") / "scene.png"
    Image.fromarray(image).save(path)
    return path


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.png", "--point", "1,1"], "image not found"),
        (["{img}", "--point", "500,10"], "outside"),
        (["{img}", "--point", "10,10", "--granularity", "1.5"], "granularity must lie in"),
        (["{img}", "--point", "10,10", "--granularity", "fine"], "granularity must be"),
        (["{img}", "--point", "10,10", "--model", "no-such-model"], "unknown model"),
        (["{img}", "--point", "ten,10"], "a point is X,Y"),
        (["{img}"], "at least one --point"),
        (["{corrupt}", "--point", "1,1"], "not a supported image"),
    ],
)
def test_bad_input_exit_2_one_line_no_output(capsys, tmp_path, small_image, args, message):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "mask.png"
    argv = [
        "segment",
        *[a.format(img=small_image, corrupt=corrupt) for a in args],
        "--out",
        str(out),
        "--quiet",
    ]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == ([corrupt] if corrupt.exists() else [])


def test_segment_png_and_json(capsys, tmp_path, small_image):
    out = tmp_path / "mask.png"
    code, stdout, err = run_cli(capsys, "segment", str(small_image), "--point", "64,50", "--out", str(out))
    assert code == 0, err
    assert "hierarchy" in err  # --model auto says which model it used
    assert stdout.strip() == str(out)
    mask = np.asarray(Image.open(out)) > 127
    assert mask.shape == (96, 128) and mask[50, 64]

    out_json = tmp_path / "masks.json"
    code, _, err = run_cli(
        capsys,
        "segment",
        str(small_image),
        "--point",
        "64,50",
        "--granularity",
        "all",
        "--out",
        str(out_json),
    )
    assert code == 0, err
    records = json.loads(out_json.read_text())
    assert [r["granularity"] for r in records] == [round(0.1 * k, 1) for k in range(1, 11)]
    areas = [decode_rle(r["segmentation"]).sum() for r in records]
    assert areas == sorted(areas)  # a single click: masks grow with g
    assert all(r["point_coords"] == [[64.0, 50.0]] for r in records)


def test_segment_all_png_writes_one_file_per_level(capsys, tmp_path, small_image):
    out = tmp_path / "m.png"
    code, stdout, _ = run_cli(
        capsys,
        "segment",
        str(small_image),
        "--point",
        "64,50",
        "--granularity",
        "all",
        "--out",
        str(out),
        "--quiet",
    )
    assert code == 0
    assert len(stdout.split()) == 10
    assert sorted(p.name for p in tmp_path.iterdir())[0] == "m_g0.1.png"


def test_models_lists_hierarchy(capsys):
    code, stdout, _ = run_cli(capsys, "models")
    assert code == 0 and "hierarchy" in stdout and "--model auto" in stdout


def test_console_script_runs_as_module(small_image, tmp_path):
    out = tmp_path / "x.png"
    proc = subprocess.run(
        [sys.executable, "-m", "granseg", "segment", str(small_image), "--point", "999,1", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and "Traceback" not in proc.stderr


def test_auto_whole_image_records(capsys, tmp_path, small_image):
    out = tmp_path / "auto.json"
    code, stdout, err = run_cli(
        capsys, "auto", str(small_image), "--points-per-side", "4", "--granularity", "1.0", "--out", str(out)
    )  # g = 1.0: on this flat image, g = 0.5 reads an intermediate region of the hierarchy's chain (not a square),
    # which the weight-free model's persistence score ranks below auto's thresholds
    assert code == 0, err
    records = json.loads(out.read_text())
    assert records and all(r["granularity"] == 1.0 for r in records)
    assert all(decode_rle(r["segmentation"]).sum() == r["area"] for r in records)
    scores = [r["score"] for r in records]
    assert scores == sorted(scores, reverse=True)


def test_auto_bad_grid_size(capsys, tmp_path, small_image):
    out = tmp_path / "auto.json"
    code, _, err = run_cli(capsys, "auto", str(small_image), "--points-per-side", "0", "--out", str(out))
    assert code == 2 and "points-per-side" in err and not out.exists()


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["convert", "a.pt", "b.safetensors", "--model", "x"], "--model"),
        (["convert", "a.pt", "b.safetensors", "--device", "cpu"], "--device"),
        (["train", "--config", "c.json", "--model", "x"], "--model"),
        (["pseudo-label", "images", "--out", "labels", "--model", "x"], "--model"),
        (["models", "--model", "x"], "--model"),
        (["models", "--device", "cpu"], "--device"),
    ],
)
def test_subcommands_refuse_common_flags_they_do_not_use(capsys, argv, flag):
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 2 and stdout == ""
    assert err.startswith("error: unrecognized arguments") and flag in err, err


def test_subcommands_keep_the_common_flags_they_use():
    from granseg.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["pseudo-label", "images", "--out", "labels", "--device", "cpu", "--quiet"])
    assert args.device == "cpu" and args.quiet and not hasattr(args, "model")
    args = parser.parse_args(["train", "--config", "c.json", "--device", "cpu", "--debug"])
    assert args.device == "cpu" and args.debug and not hasattr(args, "model")
    args = parser.parse_args(["segment", "x.png", "--point", "1,1", "--out", "m.png", "--model", "hierarchy"])
    assert args.model == "hierarchy" and args.device == "auto"
    for protocol in (["interactive", "--dataset", "d", "--data-root", "r"], ["edges", "--data-root", "r"]):
        args = parser.parse_args(["eval", *protocol, "--out", "o", "--model", "m", "--device", "cpu"])
        assert (args.model, args.device) == ("m", "cpu")


def test_declared_predictor_options_are_what_create_predictor_takes(tmp_path):
    from granseg.models.registry import load_model
    from granseg.predict.factory import create_predictor, predictor_options

    model = load_model("unsamv2-tiny-random", device="cpu")
    options = {
        "cache_dir": tmp_path,
        "cache_max_bytes": 2**20,
        "decoder": "reference",
        "decoder_dtype": "float32",
    }
    assert predictor_options(model) == set(options)
    predictor = create_predictor(model, **options)
    assert (predictor.cache_dir, predictor.cache_max_bytes, predictor.decoder) == (
        tmp_path,
        2**20,
        "reference",
    )
    assert predictor_options(load_model("hierarchy", device="cpu")) == frozenset()
