"""Whole-image mask generation (``granseg auto``): speed of the batched pipeline against the per-point loop, and the
recall cost of the ``fast`` preset (numbers go to benchmarks/results/auto.md).

    nice -n 5 .venv/bin/python benchmarks/bench_auto.py [--only speed,recall] [--threads 2] [--json out.json]

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
        else:
            speed(result[part])
    text = json.dumps(result, indent=1, default=str)
    if args.json is not None:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
