"""Which superpixel starts to average in the ``ucm`` edge map (granseg/regions/ensemble.py): BSDS500 boundary
ODS / OIS / AP of single trees' UCMs and of the means of several, on sorted val ids ``SKIP+1 .. SKIP+IMAGES``.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/diag_ucm_ensemble.py 25 25 \\
        slic,ws,owt "owt+ws+owt-1000+owt-450+ws-1000,slic+ws" [--cache /tmp/ucm_maps]

A start is ``KIND[-N]``: ``slic`` (SLIC leaves, the largest-orientation border gradients: the tree before the
OWT), ``owt`` (SLIC leaves, the oriented watershed transform: the predictor's tree now), ``ws`` (watershed
leaves); ``N`` superpixels (default 700); ``F`` after the kind (e.g. ``owtF``): at the image's full resolution
instead of the 448 px internal one. The second argument lists means (``+``-joined starts, comma-separated). Maps
are cached per image and start (``--cache``) so that further means cost only their evaluation.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def make_map(image: np.ndarray, name: str) -> np.ndarray:
    """``H x W`` float32 UCM (:func:`granseg.eval.edge_maps.tree_contour_map`) of the tree of start ``name``."""
    from granseg.eval.edge_maps import tree_contour_map
    from granseg.regions.tree import TreeParams, build_region_tree

    kind, _, count = name.partition("-")
    full = kind.endswith("F")
    kind = kind.rstrip("F")
    params = TreeParams(n_superpixels=int(count) if count else 700, internal_long_side=1024 if full else 448)
    options = {"slic": {"leaves": "slic", "owt": False}, "owt": {"leaves": "slic", "owt": True}}
    options["ws"] = {"leaves": "watershed"}
    return tree_contour_map(build_region_tree(image, params, **options[kind]), image.shape[:2])


def main(argv=None) -> int:
    from bench_tree import bsds_ids, load

    from granseg.eval.edges import bsds_thresholds, evaluate_boundary_image, summarize_edges

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("skip", type=int)
    parser.add_argument("images", type=int)
    parser.add_argument("starts", help="single starts to score, comma-separated")
    parser.add_argument("means", nargs="?", default="", help="'+'-joined starts, comma-separated")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/ucm_maps"))
    args = parser.parse_args(argv)
    singles = [s for s in args.starts.split(",") if s]
    means = [m.split("+") for m in args.means.split(",") if m]
    thresholds = bsds_thresholds(99)
    counts: dict[str, list] = {k: [] for k in singles + ["+".join(m) for m in means]}
    begin = time.time()
    for image_id in bsds_ids(args.skip, args.images):
        image, boundaries, _ = load(image_id)
        maps = {}
        for name in set(singles) | {s for m in means for s in m}:
            path = args.cache / name / f"{image_id}.npy"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, make_map(image, name))
            maps[name] = np.load(path)
        for name in singles:
            counts[name].append(evaluate_boundary_image(maps[name], boundaries, thresholds, image_id))
        for mean in means:
            combined = np.mean([maps[s] for s in mean], axis=0).astype(np.float32)
            counts["+".join(mean)].append(evaluate_boundary_image(combined, boundaries, thresholds, image_id))
        print(image_id, f"{time.time() - begin:.0f} s", flush=True)
    for name, per_image in counts.items():
        m = summarize_edges(per_image, thresholds)
        print(f"{name}: ODS {m['ODS_F']:.4f} OIS {m['OIS_F']:.4f} AP {m['AP']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
