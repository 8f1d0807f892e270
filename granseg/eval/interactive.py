"""Interactive (click-based) evaluation: the isegm/RITM NoC protocol with UnSAMv2's oracle granularity.

For one instance and one granularity g, the robot user (:mod:`granseg.eval.clicker`) clicks on the largest error
of the current prediction, the predictor answers with the clicks so far (and its previous low-res logits as
``mask_input`` when it returns them), and the IoU is recorded; this stops at ``max_clicks`` or, by default, as soon
as the IoU reaches the highest target (RITM's early stop; later clicks then repeat the last IoU in the curves).

Granularity modes:

* fixed g: one click sequence per instance at that g;
* oracle (UnSAMv2): one click sequence per g in 0.1..1.0 (the sequences diverge after the first click, because
  the clicks depend on the predictions). Sequences that still share the same clicks are answered by one
  ``predict(..., granularity=[...])`` call. NoC@t takes, per instance, the g with the fewest clicks to reach t,
  ties going to the higher first-click IoU (then the smaller g); 1-IoU (the IoU after the first click) takes the g
  with the best first-click IoU; the per-click mIoU curve follows the oracle g of the primary target.

Prediction threshold: predictors with ``provides_logits`` (UnSAMv2, SAM-2) are asked for their full-resolution
logits (``predict(..., return_logits=True)``), binarised at probability ``pred_threshold`` (0.49 as in
RITM/SimpleClick; 0.5 for GraCo); binary-mask models (``hierarchy``, Gen2Seg, GrabCut) are used as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from granseg.config import Config
from granseg.errors import InputError
from granseg.eval.clicker import CLICKERS, Clicker, iou, make_clicker, number_of_clicks
from granseg.eval.datasets.base import EvalDataset, Instance
from granseg.predict.base import GRANULARITY_LEVELS, BasePredictor, Prediction


@dataclass
class InteractiveConfig(Config):
    max_clicks: int = 20
    iou_targets: tuple[float, ...] = (0.85, 0.9, 0.95)
    primary_target: float = 0.9  # the target whose oracle g the mIoU curve follows
    pred_threshold: float = 0.49
    granularity: float | None = None  # None = oracle over `levels`; else fixed g
    levels: tuple[float, ...] = GRANULARITY_LEVELS
    early_stop: bool = True  # stop a sequence once its IoU reaches max(iou_targets)
    use_mask_input: bool = True
    clicker: str = "ritm"  # "ritm" (isegm/RITM) or "gen2seg" (the Gen2Seg paper's centre clicks)

    def validate(self) -> InteractiveConfig:
        if self.clicker not in CLICKERS:
            raise InputError(f"clicker must be one of {', '.join(CLICKERS)}, got {self.clicker!r}")
        return self

    def granularities(self) -> tuple[float, ...]:
        return (float(self.granularity),) if self.granularity is not None else tuple(self.levels)


@dataclass
class InstanceResult:
    """All click sequences of one instance. ``ious[g]``: IoU after each click (length <= max_clicks)."""

    sample_id: str
    instance_id: str
    ious: dict[float, list[float]]
    clicks: dict[float, list[tuple[int, int, int]]]  # (x, y, label) per click
    max_clicks: int = 20
    area: int = 0

    def noc(self, target: float, g: float) -> int:
        return number_of_clicks(self.ious[g], target, self.max_clicks)

    def first_iou(self, g: float) -> float:
        return self.ious[g][0]

    def oracle_g(self, target: float) -> float:
        """Fewest clicks to ``target``, ties to the higher first-click IoU, then the smaller g."""
        return min(self.ious, key=lambda g: (self.noc(target, g), -self.first_iou(g), g))

    def oracle_noc(self, target: float) -> int:
        return self.noc(target, self.oracle_g(target))

    def best_first_iou(self) -> float:
        return max(self.first_iou(g) for g in self.ious)

    def curve(self, g: float) -> np.ndarray:
        """IoU after clicks 1..max_clicks at g, the last value repeated after an early stop."""
        values = self.ious[g]
        return np.asarray(values + [values[-1]] * (self.max_clicks - len(values)), dtype=np.float64)


def binarize(prediction: Prediction, threshold: float) -> np.ndarray:
    """``K x H x W`` bool masks of a prediction: its full-resolution ``logits`` above ``logit(threshold)`` when
    it has them (``predict(..., return_logits=True)``), else its boolean masks as they are."""
    if prediction.logits is not None:
        return np.asarray(prediction.logits) > math.log(threshold / (1.0 - threshold))
    return np.asarray(prediction.masks, dtype=bool)


@dataclass
class _Sequence:
    g: float
    clicker: Clicker
    pred: np.ndarray
    ious: list[float] = field(default_factory=list)
    logits: np.ndarray | None = None
    done: bool = False


def evaluate_instance(
    predictor: BasePredictor, instance: Instance, config: InteractiveConfig, sample_id: str = ""
) -> InstanceResult:
    """Run the click sequences of one instance; the predictor's image must already be set."""
    stop_iou = max(config.iou_targets) if config.early_stop else math.inf
    empty = np.zeros(instance.mask.shape, dtype=bool)
    sequences = [
        _Sequence(g, make_clicker(config.clicker, instance.mask, instance.ignore), empty)
        for g in config.granularities()
    ]
    for _ in range(config.max_clicks):
        active = [s for s in sequences if not s.done]
        if not active:
            break
        groups: dict[tuple, list[_Sequence]] = {}
        for seq in active:
            if seq.clicker.make_next_click(seq.pred) is None:  # gen2seg clicker: nothing of the object missed
                seq.done = True
                if not seq.ious:  # an object with no pixel to click (all ignored)
                    seq.ious.append(iou(instance.mask, seq.pred, instance.ignore))
                continue
            key = (tuple(seq.clicker.clicks), seq.logits is not None)
            groups.setdefault(key, []).append(seq)
        for members in groups.values():
            first = members[0].clicker
            mask_input = None
            if config.use_mask_input and members[0].logits is not None:
                mask_input = np.stack([m.logits for m in members])
            prediction = predictor.predict(
                first.points_xy(),
                first.labels(),
                granularity=[m.g for m in members],
                mask_input=mask_input,
                return_logits=predictor.provides_logits,
            )
            masks = binarize(prediction, config.pred_threshold)
            for k, seq in enumerate(members):
                seq.pred = masks[k]
                if prediction.low_res_logits is not None:
                    seq.logits = np.asarray(prediction.low_res_logits[k])
                seq.ious.append(iou(instance.mask, seq.pred, instance.ignore))
                if seq.ious[-1] >= stop_iou:
                    seq.done = True
    return InstanceResult(
        sample_id=sample_id,
        instance_id=instance.id,
        ious={s.g: s.ious for s in sequences},
        clicks={s.g: [(c.x, c.y, c.label) for c in s.clicker.clicks] for s in sequences},
        max_clicks=config.max_clicks,
        area=int(np.count_nonzero(instance.mask)),
    )


