"""Gen2Seg generalisation benchmark (CPU, minutes): does the instance-colouring loss teach a tiny MAE-style model
to separate objects of shapes and textures it never saw?

1. Train two identical tiny MAE models (random init, mask ratio 0, encoder + decoder) on synthetic scenes whose
   objects, parts and backgrounds use only the SEEN shape/texture classes: one with the instance-colouring loss,
   one with the plain per-pixel foreground loss (ablation). Both through ``granseg.train`` (Trainer + Gen2SegTask).
2. Evaluate on scenes built only from UNSEEN classes (and, for reference, on new scenes of the seen classes):
   * single click at each object's centre (the interior pixel furthest from its boundary), mIoU;
   * the iterative protocol (granseg.eval.interactive, RITM robot clicker, up to 20 clicks, fixed g = 1.0; the
     Gen2Seg predictor ignores g) when that module is importable: NoC@85, NoC@90, IoU after 5 clicks.
3. Baselines: the foreground-loss model; colour clustering on the input image (k-means in Lab, k in {4, 8, 16};
   a click selects the connected component of its cluster; positive clicks add components, negative remove);
   the Gen2Seg prompting pipeline applied to the raw input image (no model).
4. Each prompt-based method is reported three times: the paper's prompting for every click count (threshold
   3/255; ``PromptConfig.paper()``); the same with the threshold in {3/255, 0.02, 0.05, 0.1} that scores best on
   the SEEN-class evaluation scenes (single click); and the default ``PromptConfig()`` (the paper for one click,
   our multi-click rules for several: smoothed positive/negative assignment, image guide, click-connected
   components) with its ``multi_click_sigma_colour`` in {15, 30, 60, 120} chosen on the SEEN scenes (iterative
   NoC@85). Colour clustering gets its k chosen on the seen scenes (single click). Nothing is tuned on unseen.
5. Ablation of the multi-click rules on the instance-colouring model (iterative protocol, both splits).

Writes ``benchmarks/results/gen2seg.md`` (numbers + command) and ``benchmarks/results/gen2seg_grid.png``.
Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_gen2seg.py [--steps 800] [--eval-scenes 30]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from granseg.predict.factory import create_predictor

SEEN_SHAPES = ("ellipse", "rectangle", "polygon")
UNSEEN_SHAPES = ("star", "superellipse", "blob")
SEEN_TEXTURES = ("flat", "stripes", "gradient")
UNSEEN_TEXTURES = ("checker", "dots", "noise")
IMAGE_SIZE = 64
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class BenchSettings:
    steps: int = 1500
    batch_size: int = 8
    lr: float = 1e-3
    warmup: int = 100
    train_scenes: int = 400
    eval_scenes: int = 40
    threads: int = 1
    iterative: bool = True
    extended: bool = True  # iterative protocol on the seen split too, and the multi-click ablation
    max_clicks: int = 20
    work_dir: str = "/tmp/granseg_bench_gen2seg"


def synth_config(classes: str):
    from granseg.synth import SynthConfig

    shapes, textures = (SEEN_SHAPES, SEEN_TEXTURES) if classes == "seen" else (UNSEEN_SHAPES, UNSEEN_TEXTURES)
    return SynthConfig(
        size=IMAGE_SIZE,
        num_objects=(2, 4),
        object_scale=(0.15, 0.3),
        occlusion=False,
        shape_classes=shapes,
        texture_classes=textures,
    )


def model_config():
    from granseg.models.gen2seg import Gen2SegConfig

    mae = {
        "patch_size": 4, "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
        "intermediate_size": 128, "decoder_hidden_size": 64, "decoder_num_hidden_layers": 2,
        "decoder_num_attention_heads": 4, "decoder_intermediate_size": 128,
    }  # fmt: skip
    return Gen2SegConfig(backbone="mae", image_size=IMAGE_SIZE, architecture={"mae": mae})


def train(loss: str, settings: BenchSettings) -> tuple[Path, float, float]:
    """Train (or reuse) one model; returns (exported folder, wall seconds, CPU seconds of this process)."""
    from granseg.train.gen2seg_task import Gen2SegTask, Gen2SegTrainConfig
    from granseg.train.instance_data import InstanceDataConfig
    from granseg.train.trainer import Trainer

    out = Path(settings.work_dir) / loss
    if (out / "model" / "gen2seg_config.json").is_file():
        return out / "model", float("nan"), float("nan")
    config = Gen2SegTrainConfig(
        output_dir=str(out), steps=settings.steps, batch_size=settings.batch_size, grad_accumulation=1,
        lr=settings.lr, warmup_steps=settings.warmup, save_every=max(settings.steps // 4, 1), log_every=50,
        model=model_config(), loss=loss,
        data=InstanceDataConfig(source="synth", synth=synth_config("seen"), num_scenes=settings.train_scenes,
                                seed_offset=0, cache=True),
    )  # fmt: skip
    started, cpu_started = time.time(), time.process_time()
    trainer = Trainer(
        Gen2SegTask(config), on_log=lambda r: print(f"  [{loss}] {r}", file=sys.stderr), cpu=True
    )
    exported = trainer.fit(resume=(out / "checkpoints" / "latest").is_file())
    return exported, time.time() - started, time.process_time() - cpu_started


def centre_click(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the interior pixel furthest from the mask boundary (first in row-major order on ties)."""
    import cv2

    padded = np.pad(mask.astype(np.uint8), 1)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return int(x), int(y)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def colour_cluster_predictor(k: int):
    import cv2
    from scipy import ndimage

    from granseg.predict.base import BasePredictor, Prediction

    class ColourClusterPredictor(BasePredictor):
        model_name = f"colour-kmeans-{k}"

        def _set_image(self, image):
            lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
            cv2.setRNGSeed(0)
            criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
            _, labels, _ = cv2.kmeans(lab, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
            clusters = labels.reshape(image.shape[:2])
            self.components = np.zeros(clusters.shape, np.int64)
            offset = 0
            for c in range(k):
                comp, count = ndimage.label(clusters == c)
                self.components[comp > 0] = comp[comp > 0] + offset
                offset += count

        def _predict(self, points, labels, box, granularity, mask_input):
            mask = np.zeros(self.components.shape, bool)
            for (x, y), label in sorted(zip(points.tolist(), labels.tolist()), key=lambda t: -t[1]):
                region = self.components == self.components[int(round(y)), int(round(x))]
                mask = mask | region if label == 1 else mask & ~region
            return Prediction(
                np.repeat(mask[None], len(granularity), 0), np.ones(len(granularity)), granularity
            )

    return ColourClusterPredictor()


def image_prompt_predictor(config=None):
    """Gen2Seg prompting with the input image itself as the feature image (no model)."""
    from granseg.predict.gen2seg import Gen2SegPredictor

    class _Identity:
        name = "image-as-features"

        def feature_image(self, image):
            return image.astype(np.float32) / 255.0

    return Gen2SegPredictor(_Identity(), config)


def eval_scenes(classes: str, count: int):
    from granseg.synth import generate_scene

    base = 900_000 if classes == "unseen" else 500_000  # disjoint from the training seeds
    return [generate_scene(seed=base + i, config=synth_config(classes)) for i in range(count)]


def evaluate(predictor, scenes, settings: BenchSettings) -> dict[str, float]:
    ious, nocs85, nocs90, iou5 = [], [], [], []
    interactive = None
    if settings.iterative:
        try:
            from granseg.eval.datasets.base import Instance
            from granseg.eval.interactive import InteractiveConfig, evaluate_instance

            interactive = InteractiveConfig(
                max_clicks=settings.max_clicks, iou_targets=(0.85, 0.9), granularity=1.0
            )
        except ImportError:
            interactive = None
    for scene in scenes:
        predictor.set_image(scene.image)
        for obj in scene.objects():
            x, y = centre_click(obj.mask)
            ious.append(iou(predictor.predict([[x, y]]).best(), obj.mask))
            if interactive is not None:
                result = evaluate_instance(predictor, Instance(str(obj.id), obj.mask), interactive)
                nocs85.append(result.noc(0.85, 1.0))
                nocs90.append(result.noc(0.9, 1.0))
                curve = result.ious[1.0]
                iou5.append(curve[min(4, len(curve) - 1)])
    out = {"mIoU@1 (centre)": float(np.mean(ious)), "objects": len(ious)}
    if nocs85:
        out |= {
            "NoC@85": float(np.mean(nocs85)),
            "NoC@90": float(np.mean(nocs90)),
            "IoU@5": float(np.mean(iou5)),
        }
    return out


def iterative_mask(predictor, mask: np.ndarray, clicks: int) -> tuple[np.ndarray, list]:
    """The prediction after up to ``clicks`` RITM clicks (stopping at IoU 0.85) and those clicks (x, y, label)."""
    from granseg.eval.datasets.base import Instance
    from granseg.eval.interactive import InteractiveConfig, evaluate_instance

    config = InteractiveConfig(max_clicks=clicks, iou_targets=(0.85,), granularity=1.0)
    result = evaluate_instance(predictor, Instance("object", mask), config)
    sequence = result.clicks[1.0]
    points = [[x, y] for x, y, _ in sequence]
    return predictor.predict(points, [label for _, _, label in sequence]).best(), sequence


def save_grid(models: dict, scenes, path: Path, clicks: int = 5) -> None:
    """Rows: scenes. Columns: image, feature image per model, prompted masks per model (centre clicks, coloured),
    then per model the masks after up to ``clicks`` RITM clicks with the default multi-click rules (positive
    clicks white, negative black)."""
    from PIL import Image

    rows = []
    palette = np.array(
        [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180]]
    )
    for scene in scenes:
        tiles = [scene.image]
        overlays = []
        for model in models.values():
            predictor = create_predictor(model)
            predictor.set_image(scene.image)
            tiles.append((predictor.feature_image).clip(0, 255).astype(np.uint8))
            overlay = (scene.image * 0.35).astype(np.uint8)
            for n, obj in enumerate(scene.objects()):
                mask = predictor.predict([list(centre_click(obj.mask))]).best()
                overlay[mask] = (0.5 * overlay[mask] + 0.5 * palette[n % len(palette)]).astype(np.uint8)
                x, y = centre_click(obj.mask)
                overlay[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = 255
            overlays.append(overlay)
        for model in models.values():
            predictor = create_predictor(model)
            predictor.set_image(scene.image)
            overlay = (scene.image * 0.35).astype(np.uint8)
            marks = []
            for n, obj in enumerate(scene.objects()):
                mask, sequence = iterative_mask(predictor, obj.mask, clicks)
                overlay[mask] = (0.5 * overlay[mask] + 0.5 * palette[n % len(palette)]).astype(np.uint8)
                marks += sequence
            for x, y, label in marks:
                overlay[y, x] = 255 if label == 1 else 0
            overlays.append(overlay)
        rows.append(np.concatenate(tiles + overlays, axis=1))
    grid = np.concatenate(rows, axis=0)
    grid = np.kron(grid, np.ones((2, 2, 1), np.uint8))  # 2x nearest upscale for legibility
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path, optimize=True)


