"""Diagnose the ``hierarchy`` model's first click on an interactive set (``img/`` + ``gt/``): per instance the
first-click IoU at each g, the best g, the best IoU any tree region reaches (upper bound of a pure tree answer),
the best region on the click's own chain, the chain top, and what the g = 1.0 disk-seeded GrabCut gate did.

    PYTHONPATH=. .venv/bin/python benchmarks/diag_first_click.py SET_DIR [--ids FILE] [--skip-ids FILE]
        [--limit N] [--csv OUT.csv] [--set key=value ...]

The first click is the RITM one (interior-most ground-truth pixel), as in ``granseg eval interactive``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from granseg.eval.clicker import next_click
from granseg.io.images import load_image
from granseg.predict.hierarchy import build_hierarchy
from granseg.regions import chains as ch
from granseg.regions.graphcut import grabcut_many

sys.path.insert(0, str(Path(__file__).parent))
from bench_clicks import parse_overrides, write_rows_csv  # noqa: E402

LEVELS = [round(0.1 * k, 1) for k in range(1, 11)]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def node_ious(tree, gt_small: np.ndarray) -> np.ndarray:
    """``(M,)`` IoU of every tree node (leaf selection) with an internal-resolution bool mask."""
    inside = np.bincount(tree.leaf_map.ravel(), weights=gt_small.ravel(), minlength=tree.n_leaves)
    cum = np.concatenate([[0.0], np.cumsum(inside)])
    inter = cum[tree.hi] - cum[tree.lo]
    return inter / (tree.area + gt_small.sum() - inter)


def diagnose(predictor, image: np.ndarray, gt: np.ndarray) -> dict:
    click = next_click(gt, np.zeros_like(gt))
    point = np.array([[click.x, click.y]], float)
    predictor.set_image(image)
    masks = predictor.predict(point, [1], granularity="all").masks
    ious = [_iou(m, gt) for m in masks]
    tree, cfg = predictor.tree, predictor.config
    h, w = tree.leaf_map.shape
    gt_small = cv2.resize(gt.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.5
    per_node = node_ious(tree, gt_small)
    leaf = ch.points_to_leaves(tree, point, image.shape[:2])[0]
    chain = tree.chain(int(tree.leaf_node[leaf]))
    top = ch.chain_top(tree, chain, cfg.min_object_fraction, cfg.max_object_fraction)
    chain_ious = per_node[np.asarray(chain)]
    leaf_sel = gt_small.astype(np.float64)
    cover = np.bincount(tree.leaf_map.ravel(), weights=leaf_sel.ravel(), minlength=tree.n_leaves)
    leaves_best = cover > 0.5 * tree.leaf_area
    leaves_up = _iou(leaves_best[tree.leaf_map], gt_small)
    # the g = 1.0 gate: chain answer alone vs with the disk cut
    predictor.config.object_prior_radius = 0.0
    no_disk = predictor.predict(point, [1], granularity=1.0).masks[0]
    predictor.config.object_prior_radius = cfg_radius = HierarchyDefaults.radius
    job = predictor._object_prior_job(point[0], np.array([leaf]), np.array([1]))
    disk = grabcut_many(tree, [job], predictor.config.refine_smoothness, 1.0, predictor._colours)[0]
    disk_mask = ch.upsample_selection(tree, disk, image.shape[:2])
    area = gt.mean()
    return {
        "gt_fraction": round(float(area), 3),
        "first_iou_best": round(max(ious), 3),
        "best_g": LEVELS[int(np.argmax(ious))],
        "iou_g0.1": round(ious[0], 3),
        "iou_g1.0": round(ious[-1], 3),
        "iou_g1_no_disk": round(_iou(no_disk, gt), 3),
        "disk_cut_iou": round(_iou(disk_mask, gt), 3),
        "disk_used": bool((masks[-1] != no_disk).any()),
        "chain_best_iou": round(float(chain_ious.max()), 3),
        "chain_best_frac": round(float(tree.area[chain[int(np.argmax(chain_ious))]] / tree.leaf_map.size), 3),
        "chain_top_iou": round(float(chain_ious[top]), 3),
        "chain_top_frac": round(float(tree.area[chain[top]] / tree.leaf_map.size), 3),
        "tree_best_iou": round(float(per_node.max()), 3),
        "leaves_upper": round(leaves_up, 3),
        "radius": cfg_radius,
    }


class HierarchyDefaults:
    radius = 0.2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("set_dir", type=Path)
    parser.add_argument("--ids", type=Path, default=None, help="only these sample ids (one a line)")
    parser.add_argument("--skip-ids", type=Path, default=None, help="leave out these sample ids")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--set", nargs="*", default=[], help="HierarchyConfig overrides key=value")
    args = parser.parse_args()
    ids = sorted(p.stem for p in (args.set_dir / "gt").glob("*.png"))
    if args.ids:
        keep = set(args.ids.read_text().split())
        ids = [i for i in ids if i in keep]
    if args.skip_ids:
        drop = set(args.skip_ids.read_text().split())
        ids = [i for i in ids if i not in drop]
    ids = ids[: args.limit]
    predictor = build_hierarchy(**parse_overrides(args.set)).create_predictor()  # bools: 0/1/true/false
    HierarchyDefaults.radius = predictor.config.object_prior_radius
    rows = []
    for sample in ids:
        image = load_image(next((args.set_dir / "img").glob(f"{sample}.*")))
        gt = cv2.imread(str(args.set_dir / "gt" / f"{sample}.png"), cv2.IMREAD_GRAYSCALE) > 127
        row = {"sample": sample, **diagnose(predictor, image, gt)}
        rows.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    keys = [k for k in rows[0] if k not in ("sample", "best_g", "disk_used", "radius")]
    print("mean", " ".join(f"{k}={np.mean([r[k] for r in rows]):.3f}" for k in keys))
    print("disk used", sum(r["disk_used"] for r in rows), "of", len(rows))
    if args.csv:
        write_rows_csv(args.csv, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
