"""Which g do the pseudo-labels give to the label that matches the GT part at the evaluation's clicks? (issue 16)

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/diag_pseudo_click_g.py --work DIR [--scenes 40]
        [--drop-fracs 0,0.02,0.05,0.1]

``--work`` holds ``pseudo/scene_<seed>.json`` (the engine's output on ``bench_unsamv2_train.py``'s training
scenes, 128 px). At each evaluation-style click of every training scene (the pixel farthest from the boundary of
each part of an object with >= 2 parts, ``part_clicks``) the labels containing the click form the chain of levels
the trainer's ``nearest_level`` sampling sees (here: all of the image's labels, no 30-mask cap). Reported per g rule:

* ``best part label``: the label at the click with the highest IoU with the GT part: its IoU, its g, and whether a
  requested g of 0.1 / 0.2 / 0.3 falls in its nearest-level range (the g range for which it is trained);
* ``label at g``: the label that ``nearest_level`` trains at g = 0.1 / 0.2 / 0.3 / 1.0 (the chain member whose g is
  nearest; ties: the mean over them) and its IoU with the GT part (object for 1.0): what a perfect learner of these
  labels answers there;
* the exact GT's own numbers (the scene's nodes as labels) for comparison.

g rules: ``labels`` (the engine's g as stored); ``drop F``: g recomputed per instance (``instance_id``) with the
DESIGN.md sqrt-area formula over the members with area >= F x the instance's largest member; the dropped members
get g 0.1 (they stay in the chain as the smallest level); ``remove F``: the same g, the smaller members removed
from the labels (they leave the chains and are not trained).

Coordinates: clicks ``(x, y)`` in pixels of the 128 px scene; masks ``H x W`` bool.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from unsamv2_train_eval import part_clicks, synth_config  # noqa: E402

from granseg.train.unsamv2_prompts import nearest_level_range  # noqa: E402

ASKED = (0.1, 0.2, 0.3, 1.0)


def read_labels(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(masks N x H x W bool, g (N,), instance_id (N,))`` of one pseudo-label JSON (pycocotools RLE)."""
    from granseg.io.masks import decode_rle

    annotations = json.loads(path.read_text())["annotations"]
    masks, values, instances = [], [], []
    for a in annotations:
        masks.append(decode_rle(a["segmentation"]))
        values.append(float(a["granularity"]))
        instances.append(int(a.get("instance_id", -1)))
    if not masks:
        return np.zeros((0, 1, 1), bool), np.zeros(0), np.zeros(0, int)
    return np.stack(masks), np.asarray(values), np.asarray(instances)


def drop_small_granularity(masks: np.ndarray, instances: np.ndarray, frac: float) -> np.ndarray:
    """``(N,)`` g per instance from the sqrt-area formula over members with area >= ``frac`` x the instance's
    largest member; the smaller members get 0.1."""
    from granseg.regions.granularity import G_MIN, granularity_from_areas

    areas = masks.reshape(len(masks), -1).sum(1).astype(np.float64)
    out = np.full(len(masks), G_MIN)
    for instance in np.unique(instances):
        members = np.flatnonzero(instances == instance)
        kept = members[areas[members] >= frac * areas[members].max()]
        out[kept] = granularity_from_areas(areas[kept])
    return out


def kept_members(masks: np.ndarray, instances: np.ndarray, frac: float) -> np.ndarray:
    """``(N,)`` bool: members with area >= ``frac`` x their instance's largest member."""
    areas = masks.reshape(len(masks), -1).sum(1).astype(np.float64)
    largest = {i: areas[instances == i].max() for i in np.unique(instances)}
    return np.array([areas[k] >= frac * largest[i] for k, i in enumerate(instances)], dtype=bool)


def _iou(masks: np.ndarray, gt: np.ndarray) -> np.ndarray:
    inter = (masks & gt).reshape(len(masks), -1).sum(1)
    union = (masks | gt).reshape(len(masks), -1).sum(1)
    return inter / np.maximum(union, 1)


def click_stats(masks: np.ndarray, values: np.ndarray, scene) -> list[dict]:
    """One record per evaluation-style click: the best part label's IoU / g / trained range, the IoU of the label
    trained at each asked g."""
    rows = []
    for obj, part, (x, y) in part_clicks(scene):
        holding = np.flatnonzero(masks[:, int(y), int(x)])
        row = {"part_g_gt": part.granularity}
        if not len(holding):
            rows.append({**row, "empty": True})
            continue
        ious = _iou(masks[holding], part.mask)
        best = holding[int(np.argmax(ious))]
        levels = np.unique(values[holding])
        low, high = nearest_level_range(levels, values[best])
        row.update(best_iou=float(ious.max()), best_g=float(values[best]), best_low=low, best_high=high)
        for g in ASKED:
            distance = np.abs(values[holding] - g)
            tied = holding[distance == distance.min()]
            gt = obj.mask if g == 1.0 else part.mask
            row[f"iou_at_{g}"] = float(_iou(masks[tied], gt).mean())
        rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict:
    full = [r for r in rows if not r.get("empty")]
    out = {"clicks": len(rows), "no label at click": len(rows) - len(full)}
    best_g = np.array([r["best_g"] for r in full])
    out["best part label: mean IoU"] = round(float(np.mean([r["best_iou"] for r in full])), 3)
    out["best part label: g quartiles"] = np.round(np.percentile(best_g, [25, 50, 75]), 2).tolist()
    for g in (0.1, 0.2, 0.3):
        inside = np.mean([r["best_low"] <= g < r["best_high"] for r in full])
        out[f"best part label trained at g={g} (share of clicks)"] = round(float(inside), 3)
    for g in ASKED:
        target = "object" if g == 1.0 else "part"
        value = np.mean([r.get(f"iou_at_{g}", 0.0) for r in rows])
        out[f"IoU with GT {target} of the label trained at g={g}"] = round(float(value), 3)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--drop-fracs", default="0.02,0.05,0.1")
    args = parser.parse_args(argv)
    from granseg.synth import generate_scene

    fracs = [f for f in args.drop_fracs.split(",") if f]
    rules = ["labels"] + [f"drop {f}" for f in fracs] + [f"remove {f}" for f in fracs]
    rows = {rule: [] for rule in [*rules, "exact GT"]}
    for seed in range(args.scenes):
        path = Path(args.work) / "pseudo" / f"scene_{seed:05d}.json"
        if not path.is_file():
            continue
        scene = generate_scene(seed, synth_config())
        masks, values, instances = read_labels(path)
        for rule in rules:
            if rule == "labels":
                rows[rule] += click_stats(masks, values, scene)
                continue
            kind, frac = rule.split()
            g = drop_small_granularity(masks, instances, float(frac))
            if kind == "drop":
                rows[rule] += click_stats(masks, g, scene)
            else:  # remove: the small members leave the labels (and the chains)
                keep = kept_members(masks, instances, float(frac))
                rows[rule] += click_stats(masks[keep], g[keep], scene)
        gt = np.stack([n.mask for n in scene.nodes])
        rows["exact GT"] += click_stats(gt, np.array([n.granularity for n in scene.nodes]), scene)
    report = {rule: summarise(r) for rule, r in rows.items()}
    gt_g = np.array([r["part_g_gt"] for r in rows["exact GT"]])
    report["exact GT part g quartiles"] = np.round(np.percentile(gt_g, [25, 50, 75]), 2).tolist()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
