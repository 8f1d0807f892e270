"""Edges of a tiny trained Gen2Seg on synthetic scenes with exact boundaries, through ``granseg eval edges``.

Writes ``--scenes`` UNSEEN-class scenes (``bench_gen2seg.synth_config("unseen")``, seeds 950000+) in the BSDS500
layout (``images/val/<id>.png``, ``groundTruth/val/<id>.mat`` with one annotation whose ``Boundaries`` are the true
object outlines: pixels whose right or lower neighbour has another object label) and runs the CLI for each model:
Sobel on the raw image (``--model sobel``), an untrained model of the same architecture, and the models trained
by ``bench_gen2seg_unlabelled.py`` (exact instances; pseudo-labels). The model rows are Sobel + NMS on the feature
image (``granseg.eval.edges``). Prints a markdown table; ``--write`` puts it in results/gen2seg_edges.md.

Run after bench_gen2seg_unlabelled.py:
``OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_gen2seg_edges.py --write``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_gen2seg as base  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def outlines(labels: np.ndarray) -> np.ndarray:
    """``H x W`` bool: pixels whose right or lower neighbour carries another label."""
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def write_bsds(root: Path, count: int) -> None:
    from PIL import Image
    from scipy.io import savemat

    from granseg.synth import generate_scene

    (root / "images" / "val").mkdir(parents=True, exist_ok=True)
    (root / "groundTruth" / "val").mkdir(parents=True, exist_ok=True)
    for k in range(count):
        scene = generate_scene(seed=950_000 + k, config=base.synth_config("unseen"))
        labels = scene.label_map("object").astype(np.int32)
        Image.fromarray(scene.image).save(root / "images" / "val" / f"{k:05d}.png")
        cell = np.empty((1, 1), dtype=object)
        cell[0, 0] = {"Segmentation": labels + 1, "Boundaries": outlines(labels).astype(np.uint8)}
        savemat(root / "groundTruth" / "val" / f"{k:05d}.mat", {"groundTruth": cell})


def untrained_model(folder: Path) -> Path:
    import torch

    from granseg.models.gen2seg import Gen2SegModel, build_network

    if not (folder / "gen2seg_config.json").is_file():
        torch.manual_seed(0)
        config = base.model_config()
        Gen2SegModel(config, build_network(config), name="untrained").save_pretrained(folder)
    return folder


def edges(data: Path, model: str, out: Path) -> dict:
    command = [sys.executable, "-m", "granseg", "eval", "edges", "--data-root", str(data), "--model", model]
    subprocess.run(
        [*command, "--out", str(out), "--quiet"], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    return json.loads((out / "metrics.json").read_text())["metrics"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=30)
    parser.add_argument("--work-dir", default="/tmp/granseg_bench_gen2seg_edges")
    parser.add_argument("--models-dir", default="/tmp/granseg_bench_gen2seg_unlabelled")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    started = time.time()
    work, trained = Path(args.work_dir), Path(args.models_dir)
    write_bsds(work / "bsds", args.scenes)
    models = {
        "Sobel on the raw image": "sobel",
        "Gen2Seg tiny MAE, untrained (random init)": str(untrained_model(work / "untrained")),
        "Gen2Seg tiny MAE trained on exact synthetic instances": str(trained / "model_0" / "model"),
        "Gen2Seg tiny MAE trained on pseudo-label masks": str(trained / "model_1" / "model"),
    }
    rows = {
        name: edges(work / "bsds", model, work / f"out_{k}") for k, (name, model) in enumerate(models.items())
    }
    command = "OMP_NUM_THREADS={} nice -n 5 .venv/bin/python benchmarks/bench_gen2seg_edges.py {}".format(
        os.environ.get("OMP_NUM_THREADS", "unset"), " ".join(argv or sys.argv[1:])
    )
    lines = [
        "# Gen2Seg edges on synthetic scenes with exact boundaries",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, shared 2-core machine, `nice -n 5`. "
        f"Command: `{command.strip()}` ({(time.time() - started) / 60:.1f} min). {args.scenes} UNSEEN-class "
        "scenes (64 x 64) in BSDS500 layout, one annotation = the true object outlines; each row is "
        "`granseg eval edges --model MODEL` (BSDS matching, 99 thresholds, tolerance 0.0075 x diagonal).",
        "",
        "| model | ODS F | OIS F | AP | AP (R < 0.2, area) | P @ R = 0.2 |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in rows.items():
        lines.append(
            f"| {name} | {m['ODS_F']:.3f} | {m['OIS_F']:.3f} | {m['AP']:.3f} | {m['ap_r20_area']:.3f} | "
            f"{m['p_at_r20']:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        (RESULTS / "gen2seg_edges.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