def summarize(results: list[InstanceResult], config: InteractiveConfig) -> dict:
    """Dataset metrics: NoC@t (oracle or fixed g), 1-IoU, mIoU per click, how often each g is the oracle."""
    if not results:
        return {"instances": 0}
    metrics: dict = {"instances": len(results), "max_clicks": config.max_clicks}
    for target in config.iou_targets:
        nocs = [r.oracle_noc(target) for r in results]
        metrics[f"NoC@{round(target * 100)}"] = float(np.mean(nocs))
        metrics[f"NoF@{round(target * 100)}"] = int(
            sum(n >= config.max_clicks and not _reached(r, target) for n, r in zip(nocs, results))
        )
    metrics["1-IoU"] = float(np.mean([r.best_first_iou() for r in results]))
    primary = config.primary_target if config.primary_target in config.iou_targets else config.iou_targets[0]
    curves = np.stack([r.curve(r.oracle_g(primary)) for r in results])
    metrics["mIoU_per_click"] = [float(v) for v in curves.mean(axis=0)]
    if len(config.granularities()) > 1:
        chosen = [r.oracle_g(primary) for r in results]
        metrics["oracle_g_histogram"] = {f"{g:.1f}": chosen.count(g) for g in config.granularities()}
        for g in config.granularities():
            metrics[f"NoC@{round(primary * 100)}_fixed_g{g:.1f}"] = float(
                np.mean([r.noc(primary, g) for r in results])
            )
    return metrics


def _reached(result: InstanceResult, target: float) -> bool:
    g = result.oracle_g(target)
    return max(result.ious[g]) >= target


def _evaluate_sample(
    predictor: BasePredictor, dataset: EvalDataset, index: int, config: InteractiveConfig, limit: int | None
):
    sample = dataset.load(index)
    predictor.set_image(sample.image)
    instances = sample.instances if limit is None else sample.instances[:limit]
    return [evaluate_instance(predictor, inst, config, sample.id) for inst in instances]


_WORKER: dict = {}


def _worker_init(
    factory: Callable[[], BasePredictor], dataset: EvalDataset, config: InteractiveConfig
) -> None:
    import os

    from granseg.regions.maxflow import CUT_THREADS_ENV

    os.environ.setdefault(CUT_THREADS_ENV, "1")  # the workers already fill the cores: no threads inside one
    _WORKER.update(predictor=factory(), dataset=dataset, config=config)


def _worker_run(index: int, limit: int | None):
    return _evaluate_sample(_WORKER["predictor"], _WORKER["dataset"], index, _WORKER["config"], limit)


