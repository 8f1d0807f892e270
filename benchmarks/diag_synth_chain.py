"""Diagnose the ``hierarchy`` model on synthetic scenes (one click inside the largest part, as
``bench_hierarchy.py --only synth``): returned part IoU (best g <= 0.3) and object IoU (g = 1.0) against the best
IoU reachable on the click's chain and anywhere in the tree, and the chain top's IoU with the object.

    PYTHONPATH=. .venv/bin/python benchmarks/diag_synth_chain.py [--first-seed 0] [--scenes 30] [--set key=value ...]

Seeds 0.. are the tune seeds; 1000.. are reported by bench_hierarchy.py.
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np
from bench_hierarchy import largest_part_click

from granseg.predict.hierarchy import build_hierarchy
from granseg.regions import chains as ch
from granseg.synth import SynthConfig, generate_scene


def _iou(a, b) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def node_ious(tree, mask_small):
    inside = np.bincount(tree.leaf_map.ravel(), weights=mask_small.ravel(), minlength=tree.n_leaves)
    cum = np.concatenate([[0.0], np.cumsum(inside)])
    inter = cum[tree.hi] - cum[tree.lo]
    return inter / (tree.area + mask_small.sum() - inter)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=30)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--set", nargs="*", default=[])
    args = parser.parse_args()
    defaults = build_hierarchy().config
    overrides = {k: type(getattr(defaults, k))(v) for k, v in (s.split("=") for s in args.set)}
    predictor = build_hierarchy(**overrides).create_predictor()
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.scenes):
        scene = generate_scene(seed=seed, config=SynthConfig(size=args.size))
        picked = largest_part_click(scene)
        if picked is None:
            continue
        obj, part, (x, y) = picked
        predictor.set_image(scene.image)
        masks = predictor.predict([[x, y]], [1], granularity="all").masks
        tree, cfg = predictor.tree, predictor.config
        h, w = tree.leaf_map.shape
        small = {
            k: cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.5
            for k, m in (("part", part.mask), ("obj", obj.mask))
        }
        leaf = ch.points_to_leaves(tree, np.array([[x, y]], float), scene.image.shape[:2])[0]
        chain = np.asarray(tree.chain(int(tree.leaf_node[leaf])))
        top = ch.chain_top(tree, list(chain), cfg.min_object_fraction, cfg.max_object_fraction)
        nodes, levels = ch.chain_levels(tree, list(chain), top, cfg.part_min_fraction, cfg.part_min_distinct)
        pi, oi = node_ious(tree, small["part"]), node_ious(tree, small["obj"])
        row = {
            "seed": seed,
            "part": max(_iou(m, part.mask) for m in masks[:3]),
            "part_chain": float(pi[chain].max()),
            "part_levels": float(pi[nodes].max()),
            "obj": _iou(masks[-1], obj.mask),
            "obj_chain": float(oi[chain].max()),
            "obj_top": float(oi[chain[top]]),
            "obj_tree": float(oi.max()),
            "n_levels": len(nodes),
        }
        rows.append(row)
        if args.verbose:
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    keys = [k for k in rows[0] if k != "seed"]
    print(f"{len(rows)} scenes", " ".join(f"{k}={np.mean([r[k] for r in rows]):.3f}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