THRESHOLDS = (3.0 / 255.0, 0.02, 0.05, 0.1)
GUIDE_SIGMAS = (15.0, 30.0, 60.0, 120.0)
CLUSTER_KS = (4, 8, 16)
MIOU = "mIoU@1 (centre)"


def ablation_configs(sigma: float) -> dict:
    """The multi-click rules added one at a time (one click is the paper's in every row)."""
    from granseg.predict.gen2seg import PromptConfig

    return {
        "paper rules for every click count (nearest-query negatives, feature guide)": PromptConfig.paper(),
        "+ smoothed assignment d-/(d+ + d-) for negatives (feature guide)": PromptConfig.paper(
            negative_rule="smoothed"
        ),
        f"+ image guide (sigma colour {sigma:g}) for several clicks": PromptConfig.paper(
            negative_rule="smoothed", multi_click_guide="image", multi_click_sigma_colour=sigma
        ),
        "+ click-connected components = default PromptConfig()": PromptConfig(multi_click_sigma_colour=sigma),
        "paper rules + click-connected components only": PromptConfig.paper(connected_components="several"),
    }


def run(settings: BenchSettings) -> dict:
    """Train both models, tune each method's free parameters on SEEN-class scenes, then evaluate on UNSEEN-class
    scenes (single click + iterative) and on the seen scenes."""
    import dataclasses

    import torch

    from granseg.models.gen2seg import load_gen2seg
    from granseg.predict.gen2seg import PromptConfig

    torch.set_num_threads(settings.threads)
    timings, cpu_timings, models = {}, {}, {}
    for loss in ("instance", "foreground"):
        folder, seconds, cpu_seconds = train(loss, settings)
        timings[loss], cpu_timings[loss] = seconds, cpu_seconds
        models[loss] = load_gen2seg(folder, device="cpu")
    prompt_methods = {
        "gen2seg tiny MAE, instance-colouring loss": lambda cfg: create_predictor(
            models["instance"], config=cfg
        ),
        "same model, per-pixel foreground loss": lambda cfg: create_predictor(
            models["foreground"], config=cfg
        ),
        "prompting on the raw image (no model)": image_prompt_predictor,
    }
    seen, unseen = eval_scenes("seen", settings.eval_scenes), eval_scenes("unseen", settings.eval_scenes)
    single = dataclasses.replace(settings, iterative=False)
    tuning: dict[str, dict[str, float]] = {}  # single-click mIoU on seen
    tuning_multi: dict[str, dict[str, float]] = {}  # iterative NoC@85 on seen
    sigmas: dict[str, float] = {}
    for name, make in prompt_methods.items():
        tuning[name] = {
            f"{t:.4f}": evaluate(make(PromptConfig.paper(threshold=t)), seen, single)[MIOU]
            for t in THRESHOLDS
        }
        sigmas[name] = PromptConfig().multi_click_sigma_colour
        if settings.iterative:
            nocs = {
                s: evaluate(make(PromptConfig(multi_click_sigma_colour=s)), seen, settings)["NoC@85"]
                for s in GUIDE_SIGMAS
            }
            tuning_multi[name] = {f"{s:g}": v for s, v in nocs.items()}
            sigmas[name] = min(nocs, key=nocs.get)  # first (smallest) sigma on ties
    tuning["colour clustering (k-means Lab)"] = {
        f"k={k}": evaluate(colour_cluster_predictor(k), seen, single)[MIOU] for k in CLUSTER_KS
    }
    chosen = {name: max(scores, key=scores.get) for name, scores in tuning.items()}
    results = {}
    seen_settings = settings if settings.extended else single
    for classes, scenes, run_settings in (("unseen", unseen, settings), ("seen", seen, seen_settings)):
        rows = {}
        for name, make in prompt_methods.items():
            rows[f"{name} [paper prompting, threshold 3/255]"] = evaluate(
                make(PromptConfig.paper()), scenes, run_settings
            )
            threshold = float(chosen[name])
            rows[f"{name} [paper prompting, threshold {threshold:.3f} tuned on seen]"] = evaluate(
                make(PromptConfig.paper(threshold=threshold)), scenes, run_settings
            )
            rows[
                f"{name} [default: paper 1-click, multi-click rules, sigma colour {sigmas[name]:g} tuned on seen]"
            ] = evaluate(make(PromptConfig(multi_click_sigma_colour=sigmas[name])), scenes, run_settings)
        best_k = int(chosen["colour clustering (k-means Lab)"].split("=")[1])
        rows[f"colour clustering (k-means Lab) [k={best_k} tuned on seen]"] = evaluate(
            colour_cluster_predictor(best_k), scenes, run_settings
        )
        results[classes] = rows
    ablation = {}
    if settings.iterative and settings.extended:
        ours = prompt_methods["gen2seg tiny MAE, instance-colouring loss"]
        sigma = sigmas["gen2seg tiny MAE, instance-colouring loss"]
        for classes, scenes in (("unseen", unseen), ("seen", seen)):
            ablation[classes] = {
                name: evaluate(ours(config), scenes, settings)
                for name, config in ablation_configs(sigma).items()
            }
    save_grid(models, eval_scenes("unseen", 4), Path(settings.work_dir) / "gen2seg_grid.png")
    return {
        "results": results,
        "train_seconds": timings,
        "train_cpu_seconds": cpu_timings,
        "tuning_on_seen": tuning,
        "multi_click_tuning_on_seen": tuning_multi,
        "ablation": ablation,
    }


