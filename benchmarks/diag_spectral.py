"""Diagnostic: BSDS boundary scores of the spectral cue alone (sPb) next to the local one (mPb) on BSDS500 val.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/diag_spectral.py [--skip 25] [--images 10]
        [--grids 150:4,224:5,300:5]

Per image: the mean oriented gradient of granseg/regions/gradients.py (``mPb``) at the tree's working resolution
(448 px), and the sPb of granseg/regions/spectral.py on each grid ``SIDE:RADIUS`` (long side of the eigenproblem's
grid, affinity radius in grid pixels); each map is resized to the image, thinned by non-maximum suppression
(orientation from the map's own smoothed structure tensor), divided by its peak and scored like
``granseg eval edges`` (99 thresholds, BSDS matching). ``mPb+sPb``: mPb / its 99th percentile + 0.5 x the first
grid's sPb / its 99th percentile. Also prints the median CPU seconds of each grid's sPb (eigenproblem included).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def thinned(strength: np.ndarray) -> np.ndarray:
    """``H x W`` float32 ``strength`` after non-maximum suppression across its ridges, divided by its peak."""
    from granseg.eval.edges import non_maximum_suppression

    smooth = cv2.GaussianBlur(strength, (0, 0), 2.0)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    jxx, jyy, jxy = (cv2.GaussianBlur(v, (0, 0), 2.0) for v in (gx * gx, gy * gy, gx * gy))
    out = non_maximum_suppression(strength, 0.5 * np.arctan2(2 * jxy, jxx - jyy))
    return out / max(float(out.max()), 1e-9)


def spectral_boundary(combined: np.ndarray, side: int, radius: int) -> np.ndarray:
    """``h x w`` sPb of the mean oriented gradient on a grid of long side ``side`` (granseg.regions.spectral)."""
    from granseg.regions import spectral as sp

    grid_h, grid_w = sp.grid_shape(combined.shape, side)
    coarse = sp._max_pool(sp.local_boundary(combined), grid_h, grid_w)
    values, vectors = sp.generalised_eigenvectors(sp.intervening_affinity(coarse, radius))
    maps = vectors.T.reshape(-1, grid_h, grid_w).astype(np.float32)
    return sp._resize(sp.eigenvector_gradient(maps, values), combined.shape)


def main(argv=None) -> int:
    from bench_tree import bsds_ids, load

    from granseg.eval.edges import bsds_thresholds, evaluate_boundary_image, summarize_edges
    from granseg.regions.cues import to_lab
    from granseg.regions.gradients import gradient_cues
    from granseg.regions.superpixels import resize_long_side

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", type=int, default=25)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--grids", default="150:4,224:5,300:5")
    args = parser.parse_args(argv)
    grids = [tuple(int(v) for v in g.split(":")) for g in args.grids.split(",")]
    thresholds = bsds_thresholds(99)
    counts: dict[str, list] = {}
    seconds: dict[str, list] = {}
    for image_id in bsds_ids(args.skip, args.images):
        image, boundaries, _ = load(image_id)
        small, _ = resize_long_side(image, 448)
        combined = gradient_cues(to_lab(small)).combined()
        maps = {"mPb": combined}
        for side, radius in grids:
            start = time.process_time()
            maps[f"sPb {side}:{radius}"] = spectral_boundary(combined, side, radius)
            seconds.setdefault(f"sPb {side}:{radius}", []).append(time.process_time() - start)
        first = maps[f"sPb {grids[0][0]}:{grids[0][1]}"]
        maps["mPb+sPb"] = combined / np.percentile(combined, 99) + 0.5 * first / np.percentile(first, 99)
        for name, strength in maps.items():
            big = cv2.resize(strength.astype(np.float32), image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
            counts.setdefault(name, []).append(
                evaluate_boundary_image(thinned(big), boundaries, thresholds, image_id)
            )
        print(f"  {image_id}", flush=True)
    print(f"BSDS500 val {args.skip + 1}..{args.skip + args.images}")
    print("| map | ODS F | OIS F | AP | CPU s (median) |\n|---|---|---|---|---|")
    for name, per_image in counts.items():
        m = summarize_edges(per_image, thresholds)
        cpu = f"{np.median(seconds[name]):.2f}" if name in seconds else ""
        print(f"| {name} | {m['ODS_F']:.3f} | {m['OIS_F']:.3f} | {m['AP']:.3f} | {cpu} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
