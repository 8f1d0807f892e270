"""Classify the failing clicks of the synthetic-scenes target (``bench_hierarchy.py --only synth``: one click
inside the largest part; part IoU at the best g <= 0.3 >= 0.8, object IoU at g = 1.0 >= 0.9) by where the answer
goes wrong, stage by stage:

* ``tree``: no region of the click's chain (its leaf up to the root) reaches the target IoU; ``tree+`` when
  another region of the tree does (the object is in the tree but not above the click);
* ``levels``: a chain region reaches it but is not one of the click's levels (dropped below the first region
  with colours of its own, ``part_min_distinct``, or above the chain top);
* ``pick``: the region is a level but the g asked (g <= 0.3 for a part, 1.0 for the object) picks another one;
  ``pick-gt`` (parts) when the benchmark's own formula over the ground truth's chain at the click does the same
  (the click lies in a sub-part: ``diag_synth_chain.py --gt``), so no chain can reach the target there;
* ``refine``: the region g picks reaches the target, the refined answer (GrabCut, object-prior union, pixel band,
  clip, running union) does not.

For each class: how many clicks, their mean IoU now, the mean IoU of the best region at the stage that fails
(for ``pick``: the best level, what picking right could give) and the IoU lost to the target.

    PYTHONPATH=. .venv/bin/python benchmarks/diag_synth_failures.py [--first-seed 0] [--scenes 100]
        [--set key=value ...] [--verbose]

Seeds 0.. are the tune seeds; 1000.. are the ones ``bench_hierarchy.py`` reports.
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np
from bench_hierarchy import largest_part_click
from diag_synth_chain import gt_chain_row

from granseg.predict.hierarchy import build_hierarchy
from granseg.regions import chains as ch
from granseg.synth import SynthConfig, generate_scene

PART_TARGET, OBJECT_TARGET = 0.8, 0.9


def _iou(a, b) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def node_ious(tree, mask_small: np.ndarray) -> np.ndarray:
    """``(M,)`` IoU of every tree node with an internal-resolution bool mask."""
    inside = np.bincount(tree.leaf_map.ravel(), weights=mask_small.ravel(), minlength=tree.n_leaves)
    cum = np.concatenate([[0.0], np.cumsum(inside)])
    inter = cum[tree.hi] - cum[tree.lo]
    return inter / (tree.area + mask_small.sum() - inter)


def classify(
    final: float, target: float, chain_best: float, tree_best: float, level_best: float, picked: float
):
    """The failing stage of one answer (``ok`` when it reaches the target)."""
    if final >= target:
        return "ok"
    if chain_best < target:
        return "tree+" if tree_best >= target else "tree"
    if level_best < target:
        return "levels"
    if picked < target:
        return "pick"
    return "refine"


def scene_row(predictor, scene) -> dict | None:
    picked_click = largest_part_click(scene)
    if picked_click is None:
        return None
    obj, part, (x, y) = picked_click
    predictor.set_image(scene.image)
    masks = predictor.predict([[x, y]], [1], granularity="all").masks
    tree = predictor.tree
    h, w = tree.leaf_map.shape
    small = {
        k: cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.5
        for k, m in (("part", part.mask), ("obj", obj.mask))
    }
    leaf = int(ch.points_to_leaves(tree, np.array([[x, y]], float), scene.image.shape[:2])[0])
    chain = np.asarray(tree.chain(int(tree.leaf_node[leaf])))
    nodes, levels, _ = predictor._chain(leaf, None, True)
    pi, oi = node_ious(tree, small["part"]), node_ious(tree, small["obj"])
    low = [ch.node_for_granularity(nodes, levels, g) for g in (0.1, 0.2, 0.3)]
    part_final = max(_iou(m, part.mask) for m in masks[:3])
    obj_final = _iou(masks[-1], obj.mask)
    row = {
        "seed": scene.seed,
        "part": part_final,
        "part_chain": float(pi[chain].max()),
        "part_levels": float(pi[nodes].max()),
        "part_pick": float(pi[low].max()),
        "part_best_g": float(levels[int(np.argmax(pi[nodes]))]),
        "obj": obj_final,
        "obj_chain": float(oi[chain].max()),
        "obj_levels": float(oi[nodes].max()),
        "obj_pick": float(oi[nodes[-1]]),
        "obj_tree": float(oi.max()),
        "top_frac": float(tree.area[nodes[-1]] / tree.leaf_map.size),
        "obj_frac": float(small["obj"].mean()),
        "n_levels": len(nodes),
    }
    gt = gt_chain_row(scene, obj, part, x, y)  # the sqrt-area g of the part over the GT chain at the click
    row["gt_g"], row["gt_oracle"] = gt["g_chain"], gt["oracle_part"]
    row["part_class"] = classify(
        part_final, PART_TARGET, row["part_chain"], float(pi.max()), row["part_levels"], row["part_pick"]
    )
    if row["part_class"] == "pick" and row["gt_oracle"] < PART_TARGET:
        row["part_class"] = "pick-gt"  # the GT chain's own g answers the part above 0.3 (click in a sub-part)
    row["obj_class"] = classify(
        obj_final, OBJECT_TARGET, row["obj_chain"], row["obj_tree"], row["obj_levels"], row["obj_pick"]
    )
    return row


def summary(rows: list[dict], which: str) -> list[str]:
    """One line per failure class of ``which`` ("part" or "obj")."""
    stage = {"tree": "chain", "tree+": "chain", "levels": "levels", "refine": "pick", "ok": "pick"}
    stage.update({"pick": "levels", "pick-gt": "levels"})
    lines = [f"{which}: mean IoU {np.mean([r[which] for r in rows]):.3f} over {len(rows)} clicks"]
    for name in ("ok", "tree", "tree+", "levels", "pick", "pick-gt", "refine"):
        group = [r for r in rows if r[f"{which}_class"] == name]
        if not group:
            continue
        key = f"{which}_{stage[name]}"
        lines.append(
            f"  {name:7s} {len(group):3d} clicks: IoU now {np.mean([r[which] for r in group]):.3f}, best region at"
            f" the failing stage ({key}) {np.mean([r[key] for r in group]):.3f}; sum of IoU lost to the target"
            f" {sum(max(0.0, (PART_TARGET if which == 'part' else OBJECT_TARGET) - r[which]) for r in group):.2f}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--set", nargs="*", default=[])
    args = parser.parse_args()
    defaults = build_hierarchy().config
    overrides = {}
    for item in args.set:
        key, value = item.split("=")
        kind = type(getattr(defaults, key))
        overrides[key] = value.lower() in ("1", "true") if kind is bool else kind(value)
    predictor = build_hierarchy(**overrides).create_predictor()
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.scenes):
        row = scene_row(predictor, generate_scene(seed=seed, config=SynthConfig(size=args.size)))
        if row is None:
            continue
        rows.append(row)
        if args.verbose:
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    print("\n".join(summary(rows, "part") + summary(rows, "obj")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
