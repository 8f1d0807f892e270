"""Synthetic world generator throughput (scenes/s, one core) at 256 and 512 px, plus scene statistics.

    .venv/bin/python benchmarks/bench_synth.py [--sizes 256 512] [--scenes 200] [--repeats 3] [--write]

Runs single-threaded (OMP/OpenCV threads = 1). Each repeat generates seeds 0..scenes-1 with the default
SynthConfig at that size; the reported rate is the best and the median over repeats (the machine is shared, so the
best repeat is the least disturbed one). ``--write`` saves the table to benchmarks/results/synth.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from granseg.synth import SynthConfig, generate_scenes  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "synth.md"


def measure(size: int, scenes: int, repeats: int) -> dict:
    config = SynthConfig(size=size)
    rates, cpu_rates = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        generated = list(generate_scenes(scenes, config))
        rates.append(scenes / (time.perf_counter() - start))
        cpu_rates.append(scenes / (time.process_time() - cpu_start))
    nodes = {level: [] for level in ("object", "part", "subpart")}
    for scene in generated:
        for level in nodes:
            nodes[level].append(sum(n.level == level for n in scene.nodes))
    return {
        "size": size,
        "best": max(rates),
        "median": statistics.median(rates),
        "cpu": max(cpu_rates),
        "nodes": {level: float(np.mean(v)) for level, v in nodes.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/synth.md")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)

    rows = [measure(size, args.scenes, args.repeats) for size in args.sizes]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = (
        f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} logical CPUs "
        f"(load average {load:.1f} at the end), Python {platform.python_version()}, numpy {np.__version__}, "
        f"OpenCV {cv2.__version__}"
    )
    command = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_synth.py " + " ".join(sys.argv[1:])
    lines = [
        "# Synthetic world generator throughput",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine}",
        f"- Command: `{command.strip()}`",
        f"- Workload: default `SynthConfig` (1-4 objects, 2-4 parts, 0-3 sub-parts, occlusion, noise sigma 4), "
        f"seeds 0..{args.scenes - 1}, one thread, {args.repeats} repeats; target >= 20 scenes/s at 256 px.",
        "- The machine is shared with other jobs, so wall-clock rates move with the load average above (the best "
        "repeat is the least disturbed one); scenes per CPU-second (process time) is less sensitive to that.",
        "",
        "| size (px) | scenes/s best | scenes/s median | scenes per CPU-s (best) | mean objects | mean parts "
        "| mean sub-parts |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        n = row["nodes"]
        lines.append(
            f"| {row['size']} | {row['best']:.1f} | {row['median']:.1f} | {row['cpu']:.1f} | {n['object']:.2f} "
            f"| {n['part']:.2f} "
            f"| {n['subpart']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
