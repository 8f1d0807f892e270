"""What does UnSAMv2 training get from ``granseg pseudo-label`` on the synthetic training scenes? (issue 16, run b)

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/diag_pseudo_synth.py --work /tmp/granseg_bench_unsamv2_train \
        [--scenes 40] [--size 128] [--mine] [--set FIELD=VALUE ...]

``--work`` holds ``images/scene_<seed>.png`` and ``pseudo/`` (the layout of ``bench_unsamv2_train.py``); ``--mine``
first writes the images and runs the engine (``--set`` overrides :class:`PseudoLabelConfig` fields). The labels are
read through the TRAINING loader (:class:`granseg.train.unsamv2_data.MixedMaskDataset`, no flip, no mask cap, its
``min_area``), so what is measured is exactly what the trainer sees, then compared with the scenes' exact GT
(``generate_scene(seed)``, nodes: objects, parts, sub-parts):

* masks per image (in the JSON, after the loader), instances per image, the JSON fields the loader relies on;
* empty / tiny (< 1 % of the image) / large (> 50 %) / full-image (> 90 %) masks;
* the g histogram of the labels vs the GT nodes' g histogram;
* recall: per GT object / part / sub-part, the best IoU over all labels (mean, share >= 0.5), and the g of that
  best label (is a found object labelled g ~ 1, a found part g ~ its GT g?);
* precision: share of labels whose best IoU with any GT node is >= 0.5;
* a check that the loader's masks are the JSON's masks (RLE decode orientation, size).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from unsamv2_train_eval import part_clicks  # noqa: E402

BINS = np.round(np.arange(0.1, 1.01, 0.1), 2)  # [0.1, 0.2), ..., [0.9, 1.0]
LEVELS = ("object", "part", "subpart")
CLICK_TARGETS = (("part", 0.2), ("object", 1.0))  # the training evaluation's targets


def click_targets(scene, masks: np.ndarray, values: np.ndarray):
    """At the evaluation's clicks (the pixel farthest from the boundary of each part of an object with >= 2
    parts): the label containing the click whose g is nearest to the target g, and its IoU with the GT part /
    object (0 when no label contains the click), the first such label and the mean over all labels tied at that
    g (nested instances: the object and the region around it both have g 1). What a model could learn at best
    from these labels there."""
    for obj, part, (x, y) in part_clicks(scene):
        holding = np.flatnonzero(masks[:, int(y), int(x)]) if len(masks) else np.zeros(0, int)
        for level, g_target in CLICK_TARGETS:
            gt = obj.mask if level == "object" else part.mask
            if not len(holding):
                yield level, g_target, 0.0, 0.0
                continue
            distance = np.abs(values[holding] - g_target)
            tied = holding[distance == distance.min()]
            ious = (masks[tied] & gt).sum(axis=(1, 2)) / (masks[tied] | gt).sum(axis=(1, 2))
            yield level, g_target, float(ious[0]), float(ious.mean())


def mine(work: Path, seeds: range, size: int, overrides: dict) -> None:
    """Write ``images/scene_<seed>.png`` and pseudo-label them into ``pseudo/``."""
    from PIL import Image

    from granseg.pseudo.pipeline import PseudoLabelConfig, run_pipeline
    from granseg.synth import SynthConfig, generate_scene

    images = work / "images"
    images.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        path = images / f"scene_{seed:05d}.png"
        if not path.is_file():
            Image.fromarray(generate_scene(seed, SynthConfig(size=size)).image).save(path)
    config = PseudoLabelConfig(**overrides)
    resume = (work / "pseudo" / "manifest.jsonl").is_file()
    run_pipeline(images, work / "pseudo", config, resume=resume)


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(A, H, W)`` and ``(B, H, W)`` bool -> ``(A, B)`` IoU."""
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def _hist(values) -> list[float]:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return [0.0] * 9
    counts = np.histogram(np.clip(values, 0.1, 1.0), bins=np.linspace(0.1, 1.0, 10))[0]
    return (counts / values.size).round(3).tolist()


def _raw_fields(path: Path) -> dict:
    document = json.loads(path.read_text())
    annotations = document["annotations"]
    keys = Counter(k for a in annotations for k in a)
    return {
        "count": len(annotations),
        "with_granularity": keys["granularity"],
        "with_instance_id": keys["instance_id"],
        "instances": len({a.get("instance_id") for a in annotations}),
        "stuff": sum(bool(a.get("is_stuff")) for a in annotations),
        "is_part": sum(bool(a.get("is_part")) for a in annotations),
        "size": (document["image"]["height"], document["image"]["width"]),
    }


