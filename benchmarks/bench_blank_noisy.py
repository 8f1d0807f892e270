"""The weight-free ``hierarchy`` model on two kinds of picture that photographs in the benchmark sets lack, side
by side with ``grabcut-baseline`` and with the fix in question turned off, in the same run:

* ``backdrop``: each GrabCut object pasted on a blank backdrop (white 255, light grey 235 or pale blue), with
  Gaussian noise of sigma 0 / 2 / 3 grey levels, saved as JPEG quality 90 (a product photograph). One click on
  the backdrop (its pixel farthest from the object) and one on the object (its deepest pixel). Reported: the
  backdrop click's IoU with the backdrop at g = 1.0 and its number of distinct masks over the ten g, the object
  click's IoU at g = 1.0; ``hierarchy`` with ``flat_area_spread`` (default) and 0 (off: the levels before).
  ``--split tune`` are the first 20 GrabCut ``.jpg`` images (sorted names; the rule's spread was chosen on them,
  white and grey 245 backdrops), ``report`` the other 30 (``.jpg``, ``.JPG`` and ``.bmp``).
* ``noisy``: a 300 x 400 grey picture whose left half is ``step`` grey levels brighter, plus Gaussian noise of
  sigma ``noise``; one click in the left half; IoU with it at g = 1.0. ``hierarchy`` with the collapse check of
  :func:`granseg.regions.superpixels.superpixels` and without it (plain scikit-image SLIC), 3 pictures each.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_blank_noisy.py [--split report]
        [--only backdrop|noisy]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from granseg.eval.baselines import build_grabcut_baseline
from granseg.io.images import load_image
from granseg.predict.hierarchy import build_hierarchy
from granseg.regions import superpixels as superpixels_module

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "grabcut"
BACKDROPS = {"white": (255, 255, 255), "grey 235": (235, 235, 235), "pale blue": (200, 220, 245)}
NOISES = (0.0, 2.0, 3.0)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def deepest(mask: np.ndarray) -> list[float]:
    """(x, y) of the pixel of ``mask`` farthest from its outline."""
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    y, x = np.unravel_index(int(distance.argmax()), distance.shape)
    return [float(x), float(y)]


def composite(image: np.ndarray, obj: np.ndarray, colour, noise: float, rng) -> np.ndarray:
    """The object of ``image`` on a ``colour`` backdrop plus noise, through JPEG quality 90."""
    out = np.where(obj[..., None], image, np.asarray(colour, np.float64)[None, None]).astype(np.float64)
    out = (
        np.clip(out + rng.normal(0, noise, out.shape), 0, 255).astype(np.uint8)
        if noise
        else out.astype(np.uint8)
    )
    ok, buffer = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    return cv2.imdecode(buffer, cv2.IMREAD_COLOR)[..., ::-1].copy()


def backdrop(split: str) -> list[str]:
    images = sorted(
        p for p in (DATA / "data_GT").iterdir() if (DATA / "boundary_GT" / f"{p.stem}.bmp").exists()
    )
    tune = sorted(p for p in images if p.suffix == ".jpg")[:20]  # what the rule's spread was chosen on
    paths = tune if split == "tune" else [p for p in images if p not in tune]
    models = {
        "hierarchy": build_hierarchy().create_predictor(),
        "hierarchy, flat_area_spread 0": build_hierarchy(flat_area_spread=0.0).create_predictor(),
        "grabcut-baseline": build_grabcut_baseline().create_predictor(),
    }
    rows = []
    for (colour_name, colour), noise in [(c, n) for c in BACKDROPS.items() for n in NOISES]:
        rng = np.random.default_rng(0)
        scores = {name: [] for name in models}
        for path in paths:
            image = load_image(path)
            obj = cv2.imread(str(DATA / "boundary_GT" / f"{path.stem}.bmp"), cv2.IMREAD_GRAYSCALE) > 128
            picture = composite(image, obj, colour, noise, rng)
            back_click, obj_click = deepest(~obj), deepest(obj)
            for model_name, predictor in models.items():
                predictor.set_image(picture)
                levels = "all" if model_name != "grabcut-baseline" else [1.0]
                back = predictor.predict([back_click], [1], granularity=levels).masks
                distinct = len({m.tobytes() for m in back})
                whole = predictor.predict([obj_click], [1], granularity=1.0).masks[0]
                scores[model_name].append((iou(back[-1], ~obj), distinct, iou(whole, obj)))
        for model_name, values in scores.items():
            mean = np.mean(values, axis=0)
            rows.append(
                f"| {colour_name}, noise {noise:g} | {model_name} | {mean[0]:.3f} | {mean[1]:.1f} | {mean[2]:.3f} |"
            )
    header = [
        f"backdrop ({split}: {len(paths)} GrabCut objects)",
        "| backdrop | model | backdrop click IoU at g = 1 | distinct masks over 10 g | object click IoU at g = 1 |",
        "|---|---|---|---|---|",
    ]
    return header + rows


def two_tone(noise: float, step: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 300 x 400 grey picture whose left half is ``step`` grey levels brighter, plus Gaussian noise of sigma
    ``noise``; and its left half as a bool mask (also the tests' picture, tests/test_superpixels.py)."""
    rng = np.random.default_rng(seed)
    image = 128 + rng.normal(0, noise, (300, 400, 3))
    image[:, :200] += step
    left = np.zeros((300, 400), bool)
    left[:, :200] = True
    return np.clip(image, 0, 255).astype(np.uint8), left


def noisy() -> list[str]:
    models = {
        "hierarchy": (build_hierarchy().create_predictor(), superpixels_module.NOISY_SIGMAS),
        "hierarchy, plain SLIC": (build_hierarchy().create_predictor(), ()),
        "grabcut-baseline": (build_grabcut_baseline().create_predictor(), None),
    }
    rows = [
        "noisy two-tone pictures (3 each)",
        "| noise, step | model | IoU at g = 1 | leaves |",
        "|---|---|---|---|",
    ]
    for noise, step in [(n, s) for n in (3, 5, 10, 20) for s in (10, 20, 60)]:
        for model_name, (predictor, sigmas) in models.items():
            saved = superpixels_module.NOISY_SIGMAS
            if sigmas is not None:
                superpixels_module.NOISY_SIGMAS = sigmas
            values, leaves = [], []
            try:
                for seed in range(3):
                    image, left = two_tone(noise, step, seed)
                    predictor.set_image(image)
                    values.append(iou(predictor.predict([[100, 150]], [1], granularity=1.0).masks[0], left))
                    leaves.append(predictor.tree.n_leaves if hasattr(predictor, "tree") else 0)
            finally:
                superpixels_module.NOISY_SIGMAS = saved
            count = f"{np.mean(leaves):.0f}" if sigmas is not None else "-"
            rows.append(f"| {noise}, {step} | {model_name} | {np.mean(values):.3f} | {count} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", choices=["tune", "report"], default="report")
    parser.add_argument("--only", choices=["backdrop", "noisy"])
    args = parser.parse_args()
    start = time.time()
    print(
        f"# {platform.machine()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    if args.only in (None, "backdrop"):
        print("\n".join(backdrop(args.split)))
    if args.only in (None, "noisy"):
        print("\n".join(noisy()))
    print(f"# {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
