"""Covering of region trees on BSDS500 val: the predictor's g partitions vs thresholds of UCMs (issue 18).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/diag_consensus.py --skip 25 --images 25
        [--consensus base-average-region,base-average-pixel] [--starts 5] [--tau 0.6]

Per image, covering (mean over the human segmentations, benchmarks/bench_hierarchy.py ``covering``) of:

* ``pred:<tree>``: the best of the predictor's 10 g partitions (``hierarchy_partitions``) over ``<tree>``;
* ``top@tau``: the same with the chain top at the tree's cut at ``1 - p <= --tau`` (:func:`partitions_height_top`);
* SLIC over the internal image with the region count of ``single``'s best g (as benchmarks/bench_tree.py);
* ``cut:<tree>``: the best threshold t of the tree's UCM (the leaves joined by merges of ``1 - p <= t``, 24
  thresholds 0.04 ... 0.96; OIS); ODS: the best single t over the images.

Trees: ``single`` (the predictor's: learned, SLIC 700, heights ** 3), ``owt`` (the ensemble's first start),
``cons-<leaves>-<linkage>-<weighting>`` (:mod:`granseg.regions.consensus` over the first ``--starts`` ensemble
trees).
``cons-overlay-single-pixel`` cuts are exactly the thresholds of the ensemble's mean UCM on the overlay of
the leaves (tried on 2 tune images: far worse, slivers chain regions together).

The numbers in benchmarks/RESULTS.md (2026-11-30, branch cover18) were measured while ``hierarchy_partitions``
still read the chain top without ``top_size_power`` (power 0); it now follows the predictor's own rule.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

THRESHOLDS = np.round(np.arange(0.04, 0.99, 0.04), 2)


def cut_labels(tree, t: float) -> np.ndarray:
    """Leaf-map labels of the tree cut at ``1 - p <= t`` (maximal nodes whose height is at most t;
    :func:`granseg.regions.cuts.cut_regions` over the learned tree's split heights)."""
    from granseg.regions.cuts import cut_regions

    return cut_regions(tree, t, tree.split_heights)[tree.leaf_map]


def partitions_height_top(tree, config, tau: float) -> list[np.ndarray]:
    """``hierarchy_partitions`` with another chain top: the largest chain region whose ``1 - p`` height is at
    most ``tau`` (and at most ``max_object_fraction`` of the image; the leaf at least), i.e. the region of the
    tree's cut at ``tau``; the levels below it as the predictor makes them."""
    from bench_hierarchy import LEVELS

    from granseg.regions.chains import chain_levels, node_for_granularity

    heights = tree.split_heights
    chains = []
    for rank in range(tree.n_leaves):
        chain = tree.chain(int(tree.leaf_node[rank]))
        nodes = np.asarray(chain)
        ok = (heights[nodes] <= tau) & (tree.area[nodes] <= config.max_object_fraction * tree.leaf_map.size)
        ok[0] = True
        top = int(np.nonzero(ok)[0].max())
        chains.append(chain_levels(tree, chain, top, config.part_min_fraction, config.part_min_distinct))
    out = []
    for g in LEVELS:
        chosen = {node_for_granularity(nodes, lv, g) for nodes, lv, _ in chains}
        labels = np.full(tree.n_leaves, -1, np.int64)
        for node in sorted(chosen, key=lambda n: -tree.area[n]):
            span = labels[tree.lo[node] : tree.hi[node]]
            if (span == -1).all():
                span[:] = node
        out.append(labels[tree.leaf_map])
    return out


def main() -> int:
    from bench_hierarchy import covering, hierarchy_partitions
    from bench_tree import bsds_ids, load

    from granseg.predict.hierarchy import HierarchyPredictor
    from granseg.regions.consensus import consensus_tree
    from granseg.regions.cues import boundary_map, to_lab
    from granseg.regions.ensemble import UCM_STARTS, build_region_trees
    from granseg.regions.superpixels import resize_long_side
    from granseg.regions.tree import TreeParams, build_region_tree

    parser = argparse.ArgumentParser()
    parser.add_argument("--skip", type=int, default=25)
    parser.add_argument("--images", type=int, default=25)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--consensus", default="base-average-region,base-single-region,base-average-pixel")
    parser.add_argument("--power", type=float, default=3.0)
    parser.add_argument("--tau", type=float, default=0.6, help="chain top at 1 - p <= tau (pred-tau rows)")
    args = parser.parse_args()
    params = TreeParams(height_power=args.power)
    predictor = HierarchyPredictor()
    pred_scores: dict[str, list] = {}
    cut_scores: dict[str, list] = {}
    times: dict[str, list] = {}
    for index, image_id in enumerate(bsds_ids(args.skip, args.images)):
        image, _, segmentations = load(image_id)
        size = (image.shape[1], image.shape[0])

        def score(labels, size=size, segmentations=segmentations):
            big = cv2.resize(labels.astype(np.float32), size, interpolation=cv2.INTER_NEAREST)
            return float(np.mean([covering(gt, big) for gt in segmentations]))

        start = time.perf_counter()
        trees = {"single": build_region_tree(image, TreeParams())}
        times.setdefault("single", []).append(time.perf_counter() - start)
        start = time.perf_counter()
        ensemble = build_region_trees(image, params, UCM_STARTS[: args.starts])
        times.setdefault("ensemble", []).append(time.perf_counter() - start)
        trees["owt"] = ensemble[0]
        small, scale = resize_long_side(image, params.internal_long_side)
        lab = to_lab(small)
        strength = boundary_map(lab)
        for name in args.consensus.split(","):
            leaves, linkage, weighting = name.split("-")
            start = time.perf_counter()
            trees[f"cons-{name}"] = consensus_tree(
                small, lab, strength, scale, ensemble, params, leaves, linkage, weighting
            )
            times.setdefault(f"cons-{name}", []).append(time.perf_counter() - start)
        for name, tree in trees.items():
            predictor.tree, predictor._original_size = tree, image.shape[:2]
            per_g = [(score(p), len(np.unique(p))) for p in hierarchy_partitions(predictor)]
            pred_scores.setdefault(name, []).append(max(per_g)[0])
            if name == "single":  # SLIC with the region count of the best g, as bench_tree.py
                from skimage.segmentation import slic

                count = max(max(per_g)[1], 2)
                slic_labels = slic(small, n_segments=count, compactness=10, start_label=0)
                pred_scores.setdefault("slic (same count)", []).append(score(slic_labels))
            tau_parts = partitions_height_top(tree, predictor.config, args.tau)
            pred_scores.setdefault(f"{name} top@tau", []).append(max(score(p) for p in tau_parts))
            cut_scores.setdefault(name, []).append([score(cut_labels(tree, t)) for t in THRESHOLDS])
        print(
            f"{index + 1} {image_id} "
            + " ".join(f"{k}:{pred_scores[k][-1]:.3f}/{max(cut_scores[k][-1]):.3f}" for k in trees)
            + f" slic:{pred_scores['slic (same count)'][-1]:.3f}",
            flush=True,
        )
    print(f"\nBSDS val {args.skip + 1}-{args.skip + args.images}, starts {args.starts}, power {args.power}")
    print("| tree | predictor best g | top@tau best g | cut OIS | cut ODS (t) | build (s, median) |")
    print("|---|---|---|---|---|---|")
    for name in cut_scores:
        cuts = np.asarray(cut_scores[name])
        ods = cuts.mean(0)
        print(
            f"| {name} | {np.mean(pred_scores[name]):.4f} | {np.mean(pred_scores[name + ' top@tau']):.4f} | "
            f"{cuts.max(1).mean():.4f} | {ods.max():.4f} ({THRESHOLDS[ods.argmax()]:.2f}) | "
            f"{np.median(times.get(name, [0])):.3f} |"
        )
    print(
        f"| SLIC, the region count of single's best g | {np.mean(pred_scores['slic (same count)']):.4f} | | | | |"
    )
    print(f"ensemble trees build (s, median): {np.median(times['ensemble']):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
