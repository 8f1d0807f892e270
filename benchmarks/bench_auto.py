"""Whole-image mask generation (``granseg auto``): speed of the batched pipeline against the per-point loop, and the
recall cost of the ``fast`` preset (numbers go to benchmarks/results/auto.md).

    nice -n 5 .venv/bin/python benchmarks/bench_auto.py [--only speed,recall] [--threads 2] [--json out.json]

1. speed: UnSAMv2 hiera-small config, random init, a 1024 px image (granseg/assets/coffee.jpg resized so that its
   long side is 1024), ``--threads`` torch threads, all in one process (ratios within the run are what count on a
   shared machine). Measured: the image encoder; the decoder-compute bound (``decode_points`` on 64 (point, g)
   pairs, ms per pair); the new pipeline on the full 64 x 64 grid at one g, and on a measured 1/8 of the grid
   (every 8th row) at all 10 g, extrapolated to the grid; the per-point loop (``naive_generate``) on a measured
   1/64 of the grid (every 8th point of every 8th row) at one g and at 10 g, extrapolated; the same pipeline with
   every filter off (every candidate upsampled and RLE-encoded: the per-candidate cost of the tail); the ``fast``
   preset at all 10 g (official filters, then filters off) and its worst case (every grid point at every level).
   Random weights: the official stability test (offset 1) rejects every mask (logits within +-0.01), so the
   "filters off" rows are the ones that exercise upsampling, encoding and NMS.
2. recall: the weight-free ``hierarchy`` model driven through the same point-grid pipeline on the COCO val2017
   sample (../shared/data/coco_val2017_sample, one 640 x 427 image, 19 instances): the official preset, the
   per-point loop (same masks, its time), and ``fast`` variants; AR@10/100/1000 against the COCO ground truth and
   against the official preset's own output (treated as ground truth), time per image and pairs decoded.
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
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def load_1024() -> np.ndarray:
    import cv2

    image = cv2.cvtColor(cv2.imread(str(ROOT / "granseg" / "assets" / "coffee.jpg")), cv2.COLOR_BGR2RGB)
    scale = 1024 / max(image.shape[:2])
    return cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))


def sam_predictor():
    from granseg.models.unsamv2 import UnSAMv2Config, build_unsamv2
    from granseg.predict.factory import create_predictor

    return create_predictor(build_unsamv2(UnSAMv2Config(), seed=0))


def speed(rows: dict) -> None:
    from granseg.predict.automatic import AutomaticSegmenter, naive_generate, point_grid, preset_config

    image = load_1024()
    predictor = sam_predictor()
    height, width = image.shape[:2]
    grid = point_grid(height, width, 64).reshape(64, 64, 2)
    eighth = grid[::8].reshape(-1, 2)  # 512 points
    sixty_fourth = grid[::8, ::8].reshape(-1, 2)  # 64 points
    _, rows["encoder_s"] = timed(lambda: predictor.set_image(image))
    rows["image"] = f"{width}x{height}"
    pairs = np.repeat(sixty_fourth, 1, 0)
    times = []
    for _ in range(3):
        _, t = timed(lambda: predictor.decode_points(pairs, np.full(len(pairs), 0.5)))
        times.append(t / len(pairs))
    rows["decode_ms_per_pair"] = 1000 * float(np.median(times))
    print("decoder bound", rows["decode_ms_per_pair"], "ms/pair; encoder", rows["encoder_s"], flush=True)

    def run(name, config, points=None, scale=1.0):
        segmenter = AutomaticSegmenter(predictor, config)
        records, seconds = timed(lambda: segmenter.generate(image, points=points))
        rows[name] = {"s": seconds, "scale": scale, "stats": segmenter.stats, "masks": len(records)}
        print(name, json.dumps(rows[name]), flush=True)

    official = preset_config("official")
    one_g = dataclasses.replace(official, granularities=(0.5,))
    run("new_one_g_full_grid", one_g)
    run("new_all_g_eighth", official, eighth, 8.0)
    run("new_one_g_filters_off_eighth", dataclasses.replace(one_g, **OFF), eighth, 8.0)
    run("fast_all_g", preset_config("fast"))
    run("fast_all_g_filters_off", preset_config("fast", **OFF))
    fast = preset_config("fast")
    worst = dataclasses.replace(fast, point_pruning=False, coarse_to_fine=False)
    run("fast_worst_case_all_pairs", worst)
    for name, config in (("naive_one_g_64th", one_g), ("naive_all_g_64th", official)):
        _, seconds = timed(
            lambda config=config: naive_generate(predictor, image, config, points=sixty_fourth)
        )
        rows[name] = {"s": seconds, "scale": 64.0}
        print(name, rows[name], flush=True)


def recall(rows: dict) -> None:
    from granseg.eval.whole_image import evaluate_ar, load_ground_truth
    from granseg.io.images import load_image
    from granseg.models.hierarchy import build_hierarchy
    from granseg.predict.automatic import AutomaticSegmenter, naive_generate, preset_config

    gt = load_ground_truth(COCO / "annotations" / "instances_val2017.json")
    info = gt["images"][0]
    image = load_image(COCO / "val2017" / info["file_name"])
    predictor = build_hierarchy(device="cpu").create_predictor()
    variants = {
        "official (64, no pruning)": preset_config("official"),
        "fast (16, c2f + pruning)": preset_config("fast"),
        "fast-12 (12, c2f + pruning)": preset_config("fast", points_per_side=12),
        "16, pruning only": preset_config("official", points_per_side=16, point_pruning=True),
        "16, no pruning": preset_config("official", points_per_side=16),
        "12, no pruning": preset_config("official", points_per_side=12),
    }
    outputs = {}
    for name, config in variants.items():
        segmenter = AutomaticSegmenter(predictor, config)
        records, seconds = timed(lambda segmenter=segmenter: segmenter.generate(image))
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
    naive, seconds = timed(lambda: naive_generate(predictor, image, preset_config("official")))
    same = [r["segmentation"]["counts"] for r in naive] == [
        r["segmentation"]["counts"] for r in outputs["official (64, no pruning)"]
    ]
    rows["per-point loop (official)"] = {"s": seconds, "same_masks_as_new_path": same, "masks": len(naive)}
    print("naive", rows["per-point loop (official)"], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="speed,recall")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
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
        {"speed": speed, "recall": recall}[part](result[part])
    text = json.dumps(result, indent=1, default=str)
    if args.json is not None:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