def measure(work: Path, seeds: range, size: int, min_area: int = 16) -> dict:
    from pycocotools import mask as mask_utils

    from granseg.synth import SynthConfig, generate_scene
    from granseg.train.unsamv2_data import DataSource, MixedMaskDataset, UnSAMv2DataConfig

    source = DataSource(kind="pseudo", folder=str(work / "pseudo"), images=str(work / "images"))
    config = UnSAMv2DataConfig(sources=[source], max_masks=100000, min_area=min_area, flip=False)
    dataset = MixedMaskDataset(config, seed=0)
    files = {p.stem: p for p in dataset.sources[0].files}
    acc = {
        "json_masks": [],
        "loader_masks": [],
        "instances": [],
        "label_g": [],
        "gt_g": [],
        "fields": Counter(),
    }
    for prefix in ("recall", "g_of_best", "gt_g"):
        acc.update({f"{prefix}_{level}": [] for level in LEVELS})
    acc.update(precise=[], area_frac=[], decode_mismatch=0, background=[])
    kinds = ("click", "tied_click", "gt_click")
    acc.update({f"{kind}_{level}_{g}": [] for level, g in CLICK_TARGETS for kind in kinds})
    for seed in seeds:
        stem = f"scene_{seed:05d}"
        if stem not in files:
            continue
        raw = _raw_fields(files[stem])
        sample = dataset.sources[0].load(sorted(files).index(stem), dataset.counts)
        keep = sample.masks.reshape(len(sample.masks), -1).sum(1) >= min_area
        masks, values = sample.masks[keep], sample.granularity[keep]
        # the loader's first mask is the JSON's first annotation, decoded by pycocotools directly
        first = json.loads(files[stem].read_text())["annotations"][:1]
        if first:
            rle = dict(first[0]["segmentation"], counts=first[0]["segmentation"]["counts"].encode())
            acc["decode_mismatch"] += int(
                not np.array_equal(mask_utils.decode(rle).astype(bool), sample.masks[0])
            )
        scene = generate_scene(seed, SynthConfig(size=size))
        acc["json_masks"].append(raw["count"])
        acc["loader_masks"].append(len(masks))
        acc["instances"].append(raw["instances"])
        for key in ("with_granularity", "with_instance_id", "stuff", "is_part", "count"):
            acc["fields"][key] += raw[key]
        acc["fields"]["size_mismatch"] += int(raw["size"] != sample.image.shape[:2])
        acc["label_g"] += values.tolist()
        acc["area_frac"] += (masks.reshape(len(masks), -1).mean(1)).tolist()
        gt = np.stack([n.mask for n in scene.nodes])
        acc["gt_g"] += [n.granularity for n in scene.nodes]
        iou = _iou_matrix(gt, masks) if len(masks) else np.zeros((len(gt), 0))
        for row, node in enumerate(scene.nodes):
            best = int(np.argmax(iou[row])) if iou.shape[1] else -1
            acc[f"recall_{node.level}"].append(float(iou[row, best]) if best >= 0 else 0.0)
            acc[f"g_of_best_{node.level}"].append(float(values[best]) if best >= 0 else float("nan"))
            acc[f"gt_g_{node.level}"].append(node.granularity)
        acc["precise"] += (iou.max(0) >= 0.5).tolist() if len(masks) else []
        objects = np.stack([o.mask for o in scene.objects()])
        acc["background"] += (
            (masks & objects.any(0)).reshape(len(masks), -1).sum(1)
            < 0.5 * masks.reshape(len(masks), -1).sum(1)
        ).tolist()
        for level, g_target, iou_value, tied_value in click_targets(scene, masks, values):
            acc[f"click_{level}_{g_target}"].append(iou_value)
            acc[f"tied_click_{level}_{g_target}"].append(tied_value)
        for level, g_target, iou_value, _ in click_targets(scene, gt, np.asarray(acc["gt_g"][-len(gt) :])):
            acc[f"gt_click_{level}_{g_target}"].append(iou_value)  # the same with the exact GT as labels
    out = summarise(acc, dataset.counts)
    out[
        "training subsets of 8 (10 draws per image): share with g >= 0.9 / holding one, uniform vs balanced"
    ] = [subset_share(source, min_area, balance) for balance in (False, True)]
    return out


