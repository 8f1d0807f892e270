"""Fit the model that decides which pieces of a single click's g = 1.0 disk-cut union join the answer
(granseg/regions/union_pieces.py, shipped as granseg/regions/union_pieces.json).

    .venv/bin/pip install scikit-learn   # the fit only; the package reads the trees with numpy
    OMP_NUM_THREADS=1 GRANSEG_CUT_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/fit_union_pieces.py \
        [--seeds 10000-11999] [--workers 2] [--trees 100] [--depth 2] [--out granseg/regions/union_pieces.json]

Data: synthetic scenes (granseg/synth, 256 px) of the TRAINING seeds only; the seeds the synthetic target is
tuned on (0-199, 2000-2099) and reported on (1000-1199, 3000-3099) are refused. Every part of every object (the clicks of
``bench_hierarchy.every_part_clicks``) is clicked once and answered at g = 1.0 with the default predictor; each
piece the disk cut would add to the chain's answer is one sample: its :data:`~granseg.regions.union_pieces.FEATURES`
and whether most of its pixels lie inside the clicked part's object. A sample's weight is the square root of
its area over the object's (at most 1): what keeping or dropping it wrongly costs the object's IoU grows with its
area, the square root keeps the few pieces larger than the object from deciding the fit alone.

The model is scikit-learn's ``GradientBoostingClassifier`` (log-loss, ``--trees`` trees of depth ``--depth``,
learning rate 0.1, no subsampling: deterministic), written out node by node for
``granseg.regions.union_pieces.BoostedTrees``; the script checks that the two give the same log-odds.
Chosen on the tune seeds (offline, on the recorded pieces; session 17): depth 2 / 100 trees over 1-3 depth and
50-300 trees, and over a logistic regression (linear or quadratic features).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def collect(seeds: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(S, F)`` features, ``(S,)`` labels (inside the object) and ``(S,)`` weights of the pieces of ``seeds``."""
    from bench_hierarchy import every_part_clicks, make_predictor

    import granseg.predict.hierarchy as module
    from granseg.regions.union_pieces import FEATURES, piece_features
    from granseg.synth import SynthConfig, generate_scene

    calls = []
    select = module.select_pieces

    def recording(tree, base, added, *args):
        calls.append((tree, np.asarray(base, bool).copy(), np.asarray(added, bool).copy()))
        return select(tree, base, added, *args)

    module.select_pieces = recording
    predictor = make_predictor()
    features, labels, weights = [], [], []
    for seed in seeds:
        scene = generate_scene(seed=seed, config=SynthConfig(size=256))
        clicks = every_part_clicks(scene)
        if not clicks:
            continue
        predictor.set_image(scene.image)
        for part, point in clicks:
            obj = scene.node(part.parent)
            calls.clear()
            predictor.predict([point], [1], granularity=[1.0])
            if not calls:
                continue
            tree, base, added = calls[-1]
            piece, table = piece_features(tree, base, added)
            if not (piece >= 0).any():
                continue
            inside = cv2.resize(
                obj.mask.astype(np.uint8), tree.leaf_map.shape[::-1], interpolation=cv2.INTER_NEAREST
            ).astype(bool)
            pixels = np.where(piece[tree.leaf_map] >= 0, piece[tree.leaf_map], -1)
            for label in np.unique(piece[piece >= 0]):
                mask = pixels == label
                features.append(table[label])
                labels.append(float(inside[mask].mean() >= 0.5))
                weights.append(np.sqrt(min(mask.sum() / max(inside.sum(), 1), 1.0)))
    module.select_pieces = select
    return np.reshape(features, (-1, len(FEATURES))), np.asarray(labels), np.asarray(weights)


