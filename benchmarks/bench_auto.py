"""Whole-image mask generation (``granseg auto``): speed of the batched pipeline against the per-point loop, the
recall cost of the ``fast`` preset, and the ``hierarchy`` model's region-tree readout against its point grid
(numbers go to benchmarks/results/auto.md).

    nice -n 5 .venv/bin/python benchmarks/bench_auto.py [--only speed,recall,tree,ablation] [--threads 2] [--json F]

1. speed: UnSAMv2 hiera-small config, random init, a 1024 px image (granseg/assets/coffee.jpg resized so that its
   long side is 1024), ``--threads`` torch threads, all in one process (ratios within the run are what count on a
   shared machine; wall and CPU seconds are both recorded). The image is embedded once (timed: the encoder) and
   read back from the predictor's embedding cache by every later run, so the rows below time everything after
   the encoder. Measured: the decoder-compute bound (``decode_points`` on 32 (point, g) pairs, ms per pair); the
   new pipeline on a measured fraction of the 64 x 64 grid (1/8: every 8th row, at one g; 1/64: every 8th point
   of every 8th row, at all 10 g), to be scaled to the grid; the same with every filter off (every candidate
   upsampled, hashed and RLE-encoded: the per-candidate cost of the tail); the ``fast`` preset at all 10 g on the
   full grid (official filters, then filters off); the per-point loop (``naive_generate``) on the 1/64 fraction at
   one g and at 10 g. Random weights: the official stability test (offset 1) rejects every mask (logits within
   +-0.01), so the "filters off" rows are the ones that exercise upsampling, encoding and NMS.
2. recall: the weight-free ``hierarchy`` model driven through the same point-grid pipeline on the COCO val2017
   sample (../shared/data/coco_val2017_sample, one 640 x 427 image, 19 instances): the official preset, the
   per-point loop (same masks, its time), and ``fast`` variants; AR@10/100/1000 against the COCO ground truth and
   against the official preset's own output (treated as ground truth), time per image and pairs decoded.
3. tree: the ``hierarchy`` model's whole-image masks read from its region tree (``source="tree"``, the default for
   it) against the same model driven through the point grid (``source="grid"``: the official 64 x 64 preset and
   ``fast``), side by side: AR@10/100/1000 (COCOeval, class-agnostic) and seconds per image on the COCO sample
   (reported: nothing was tuned on it) and on BSDS500 val (objects: every segment of every human segmentation
   covering 0.1 % to 70 % of the image; the tree scores were fitted on every other image of the first half of the
   sorted ids, so the second half is reported, the first half shown for reference). The grid is slow with
   ``hierarchy`` (one GrabCut-refined click per (point, g)): the 64 x 64 grid runs on COCO only, the ``fast`` grid
   on COCO and the first ``--grid-images`` report images (the tree on the same images, side by side). Speed: a 1024 px image (coffee.jpg), ``--threads`` torch threads,
   ``set_image`` (the region tree) and the readout timed separately, median of 3 after a warm-up.
4. ablation: the tree readout with one score term at a time, without the nested NMS, and without a score (tree
   order), on the report sets of part 3 (AR only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
COCO = ROOT.parent / "shared" / "data" / "coco_val2017_sample"
OFF = {"pred_iou_thresh_low_g": 0.0, "pred_iou_thresh_high_g": 0.0, "stability_thresh": 0.0}


def timed(fn):
    """``(result, wall seconds, CPU seconds of this process)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def load_1024() -> np.ndarray:
    import cv2

    image = cv2.cvtColor(cv2.imread(str(ROOT / "granseg" / "assets" / "coffee.jpg")), cv2.COLOR_BGR2RGB)
    scale = 1024 / max(image.shape[:2])
    return cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))


def sam_predictor(cache_dir: Path):
    from granseg.models.unsamv2 import UnSAMv2Config, build_unsamv2
    from granseg.predict.factory import create_predictor

    return create_predictor(build_unsamv2(UnSAMv2Config(), seed=0), cache_dir=cache_dir)