def evaluate_dataset(
    dataset: EvalDataset,
    predictor_factory: Callable[[], BasePredictor],
    config: InteractiveConfig,
    max_instances: int | None = None,
    workers: int = 1,
    quiet: bool = False,
) -> list[InstanceResult]:
    """Evaluate every instance of ``dataset`` (at most ``max_instances``, in dataset order). Results are in
    dataset order whatever ``workers`` is, so runs are deterministic. ``predictor_factory`` must be picklable
    when ``workers > 1`` (e.g. ``functools.partial(load_predictor, name, device=...)``)."""
    from granseg.utils.progress import progress

    results: list[InstanceResult] = []
    bar = progress(range(len(dataset)), desc=f"{dataset.name}", total=len(dataset), quiet=quiet)
    if workers <= 1:
        predictor = predictor_factory()
        for index in bar:
            remaining = None if max_instances is None else max_instances - len(results)
            results.extend(_evaluate_sample(predictor, dataset, index, config, remaining))
            if max_instances is not None and len(results) >= max_instances:
                break
        bar.close()
        return results
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(
        workers, initializer=_worker_init, initargs=(predictor_factory, dataset, config)
    ) as pool:
        if max_instances is None:  # everything in flight at once; map() yields in dataset order
            for batch in pool.map(_worker_run, range(len(dataset)), [None] * len(dataset)):
                results.extend(batch)
                bar.update(1)
        else:  # a few samples per worker at a time, stopping once enough instances are in
            next_index = 0
            while next_index < len(dataset) and len(results) < max_instances:
                chunk = range(next_index, min(len(dataset), next_index + workers * 2))
                for batch in pool.map(_worker_run, chunk, [max_instances] * len(chunk)):
                    results.extend(batch)
                    bar.update(1)
                next_index = chunk.stop
    bar.close()
    return results[:max_instances] if max_instances is not None else results


def write_outputs(
    out_dir, results: list[InstanceResult], metrics: dict, config: InteractiveConfig, meta: dict
) -> None:
    """``metrics.json``, ``per_instance.csv``, ``report.md``, ``miou_per_click.png`` (when matplotlib is there)."""
    import csv
    import io
    from pathlib import Path

    from granseg.io.files import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", {"meta": meta, "config": config.to_dict(), "metrics": metrics})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    targets = config.iou_targets
    writer.writerow(
        ["sample", "instance", "area"]
        + [f"oracle_g@{round(t * 100)}" for t in targets]
        + [f"NoC@{round(t * 100)}" for t in targets]
        + ["1-IoU", "ious_at_primary_g", "clicks_at_primary_g"]
    )
    primary = config.primary_target if config.primary_target in targets else targets[0]
    for r in results:
        g = r.oracle_g(primary)
        writer.writerow(
            [r.sample_id, r.instance_id, r.area]
            + [f"{r.oracle_g(t):.1f}" for t in targets]
            + [r.oracle_noc(t) for t in targets]
            + [
                f"{r.best_first_iou():.4f}",
                ";".join(f"{v:.4f}" for v in r.ious[g]),
                ";".join(f"{x}:{y}:{lab}" for x, y, lab in r.clicks[g]),
            ]
        )
    atomic_write_text(out / "per_instance.csv", buffer.getvalue())
    atomic_write_text(out / "report.md", render_report(metrics, config, meta))
    plot_curves(
        out / "miou_per_click.png",
        {meta.get("model", "model"): metrics.get("mIoU_per_click", [])},
        meta.get("dataset", ""),
    )


def render_report(metrics: dict, config: InteractiveConfig, meta: dict) -> str:
    mode = (
        "oracle g over " + ", ".join(f"{g:.1f}" for g in config.levels)
        if config.granularity is None
        else f"fixed g = {config.granularity:g}"
    )
    lines = [
        f"# Interactive evaluation: {meta.get('model', '?')} on {meta.get('dataset', '?')}",
        "",
        f"- instances: {metrics.get('instances', 0)}; max clicks {config.max_clicks}; threshold {config.pred_threshold}; {mode}",
        f"- protocol: {'isegm/RITM' if config.clicker == 'ritm' else 'Gen2Seg centre'} clicker; early stop at IoU {max(config.iou_targets):g}: {config.early_stop}",
        f"- command: `{meta.get('command', '')}`",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for key, value in metrics.items():
        if isinstance(value, float):
            lines.append(f"| {key} | {value:.4f} |")
        elif isinstance(value, int):
            lines.append(f"| {key} | {value} |")
    curve = metrics.get("mIoU_per_click", [])
    if curve:
        lines += [
            "",
            "mIoU after k clicks:",
            "",
            "| k | " + " | ".join(str(k + 1) for k in range(len(curve))) + " |",
            "|---" * (len(curve) + 1) + "|",
            "| mIoU | " + " | ".join(f"{v:.3f}" for v in curve) + " |",
        ]
    if "oracle_g_histogram" in metrics:
        lines += [
            "",
            "Oracle g (primary target) histogram: "
            + ", ".join(f"{g}: {n}" for g, n in metrics["oracle_g_histogram"].items()),
        ]
    return "\n".join(lines) + "\n"


def plot_curves(path, curves: dict[str, list[float]], title: str = "") -> bool:
    """mIoU-per-click curves as a PNG; returns False (and writes nothing) when matplotlib is missing."""
    from granseg.eval.plots import new_figure, save_figure

    made = new_figure(5, 3.5)
    if made is None:
        return False
    from matplotlib.ticker import MaxNLocator

    fig, ax = made
    for name, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of clicks")
    ax.set_ylabel("mIoU")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower right")
    save_figure(fig, path)
    return True
