"""Summary of a `granseg eval interactive` per_instance.csv on a subset of samples (a tune or report split).

    .venv/bin/python benchmarks/split_summary.py RUN/per_instance.csv [IDS.txt]

Prints NoC@85/90 (oracle g), first-click IoU (oracle g), how many click sequences at the oracle g have a click
after which IoU drops by more than 0.3, and the mean IoU after clicks 1, 2, 3, 5, 10, 20.
"""

from __future__ import annotations

import csv
import sys

import numpy as np


def main() -> int:
    ids = set(open(sys.argv[2]).read().split()) if len(sys.argv) > 2 else None
    rows = [r for r in csv.DictReader(open(sys.argv[1])) if ids is None or r["sample"] in ids]

    def mean(key: str) -> float:
        return float(np.mean([float(r[key]) for r in rows]))

    curves = np.array([[float(x) for x in r["ious_at_primary_g"].split(";")] for r in rows])
    drops = sum(1 for c in curves if (np.diff(c) < -0.3).any())
    points = " ".join(f"{v:.3f}" for v in curves.mean(0)[[0, 1, 2, 4, 9, 19]])
    print(
        f"n={len(rows)} NoC85={mean('NoC@85'):.2f} NoC90={mean('NoC@90'):.2f} 1-IoU={mean('1-IoU'):.3f} "
        f"seqs_with_drop>0.3={drops} curve={points}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
