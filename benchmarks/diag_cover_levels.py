"""Covering at best g of several ``HierarchyConfig`` chain settings over the same trees (issue 18, cover18b).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/diag_cover_levels.py --skip 25 --images 25
        [--variant consensus2-pow3] '{}' '{"level_step": 0.025, "part_min_fraction": 0}' ...

Each positional argument is a JSON dict of ``HierarchyConfig`` overrides. Per image the tree of ``--variant``
(benchmarks/bench_tree.py ``tree_for``) is built once; each setting's 10 g partitions are
``bench_hierarchy.hierarchy_partitions`` (the predictor's own ``_chain``), scored as bench_tree.py does (covering
mean over annotators). Prints per setting: best g (the benchmark's number), the g = 1.0 partition alone, and the
mean per g; and the tree's own cuts (OIS / ODS over ``1 - p`` thresholds 0.02 ... 0.98) for reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

THRESHOLDS = np.round(np.arange(0.02, 0.99, 0.02), 2)


def cut_labels(tree, t: float) -> np.ndarray:
    """Leaf-map labels of the tree's cut at ``1 - p <= t`` (maximal nodes whose merge height is at most t)."""
    labels = np.arange(tree.n_leaves)
    nodes = np.flatnonzero(tree.split_heights <= t)
    for node in nodes[nodes >= tree.n_leaves].tolist():  # children before parents: the maximal node last
        labels[tree.lo[node] : tree.hi[node]] = node
    return labels[tree.leaf_map]


def main() -> int:
    from bench_hierarchy import covering, hierarchy_partitions
    from bench_tree import bsds_ids, load, tree_for

    from granseg.predict.hierarchy import HierarchyConfig, HierarchyPredictor

    parser = argparse.ArgumentParser()
    parser.add_argument("--skip", type=int, default=25)
    parser.add_argument("--images", type=int, default=25)
    parser.add_argument("--variant", default="consensus2-pow3")
    parser.add_argument("settings", nargs="*", default=["{}"])
    args = parser.parse_args()
    settings = [json.loads(s) for s in args.settings]
    predictors = [HierarchyPredictor(HierarchyConfig.from_dict(s)) for s in settings]
    scores: list[list] = [[] for _ in settings]
    cuts = []
    for image_id in bsds_ids(args.skip, args.images):
        image, _, segmentations = load(image_id)
        size = (image.shape[1], image.shape[0])

        def score(labels, size=size, segmentations=segmentations):
            big = cv2.resize(labels.astype(np.float32), size, interpolation=cv2.INTER_NEAREST)
            return float(np.mean([covering(gt, big) for gt in segmentations]))

        tree = tree_for(image, args.variant)
        for predictor, out in zip(predictors, scores):
            predictor.tree, predictor._original_size = tree, image.shape[:2]
            out.append([score(p) for p in hierarchy_partitions(predictor)])
        cuts.append([score(cut_labels(tree, t)) for t in THRESHOLDS])
        print(image_id, " ".join(f"{max(s[-1]):.3f}" for s in scores), flush=True)
    print(f"BSDS val {args.skip + 1}-{args.skip + args.images}, tree {args.variant}")
    for setting, out in zip(settings, scores):
        v = np.asarray(out)
        print(
            f"{setting}: best g {v.max(1).mean():.4f}, g=1 {v[:, -1].mean():.4f}, per g {np.round(v.mean(0), 3)}"
        )
    c = np.asarray(cuts)
    print(
        f"tree cuts: OIS {c.max(1).mean():.4f}, ODS {c.mean(0).max():.4f} (t {THRESHOLDS[c.mean(0).argmax()]})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
