"""Peak memory (RSS) of one pseudo-label worker per photo size.

    nice -n 5 .venv/bin/python benchmarks/bench_pseudo_memory.py [--mp 1 12 48] [--viz] [--set FIELD=VALUE ...]

For each size, a synthetic scene (granseg.synth, 512 px, seed 0) is upscaled to that many megapixels (4:3) and
saved as JPEG; a fresh Python process then labels it with ``granseg.pseudo.pipeline.process_image`` (the unit of
work of a pool worker, default PseudoLabelConfig) and reports its peak RSS (``VmHWM`` of /proc/self/status, Linux)
and the peak after the imports, one process at a time. Prints one Markdown table row per size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from granseg.pseudo.pipeline import PseudoLabelConfig, process_image
import granseg.pseudo.conquer, granseg.pseudo.divide, cv2, pycocotools.mask  # imports counted in the baseline
def hwm_kb():  # this process's own peak RSS (getrusage's ru_maxrss would include the parent's at fork time)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
base = hwm_kb()
image, out, overrides, viz = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] == "1"
config = PseudoLabelConfig.from_dict(overrides).to_dict()
start = time.perf_counter()
result = process_image(image, out, config, viz=viz)
seconds = time.perf_counter() - start
peak = hwm_kb()
print(json.dumps({"result": result, "seconds": seconds, "base_kb": base, "peak_kb": peak}))
"""


def make_photo(path: Path, megapixels: float) -> tuple[int, int]:
    import cv2

    from granseg.synth import SynthConfig, generate_scene

    scene = generate_scene(0, SynthConfig(size=(384, 512)))
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(width * 3 / 4))
    big = cv2.resize(scene.image, (width, height), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(path), big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    return width, height


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mp", type=float, nargs="+", default=[1.0, 12.0, 48.0])
    parser.add_argument("--viz", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    print("| photo | pixels | peak RSS (MB) | RSS after imports (MB) | seconds | masks | status |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for megapixels in args.mp:
            photo = Path(tmp) / f"photo_{megapixels:g}mp.jpg"
            width, height = make_photo(photo, megapixels)
            command = [
                sys.executable,
                "-c",
                CHILD,
                str(photo),
                tmp,
                json.dumps(overrides),
                str(int(args.viz)),
            ]
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"| {megapixels:g} MP | {width}x{height} | - | - | - | - | exit {done.returncode} |")
                print(done.stderr[-2000:], file=sys.stderr)
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            result = row["result"]
            print(
                f"| {megapixels:g} MP | {width}x{height} | {row['peak_kb'] / 1024:.0f} | "
                f"{row['base_kb'] / 1024:.0f} | {row['seconds']:.1f} | {result.get('masks', '-')} | "
                f"{result['status']}{(': ' + result['error']) if result['status'] != 'ok' else ''} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
