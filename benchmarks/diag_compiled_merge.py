"""Check that the compiled greedy merging of the learned trees (``granseg.regions.learned_compiled``) builds the
same trees as the Python loop of ``granseg.regions.learned.learned_merge``, on photographs and synthetic scenes,
and time the predictor's ``set_image`` both ways.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/diag_compiled_merge.py [--bsds 100] [--grabcut 50]
        [--synth 30]

For each image the ``hierarchy`` predictor's tree (the consensus of its learned trees) is built twice in one
process; the trees must have the same parents, children and leaf map, and the script prints the largest
difference of their heights (sums in another order: ~1e-16) and the mean ``set_image`` time of each loop (the
first compiled call includes numba's compilation or cache load). Exits 1 when any tree differs.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def images(bsds: int, grabcut: int, synth: int):
    """``(name, H x W x 3 uint8 RGB)`` of the first ``bsds`` BSDS500 val and ``grabcut`` GrabCut images (sorted)
    and ``synth`` synthetic scenes (seeds 9000..)."""
    from granseg.io.images import load_image
    from granseg.synth import SynthConfig, generate_scene

    for path in sorted((DATA / "bsds500" / "images" / "val").glob("*.jpg"))[:bsds]:
        yield path.name, load_image(path)
    for path in sorted((DATA / "grabcut" / "data_GT").glob("*.jpg"))[:grabcut]:
        yield path.name, load_image(path)
    for seed in range(9000, 9000 + synth):
        yield f"synth{seed}", generate_scene(seed=seed, config=SynthConfig(size=256)).image


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bsds", type=int, default=100)
    parser.add_argument("--grabcut", type=int, default=50)
    parser.add_argument("--synth", type=int, default=30)
    args = parser.parse_args(argv)
    import granseg.regions.learned as learned
    import granseg.regions.tree as tree_module
    from granseg.predict.hierarchy import build_hierarchy

    predictor = build_hierarchy().create_predictor()
    real = learned.learned_merge
    seconds = {True: 0.0, False: 0.0}
    count, different, worst = 0, [], 0.0
    try:
        for name, image in images(args.bsds, args.grabcut, args.synth):
            trees = {}
            for compiled in (True, False):
                tree_module.learned_merge = functools.partial(real, compiled=compiled)
                start = time.perf_counter()
                predictor.set_image(image)
                seconds[compiled] += time.perf_counter() - start
                trees[compiled] = predictor.tree
            a, b = trees[True], trees[False]
            same = a.parent.shape == b.parent.shape and all(
                np.array_equal(getattr(a, k), getattr(b, k)) for k in ("parent", "children", "leaf_map")
            )
            if same:
                worst = max(worst, float(np.abs(a.height - b.height).max()))
            else:
                different.append(name)
                print("different tree:", name, flush=True)
            count += 1
    finally:
        tree_module.learned_merge = real
    print(
        f"{count} images, {len(different)} different trees, largest height difference {worst:.1e}; set_image "
        f"compiled {seconds[True] / max(count, 1):.3f} s, Python {seconds[False] / max(count, 1):.3f} s a call"
    )
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