def fit_trees(x: np.ndarray, y: np.ndarray, w: np.ndarray, trees: int, depth: int) -> dict:
    """scikit-learn's gradient boosting on ``(S, F)`` features, ``(S,)`` 0/1 labels and weights, as the JSON fields
    of :class:`granseg.regions.union_pieces.BoostedTrees` (``init``, ``learning_rate``, ``trees``)."""
    try:
        from sklearn.ensemble import GradientBoostingClassifier
    except ImportError as error:  # the fit only
        raise SystemExit(
            "fit_union_pieces.py needs scikit-learn: .venv/bin/pip install scikit-learn"
        ) from error

    model = GradientBoostingClassifier(
        max_depth=depth, n_estimators=trees, learning_rate=0.1, subsample=1.0, random_state=0
    )
    model.fit(x, y.astype(int), sample_weight=w)
    exported = []
    for (estimator,) in model.estimators_:
        tree = estimator.tree_
        exported.append(
            {
                "feature": tree.feature.tolist(),
                "threshold": tree.threshold.tolist(),
                "left": tree.children_left.tolist(),
                "right": tree.children_right.tolist(),
                "value": tree.value[:, 0, 0].tolist(),
            }
        )
    sums = sum(estimator.predict(x) for (estimator,) in model.estimators_)
    init = float(np.median(model.decision_function(x) - 0.1 * sums))  # the constant log-odds before any tree
    return {"init": init, "learning_rate": 0.1, "trees": exported, "sklearn": model}


def parse_seeds(text: str) -> list[int]:
    start, _, end = text.partition("-")
    return list(range(int(start), int(end or start) + 1))


def main() -> int:
    from granseg.regions.union_pieces import FEATURES, WEIGHTS_PATH, BoostedTrees

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="10000-11999", help="training seeds, START-END (inclusive)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    reserved = set(range(0, 200)) | set(range(1000, 1200)) | set(range(2000, 2100)) | set(range(3000, 3100))
    if set(seeds) & reserved:
        parser.error(
            "the training seeds overlap the synthetic target's tune (0-199, 2000-2099) or report seeds"
            " (1000-1199, 3000-3099)"
        )
    try:  # before minutes of collection, not after
        import sklearn  # noqa: F401
    except ImportError:
        parser.error("fitting needs scikit-learn: .venv/bin/pip install scikit-learn")
    start = time.time()
    chunks = [seeds[k :: args.workers] for k in range(args.workers)]
    with ProcessPoolExecutor(args.workers) as pool:
        parts = list(pool.map(collect, chunks))
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    w = np.concatenate([p[2] for p in parts])
    fitted = fit_trees(x, y, w, args.trees, args.depth)
    model = BoostedTrees({"features": list(FEATURES), **{k: v for k, v in fitted.items() if k != "sklearn"}})
    log_odds = model.log_odds(x)
    mismatch = float(np.abs(log_odds - fitted["sklearn"].decision_function(x)).max())
    if mismatch > 1e-6:
        raise SystemExit(f"the exported trees disagree with scikit-learn by {mismatch:.2e} log-odds")
    kept = log_odds >= 0
    chroma = (x[:, FEATURES.index("chroma_distance")] * 50 <= 60) | (
        x[:, FEATURES.index("shared_outline")] >= 0.3
    )
    summary = {
        "pieces": int(len(y)),
        "inside": int(y.sum()),
        "weighted_accuracy": float((w * (kept == (y > 0.5))).sum() / w.sum()),
        "chroma_rule_weighted_accuracy": float((w * (chroma == (y > 0.5))).sum() / w.sum()),
        "seconds": round(time.time() - start, 1),
    }
    result = {
        "features": list(FEATURES),
        "init": fitted["init"],
        "learning_rate": fitted["learning_rate"],
        "trees": fitted["trees"],
        "fit": {"seeds": args.seeds, "size": 256, "trees": args.trees, "depth": args.depth, **summary},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_name(args.out.name + ".tmp")
    temporary.write_text(json.dumps(result) + "\n")
    temporary.replace(args.out)
    print(json.dumps({"out": str(args.out), **summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
