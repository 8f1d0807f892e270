"""Speed of the `hierarchy` predictor at 1024 px next to cv2.grabCut `predict` in the same process.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/timing_hierarchy.py [--tree handcrafted|learned]
        [--repeats 30] [--maxflow numba|scipy] [--spectral] [FIELD=VALUE ...]

Image: GrabCut 'flower.jpg' upscaled to 1024 px (long side); the correction case is a negative click with the
centre click's g = 1.0 answer as ``mask_input`` (as a user session sends it). Each case runs ``--repeats`` times on fresh random
clicks (seeded); the script prints the median wall time and the median CPU time (``time.process_time``: on a
shared machine, the wall time also counts the waits for a core) and the ratio to one cv2.grabCut ``predict``
(the `grabcut-baseline`, one click) measured in the same process the same way. ``--tree`` picks the region tree (the
predictor's ``tree_merge`` where the config has it, else ``build_region_tree(merge=...)``; default: the
predictor's own). ``--maxflow`` picks the min-cut solver (``GRANSEG_MAXFLOW``; default: the compiled one when numba
is installed, see granseg.regions.maxflow); the solver is warmed up (compiled or loaded from numba's cache) before
the timed calls. ``--spectral``: the tree with gPb's spectral cue (``build_region_tree(..., spectral=True)``, not a
config field). ``FIELD=VALUE`` overrides ``HierarchyConfig`` fields.
"""

import argparse
import functools
import os
import time
from pathlib import Path

import cv2
import numpy as np
from bench_clicks import parse_overrides

from granseg.eval.baselines import build_grabcut_baseline
from granseg.io.images import load_image
from granseg.predict import hierarchy as hierarchy_module
from granseg.predict.hierarchy import HierarchyConfig, build_hierarchy


def timed(fn, repeats: int, rng, size) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``fn(clicks)`` over ``repeats`` fresh ``(3, 2)`` random clicks."""
    walls, cpus = [], []
    h, w = size
    for _ in range(repeats):
        q = rng.uniform([0, 0], [w - 1, h - 1], size=(3, 2))
        wall, cpu = time.perf_counter(), time.process_time()
        fn(q)
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return float(np.median(walls)), float(np.median(cpus))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", choices=["handcrafted", "learned"])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--maxflow", choices=["numba", "scipy"])
    parser.add_argument("--spectral", action="store_true", help="tree with the spectral cue")
    parser.add_argument("overrides", nargs="*", help="HierarchyConfig FIELD=VALUE")
    args = parser.parse_args()
    over = parse_overrides(args.overrides)
    if args.maxflow:
        os.environ["GRANSEG_MAXFLOW"] = args.maxflow
    if args.tree and hasattr(HierarchyConfig, "tree_merge"):
        over["tree_merge"] = args.tree
    elif args.tree:  # a predictor without the switch: its tree builder with that criterion
        hierarchy_module.build_region_tree = functools.partial(
            hierarchy_module.build_region_tree, merge=args.tree
        )
    if args.spectral:
        hierarchy_module.build_region_tree = functools.partial(
            hierarchy_module.build_region_tree, spectral=True
        )

    img = load_image(Path(__file__).resolve().parents[2] / "shared/data/grabcut/data_GT/flower.jpg")
    s = 1024 / max(img.shape[:2])
    img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
    p = build_hierarchy(**over).create_predictor()
    tree = getattr(p.config, "tree_merge", args.tree or "handcrafted")
    try:
        from granseg.regions.maxflow import default_backend

        solver = default_backend()
    except ImportError:  # code before the compiled solver
        solver = "scipy"
    print(
        f"image {img.shape[1]} x {img.shape[0]}, tree {tree}{' + spectral' if args.spectral else ''}, max flow {solver}, load {os.getloadavg()[0]:.1f}"
    )
    rng = np.random.default_rng(0)

    baseline = build_grabcut_baseline().create_predictor()
    baseline.set_image(img)
    ref_wall, ref_cpu = timed(
        lambda q: baseline.predict(q[:1], [1], granularity=1.0), max(3, args.repeats // 6), rng, img.shape[:2]
    )

    set_wall, set_cpu = timed(lambda q: p.set_image(img), 3, rng, img.shape[:2])
    p.predict([[img.shape[1] / 2, img.shape[0] / 2]], [1], granularity=1.0)  # warm-up (numba: compile / load)
    p.set_image(img)  # an empty answer cache again
    rows = [("set_image", set_wall, set_cpu)]
    centre = [[img.shape[1] / 2, img.shape[0] / 2]]
    previous = p.predict(centre, [1], granularity=1.0).low_res_logits  # the answer a correction click edits
    p.set_image(img)
    for name, fn in [
        ("1 click, g = 1.0", lambda q: p.predict(q[:1], [1], granularity=1.0)),
        ("1 click, all 10 g", lambda q: p.predict(q[:1], [1], granularity="all")),
        ("3 clicks, g = 1.0", lambda q: p.predict(q[:3], [1, 0, 1], granularity=1.0)),
        ("3 clicks, all 10 g", lambda q: p.predict(q[:3], [1, 0, 1], granularity="all")),
        (
            "correction (2nd click, mask_input)",
            lambda q: p.predict(
                np.concatenate([centre, q[:1]]), [1, 0], granularity=1.0, mask_input=previous
            ),
        ),
    ]:
        rows.append((name, *timed(fn, args.repeats, rng, img.shape[:2])))
    rows.append(("cv2.grabCut predict (reference)", ref_wall, ref_cpu))
    print(f"{'case':34s} {'wall ms':>9s} {'CPU ms':>9s} {'CPU / grabCut CPU':>18s}")
    for name, wall, cpu in rows:
        print(f"{name:34s} {1000 * wall:9.1f} {1000 * cpu:9.1f} {cpu / ref_cpu:18.4f}")
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
