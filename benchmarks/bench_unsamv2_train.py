"""Does ``granseg train`` (task ``unsamv2``) teach a SAM-2 to obey the granularity g? (CPU, <= 10 min per run.)

1. Scenes: ``train_scenes`` synthetic scenes (seeds 0..N-1, 128 px) for training; FRESH scenes for evaluation
   (tune split seeds 20000+, report split seeds 10000+; nothing is trained or chosen on the report split).
2. Models: the tiny SAM-2 (``tiny_config``, 128 px input) at random init, image encoder FROZEN (its embeddings are
   cached; a random Hiera still passes local colour/position information to the decoder through its high-resolution
   features). Trained: granularity modules + LoRA + the mask decoder and prompt encoder (``extra_trainable``:
   at random init there is no pre-trained decoder to protect). Runs, same steps and batch, one at a time, nice 5:
   (a) ``synth GT``: the scenes' exact hierarchies (every node with its exact g);
   (b) ``pseudo-labels``: what ``granseg pseudo-label`` mined from the same scenes' images alone (no GT);
   (c) ``no-g``: the same architecture without the granularity input (plain SAM-2, 3 outputs, SAM's best-of-3
       loss) on the data of (a); evaluated with its single best fixed output, chosen on the tune split;
   (d) ``untrained``: the initial weights of (a);
   (e) ``nogpseudo``: the no-g architecture of (c) trained on the pseudo-labels of (b) (same budget): the
       apples-to-apples baseline for (b); evaluated like (c).
3. Evaluation, one click at the pixel farthest from the boundary of each GT part: IoU with the GT part at
   g = 0.1 / 0.2 / 0.3 and with the GT object at g = 1.0; Spearman correlation between g and the predicted area
   (relative to the object's area), pooled and per click; mIoU-vs-g per GT level (sub-part, part, object; PNG);
   NoC@85/90 with oracle g through ``granseg eval interactive`` on a COCO export of the report scenes' parts.
   Also (a protocol consistent with the GT's own g: a part's exact g is often > 0.3 because its sub-parts stretch
   its object's range): IoU with the GT level at the click whose g is nearest to g = 0.1 / 0.2 / 0.3, and with
   the GT part when asked at the part's own g.
4. Training throughput (masks/s) with and without the embedding cache.
5. ``--pretrain-steps N`` (optional): a stage 1 first trains the WHOLE tiny SAM-2 (encoder included, no g, best of
   3; config ``train_image_encoder``), standing in for a pre-trained SAM-2; every run then starts from it
   (``init_from``) and trains only the granularity modules + LoRA (the recipe's set and losses).

6. ``--hidden-size`` / ``--model-image-size`` (optional): a wider decoder / a larger model input (128 px scenes
   resized to it). ``--granularity-sampling nearest_level``: the requested g of each training prompt is drawn over
   the range where its mask is the nearest GT level at the click (the recipe: ``label``, the mask's own g).

7. ``--pseudo-set "FIELD=JSON;..."`` / ``--balance-granularity 1`` (runs (b) and (e)): engine overrides for the
   pseudo-labelling of the 128 px scenes (results/pseudo_synth_labels.md) and the data config's
   ``balance_granularity`` (the per-image mask subset drawn evenly over g; results/unsamv2_train_pseudo_fixed.md).
   ``--pseudo-scenes N``: the engine mines the images of training seeds 0..N-1 for (b) / (e) (default: the
   ``--train-scenes`` images), so (a) / (c) can train on 4,000 scenes while (b) / (e) get N mined images; the
   mining's wall and CPU seconds are reported apart from the training budget (data preparation).

8. ``--encoder-dim`` (optional): a wider random frozen Hiera (tiny: 16). ``--eval-split tune`` evaluates on the
   tune scenes (seeds 20000+) instead of the report split: A/B runs that choose a setting (``--noc-instances 0`` and
   ``--throughput-steps 0`` skip NoC and throughput). The training set size (``--train-scenes``) matters most: with
   the encoder frozen and cached, 4,000 scenes seen once each cost little more per step than 40 seen 100 times
   (results/unsamv2_train_tune_scenes40.md vs results/unsamv2_train_tune_scenes4000.md).

9. ``--no-g-warmup-steps N`` (optional, runs with g): the first N steps train the g model as plain SAM-2 (best of
   3), then its granularity head starts from the most-won mask token (``UnSAMv2TrainConfig.no_g_warmup_steps``;
   results/unsamv2_train_plateau.md). ``--g-phase-lr-restart 1``: the lr schedule restarts at the switch;
   ``--g-phase-multimask-weight W``: the best-of-3 loss on the 3 SAM-2 outputs stays on after it (results/unsamv2_train_two_phase.md).

10. ``--min-area N`` (optional, every run): the data config's ``min_area`` (masks under N pixels of the 128 px image
   are dropped before prompts and levels are drawn; default 16). ``--focal W``: the runs' focal weight (the recipe:
   20) (results/s9_tune_minarea82.md and neighbours).

Writes ``benchmarks/results/unsamv2_train.md`` and ``benchmarks/results/unsamv2_train_miou_vs_g.png``.
Run: ``OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_unsamv2_train.py [--steps 200]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from unsamv2_train_eval import (  # noqa: E402
    FIXED_GROUPS,
    IMAGE_SIZE,
    best_fixed_output,
    click_records,
    predict_sweep,
    score,
    synth_config,
)
from unsamv2_train_report import plot, write_report  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]


@dataclass
class BenchSettings:
    steps: int = 400
    batch_size: int = 4
    lr: float = 1e-3
    train_scenes: int = 120
    eval_scenes: int = 30  # report split
    tune_scenes: int = 10
    max_masks: int = 16
    noc_instances: int = 40
    max_clicks: int = 10
    work_dir: str = "/tmp/granseg_bench_unsamv2_train"
    runs: str = "synth,pseudo,nog"
    throughput_steps: int = 10  # tiny-model throughput: steps per measurement
    correction_clicks: int = 3
    loss_resolution: str = "input"
    tag: str = "unsamv2_train"  # results/<tag>.md and results/<tag>_miou_vs_g.png
    small_steps: int = 2  # throughput of a hiera-small (1024 px) training step; 0 skips it
    # stage 1 (0: none): train the WHOLE tiny SAM-2 (encoder included, no g, best of 3) on the training scenes;
    # then every run starts from it (init_from) with the recipe's trainable set (granularity modules + LoRA)
    pretrain_steps: int = 0
    pretrain_focal: float = 1.0  # stage 1's focal weight (stands in for pre-training; not the UnSAMv2 recipe)
    pretrain_lr: float = 3e-4
    focal: float = 20.0  # the runs' focal weight (the recipe: 20)
    # 1: every run trains the WHOLE model from random init, image encoder included (no embedding cache); 0: the
    # encoder stays frozen at its random init (embeddings cached) and the decoder side trains
    train_encoder: int = 0
    # 0 keeps the tiny config's value: the decoder width (decoder MLP 2x, IoU head 1x follow it) and the model's
    # input size (the 128 px scenes are resized to it: 256 px gives a 16 x 16 token grid instead of 8 x 8)
    hidden_size: int = 0
    model_image_size: int = 0
    # runs (b) and (e): engine overrides "FIELD=JSON;FIELD=JSON" (a PseudoLabelConfig JSON passed to pseudo-label
    # --config; "" = the engine's defaults) and the data config's balance_granularity (1: the per-image mask
    # subset is drawn evenly over g instead of uniformly)
    pseudo_set: str = ""
    balance_granularity: int = 0
    # every run: the data config's min_area (masks under this many pixels of the 128 px image are dropped before
    # prompts and levels are drawn); 0 keeps the data default (16)
    min_area: int = 0
    # "label" (the recipe: each mask asked at its own g) or "nearest_level" (g uniform over the range where the
    # mask is the nearest level at the click; UnSAMv2TrainConfig.granularity_sampling)
    granularity_sampling: str = "label"
    max_prompts: int = 0  # prompts per image (of its <= max_masks masks; the rest give levels); 0: all
    # 0 keeps the tiny config's Hiera width (embed_dim 16; stages x1/2/4/8): a wider frozen random encoder gives
    # the decoder richer features at no cost per warm step (its embeddings are cached)
    encoder_dim: int = 0
    # "report" (seeds 10000+) or "tune" (seeds 20000+, the split that settings are chosen on: A/B runs)
    eval_split: str = "report"
    # runs with g ((a), (b)): train as plain SAM-2 (best of 3) for this many steps first, then the granularity
    # head starts from the winning mask token (UnSAMv2TrainConfig.no_g_warmup_steps); 0: off
    no_g_warmup_steps: int = 0
    # with the warm-up: 1 restarts the lr schedule at the switch (UnSAMv2TrainConfig.g_phase_lr_restart); a
    # weight > 0 keeps the best-of-3 loss on the 3 SAM-2 outputs after the switch (g_phase_multimask_weight)
    g_phase_lr_restart: int = 0
    g_phase_multimask_weight: float = 0.0
    # with that weight > 0: the g mask's loss weight ramps 1/N -> 1 over the g phase's first N steps
    # (UnSAMv2TrainConfig.g_loss_ramp_steps); 0: off
    g_loss_ramp_steps: int = 0
    # runs (b) and (e): the engine mines the images of training seeds 0..N-1 (folders images_N / pseudo_N);
    # 0 = train_scenes, mined into images / pseudo (the earlier behaviour, so earlier work dirs are reused)
    pseudo_scenes: int = 0
    # runs with g: UnSAMv2TrainConfig.granularity_init ("default", "unit_variance" or "zero")
    granularity_init: str = "default"
    # every run's training seed (initial weights, sample order, clicks): repeats measure run-to-run spread
    train_seed: int = 0


def _python() -> list[str]:
    return [sys.executable]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO))


def save_train_images(folder: Path, count: int) -> None:
    from PIL import Image

    from granseg.synth import generate_scene

    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        path = folder / f"scene_{seed:05d}.png"
        if not path.is_file():
            Image.fromarray(generate_scene(seed, synth_config()).image).save(path)


def pseudo_engine_overrides(pseudo_set: str) -> dict:
    """``"FIELD=JSON;FIELD=JSON"`` -> ``{FIELD: value}`` (PseudoLabelConfig fields, checked by the engine)."""
    overrides = {}
    for pair in filter(None, (p.strip() for p in pseudo_set.split(";"))):
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"error: --pseudo-set expects FIELD=VALUE pairs separated by ';', got {pair!r}")
        overrides[key.strip()] = json.loads(value)
    return overrides


def pseudo_folders(settings: BenchSettings, work: Path) -> tuple[Path, Path, int]:
    """Runs (b) / (e): (images folder, label folder, number of images mined: training seeds 0..N-1)."""
    if settings.pseudo_scenes < 0:
        raise SystemExit(f"error: --pseudo-scenes must be >= 0, got {settings.pseudo_scenes}")
    if not settings.pseudo_scenes:
        return work / "images", work / "pseudo", settings.train_scenes
    count = settings.pseudo_scenes
    return work / f"images_{count}", work / f"pseudo_{count}", count


def run_pseudo_label(images: Path, out: Path, pseudo_set: str = "") -> tuple[float, float]:
    """Mine ``images`` into ``out`` with ``granseg pseudo-label`` (1 worker). Returns (wall s, CPU s) of the
    mining (CPU: user + sys of the engine process), kept as JSON in ``out``'s sibling ``<out>_cpu_seconds.txt``,
    so a reused label folder still reports what it cost (NaN if it was mined elsewhere)."""
    started = time.time()
    cpu_file = out.parent / f"{out.name}_cpu_seconds.txt"
    if not (out / "manifest.jsonl").is_file():
        before = _children_cpu()
        command = [
            *_python(),
            "-m",
            "granseg",
            "pseudo-label",
            str(images),
            "--out",
            str(out),
            "--quiet",
            "--workers",
            "1",
        ]
        overrides = pseudo_engine_overrides(pseudo_set)
        if overrides:
            path = out.parent / "pseudo_engine_config.json"
            path.write_text(json.dumps(overrides))
            command += ["--config", str(path)]
        subprocess.run(command, env=_env(), check=True)
        cost = {
            "cpu_seconds": round(_children_cpu() - before, 1),
            "wall_seconds": round(time.time() - started, 1),
        }
        cpu_file.write_text(json.dumps(cost) + "\n")
    cost = json.loads(cpu_file.read_text()) if cpu_file.is_file() else {}
    if not isinstance(cost, dict):  # an earlier bench wrote the CPU seconds alone
        cost = {"cpu_seconds": cost}
    return float(cost.get("wall_seconds", "nan")), float(cost.get("cpu_seconds", "nan"))


PSEUDO_RUNS = ("pseudo", "nogpseudo")  # the runs trained on the engine's labels of the training images


def bench_model(settings: BenchSettings, name: str):
    """The tiny UnSAMv2 config, widened / enlarged by ``--hidden-size`` / ``--model-image-size`` when set."""
    from dataclasses import replace

    from granseg.models.unsamv2 import tiny_config

    model = tiny_config(name=name)
    if settings.hidden_size:
        width = settings.hidden_size
        model.sam2 = replace(
            model.sam2, hidden_size=width, decoder_mlp_dim=2 * width, iou_head_hidden_dim=width
        )
    if settings.model_image_size:
        model.sam2 = replace(model.sam2, image_size=settings.model_image_size)
    if settings.encoder_dim:
        model.sam2 = replace(model.sam2, embed_dim=settings.encoder_dim)
    return model


def train_config(settings: BenchSettings, name: str, work: Path) -> dict:
    model = bench_model(settings, f"bench-{name}")
    if name in ("nog", "nogpseudo", "pretrain"):
        model.granularity = False
    if name == "pretrain":
        model.lora = None
    pretrained = settings.pretrain_steps > 0 and name != "pretrain"
    data_extra = {}
    if name in PSEUDO_RUNS:
        images, labels, _ = pseudo_folders(settings, work)
        source = {"kind": "pseudo", "folder": str(labels), "images": str(images)}
        data_extra = {"balance_granularity": bool(settings.balance_granularity)}
    else:
        source = {"kind": "synth", "num_scenes": settings.train_scenes, "synth": asdict(synth_config())}
    if settings.min_area:
        data_extra["min_area"] = settings.min_area
    config = {
        "task": "unsamv2",
        "output_dir": str(work / f"run_{name}"),
        "model": model.to_dict(),
        "init_from": str(work / "run_pretrain" / "model") if pretrained else None,
        "data": {"sources": [source], "max_masks": settings.max_masks, **data_extra},
        "extra_trainable": [] if pretrained else ["sam.mask_decoder.", "sam.prompt_encoder."],
        "correction_clicks": settings.correction_clicks,
        "loss": {"focal": settings.focal},
        "loss_resolution": settings.loss_resolution,
        "granularity_sampling": settings.granularity_sampling,
        "max_prompts": settings.max_prompts,
        "steps": settings.steps,
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        "warmup_steps": max(settings.steps // 20, 1),
        "log_every": 10,
        "save_every": settings.steps,
        "seed": settings.train_seed,
    }
    if model.granularity and settings.no_g_warmup_steps:
        config["no_g_warmup_steps"] = settings.no_g_warmup_steps
        if settings.g_phase_lr_restart:
            config["g_phase_lr_restart"] = True
    if model.granularity and settings.granularity_init != "default":
        config["granularity_init"] = settings.granularity_init
    if model.granularity and settings.g_phase_multimask_weight:
        config["g_phase_multimask_weight"] = settings.g_phase_multimask_weight
    if model.granularity and settings.g_loss_ramp_steps:  # the trainer refuses it without the term above
        config["g_loss_ramp_steps"] = settings.g_loss_ramp_steps
    if (
        not pretrained
    ):  # one cache for the runs of this work dir (its key is the encoder's weights: no mix-ups)
        config["cache_dir"] = str(work / "embedding_cache")
    if settings.train_encoder and name != "pretrain" and not pretrained:
        config.update(train_image_encoder=True, cache_embeddings=False, extra_trainable=[])
    if name == "pretrain":
        config.update(
            train_image_encoder=True, cache_embeddings=False, extra_trainable=[], steps=settings.pretrain_steps,
            save_every=settings.pretrain_steps, warmup_steps=max(settings.pretrain_steps // 20, 1),
            loss={"focal": settings.pretrain_focal}, lr=settings.pretrain_lr,
        )  # fmt: skip
    return config


def train(settings: BenchSettings, name: str, work: Path) -> dict:
    config = train_config(settings, name, work)
    path = work / f"config_{name}.json"
    path.write_text(json.dumps(config, indent=1))
    out = Path(config["output_dir"])
    started = time.time()
    cpu_file = out / "cpu_seconds.txt"
    if not (out / "model").is_dir():
        before = _children_cpu()
        command = [*_python(), "-m", "granseg", "train", "--config", str(path), "--device", "cpu", "--quiet"]
        subprocess.run(command, env=_env(), check=True)
        cpu_file.write_text(f"{_children_cpu() - before:.1f}\n")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    # the training loop's own clock (also right when an earlier run of the same settings is reused)
    cpu = float(cpu_file.read_text()) if cpu_file.is_file() else float("nan")
    seconds = log[-1]["seconds"] if log else time.time() - started
    return {"seconds": seconds, "cpu_seconds": cpu, "log": log, "output": str(out)}


def _children_cpu() -> float:
    """CPU seconds (user + system) used so far by finished child processes."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def untrained_model(settings: BenchSettings, work: Path):
    """The initial weights of run (a): the same seed and builder as the trainer."""
    import torch

    from granseg.train.trainer import load_train_config
    from granseg.train.unsamv2_task import build_training_model

    config = load_train_config(json.dumps(train_config(settings, "synth", work)))
    torch.manual_seed(config.seed)
    return build_training_model(config).eval()


