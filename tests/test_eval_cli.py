"""`granseg eval` end to end: interactive, auto, edges and video, reports and plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from eval_helpers import shared, square, toy_coco, write_png

from granseg.eval.datasets import load_dataset
from granseg.eval.interactive import InteractiveConfig, evaluate_dataset
from granseg.predict.base import BasePredictor, Prediction

# ----------------------------------------------------------------------------------------------- CLI


def test_cli_interactive_on_a_synthetic_berkeley_folder(tmp_path):
    from granseg.cli import main

    rng = np.random.default_rng(2)
    for k in range(2):
        image = rng.integers(0, 50, (60, 80, 3)).astype(np.uint8)
        mask = np.zeros((60, 80), np.uint8)
        mask[15:45, 20:60] = 255
        image[mask > 0] += 180
        write_png(tmp_path / "data" / "images" / f"{k}.png", image)
        write_png(tmp_path / "data" / "masks" / f"{k}.png", mask)
    out = tmp_path / "out"
    code = main(
        [
            "eval",
            "interactive",
            "--dataset",
            "berkeley",
            "--data-root",
            str(tmp_path / "data"),
            "--model",
            "grabcut-baseline",
            "--granularity",
            "1.0",
            "--max-clicks",
            "3",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["instances"] == 2 and metrics["NoC@85"] <= 3
    assert (out / "report.md").is_file() and (out / "per_instance.csv").is_file()


def test_cli_reports_bad_input_with_exit_2(tmp_path, capsys):
    from granseg.cli import main

    assert (
        main(
            [
                "eval",
                "interactive",
                "--dataset",
                "nope",
                "--data-root",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.startswith("error: unknown dataset")


# ----------------------------------------------------------------------------------------------- automatic + CLI


class ComponentPredictor(BasePredictor):
    """The region of a label map under the first click, whatever g."""

    def __init__(self, labels):
        super().__init__()
        self.labels = labels

    def _set_image(self, image):
        pass

    def _predict(self, points, labels, box, granularity, mask_input):
        x, y = points[0].astype(int)
        mask = self.labels == self.labels[y, x]
        k = len(granularity)
        return Prediction(np.repeat(mask[None], k, 0), np.full(k, 0.9), granularity)


def test_automatic_segmenter_finds_every_region_once_per_g_and_scores_ar_one():
    from granseg.eval.whole_image import evaluate_ar
    from granseg.io.masks import encode_rle
    from granseg.predict.automatic import AutomaticConfig, AutomaticSegmenter, box_nms

    labels = np.zeros((40, 60), np.int32)
    labels[5:20, 5:25] = 1
    labels[22:38, 30:58] = 2
    segmenter = AutomaticSegmenter(
        ComponentPredictor(labels), AutomaticConfig(points_per_side=6, granularities=(0.3, 1.0))
    )
    records = segmenter.generate(np.zeros((40, 60, 3), np.uint8))
    assert sorted((r["granularity"], r["area"]) for r in records) == sorted(
        (g, int((labels == k).sum())) for g in (0.3, 1.0) for k in (0, 1, 2)
    )
    gt = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 40, "width": 60}],
        "annotations": [
            {
                "id": k,
                "image_id": 1,
                "segmentation": encode_rle(labels == k),
                "area": float((labels == k).sum()),
            }
            for k in (1, 2)
        ],
    }
    assert evaluate_ar(gt, {"a": records})["AR@100"] == pytest.approx(1.0)
    assert list(
        box_nms(np.array([[0, 0, 10, 10], [0, 0, 10, 9], [20, 20, 30, 30]]), np.array([0.5, 0.9, 0.1]), 0.7)
    ) == [1, 2]


def test_cli_auto_edges_and_video(tmp_path):
    from granseg.cli import main

    gt, _ = toy_coco()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    preds = [
        {"image_id": a["image_id"], "segmentation": a["segmentation"], "score": 1.0}
        for a in gt["annotations"]
    ]
    (tmp_path / "preds.json").write_text(json.dumps(preds))
    out = tmp_path / "auto"
    assert (
        main(
            [
                "eval",
                "auto",
                "--gt",
                str(tmp_path / "gt.json"),
                "--predictions",
                str(tmp_path / "preds.json"),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert json.loads((out / "metrics.json").read_text())["metrics"]["AR@1000"] == pytest.approx(1.0)

    # DAVIS-style folder, predictions = ground truth -> J&F = 1
    for seq in ("a", "b"):
        for k in range(4):
            mask = (square(24, 32, 4 + k, 16 + k, 6, 20) * 255).astype(np.uint8)
            write_png(
                tmp_path / "davis" / "JPEGImages" / "480p" / seq / f"{k:05d}.jpg",
                np.zeros((24, 32, 3), np.uint8),
            )
            write_png(tmp_path / "davis" / "Annotations" / "480p" / seq / f"{k:05d}.png", mask)
            write_png(tmp_path / "pred" / seq / f"{k:05d}.png", mask)
    out = tmp_path / "video"
    assert (
        main(
            [
                "eval",
                "video",
                "--data-root",
                str(tmp_path / "davis"),
                "--predictions",
                str(tmp_path / "pred"),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert json.loads((out / "metrics.json").read_text())["metrics"]["J&F"] == 1.0


def test_cli_edges_on_one_real_bsds_image(tmp_path):
    from granseg.cli import main

    root = shared("bsds500")
    out = tmp_path / "edges"
    code = main(
        [
            "eval",
            "edges",
            "--data-root",
            str(root),
            "--max-images",
            "1",
            "--thresholds",
            "5",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert 0.2 < metrics["ODS_F"] < 0.9 and (out / "report.md").is_file()


def _berkeley_folder(root: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(2)
    for k in range(n):
        image = rng.integers(0, 50, (60, 80, 3)).astype(np.uint8)
        mask = np.zeros((60, 80), np.uint8)
        mask[10 + 3 * k : 45, 20 : 60 - 2 * k] = 255
        image[mask > 0] += 150
        write_png(root / "images" / f"{k}.png", image)
        write_png(root / "masks" / f"{k}.png", mask)
    return root


def test_parallel_workers_give_the_same_results_in_the_same_order(tmp_path):
    import functools

    from granseg.predict.factory import load_predictor

    dataset = load_dataset("berkeley", _berkeley_folder(tmp_path))
    factory = functools.partial(load_predictor, "grabcut-baseline", device="cpu")
    cfg = InteractiveConfig(max_clicks=3, granularity=1.0)
    serial = evaluate_dataset(dataset, factory, cfg, quiet=True)
    parallel = evaluate_dataset(dataset, factory, cfg, workers=2, quiet=True)
    assert [r.sample_id for r in parallel] == ["0", "1", "2"]
    assert [(r.ious, r.clicks) for r in serial] == [(r.ious, r.clicks) for r in parallel]


def test_ultrametric_contour_map_of_a_real_hierarchy_marks_the_strong_boundary():
    from granseg.eval.edges import ultrametric_contour_map
    from granseg.predict.factory import load_predictor

    image = np.full((64, 96, 3), 30, np.uint8)
    image[:, 48:] = 220
    predictor = load_predictor("hierarchy", device="cpu", n_superpixels=40, internal_long_side=96)
    predictor.set_image(image)
    ucm = ultrametric_contour_map(predictor.tree, image.shape[:2])
    assert ucm.shape == (64, 96) and ucm.max() == pytest.approx(1.0)
    # the step edge is the top of the hierarchy in most rows (scale-free: the learned tree's heights are
    # (1 - p)^3; in a few rows a SLIC leaf straddles the step, so the top boundary runs beside it)
    assert (ucm[:, 46:50].max(axis=1) == ucm.max()).mean() >= 0.8
    assert ucm[:, 10:38].max() < ucm[:, 46:50].max()


# ---------------------------------------------------------------------------------- the model recorded in reports
def test_cli_eval_auto_records_the_model_actually_used(tmp_path, monkeypatch):
    """--model auto used to be written as "auto" into metrics.json; it must be the resolved model."""
    from granseg.cli import main

    monkeypatch.setenv("GRANSEG_HOME", str(tmp_path / "home"))  # no local checkpoint: auto = hierarchy
    gt, _ = toy_coco(n_images=1, per_image=2)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    image = np.full((48, 64, 3), 40, np.uint8)
    image[10:30, 12:40] = 210
    write_png(tmp_path / "images" / "im1.jpg", image)
    out = tmp_path / "auto"
    argv = ["eval", "auto", "--gt", str(tmp_path / "gt.json"), "--images", str(tmp_path / "images")]
    assert main([*argv, "--points-per-side", "2", "--out", str(out), "--quiet"]) == 0
    document = json.loads((out / "metrics.json").read_text())
    assert document["meta"]["model"] == "hierarchy"
    assert "hierarchy" in (out / "report.md").read_text().splitlines()[0]
    assert json.loads((out / "predictions.json").read_text())


def test_cli_eval_video_records_the_model_actually_used(tmp_path, monkeypatch):
    from granseg.cli import main

    monkeypatch.setenv("GRANSEG_HOME", str(tmp_path / "home"))
    for k in range(3):
        frame = np.full((48, 64, 3), 30, np.uint8)
        frame[10 + k : 34 + k, 16:44] = 220
        write_png(tmp_path / "davis" / "JPEGImages" / "480p" / "s" / f"{k:05d}.jpg", frame)
        mask = (square(48, 64, 10 + k, 34 + k, 16, 44) * 255).astype(np.uint8)
        write_png(tmp_path / "davis" / "Annotations" / "480p" / "s" / f"{k:05d}.png", mask)
    out = tmp_path / "video"
    assert main(["eval", "video", "--data-root", str(tmp_path / "davis"), "--out", str(out), "--quiet"]) == 0
    document = json.loads((out / "metrics.json").read_text())
    assert document["meta"]["model"] == "hierarchy"
    assert 0.0 <= document["metrics"]["J&F"] <= 1.0


def test_cli_edges_refuses_an_edge_map_the_model_does_not_give(tmp_path, capsys):
    from granseg.cli import main

    root = tmp_path / "bsds"
    write_png(root / "images" / "val" / "1.jpg", np.zeros((40, 40, 3), np.uint8))
    code = main(
        ["eval", "edges", "--data-root", str(root), "--edge-map", "ucm", "--out", str(tmp_path / "o")]
    )
    assert code == 2
    assert capsys.readouterr().err.startswith("error: edge map 'ucm' needs a model")
    assert not (tmp_path / "o").exists()


def test_edge_map_kinds_follow_the_model():
    from granseg.errors import InputError
    from granseg.eval.edge_maps import default_edge_map, edge_map_function
    from granseg.eval.edges import sobel_nms
    from granseg.models.registry import load_model

    assert edge_map_function("sobel") is sobel_nms
    assert default_edge_map(load_model("hierarchy", device="cpu")) == "ucm"
    with pytest.raises(InputError, match="gives no 'features' edge map"):
        edge_map_function("hierarchy", kind="features")
    with pytest.raises(InputError, match="gives no edge map"):
        default_edge_map(load_model("grabcut-baseline", device="cpu"))
    image = np.full((40, 60, 3), 20, np.uint8)
    image[:, 30:] = 230
    ucm = edge_map_function("hierarchy", kind="ucm")(image)
    assert ucm.shape == (40, 60) and ucm[:, 28:32].max() > ucm[:, 5:20].max()


# ---------------------------------------------------------------------------------- plots leave matplotlib alone
def test_plots_keep_the_callers_matplotlib_backend(tmp_path):
    """Report plots used to call matplotlib.use("Agg"), switching a caller's backend for the whole process."""
    import subprocess
    import sys

    script = f"""
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
from pathlib import Path
from granseg.eval.edges import plot_pr
from granseg.eval.interactive import plot_curves
from granseg.eval.whole_image import plot_ar
out = Path({str(tmp_path)!r})
assert plot_pr(out / "pr.png", {{"m": ([0.1, 0.5], [0.9, 0.6])}}, "t")
assert plot_curves(out / "c.png", {{"m": [0.5, 0.7, 0.8]}}, "t")
assert plot_ar(out / "ar.png", {{"AR@1": 0.2, "AR@10": 0.5, "AR@100": 0.7}})
print(matplotlib.get_backend(), len(plt.get_fignums()))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "0"]
    for name in ("pr.png", "c.png", "ar.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
