"""Diagnose which synthetic GT objects the pseudo-label engine misses, and at which stage.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/diag_pseudo_objects.py --scenes 60 --first-seed 2000 \
        [--set FIELD=VALUE ...]

Use TUNING seeds only (2000-2059, 3000-3049); the held-out seeds (1000-1219) are for the final report.

For each GT object (IoU >= 0.5 is a hit, as in ``bench_pseudo.py synth``) the best IoU is tracked through the
stages of :func:`granseg.pseudo.pipeline.pseudo_label_image`: every MaskCut candidate (any confidence), the
candidates above ``min_confidence``, the kept instances and their divide parts (keep rules), the stuff
instances, and the final output (conquer parts and refinement included). A missed object is attributed to the
first stage where its best IoU falls below 0.5; when no candidate reaches 0.5 the best candidate is called
"merged" (it holds > 80 % of the object: the object was cut together with a neighbour or the background),
"split" (> 80 % of it lies inside the object: only a fragment was found) or "missed" (neither).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pseudo import CPU_CONFIG, _overrides, best_iou  # noqa: E402

import granseg.pseudo.divide as divide_module  # noqa: E402
from granseg.pseudo.pipeline import PseudoLabelConfig, pseudo_label_image  # noqa: E402


class _Recorder:
    """Wraps ``select_instances`` and ``stuff_regions`` to keep their inputs and outputs for one image."""

    def __init__(self):
        self.candidates, self.instances, self.stuff = [], [], []
        self._select, self._stuff = divide_module.select_instances, divide_module.stuff_regions

    def select(self, candidates, *args, **kwargs):
        self.candidates = list(candidates)
        self.instances = self._select(candidates, *args, **kwargs)
        return self.instances

    def stuff_pass(self, *args, **kwargs):
        self.stuff = self._stuff(*args, **kwargs)
        return self.stuff


def _stack(masks, shape):
    return np.stack(masks) if masks else np.zeros((0, *shape), dtype=bool)


def _overlaps(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    inter = float((gt & pred).sum())
    return inter / max(gt.sum(), 1), inter / max(pred.sum(), 1)


def diagnose(scenes: int, first_seed: int, config: PseudoLabelConfig, size: int = 512) -> dict:
    from granseg.synth import SynthConfig, generate_scene

    recorder = _Recorder()
    divide_module.select_instances, divide_module.stuff_regions = recorder.select, recorder.stuff_pass
    causes: Counter = Counter()
    rows = []
    try:
        for seed in range(first_seed, first_seed + scenes):
            scene = generate_scene(seed=seed, config=SynthConfig(size=size))
            objects = [n for n in scene.nodes if n.level == "object" and n.mask.any()]
            final, _ = pseudo_label_image(scene.image, config)
            shape = scene.image.shape[:2]
            raw = _stack([c.mask for c in recorder.candidates], shape)
            conf = _stack([c.mask for c in recorder.candidates if c.score > config.min_confidence], shape)
            kept = _stack(
                [m for i in recorder.instances for m in [i.mask] + [p.mask for p in i.parts]], shape
            )
            stuff = _stack([s.mask for s in recorder.stuff], shape)
            gt = np.stack([o.mask for o in objects])
            stages = {
                name: best_iou(gt, stack)
                for name, stack in (("raw", raw), ("conf", conf), ("kept", kept), ("stuff", stuff))
            }
            final_iou, _ = best_iou(gt, final)
            for k, obj in enumerate(objects):
                area = float(obj.mask.mean())
                if final_iou[k] >= 0.5:
                    cause = "found"
                elif max(stages["kept"][0][k], stages["stuff"][0][k]) >= 0.5:
                    cause = "lost in conquer NMS / refinement"
                elif stages["conf"][0][k] >= 0.5:
                    cause = "dropped by keep rules (area / containment / duplicate)"
                elif stages["raw"][0][k] >= 0.5:
                    cause = "low confidence"
                else:
                    best = int(stages["raw"][1][k])
                    cover, purity = _overlaps(obj.mask, raw[best]) if len(raw) else (0.0, 0.0)
                    if cover > 0.8:
                        cause = "never proposed: merged with neighbour/background"
                    elif purity > 0.8:
                        cause = "never proposed: split (only a fragment)"
                    else:
                        cause = "never proposed: misplaced"
                causes[cause] += 1
                ious = [float(stages[s][0][k]) for s in stages] + [float(final_iou[k])]
                rows.append((seed, k, round(area, 3), *(round(v, 2) for v in ious), cause))
    finally:
        divide_module.select_instances, divide_module.stuff_regions = recorder._select, recorder._stuff
    return {"causes": causes, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--first-seed", type=int, default=2000)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--rows", action="store_true", help="print one line per missed object")
    args = parser.parse_args()
    if 1000 <= args.first_seed < 1220 or 1000 < args.first_seed + args.scenes <= 1220:
        print("warning: seeds 1000-1219 are held out for reporting; diagnose tuning seeds", file=sys.stderr)
    config = PseudoLabelConfig(**(CPU_CONFIG | _overrides(args.set)))
    result = diagnose(args.scenes, args.first_seed, config)
    total = sum(result["causes"].values())
    for cause, count in result["causes"].most_common():
        print(f"{count:4d} / {total}  {cause}")
    if args.rows:
        print("seed obj area raw conf kept stuff final cause")
        for row in result["rows"]:
            if row[-1] != "found":
                print(*row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
