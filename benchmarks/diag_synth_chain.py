"""Diagnose the ``hierarchy`` model on synthetic scenes (one click inside the largest part, as
``bench_hierarchy.py --only synth``): returned part IoU (best g <= 0.3) and object IoU (g = 1.0) against the best
IoU reachable on the click's chain and anywhere in the tree, and the chain top's IoU with the object.

    PYTHONPATH=. .venv/bin/python benchmarks/diag_synth_chain.py [--first-seed 0] [--scenes 30] [--set key=value ...]
        [--gt]

Seeds 0.. are the tune seeds; 1000.. are reported by bench_hierarchy.py. ``--gt`` measures the benchmark itself
(no model): the g the sqrt-area formula gives the clicked part over the ground truth's own chain at the click
(the sub-part holding the click if any, the part, the object; regions under 5 % of the object dropped as the
predictor's ``part_min_fraction`` does) and over the object's whole hierarchy (the scene's ``granularity``), and
the part IoU at the best g <= 0.3 of an oracle that answers that exact chain.
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


def gt_chain_row(scene, obj, part, x: int, y: int) -> dict:
    """The clicked part's g over the ground truth's chain at the click and over its object's hierarchy, and the
    part IoU at the best g <= 0.3 of an oracle answering that chain (see the module docstring)."""
    from granseg.regions.granularity import granularity_from_areas

    holding = [s for s in scene.children(part.id) if s.mask[y, x]]
    chain = [c for c in [*holding[:1], part, obj] if c.area >= 0.05 * obj.area] or [obj]
    levels = granularity_from_areas([c.area for c in chain])
    best = max(
        _iou(chain[max([i for i in range(len(chain)) if levels[i] <= g + 1e-9] or [0])].mask, part.mask)
        for g in (0.1, 0.2, 0.3)
    )
    return {
        "g_chain": float(levels[chain.index(part)]) if part in chain else float("nan"),
        "g_hierarchy": float(part.granularity),
        "oracle_part": best,
        "click_in_subpart": float(bool(holding)),
        "has_subparts": float(bool(scene.children(part.id))),
    }


def main_gt(first_seed: int, scenes: int, size: int) -> int:
    rows = []
    for seed in range(first_seed, first_seed + scenes):
        scene = generate_scene(seed=seed, config=SynthConfig(size=size))
        picked = largest_part_click(scene)
        if picked is not None:
            obj, part, (x, y) = picked
            rows.append(gt_chain_row(scene, obj, part, x, y))
    g_chain = np.array([r["g_chain"] for r in rows])
    g_all = np.array([r["g_hierarchy"] for r in rows])
    print(
        f"{len(rows)} scenes; part g over the GT chain at the click: <= 0.3 in {int((g_chain <= 0.3 + 1e-9).sum())}"
        f" (median {np.nanmedian(g_chain):.2f}); over the object's whole hierarchy: median {np.median(g_all):.2f},"
        f" range {g_all.min():.2f}-{g_all.max():.2f}, <= 0.3 in {int((g_all <= 0.3 + 1e-9).sum())}; parts with"
        f" sub-parts {int(sum(r['has_subparts'] for r in rows))}, click inside a sub-part"
        f" {int(sum(r['click_in_subpart'] for r in rows))}; oracle on the GT chain: part IoU at the best g <= 0.3"
        f" {np.mean([r['oracle_part'] for r in rows]):.3f}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=30)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--set", nargs="*", default=[])
    parser.add_argument("--gt", action="store_true", help="measure the benchmark's ground truth (no model)")
    args = parser.parse_args()
    if args.gt:
        return main_gt(args.first_seed, args.scenes, args.size)
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
        nodes, levels, _ = ch.chain_levels(
            tree, list(chain), top, cfg.part_min_fraction, cfg.part_min_distinct
        )
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
