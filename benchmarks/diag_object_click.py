"""The video tracker's question on still images: one positive click at the object's interior, does g = 1.0 answer
the whole object? Per instance of an interactive set and per HierarchyConfig setting: the first click's IoU at
g = 1.0 (NOT the oracle g), the best IoU over the ten g, and the chain top (the raw tree region g = 1.0 starts
from): its IoU, its area fraction and the area fraction of the object.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 5 python benchmarks/diag_object_click.py --dataset grabcut \\
        --data-root ../shared/data/grabcut --subset @benchmarks/results/eval/grabcut_tune_ids.txt \\
        --set tree_starts=1 --set tree_starts=2 [--csv OUT.csv]

Each ``--set`` is one setting (comma-separated ``key=value`` HierarchyConfig overrides; ``--set ''`` the defaults).
The click is the RITM first click (interior-most ground-truth pixel), as in ``granseg eval interactive``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from granseg.cli.eval import parse_id_list
from granseg.eval.clicker import iou, make_clicker
from granseg.regions import chains as ch

LEVELS = [round(0.1 * k, 1) for k in range(1, 11)]


def parse_setting(text: str) -> dict:
    """``"k=v,k=v"`` -> typed HierarchyConfig overrides (bools 0/1/true/false)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_clicks import parse_overrides

    return parse_overrides([p for p in text.split(",") if p.strip()])


def chain_top_stats(predictor, point: np.ndarray, gt: np.ndarray) -> dict:
    """The click's chain top (``HierarchyPredictor._chain``'s rule) for ``point`` ``(1, 2)`` (x, y): its IoU with
    ``gt`` (``H x W`` bool, compared at the tree's resolution), its area fraction, its split height."""
    tree = predictor.tree
    h, w = tree.leaf_map.shape
    gt_small = cv2.resize(gt.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.5
    leaf = int(ch.points_to_leaves(tree, point, gt.shape)[0])
    nodes, levels, _ = predictor._chain(leaf, None)
    top = int(nodes[-1])
    region = (tree.leaf_map >= tree.lo[top]) & (tree.leaf_map < tree.hi[top])
    return {
        "top_iou": float((region & gt_small).sum() / max((region | gt_small).sum(), 1)),
        "top_frac": float(tree.area[top] / tree.leaf_map.size),
        "top_height": float(tree.split_heights[top]),
    }


def diagnose(predictor, image: np.ndarray, instance) -> dict:
    """First-click numbers of one instance (see the module docstring); the predictor's image must be set."""
    clicker = make_clicker("ritm", instance.mask, instance.ignore)
    empty = np.zeros(instance.mask.shape, dtype=bool)
    click = clicker.make_next_click(empty)
    point = np.array([[click.x, click.y]], float)
    masks = predictor.predict(point, [1], granularity=LEVELS).masks
    ious = [iou(instance.mask, m, instance.ignore) for m in masks]
    return {
        "g1": ious[-1],
        "best": max(ious),
        "best_g": LEVELS[int(np.argmax(ious))],
        "gt_frac": float(instance.mask.mean()),
        "g1_frac": float(masks[-1].mean()),
        **chain_top_stats(predictor, point, instance.mask),
    }


def main() -> int:
    from granseg.eval.datasets import load_dataset
    from granseg.predict.hierarchy import build_hierarchy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--subset", default=None, help="@FILE of sample ids or comma-separated ids")
    parser.add_argument("--set", action="append", default=[], help="one setting: k=v,k=v (repeat)")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, args.data_root)
    if args.subset:
        dataset.restrict(parse_id_list(args.subset))
    settings = args.set or [""]
    predictors = [build_hierarchy(device="cpu", **parse_setting(s)).create_predictor() for s in settings]
    print(f"{len(dataset)} images, settings {settings}, load {os.getloadavg()}", flush=True)
    rows = []
    for index in range(len(dataset)):
        sample = dataset.load(index)
        for k, predictor in enumerate(predictors):
            predictor.set_image(sample.image)
            for inst in sample.instances:
                row = {"setting": settings[k], "sample": sample.id, "instance": inst.id}
                rows.append({**row, **diagnose(predictor, sample.image, inst)})
        line = [
            f"{r['g1']:.3f}/{r['top_frac']:.3f}" for r in rows[-len(predictors) * len(sample.instances) :]
        ]
        print(sample.id, " ".join(line), flush=True)
    for s in settings:
        mine = [r for r in rows if r["setting"] == s]
        keys = ("g1", "best", "top_iou", "top_frac", "g1_frac")
        print(f"[{s}] n={len(mine)} " + " ".join(f"{k}={np.mean([r[k] for r in mine]):.3f}" for k in keys))
    if args.csv:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_clicks import write_rows_csv

        write_rows_csv(args.csv, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