def render(report: dict, settings: BenchSettings, command: str, wall: float) -> str:
    lines = [
        "# Gen2Seg generalisation benchmark (synthetic scenes, CPU)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()} "
        f"({platform.processor() or 'cpu'}), torch threads {settings.threads}, shared machine.",
        f"Command: `{command}` (total wall time {wall / 60:.1f} min; training wall / CPU seconds: "
        + ", ".join(
            f"{k} {v:.0f} / {report['train_cpu_seconds'][k]:.0f}" for k, v in report["train_seconds"].items()
        )
        + ").",
        "",
        f"Training: {settings.steps} steps, batch {settings.batch_size}, AdamW lr {settings.lr:g} (random init, so "
        f"higher than the paper's fine-tuning 6e-5), wd 1e-2, {settings.warmup} warm-up + cosine, clip 1, "
        f"{settings.train_scenes} scenes of {IMAGE_SIZE}x{IMAGE_SIZE} px with SEEN classes only: shapes "
        f"{', '.join(SEEN_SHAPES)}; textures {', '.join(SEEN_TEXTURES)}. Model: ViTMAEForPreTraining, patch 4, "
        "hidden 64, 4 encoder + 2 decoder layers, mask ratio 0.",
        f"Evaluation: {settings.eval_scenes} scenes per split; UNSEEN = shapes {', '.join(UNSEEN_SHAPES)}; textures "
        f"{', '.join(UNSEEN_TEXTURES)} (no overlap with training). Instances = objects. Single click at the object "
        "centre (furthest interior pixel); iterative: RITM robot clicker from granseg.eval.interactive, up to "
        f"{settings.max_clicks} clicks, early stop at 0.9. Prompting: `PromptConfig.paper()` = the paper's rules "
        "for every click count (threshold 3/255, per-pixel nearest-query negatives); default `PromptConfig()` = "
        "the paper for one click, multi-click rules for several (granseg/predict/gen2seg.py).",
        "",
    ]

    def table(rows: dict) -> list[str]:
        keys = list(next(iter(rows.values())).keys())
        out = ["| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, metrics in rows.items():
            values = [f"{metrics[k]:.3f}" if isinstance(metrics[k], float) else str(metrics[k]) for k in keys]
            out.append(f"| {name} | " + " | ".join(values) + " |")
        return out + [""]

    for classes, rows in report["results"].items():
        lines += [f"## {classes} classes", ""] + table(rows)
    for classes, rows in report.get("ablation", {}).items():
        lines += [f"## multi-click rules, ablation on the instance-colouring model ({classes} classes)", ""]
        lines += table(rows)
    lines += ["## parameter tuning on seen-class scenes", "", "Threshold and k (single-click mIoU):", ""]
    for name, scores in report["tuning_on_seen"].items():
        lines.append(f"- {name}: " + ", ".join(f"{k}: {v:.3f}" for k, v in scores.items()))
    if report.get("multi_click_tuning_on_seen"):
        lines += [
            "",
            "`multi_click_sigma_colour` of the default rules (iterative NoC@85, lower is better):",
            "",
        ]
        for name, scores in report["multi_click_tuning_on_seen"].items():
            lines.append(f"- {name}: " + ", ".join(f"{k}: {v:.3f}" for k, v in scores.items()))
    lines.append("")
    lines += [
        "Grid (`gen2seg_grid.png`, unseen scenes): image | feature image (instance loss) | feature image "
        "(foreground loss) | centre-click masks (instance loss) | centre-click masks (foreground loss) | masks "
        "after up to 5 RITM clicks, default rules (instance loss) | the same (foreground loss); clicks: positive "
        "white, negative black.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=BenchSettings.steps)
    parser.add_argument("--eval-scenes", type=int, default=BenchSettings.eval_scenes)
    parser.add_argument("--threads", type=int, default=BenchSettings.threads)
    parser.add_argument("--work-dir", default=BenchSettings.work_dir)
    parser.add_argument("--no-iterative", action="store_true")
    parser.add_argument(
        "--no-extended", action="store_true", help="no iterative protocol on seen scenes, no ablation"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only (do not write benchmarks/results)"
    )
    args = parser.parse_args(argv)
    settings = BenchSettings(
        steps=args.steps, eval_scenes=args.eval_scenes, threads=args.threads, work_dir=args.work_dir,
        iterative=not args.no_iterative, extended=not args.no_extended,
    )  # fmt: skip
    started = time.time()
    report = run(settings)
    threads_env = os.environ.get("OMP_NUM_THREADS", "unset")
    command = f"OMP_NUM_THREADS={threads_env} .venv/bin/python benchmarks/bench_gen2seg.py " + " ".join(
        argv or sys.argv[1:]
    )
    text = render(report, settings, command.strip(), time.time() - started)
    print(text)
    print(json.dumps(report["results"], indent=1))
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "gen2seg.md").write_text(text)
        (RESULTS / "gen2seg_grid.png").write_bytes(
            (Path(settings.work_dir) / "gen2seg_grid.png").read_bytes()
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