def subset_share(source, min_area: int, balance: bool, max_masks: int = 8) -> list[float]:
    """What the trainer draws: mean share of g >= 0.9 masks in a ``max_masks`` subset, and the share of
    subsets that hold at least one (10 seeded draws per image, no flip)."""
    from granseg.train.unsamv2_data import MixedMaskDataset, UnSAMv2DataConfig

    config = UnSAMv2DataConfig(
        sources=[source], max_masks=max_masks, min_area=min_area, flip=False, balance_granularity=balance
    )
    dataset = MixedMaskDataset(config, seed=0)
    shares, holds = [], []
    for index in range(len(dataset)):
        for draw in range(10):
            values = dataset.load(index, np.random.default_rng([index, draw])).granularity
            shares.append(float(np.mean(values >= 0.9)))
            holds.append(bool((values >= 0.9).any()))
    return [round(float(np.mean(shares)), 3), round(float(np.mean(holds)), 3)]


def summarise(acc: dict, counts: Counter) -> dict:
    area = np.asarray(acc["area_frac"])
    out = {
        "images": len(acc["json_masks"]),
        "masks per image (JSON) mean / median / max": _stats(acc["json_masks"]),
        "masks per image (loader, >= min_area) mean / median / max": _stats(acc["loader_masks"]),
        "instances per image mean": float(np.mean(acc["instances"])) if acc["instances"] else 0.0,
        "JSON fields (of all annotations)": dict(acc["fields"]),
        "loader bad_annotations / skipped": (counts["bad_annotations"], counts["skipped_samples"]),
        "first-mask decode mismatches (loader vs pycocotools)": acc["decode_mismatch"],
        "label area share: < 1 % / 1-5 % / 5-50 % / > 50 % / > 90 % (full image)": [
            round(float(np.mean(m)), 3) if area.size else 0.0
            for m in (
                area < 0.01,
                (area >= 0.01) & (area < 0.05),
                (area >= 0.05) & (area <= 0.5),
                area > 0.5,
                area > 0.9,
            )
        ],  # fmt: skip
        "label g histogram (bins 0.1-0.2 ... 0.9-1.0)": _hist(acc["label_g"]),
        "GT g histogram (all nodes)": _hist(acc["gt_g"]),
        "label precision (best IoU with a GT node >= 0.5)": _mean(acc["precise"]),
        "labels mostly (> 50 %) outside every GT object": _mean(acc["background"]),
    }
    for level, g in CLICK_TARGETS:
        out[
            f"at eval clicks: IoU(GT {level}, label holding the click with g nearest {g}): labels / exact GT"
        ] = [_mean(acc[f"click_{level}_{g}"]), _mean(acc[f"gt_click_{level}_{g}"])]
        out[f"at eval clicks: same for GT {level}, mean over the labels tied at that g"] = _mean(
            acc[f"tied_click_{level}_{g}"]
        )
    for level in LEVELS:
        best, g_best, g_gt = (np.asarray(acc[f"{k}_{level}"]) for k in ("recall", "g_of_best", "gt_g"))
        found = best >= 0.5
        out[f"GT {level}s: n / mean best IoU / recall@0.5"] = [
            int(best.size),
            round(float(best.mean()), 3) if best.size else 0.0,
            _mean(found),
        ]
        out[f"GT {level}s found: mean GT g / mean label g of the match"] = [
            round(float(g_gt[found].mean()), 3) if found.any() else None,
            round(float(np.nanmean(g_best[found])), 3) if found.any() else None,
        ]
    return out


def _stats(values) -> list:
    if not values:
        return [0, 0, 0]
    return [round(float(np.mean(values)), 1), float(np.median(values)), int(np.max(values))]


def _mean(values) -> float:
    return round(float(np.mean(values)), 3) if len(values) else 0.0


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        out[key] = json.loads(value)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--first-seed", type=int, default=0, help="0: the training scenes of the benchmark")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--min-area", type=int, default=16)
    parser.add_argument("--mine", action="store_true")
    parser.add_argument(
        "--set", action="append", default=[], help="PseudoLabelConfig FIELD=JSON (with --mine)"
    )
    args = parser.parse_args(argv)
    seeds = range(args.first_seed, args.first_seed + args.scenes)
    if args.mine:
        mine(args.work, seeds, args.size, _overrides(args.set))
    result = measure(args.work, seeds, args.size, args.min_area)
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