def speed(rows: dict) -> None:
    import tempfile

    from granseg.predict.automatic import AutomaticSegmenter, naive_generate, point_grid, preset_config

    image = load_1024()
    predictor = sam_predictor(Path(tempfile.mkdtemp(prefix="bench_auto_")))
    height, width = image.shape[:2]
    grid = point_grid(height, width, 64).reshape(64, 64, 2)
    fractions = {
        8: grid[::8].reshape(-1, 2),
        16: grid[::16].reshape(-1, 2),
        64: grid[::8, ::8].reshape(-1, 2),
    }
    _, rows["encoder_wall_s"], rows["encoder_cpu_s"] = timed(lambda: predictor.set_image(image))
    rows["image"] = f"{width}x{height}"
    pairs = fractions[64][:32]
    predictor.decode_points(pairs[:2], np.full(2, 0.5))  # warm-up
    _, wall, cpu = timed(lambda: predictor.decode_points(pairs, np.full(len(pairs), 0.5)))
    rows["decode_ms_per_pair"] = {"wall": 1000 * wall / len(pairs), "cpu": 1000 * cpu / len(pairs)}
    print("decoder bound", rows["decode_ms_per_pair"], "encoder", rows["encoder_wall_s"], flush=True)

    def run(name, config, fraction=None):
        segmenter = AutomaticSegmenter(predictor, config)
        points = None if fraction is None else fractions[fraction]
        records, wall, cpu = timed(lambda: segmenter.generate(image, points=points))
        stats = segmenter.stats
        rows[name] = {
            "wall_s": wall,
            "cpu_s": cpu,
            "fraction": fraction or 1,
            "stats": stats,
            "masks": len(records),
        }
        print(name, json.dumps(rows[name]), flush=True)

    official = preset_config("official")
    one_g = dataclasses.replace(official, granularities=(0.5,))
    run("new_one_g", one_g, 8)
    run("new_all_g", official, 64)
    run("new_one_g_filters_off", dataclasses.replace(one_g, **OFF), 16)
    run("new_all_g_filters_off", dataclasses.replace(official, **OFF), 64)
    run("fast_all_g", preset_config("fast"))
    run("fast_all_g_filters_off", preset_config("fast", **OFF))
    for name, config in (("naive_one_g", one_g), ("naive_all_g", official)):
        _, wall, cpu = timed(
            lambda config=config: naive_generate(predictor, image, config, points=fractions[64])
        )
        rows[name] = {"wall_s": wall, "cpu_s": cpu, "fraction": 64}
        print(name, rows[name], flush=True)


def recall(rows: dict, with_naive: bool = True) -> None:
    from granseg.eval.whole_image import evaluate_ar, load_ground_truth
    from granseg.io.images import load_image
    from granseg.predict.automatic import AutomaticSegmenter, naive_generate, preset_config
    from granseg.predict.hierarchy import build_hierarchy

    gt = load_ground_truth(COCO / "annotations" / "instances_val2017.json")
    info = gt["images"][0]
    image = load_image(COCO / "val2017" / info["file_name"])
    predictor = build_hierarchy(device="cpu").create_predictor()
    variants = {
        "official (64, no pruning)": preset_config("official"),
        "fast (16, coarse-to-fine + pruning)": preset_config("fast"),
        "16, pruning only": preset_config("fast", coarse_to_fine=False),
        "16, coarse-to-fine only": preset_config("fast", point_pruning=False),
        "16, neither": preset_config("fast", coarse_to_fine=False, point_pruning=False),
        "12, coarse-to-fine + pruning": preset_config("fast", points_per_side=12),
    }
    outputs = {}
    for name, config in variants.items():
        segmenter = AutomaticSegmenter(predictor, config)
        records, seconds, _ = timed(lambda segmenter=segmenter: segmenter.generate(image))
        outputs[name] = records
        vs_gt = evaluate_ar(gt, {info["file_name"]: records})
        rows[name] = {"s": seconds, "pairs": segmenter.stats["decoded"], "masks": len(records)}
        rows[name].update({f"gt_AR@{k}": vs_gt[f"AR@{k}"] for k in (10, 100, 1000)})
        print(name, rows[name], flush=True)
    reference = {
        "images": gt["images"],
        "annotations": [
            {"id": i + 1, "image_id": info["id"], "segmentation": r["segmentation"], "area": float(r["area"])}
            for i, r in enumerate(outputs["official (64, no pruning)"])
        ],
    }
    for name, records in outputs.items():
        vs_official = evaluate_ar(reference, {info["file_name"]: records})
        rows[name].update({f"official_AR@{k}": vs_official[f"AR@{k}"] for k in (10, 100, 1000)})
    if not with_naive:
        return
    naive, seconds, _ = timed(lambda: naive_generate(predictor, image, preset_config("official")))
    same = [r["segmentation"]["counts"] for r in naive] == [
        r["segmentation"]["counts"] for r in outputs["official (64, no pruning)"]
    ]
    rows["per-point loop (official)"] = {"s": seconds, "same_masks_as_new_path": same, "masks": len(naive)}
    print("naive", rows["per-point loop (official)"], flush=True)


