"""Click evaluation of ``hierarchy`` with HierarchyConfig overrides (the CLI has none), optionally side by side
with ``grabcut-baseline`` in the same run: NoC@85/90 (oracle g), first-click IoU, falls of the mean per-click
curve. Writes the usual ``granseg eval interactive`` outputs (metrics.json, per_instance.csv, report.md) per model.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_clicks.py --dataset grabcut
        --data-root ../shared/data/grabcut --subset @benchmarks/results/eval/grabcut_tune_ids.txt --out OUT
        [--set key=value ...] [--baseline] [--workers 2] [--max-clicks 20]

``--dataset davis --data-root SETS/bsds_objects`` runs the BSDS objects built by make_interactive_sets.py.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def write_rows_csv(path: Path, rows: list[dict]) -> None:
    """``rows`` (dicts with the same keys) as a CSV file with a header (the diagnosis scripts' ``--csv``)."""
    import csv

    with Path(path).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def hierarchy_factory(**overrides):
    from granseg.predict.hierarchy import build_hierarchy

    return build_hierarchy(device="cpu", **overrides).create_predictor()


def baseline_factory():
    from granseg.predict.grabcut import build_grabcut_baseline

    return build_grabcut_baseline(device="cpu").create_predictor()


def parse_overrides(pairs: list[str]) -> dict:
    """``key=value`` strings -> typed HierarchyConfig overrides (bools: 0/1/true/false)."""
    from granseg.predict.hierarchy import HierarchyConfig

    defaults = HierarchyConfig()
    out = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        kind = type(getattr(defaults, key))
        out[key] = value.lower() in ("1", "true") if kind is bool else kind(value)
    return out


def curve_falls(curve: list[float]) -> list[tuple[int, float]]:
    """``(click after which it fell, by how much)`` for each fall of a mean per-click IoU curve (clicks from 1)."""
    diffs = np.diff(np.asarray(curve))
    return [(k + 1, float(d)) for k, d in enumerate(diffs) if d < -1e-4]


def run(name, factory, dataset, config, out: Path, workers: int) -> dict:
    from granseg.eval.interactive import evaluate_dataset, summarize, write_outputs

    start = time.perf_counter()
    results = evaluate_dataset(dataset, factory, config, workers=workers, quiet=True)
    metrics = summarize(results, config)
    seconds = time.perf_counter() - start
    meta = {"model": name, "dataset": dataset.name, "seconds": seconds, "load": os.getloadavg()}
    write_outputs(out / name, results, metrics, config, meta)
    curve = metrics["mIoU_per_click"]
    line = {
        "instances": metrics["instances"],
        "NoC@85": round(metrics["NoC@85"], 2),
        "NoC@90": round(metrics["NoC@90"], 2),
        "1-IoU": round(metrics["1-IoU"], 3),
        "falls": [(k, round(d, 4)) for k, d in curve_falls(curve)],
        "curve_1_2_3_5_10_20": [round(curve[k], 3) for k in (0, 1, 2, 4, 9, len(curve) - 1)],
        "seconds": round(seconds),
        "load": [round(v, 1) for v in os.getloadavg()],
    }
    print(name, line, flush=True)
    return line


def main() -> int:
    from granseg.cli.eval import parse_id_list
    from granseg.eval.datasets import load_dataset
    from granseg.eval.interactive import InteractiveConfig

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument(
        "--subset", default=None, help="@FILE of sample ids (one a line) or comma-separated ids"
    )
    parser.add_argument("--limit", type=int, default=None, help="first N samples of the subset")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", nargs="*", default=[], help="HierarchyConfig overrides key=value")
    parser.add_argument("--baseline", action="store_true", help="also run grabcut-baseline (g = 1.0)")
    parser.add_argument("--no-hierarchy", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-clicks", type=int, default=20)
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, args.data_root)
    if args.subset:
        dataset.restrict(parse_id_list(args.subset)[: args.limit])
    elif args.limit:
        dataset.restrict([dataset.item_id(k) for k in range(min(args.limit, len(dataset)))])
    print(
        f"{platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()}, {len(dataset)} images, "
        f"overrides {args.set}",
        flush=True,
    )
    config = InteractiveConfig(iou_targets=(0.85, 0.9), max_clicks=args.max_clicks, early_stop=False)
    if not args.no_hierarchy:
        factory = functools.partial(hierarchy_factory, **parse_overrides(args.set))
        run("hierarchy", factory, dataset, config, args.out, args.workers)
    if args.baseline:
        base = InteractiveConfig(
            iou_targets=(0.85, 0.9), max_clicks=args.max_clicks, early_stop=False, granularity=1.0
        )
        run("grabcut-baseline", baseline_factory, dataset, base, args.out, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
