"""Diagnosis for the whole-image partition at g (issue 18 covering): which cuts of the predictor's own tree
cover BSDS val best, and how a g -> cut rule picks them.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/diag_partition_cuts.py --skip 25 --images 25

Per image (the default ``hierarchy`` predictor's tree, its tree): covering at best g of
* ``click-union``: the benchmark's partition at g (maximal regions single clicks answer; bench_hierarchy);
* ``ois``: the best of the tree's cuts at 99 evenly spaced split heights (1 - p(same)), per image;
* ``ods``: one split height for all images (the best of the 99);
* rules mapping each of the ten g to one cut (best of the ten per image, like ``click-union``):
  ``answer-qQ``: the cut at the Q-quantile (area-weighted over leaves) of the split heights of the regions
  single clicks answer at g; ``fixed-A-B``: split heights evenly spaced from A (g = 0.1) to B (g = 1.0).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_hierarchy import LEVELS, covering, hierarchy_partitions  # noqa: E402
from bench_tree import bsds_ids, load  # noqa: E402


def cut_labels(tree, heights: np.ndarray, threshold: float) -> np.ndarray:
    """``h x w`` labels of the tree's cut at ``threshold`` (:func:`granseg.regions.cuts.cut_regions`)."""
    from granseg.regions.cuts import cut_regions

    return cut_regions(tree, threshold, heights)[tree.leaf_map]


def object_height(tree, heights: np.ndarray, max_fraction: float) -> float:
    """The largest split height whose cut has no region over ``max_fraction`` of the image (just below the
    first merge that makes one)."""
    big = tree.area > max_fraction * tree.leaf_map.size
    first = float(heights[big].min()) if big.any() else 1.0
    below = heights[heights < first]
    return float(below.max()) if below.size else 0.0


def answer_heights(predictor, heights: np.ndarray) -> np.ndarray:
    """``(n_leaves, 10)`` split height of the region a single click on each leaf answers at each g."""
    from granseg.regions.chains import node_for_granularity

    tree = predictor.tree
    out = np.zeros((tree.n_leaves, len(LEVELS)))
    for rank in range(tree.n_leaves):
        nodes, levels, _ = predictor._chain(rank, None)
        for k, g in enumerate(LEVELS):
            out[rank, k] = heights[node_for_granularity(nodes, levels, g)]
    return out


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, q * cum[-1])])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip", type=int, default=25)
    parser.add_argument("--images", type=int, default=25)
    args = parser.parse_args()
    from granseg.predict.hierarchy import build_hierarchy

    predictor = build_hierarchy().create_predictor()
    grid = np.linspace(0.0, 1.0, 101)[1:-1]
    rules = {f"answer-q{q}": q for q in (0.25, 0.5, 0.75)}
    fixed = {f"fixed-{a}-{b}": (a, b) for a in (0.05, 0.1, 0.2) for b in (0.5, 0.6, 0.7, 0.8, 0.9)}
    capped = {f"capped-{a}-{b}": (a, b) for a in (0.05, 0.1) for b in (0.7, 0.9, 1.0)}
    scores: dict[str, list] = {k: [] for k in ["click-union", "ois", *rules, "answer-mean", *fixed, *capped]}
    ods_table = []
    best_heights = []
    for image_id in bsds_ids(args.skip, args.images):
        image, _, segs = load(image_id)
        predictor.set_image(image)
        tree = predictor.tree
        size = (image.shape[1], image.shape[0])

        def score(labels, size=size, segs=segs):
            big = cv2.resize(labels.astype(np.float32), size, interpolation=cv2.INTER_NEAREST)
            return float(np.mean([covering(gt, big) for gt in segs]))

        heights = tree.split_heights
        scores["click-union"].append(max(score(p) for p in hierarchy_partitions(predictor)))
        per_t = np.array([score(cut_labels(tree, heights, t)) for t in grid])
        ods_table.append(per_t)
        scores["ois"].append(float(per_t.max()))
        best_heights.append(float(grid[per_t.argmax()]))
        answers = answer_heights(predictor, heights)
        weights = np.bincount(tree.leaf_map.ravel(), minlength=tree.n_leaves).astype(float)
        for name, q in rules.items():
            ts = [weighted_quantile(answers[:, k], weights, q) for k in range(len(LEVELS))]
            scores[name].append(max(score(cut_labels(tree, heights, t)) for t in ts))
        ts = [float(np.average(answers[:, k], weights=weights)) for k in range(len(LEVELS))]
        scores["answer-mean"].append(max(score(cut_labels(tree, heights, t)) for t in ts))
        for name, (a, b) in fixed.items():
            ts = np.linspace(a, b, len(LEVELS))
            scores[name].append(max(score(cut_labels(tree, heights, t)) for t in ts))
        top = object_height(tree, heights, predictor.config.max_object_fraction)
        for name, (a, b) in capped.items():
            ts = np.linspace(a, max(min(b, top), a), len(LEVELS))
            scores[name].append(max(score(cut_labels(tree, heights, t)) for t in ts))
        print(
            image_id, {k: round(v[-1], 3) for k, v in scores.items() if v}, f"best t {best_heights[-1]:.2f}"
        )
    ods = np.mean(ods_table, 0)
    print(f"ODS {ods.max():.4f} at t = {grid[ods.argmax()]:.2f}")
    print("best t per image: quartiles", np.percentile(best_heights, [0, 25, 50, 75, 100]).round(2))
    for name, values in scores.items():
        print(f"{name:>20s} {np.mean(values):.4f}")


if __name__ == "__main__":
    main()