# ------------------------------------------------------------------------------------------------ evaluation


def write_coco(records_seeds, folder: Path) -> Path:
    """The report scenes' parts as a COCO dataset (images + RLE), for ``granseg eval interactive``."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    from granseg.synth import generate_scene

    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for seed in records_seeds:
        scene = generate_scene(seed, synth_config())
        Image.fromarray(scene.image).save(folder / f"scene_{seed}.png")
        images.append(
            {"id": seed, "file_name": f"scene_{seed}.png", "height": IMAGE_SIZE, "width": IMAGE_SIZE}
        )
        for node in scene.level_nodes("part"):
            rle = mask_utils.encode(np.asfortranarray(node.mask.astype(np.uint8)))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": seed,
                    "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode()},
                    "area": int(node.area),
                    "iscrowd": 0,
                }
            )
    path = folder / "parts.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def noc(model_path: str, coco: Path, out: Path, settings: BenchSettings) -> dict:
    command = [*_python(), "-m", "granseg", "eval", "interactive", "--dataset", "coco",
               "--data-root", str(coco.parent), "--annotations", str(coco), "--out", str(out),
               "--model", model_path, "--device", "cpu", "--quiet", "--max-clicks", str(settings.max_clicks),
               "--max-instances", str(settings.noc_instances), "--iou", "0.85,0.9"]  # fmt: skip
    if not (out / "metrics.json").is_file():  # an earlier run of the same settings is reused
        subprocess.run(command, env=_env(), check=True)
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    return {k: metrics.get(k) for k in ("NoC@85", "NoC@90", "1-IoU", "instances")}


# ------------------------------------------------------------------------------------------------ throughput
def throughput(settings: BenchSettings, work: Path, architecture: str, steps: int) -> dict:
    """masks/s of training steps: a cold embedding cache (every image through the encoder) vs a warm one."""
    from granseg.models.unsamv2 import SAM2_ARCHITECTURES

    model = bench_model(settings, "bench-throughput")
    if architecture != "tiny":
        model.sam2 = SAM2_ARCHITECTURES[architecture]
    base = train_config(settings, "synth", work)
    base.update(
        model=model.to_dict(),
        steps=steps,
        max_steps=None,
        log_every=steps,
        save_every=steps,
        warmup_steps=1,
        loss_resolution="low_res" if architecture != "tiny" else "input",
        cache_dir=str(work / f"cache_{architecture}"),
        train_image_encoder=False,  # the cache needs a frozen encoder (also with --train-encoder 1)
        cache_embeddings=True,
        extra_trainable=["sam.mask_decoder.", "sam.prompt_encoder."],
    )
    for key in ("no_g_warmup_steps", "g_phase_lr_restart", "g_phase_multimask_weight", "g_loss_ramp_steps"):
        base.pop(key, None)  # granularity steps are measured
    result = {}
    for label in ("cold cache (encoder runs)", "warm cache (encoder skipped)"):
        out = work / f"throughput_{architecture}_{label.split()[0]}"
        config = dict(base, output_dir=str(out))
        path = work / f"config_throughput_{architecture}_{label.split()[0]}.json"
        path.write_text(json.dumps(config))
        if not (out / "model").is_dir():
            command = [
                *_python(),
                "-m",
                "granseg",
                "train",
                "--config",
                str(path),
                "--device",
                "cpu",
                "--quiet",
            ]
            subprocess.run(command, env=_env(), check=True)
        record = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
        result[label] = record["masks_per_s"]
    return result


# ------------------------------------------------------------------------------------------------ report


def run(settings: BenchSettings) -> dict:
    work = Path(settings.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    names = settings.runs.split(",")
    report = {"settings": asdict(settings), "train_seconds": {}, "single_click": {}, "noc": {}}
    report["pseudo_seconds"], report["pseudo_cpu_seconds"], report["pseudo_images"] = 0.0, 0.0, 0
    if set(PSEUDO_RUNS) & set(names):
        images, labels, count = pseudo_folders(settings, work)
        save_train_images(images, count)
        report["pseudo_images"] = count
        wall, cpu = run_pseudo_label(images, labels, settings.pseudo_set)
        report["pseudo_seconds"], report["pseudo_cpu_seconds"] = wall, cpu
    runs = {}
    if settings.pretrain_steps:
        report["train_seconds"]["pretrain"] = train(settings, "pretrain", work)["seconds"]
    for name in names:
        runs[name] = train(settings, name, work)
        report["train_seconds"][name] = runs[name]["seconds"]
        report.setdefault("train_cpu_seconds", {})[name] = runs[name]["cpu_seconds"]
    from granseg.models.registry import load_model

    first = {"report": 10000, "tune": 20000}[settings.eval_split]
    report_records = click_records(range(first, first + settings.eval_scenes))
    tune_records = click_records(range(20000, 20000 + settings.tune_scenes))
    report["report_clicks"] = len(report_records)
    labels = {"synth": "(a) trained on synth GT", "pseudo": "(b) trained on pseudo-labels",
              "nog": "(c) no-g, same budget", "nogpseudo": "(e) no-g on the pseudo-labels, same budget"}  # fmt: skip
    models = {"(d) untrained": untrained_model(settings, work)}
    models.update({labels[n]: load_model(runs[n]["output"], device="cpu") for n in names})
    curves = {}
    for label, model in models.items():
        sweeps = predict_sweep(model, report_records)
        if model.config.granularity:
            result = score(report_records, sweeps, 0)
        else:
            index = best_fixed_output(tune_records, predict_sweep(model, tune_records))
            result = score(report_records, sweeps, index["part"])
            for group, metrics in FIXED_GROUPS.items():
                chosen = score(report_records, sweeps, index[group])
                result.update({m: chosen[m] for m in metrics})
            label = f"{label} [outputs {index['part']} / {index['object']} / {index['nearest']}]"
        curves[label] = result.pop("curves")
        report["single_click"][label] = result
    coco = write_coco(range(first, first + settings.eval_scenes), work / "coco_report")
    for name in names if settings.noc_instances else ():  # --noc-instances 0 skips NoC (quick A/B runs)
        report["noc"][labels[name]] = noc(runs[name]["output"], coco, work / f"noc_{name}", settings)
    report["throughput"] = {}
    if settings.throughput_steps:  # 0 skips it
        report["throughput"][f"tiny ({settings.model_image_size or IMAGE_SIZE} px)"] = throughput(
            settings, work, "tiny", settings.throughput_steps
        )
    if settings.small_steps:
        report["throughput"]["hiera-small (1024 px, random init, batch 4)"] = throughput(
            settings, work, "small", settings.small_steps
        )
    plot(curves, RESULTS / f"{settings.tag}_miou_vs_g.png")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = BenchSettings()
    for field, value in asdict(defaults).items():
        parser.add_argument("--" + field.replace("_", "-"), type=type(value), default=value)
    args = parser.parse_args(argv)
    settings = BenchSettings(**{k.replace("-", "_"): v for k, v in vars(args).items()})
    started = time.time()
    report = run(settings)
    report["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report["machine"] = (
        f"{platform.machine()} {os.cpu_count()} cores, torch threads {os.environ.get('OMP_NUM_THREADS', '?')}"
    )
    threads = os.environ.get("OMP_NUM_THREADS", "")
    report["command"] = (
        f"OMP_NUM_THREADS={threads} nice -n 5 python benchmarks/bench_unsamv2_train.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
    )
    report["total_seconds"] = time.time() - started
    RESULTS.mkdir(exist_ok=True)
    write_report(report, RESULTS / f"{settings.tag}.md")
    (Path(settings.work_dir) / "report.json").write_text(json.dumps(report, indent=1, default=str))
    print(
        json.dumps({k: report[k] for k in ("single_click", "noc", "throughput", "train_seconds")}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
