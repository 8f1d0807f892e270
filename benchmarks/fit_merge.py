"""Fit the learned merge criterion of the region tree (granseg/regions/learned.py) on human segmentations.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fit_merge.py [--fit 50] [--rounds 3] [--leaves slic|watershed]
        [--spectral] [--owt] [--synth N [--synth-first-seed 30000]] [--out granseg/regions/merge_weights.json]

Data: BSDS500 val (../shared/data/bsds500), sorted ids; the first ``--fit`` images are fit on, the rest are
held out for the reports (benchmarks/bench_tree.py uses the same split).

Each round runs the greedy merging of every fit image with the current model and logs every pair of adjacent
regions it scores (the pairs the criterion must rank, not only leaf pairs: DAgger-style); the target of a pair
(a, b) is the chance that a random pixel of a and one of b share a human segment, averaged over the annotators.
The model is a logistic regression (Newton's method, L2 penalty ``--l2`` on standardised features) fit on the
pairs of all rounds so far, each weighted by the square root of its border length (``--weighting``), with the
signs of ``granseg.regions.learned.FEATURE_SIGNS`` imposed (active set): p(same) never rises with a stronger
border or a larger colour / texture difference, so the merge order cannot invert at the strongest outlines.
``--synth N``: N synthetic scenes (granseg.synth, seeds 30000.. by default: none of the benchmarks' tune or
report seeds) join the fit images, their objects, parts and sub-parts standing in for three annotators (``--fit
0 --synth N``: synthetic scenes only). Tried in issue 18 session 19 for the synthetic part target: no gain
(parts up on one tune half and down on the other, objects down: benchmarks/RESULTS.md); the shipped weights are BSDS-only.
``--spectral``: with gPb's spectral cue (granseg/regions/spectral.py; features + SPECTRAL_FEATURES), written to
merge_weights_spectral.json by default.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "bsds500"


def initial_model(spectral: bool = False, owt: bool = False):
    from granseg.regions.learned import MergeModel, feature_names

    size = len(feature_names(spectral, owt))
    weights = np.zeros(size)
    weights[:20] = [-1.0] * 12 + [-2.0] * 4 + [-3.0, -0.5, 0.0, 1.0]
    return MergeModel(weights, 0.0, np.zeros(size), np.ones(size), spectral, owt)


def prepare(image_id: str, leaves: str, spectral: bool = False, owt: bool = False):
    """Leaves, statistics and the per-leaf human-segment counts ``(n, S)`` of one image (annotators stacked)."""
    from granseg.eval.datasets.bsds import read_bsds_ground_truth
    from granseg.io.images import load_image

    image = load_image(DATA / "images" / "val" / f"{image_id}.jpg")
    _, segmentations = read_bsds_ground_truth(DATA / "groundTruth" / "val" / f"{image_id}.mat")
    return prepare_segmented(image, segmentations, leaves, spectral, owt)


def synth_segmentations(seed: int):
    """A synthetic scene (``granseg.synth``, 256 px) and its three exact segmentations as ``H x W`` int label
    maps, one per level of its hierarchy, standing in for three annotators who segment at three granularities:
    objects (and the background), parts (an object's pixels no part holds stay the object's), sub-parts (a
    part's own pixels stay the part's)."""
    from granseg.synth import SynthConfig, generate_scene

    scene = generate_scene(seed=seed, config=SynthConfig(size=256))
    objects = scene.label_map("object")
    parts = np.where(scene.label_map("part") > 0, scene.label_map("part"), objects)
    subparts = np.where(scene.label_map("subpart") > 0, scene.label_map("subpart"), parts)
    return scene.image, [objects, parts, subparts]


def prepare_segmented(image, segmentations, leaves: str, spectral: bool = False, owt: bool = False):
    """:func:`prepare` for an ``H x W x 3`` uint8 RGB image and its ``H x W`` int segmentations."""
    from granseg.regions.cues import to_lab
    from granseg.regions.spectral import spectral_cues
    from granseg.regions.superpixels import resize_long_side
    from granseg.regions.tree import TreeParams, learned_leaves, learned_statistics

    params = TreeParams()
    small, _ = resize_long_side(image, params.internal_long_side)
    lab = to_lab(small)
    labels, cues = learned_leaves(small, lab, params, leaves, owt)
    extra = spectral_cues(cues.combined()) if spectral else None
    stats, edges = learned_statistics(labels, lab, cues, extra, owt)
    cues = None  # the structure tensors are large: keep only what the fit needs
    n = int(labels.max()) + 1
    counts, offset = [], 0
    for seg in segmentations:
        seg = cv2.resize(seg.astype(np.int32), labels.shape[::-1], interpolation=cv2.INTER_NEAREST)
        _, seg = np.unique(seg, return_inverse=True)
        k = int(seg.max()) + 1
        counts.append(
            np.bincount(labels.ravel() * k + seg.ravel(), minlength=n * k).reshape(n, k).astype(np.float64)
        )
        offset += k
    return stats, edges, np.concatenate(counts, 1), len(segmentations)


def samples(prepared, model, weighting: str = "sqrt"):
    """Features, soft targets and weights of every pair the merging with ``model`` scores on one image."""
    from granseg.regions.learned import learned_merge

    stats, edges, leaf_counts, annotators = prepared
    stats = copy.deepcopy(stats)
    log: list = []
    _, children, _, area = learned_merge(stats, edges, model, log=log)
    n = leaf_counts.shape[0]
    counts = np.zeros((len(children), leaf_counts.shape[1]))
    counts[:n] = leaf_counts
    for c in range(n, len(children)):
        counts[c] = counts[children[c, 0]] + counts[children[c, 1]]
    a = np.concatenate([entry[0] for entry in log])
    b = np.concatenate([entry[1] for entry in log])
    features = np.concatenate([entry[2] for entry in log])
    length = np.concatenate([entry[3] for entry in log])
    target = (counts[a] * counts[b]).sum(1) / (area[a] * area[b] * annotators)
    weight = {"sqrt": np.sqrt(length), "length": length, "one": np.ones_like(length)}[weighting]
    return features, np.clip(target, 0.0, 1.0), weight


def fit_logistic(
    features, target, weight, l2: float = 1.0, iterations: int = 25, signs=None, owt_fit: bool = False
):
    """Weighted logistic regression with soft targets by Newton's method on standardised features.

    ``signs`` ``(F,)`` in {-1, 0, +1}: a weight whose fitted sign disagrees with a non-zero entry is fixed at 0 and
    the rest refit, until none disagrees (an active-set fit: the model stays monotone in every signed feature)."""
    from granseg.regions.learned import FEATURES, MergeModel

    mean = np.average(features, axis=0, weights=weight)
    scale = np.sqrt(np.average((features - mean) ** 2, axis=0, weights=weight)) + 1e-9
    x = np.column_stack([np.ones(len(features)), (features - mean) / scale])
    signs = np.zeros(features.shape[1]) if signs is None else np.asarray(signs, np.float64)
    free = np.ones(x.shape[1], bool)
    while True:
        beta = np.zeros(x.shape[1])
        beta[free] = _newton(x[:, free], target, weight, l2, iterations)
        wrong = free[1:] & (beta[1:] * signs < 0)
        if not wrong.any():
            spectral = features.shape[1] > len(FEATURES)
            return MergeModel(beta[1:], float(beta[0]), mean, scale, spectral, bool(owt_fit))
        free[1:][wrong] = False


def _newton(x, target, weight, l2: float, iterations: int) -> np.ndarray:
    """Coefficients (intercept first, unpenalised) of the weighted soft-target logistic regression on ``x``."""
    beta = np.zeros(x.shape[1])
    penalty = l2 * np.eye(x.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        gradient = x.T @ (weight * (p - target)) + penalty @ beta
        hessian = (x * (weight * p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-6:
            break
    return beta


def describe_data(ids: list[str], synth_seeds: list[int]) -> str:
    """What the model was fit on, for the weights file: the BSDS500 val images and the synthetic scenes."""
    return " + ".join(
        ([f"BSDS500 val, sorted ids 1..{len(ids)} ({ids[0]}..{ids[-1]})"] if ids else [])
        + ([f"synthetic scenes {synth_seeds[0]}..{synth_seeds[-1]}"] if synth_seeds else [])
    )


def log_loss(model, features, target, weight) -> float:
    p = np.clip(1.0 / (1.0 + np.exp(-model.logit(features))), 1e-9, 1 - 1e-9)
    loss = -(target * np.log(p) + (1 - target) * np.log(1 - p))
    return float(np.average(loss, weights=weight))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", type=int, default=50, help="fit on the first N sorted val images")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--l2", type=float, default=1.0)
    parser.add_argument("--weighting", default="sqrt", choices=["sqrt", "length", "one"], help="pair weights")
    parser.add_argument("--leaves", default="slic", choices=["slic", "watershed"])
    parser.add_argument("--spectral", action="store_true", help="with the spectral cue (slic leaves)")
    parser.add_argument(
        "--owt", action="store_true", help="border gradients across the border (oriented watershed transform)"
    )
    parser.add_argument(
        "--free-signs",
        action="store_true",
        help="no sign constraints (the criterion may then not be monotone)",
    )
    parser.add_argument("--out", type=Path, default=None, help="default: the shipped file for --leaves")
    parser.add_argument(
        "--synth",
        type=int,
        default=0,
        help="also fit on this many synthetic scenes (granseg.synth, 256 px; objects, parts and sub-parts as "
        "three annotators)",
    )
    parser.add_argument(
        "--synth-first-seed", type=int, default=30000, help="seed of the first synthetic scene"
    )
    args = parser.parse_args(argv)
    from granseg.io.files import atomic_write_text
    from granseg.regions.learned import WEIGHTS_FILES, feature_signs

    if args.out is None:
        args.out = WEIGHTS_FILES[
            args.leaves + ("-spectral" if args.spectral else "") + ("-owt" if args.owt else "")
        ]
    for name in ("fit", "synth", "rounds"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} must be >= 0, got {getattr(args, name)}")
    available = sorted(p.stem for p in (DATA / "images" / "val").glob("*.jpg"))
    ids = available[: args.fit]
    synth_seeds = list(range(args.synth_first_seed, args.synth_first_seed + args.synth))
    if not ids and not synth_seeds:
        why = "--fit 0" if available else f"no BSDS500 val image under {DATA}"
        parser.error(f"nothing to fit on: {why} and no --synth scenes")
    start = time.perf_counter()
    prepared = [prepare(i, args.leaves, args.spectral, args.owt) for i in ids]
    prepared += [
        prepare_segmented(*synth_segmentations(seed), args.leaves, args.spectral, args.owt)
        for seed in synth_seeds
    ]
    print(f"prepared {len(prepared)} images in {time.perf_counter() - start:.1f} s", flush=True)
    model, pool = initial_model(args.spectral, args.owt), []
    for round_index in range(args.rounds):
        batch = [samples(p, model, args.weighting) for p in prepared]
        pool.extend(batch)
        features, target, weight = (np.concatenate([s[k] for s in pool]) for k in range(3))
        before = log_loss(model, *(np.concatenate([s[k] for s in batch]) for k in range(3)))
        signs = None if args.free_signs else feature_signs(args.spectral)
        model = fit_logistic(features, target, weight, args.l2, signs=signs, owt_fit=args.owt)
        print(
            f"round {round_index}: {len(features)} pairs, loss of the model that made them {before:.4f}, "
            f"refit loss {log_loss(model, features, target, weight):.4f}",
            flush=True,
        )
    data = model.to_dict()
    data["fit"] = {
        "data": describe_data(ids, synth_seeds),
        "rounds": args.rounds,
        "l2": args.l2,
        "leaves": args.leaves,
        "spectral": args.spectral,
        "owt": args.owt,
        "weighting": args.weighting,
        "signs": "free" if args.free_signs else "monotone (granseg.regions.learned.feature_signs)",
        "pairs": int(sum(len(s[0]) for s in pool)),
        "command": "benchmarks/fit_merge.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    atomic_write_text(args.out, json.dumps(data, indent=1) + "\n")
    print("weights:", dict(zip(data["features"], np.round(model.weights, 3).tolist())), "bias", model.bias)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
