"""Why do more clicks (not) help Gen2Seg prompting? Diagnostics on the models trained by bench_gen2seg.py.

For the instance-colouring model (and, for reference, the raw image as feature image) on one split:

1. mean IoU after clicks 1, 2, 3, 5, 10, 20 of the RITM protocol with the paper's rules (``PromptConfig.paper()``)
   and with the default multi-click rules (``PromptConfig()``);
2. what single clicks do: the mean IoU change after a positive / negative click, and how often one lowers the IoU
   by more than 0.005;
3. what the feature image allows at best: for each object, the IoU of ``||f - mean feature of the true object||
   < t`` at the best t (an oracle query and threshold), the fraction of objects where it reaches 0.85, and the
   fraction of its error pixels within 1 / 2 px of the object boundary.

Run after the benchmark (it reads ``WORK_DIR/instance/model``):
``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/diag_gen2seg_clicks.py [--work-dir DIR] [--split unseen]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

from granseg.predict.factory import create_predictor

CURVE_AT = (1, 2, 3, 5, 10, 20)


def _bench():
    path = Path(__file__).resolve().parent / "bench_gen2seg.py"
    spec = importlib.util.spec_from_file_location("bench_gen2seg", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def click_sequences(predictor, scenes, max_clicks: int = 20):
    from granseg.eval.datasets.base import Instance
    from granseg.eval.interactive import InteractiveConfig, evaluate_instance

    config = InteractiveConfig(max_clicks=max_clicks, iou_targets=(0.85, 0.9), granularity=1.0)
    results = []
    for scene in scenes:
        predictor.set_image(scene.image)
        for obj in scene.objects():
            results.append(evaluate_instance(predictor, Instance(str(obj.id), obj.mask), config))
    return results


def click_effects(results) -> dict[str, float]:
    """Mean IoU change after positive / negative clicks (2nd click on) and how often it is < -0.005."""
    changes = {1: [], 0: []}
    for result in results:
        ious, clicks = result.ious[1.0], result.clicks[1.0]
        for k in range(1, len(ious)):
            changes[clicks[k][2]].append(ious[k] - ious[k - 1])
    out = {}
    for label, name in ((1, "positive"), (0, "negative")):
        values = np.asarray(changes[label])
        out[f"{name} clicks"] = float(len(values))
        out[f"mean IoU change after a {name} click"] = float(values.mean()) if len(values) else 0.0
        out[f"share of {name} clicks lowering IoU"] = float((values < -0.005).mean()) if len(values) else 0.0
    return out


def oracle(feature_image: np.ndarray, mask: np.ndarray) -> tuple[float, np.ndarray]:
    """Best IoU of thresholding the distance to the object's mean feature, and the error map at that t."""
    distance = np.linalg.norm(feature_image - feature_image[mask].mean(axis=0), axis=-1).ravel()
    order = np.argsort(distance, kind="stable")
    hits = np.cumsum(mask.ravel()[order])
    taken = np.arange(1, len(order) + 1)
    ious = hits / (mask.sum() + taken - hits)
    best = int(np.argmax(ious))
    predicted = np.zeros(mask.size, bool)
    predicted[order[: best + 1]] = True
    return float(ious[best]), predicted.reshape(mask.shape) ^ mask


def boundary_distance(mask: np.ndarray) -> np.ndarray:
    import cv2

    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    return np.where(mask, inside, outside)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="/tmp/granseg_bench_gen2seg")
    parser.add_argument("--split", choices=("seen", "unseen"), default="unseen")
    parser.add_argument("--eval-scenes", type=int, default=30)
    args = parser.parse_args(argv)
    import torch

    from granseg.models.gen2seg import load_gen2seg
    from granseg.predict.gen2seg import PromptConfig

    torch.set_num_threads(1)
    bench = _bench()
    model = load_gen2seg(Path(args.work_dir) / "instance" / "model", device="cpu")
    scenes = bench.eval_scenes(args.split, args.eval_scenes)
    sources = {
        "instance-colouring model": lambda cfg: create_predictor(model, config=cfg),
        "raw image": bench.image_prompt_predictor,
    }
    print(f"# {args.split} classes, {args.eval_scenes} scenes\n")
    print("| features | rules | " + " | ".join(f"IoU@{k}" for k in CURVE_AT) + " | NoC@85 |")
    print("|---" * (len(CURVE_AT) + 3) + "|")
    effects = {}
    for source, make in sources.items():
        for rules, config in (("paper", PromptConfig.paper()), ("default", PromptConfig())):
            results = click_sequences(make(config), scenes)
            curve = np.mean([r.curve(1.0) for r in results], axis=0)
            noc = np.mean([r.noc(0.85, 1.0) for r in results])
            values = " | ".join(f"{curve[k - 1]:.3f}" for k in CURVE_AT)
            print(f"| {source} | {rules} | {values} | {noc:.2f} |")
            effects[(source, rules)] = click_effects(results)
    print()
    for (source, rules), values in effects.items():
        print(f"- {source}, {rules} rules: " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()))
    ious, near1, near2 = [], [], []
    for scene in scenes:
        features = model.feature_image(scene.image).astype(np.float64) * 255.0
        for obj in scene.objects():
            best, errors = oracle(features, obj.mask)
            ious.append(best)
            distance = boundary_distance(obj.mask)
            total = max(int(errors.sum()), 1)
            near1.append((errors & (distance <= 1)).sum() / total)
            near2.append((errors & (distance <= 2)).sum() / total)
    print(
        f"\nOracle query + threshold on the instance model's feature image: mean IoU {np.mean(ious):.3f}, "
        f"objects >= 0.85: {np.mean(np.asarray(ious) >= 0.85):.3f}; its errors within 1 px of the boundary "
        f"{np.mean(near1):.3f}, within 2 px {np.mean(near2):.3f}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
