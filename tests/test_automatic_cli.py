"""``granseg auto`` / ``eval auto`` / ``eval edges --edge-map masks``: presets, bad input, empty results, the tree."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from granseg.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse errors and --help
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory):
    image = np.full((60, 80, 3), 128, np.uint8)
    image[10:50, 8:40] = (220, 30, 30)
    image[20:40, 50:75] = (30, 30, 220)
    path = tmp_path_factory.mktemp("img") / "scene.png"
    Image.fromarray(image).save(path)
    return path


def test_help_lists_the_presets(capsys):
    code, out, _ = run_cli(capsys, "auto", "--help")
    assert code == 0 and "official:" in out and "fast:" in out and "64x64" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--points-per-side", "257"], "points-per-side"),
        (["--points-per-side", "0"], "points-per-side"),
        (["--max-pixels", "100"], "MP"),
        (["--dedup", "0"], "--dedup"),
    ],
)
def test_bad_input_exits_2_before_any_output(capsys, tmp_path, scene_png, argv, message):
    out = tmp_path / "masks.json"
    code, _, err = run_cli(capsys, "auto", str(scene_png), "--out", str(out), *argv)
    assert code == 2 and err.startswith("error: ") and message in err and not out.exists()


def test_auto_all_levels_writes_the_tree(capsys, tmp_path, scene_png):
    out = tmp_path / "masks.json"
    code, _, err = run_cli(
        capsys,
        "auto",
        str(scene_png),
        "--model",
        "hierarchy",
        "--preset",
        "fast",
        "--dedup",
        "0.9",
        "--out",
        str(out),
    )
    assert code == 0, err
    records = json.loads(out.read_text())
    assert records and [r["id"] for r in records] == list(range(len(records)))
    ids = {r["id"] for r in records}
    assert all(r["parent_id"] is None or r["parent_id"] in ids for r in records)
    assert all(r["granularity_range"][0] == r["granularity"] for r in records)
    assert "fast preset" in err


def test_empty_result_is_a_valid_empty_file(capsys, tmp_path, scene_png):
    out = tmp_path / "masks.json"
    # the tiny random model's logits are within +-0.01: nothing passes the official stability test (offset 1)
    code, _, err = run_cli(
        capsys,
        "auto",
        str(scene_png),
        "--model",
        "unsamv2-tiny-random",
        "--points-per-side",
        "3",
        "--granularity",
        "0.5",
        "--out",
        str(out),
        "--overlay",
        str(tmp_path / "o.png"),
    )
    assert code == 0, err
    assert json.loads(out.read_text()) == [] and (tmp_path / "o.png").is_file()


def test_mask_edge_map_is_sobel_on_the_automatic_masks():
    from granseg.eval.edge_maps import edge_map_function
    from granseg.eval.edges import boundary_map_from_masks

    square = np.zeros((1, 30, 30), bool)
    square[0, 10:20, 10:20] = True
    edges = boundary_map_from_masks(square, np.array([0.9]))
    ys, xs = np.nonzero(edges)
    assert edges.max() == pytest.approx(1.0) and edges[15, 15] == 0 and edges[2, 2] == 0
    assert ys.min() >= 8 and ys.max() <= 21 and xs.min() >= 8 and xs.max() <= 21
    assert np.count_nonzero(edges[15]) <= 4  # thinned: a couple of pixels across each side

    image = np.full((40, 50, 3), 100, np.uint8)
    image[10:30, 12:35] = (230, 40, 40)
    edge_map = edge_map_function("hierarchy", kind="masks")(image)
    assert edge_map.shape == (40, 50) and edge_map.max() == pytest.approx(1.0)
    assert edge_map[10:30, 10:14].max() > 0 and edge_map[20, 20] == 0  # on the object's boundary, not inside


def test_partition_alone_writes_one_label_map_per_g(capsys, tmp_path, scene_png):
    out = tmp_path / "labels.npz"
    code, stdout, err = run_cli(
        capsys, "auto", str(scene_png), "--model", "hierarchy", "--partition", str(out)
    )
    assert code == 0, err
    data = np.load(out)
    assert data["labels"].shape == (10, 60, 80) and data["labels"].dtype == np.int32
    assert np.allclose(data["granularity"], np.arange(1, 11) / 10)
    assert str(out) in stdout and "regions" in err


def test_partition_png_with_masks_is_one_16_bit_map(capsys, tmp_path, scene_png):
    masks, labels = tmp_path / "masks.json", tmp_path / "labels.png"
    argv = ["--model", "hierarchy", "--granularity", "0.5", "--out", str(masks), "--partition", str(labels)]
    code, _, err = run_cli(capsys, "auto", str(scene_png), *argv)
    assert code == 0, err
    picture = np.asarray(Image.open(labels))
    assert picture.shape == (60, 80) and picture.max() >= 1
    assert isinstance(json.loads(masks.read_text()), list)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--partition", "{tmp}/l.png"], "one g"),  # all ten g do not fit one PNG
        (["--partition", "{tmp}/l.tif", "--granularity", "0.5"], ".npz or .png"),
        (["--partition", "{tmp}/l.npz", "--model", "unsamv2-tiny-random"], "hierarchy"),
        ([], "--partition"),  # neither --out nor --partition
        (["--partition", "{tmp}/l.npz", "--overlay", "{tmp}/o.png"], "--overlay"),
        (["--partition", "{image}", "--granularity", "0.5"], "input"),  # never over the input image
    ],
)
def test_partition_bad_input_exits_2_and_writes_nothing(capsys, tmp_path, scene_png, argv, message):
    before = scene_png.read_bytes()
    argv = [a.format(tmp=tmp_path, image=scene_png) for a in argv]
    code, _, err = run_cli(capsys, "auto", str(scene_png), *argv)
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert list(tmp_path.iterdir()) == [] and scene_png.read_bytes() == before