def bsds_ground_truth(ids: list[str]) -> tuple[dict, dict]:
    """COCO-style GT of BSDS500 val ``ids`` (module docstring) and ``{file name: image path}``."""
    from granseg.eval.datasets.bsds import read_bsds_ground_truth
    from granseg.io.masks import encode_rle

    root = ROOT.parent / "shared" / "data" / "bsds500"
    images, annotations, paths = [], [], {}
    for image_id, stem in enumerate(ids, start=1):
        _, segmentations = read_bsds_ground_truth(root / "groundTruth" / "val" / f"{stem}.mat")
        height, width = segmentations[0].shape
        images.append({"id": image_id, "file_name": f"{stem}.jpg", "height": height, "width": width})
        paths[f"{stem}.jpg"] = root / "images" / "val" / f"{stem}.jpg"
        for segmentation in segmentations:
            for label in np.unique(segmentation).tolist():
                mask = segmentation == label
                if 0.001 <= mask.mean() <= 0.7:
                    annotations.append({"image_id": image_id, "segmentation": encode_rle(mask)})
    return {"images": images, "annotations": annotations}, paths


def tree_vs_grid(rows: dict, grid_images: int = 8) -> None:
    """Part 3 of the module docstring."""
    from granseg.eval.whole_image import evaluate_ar, load_ground_truth
    from granseg.io.images import load_image
    from granseg.predict.automatic import AutomaticSegmenter, preset_config
    from granseg.predict.hierarchy import build_hierarchy

    predictor = build_hierarchy(device="cpu").create_predictor()
    variants = {
        "tree (default for hierarchy)": preset_config("official", source="tree"),
        "grid, fast preset (16 x 16)": preset_config("fast", source="grid"),
        "grid, official preset (64 x 64)": preset_config("official", source="grid"),
    }
    folder = ROOT.parent / "shared" / "data" / "bsds500" / "images" / "val"
    ids = sorted(p.stem for p in folder.glob("*.jpg"))
    report, tune = ids[len(ids) // 2 :], ids[: len(ids) // 2]
    coco = load_ground_truth(COCO / "annotations" / "instances_val2017.json")
    coco_paths = {i["file_name"]: COCO / "val2017" / i["file_name"] for i in coco["images"]}
    names = list(variants)
    sets = [  # (name, (gt, paths), variants run on it)
        ("COCO sample (report)", (coco, coco_paths), names),
        (f"BSDS val report half, first {grid_images}", bsds_ground_truth(report[:grid_images]), names[:2]),
        ("BSDS val report half", bsds_ground_truth(report), names[:1]),
        ("BSDS val tune half", bsds_ground_truth(tune), names[:1]),
    ]
    for set_name, (gt, paths), run_names in sets:
        gt = load_ground_truth(gt)
        for name in run_names:
            config = variants[name]
            segmenter = AutomaticSegmenter(predictor, config)
            predictions, seconds = {}, []
            for info in gt["images"]:
                image = load_image(paths[info["file_name"]])
                records, wall, _ = timed(lambda segmenter=segmenter, image=image: segmenter.generate(image))
                predictions[info["file_name"]] = records
                seconds.append(wall)
            metrics = evaluate_ar(gt, predictions)
            row = {f"AR@{k}": metrics[f"AR@{k}"] for k in (10, 100, 1000)}
            row.update(images=len(seconds), s_per_image=float(np.mean(seconds)))
            row["masks_per_image"] = float(np.mean([len(r) for r in predictions.values()]))
            rows[f"{set_name} | {name}"] = row
            print(set_name, "|", name, json.dumps(row), flush=True)
    tree_speed(rows, predictor)


def tree_ablation(rows: dict) -> None:
    """What each part of the tree readout buys (``--only ablation``): the score's terms and the nested NMS, on the
    report sets of part 3 (COCO sample, BSDS val report half); one tree per image, read out once per variant."""
    from granseg.eval.whole_image import evaluate_ar, load_ground_truth
    from granseg.io.images import load_image
    from granseg.predict.automatic import region_tree as rt
    from granseg.predict.base import GRANULARITY_LEVELS
    from granseg.predict.hierarchy import build_hierarchy

    weights = rt.SCORE_WEIGHTS
    variants = {
        "shipped (nms 0.9)": (weights, 0.9),
        "no NMS": (weights, 1.0),
        "persistence only": ({"persistence": 1.0}, 0.9),
        "area only": ({"log_area": 1.0}, 0.9),
        "compactness only": ({"compactness": 1.0}, 0.9),
        "contrast only": ({"contrast": 1.0}, 0.9),
        "no score (tree order)": ({}, 0.9),
    }
    predictor = build_hierarchy(device="cpu").create_predictor()
    folder = ROOT.parent / "shared" / "data" / "bsds500" / "images" / "val"
    ids = sorted(p.stem for p in folder.glob("*.jpg"))
    coco = load_ground_truth(COCO / "annotations" / "instances_val2017.json")
    coco_paths = {i["file_name"]: COCO / "val2017" / i["file_name"] for i in coco["images"]}
    for set_name, (gt, paths) in {
        "COCO sample (report)": (coco, coco_paths),
        "BSDS val report half": bsds_ground_truth(ids[len(ids) // 2 :]),
    }.items():
        gt = load_ground_truth(gt)
        predictions: dict[str, dict] = {name: {} for name in variants}
        for info in gt["images"]:
            image = load_image(paths[info["file_name"]])
            predictor.set_image(image)
            cfg = predictor.config
            for name, (w, nms) in variants.items():
                readout = rt.TreeReadout(
                    cfg.min_object_fraction, cfg.max_object_fraction, cfg.part_min_fraction, nms_iou=nms
                )
                records, _ = rt.tree_records(
                    predictor.tree, image.shape[:2], GRANULARITY_LEVELS, readout, w or {"bias": 0.0}
                )
                predictions[name][info["file_name"]] = records
        for name in variants:
            metrics = evaluate_ar(gt, predictions[name])
            rows[f"{set_name} | {name}"] = {f"AR@{k}": metrics[f"AR@{k}"] for k in (10, 100, 1000)}
            print(set_name, "|", name, rows[f"{set_name} | {name}"], flush=True)


def tree_speed(rows: dict, predictor) -> None:
    from granseg.predict.automatic import AutomaticSegmenter, preset_config

    image = load_1024()
    segmenter = AutomaticSegmenter(predictor, preset_config("official"))
    segmenter.generate(image[::-1].copy())  # warm-up (imports, first calls)
    totals, builds = [], []
    for repeat in range(3):
        variant = image.copy()
        variant[0, 0, 0] ^= repeat + 1
        _, wall, _ = timed(lambda variant=variant: predictor.set_image(variant))
        builds.append(wall)
        _, wall, _ = timed(lambda variant=variant: segmenter.generate(variant))
        totals.append(wall)
    rows["speed 1024 px"] = {
        "image": f"{image.shape[1]}x{image.shape[0]}",
        "set_image_s": float(np.median(builds)),
        "generate_s (set_image + readout + tree + RLE)": float(np.median(totals)),
        "masks": len(segmenter.generate(image)),
    }
    print("speed", rows["speed 1024 px"], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="speed,recall")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a crowded machine)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--no-naive-recall", action="store_true", help="recall: skip the per-point loop's run"
    )
    parser.add_argument(
        "--grid-images", type=int, default=8, help="tree: BSDS report images also run through the fast grid"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
        "machine": f"{platform.machine()} {platform.processor()} python {sys.version.split()[0]} torch "
        f"{torch.__version__}, {args.threads} threads (shared machine)",
        "command": "python " + " ".join(sys.argv),
    }
    for part in args.only.split(","):
        result[part] = {}
        if part == "recall":
            recall(result[part], with_naive=not args.no_naive_recall)
        elif part == "ablation":
            tree_ablation(result[part])
        elif part == "tree":
            tree_vs_grid(result[part], grid_images=args.grid_images)
        else:
            speed(result[part])
    text = json.dumps(result, indent=1, default=str)
    if args.json is not None:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
