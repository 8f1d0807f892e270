"""The markdown report and mIoU-vs-g plot of the UnSAMv2 training benchmark (benchmarks/bench_unsamv2_train.py)."""

from __future__ import annotations

from pathlib import Path

from unsamv2_train_eval import FIXED_GROUPS, G_LEVELS, IMAGE_SIZE


def plot(curves: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = ("sub-part", "part", "object")
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for axis, level in zip(axes, levels):
        for name, curve in curves.items():
            axis.plot(G_LEVELS, curve[level], marker="o", label=name)
        axis.set_title(f"GT {level}")
        axis.set_xlabel("requested g")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("mIoU (one click inside a part)")
    axes[-1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _table(rows: dict[str, dict], columns: list[str]) -> list[str]:
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = []
        for c in columns:
            value = row.get(c)
            cells.append("-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _setup(s: dict) -> str:
    text = _setup_base(s)
    if s.get("model_image_size"):
        text = text.replace("128 px input, ", "")
    if s.get("hidden_size") or s.get("model_image_size"):
        text += (
            f"decoder width {s.get('hidden_size') or 'tiny'}, model input "
            f"{s.get('model_image_size') or IMAGE_SIZE} px (the 128 px scenes resized to it); "
        )
    if s.get("encoder_dim"):
        text += f"random frozen Hiera width {s['encoder_dim']} (tiny: 16); "
    if s.get("granularity_sampling", "label") != "label":
        text += (
            "requested g drawn uniformly over the range where the target is the nearest GT level at the click "
            "(`granularity_sampling: nearest_level`; the labels' g unchanged); "
        )
    return text


def _split(s: dict) -> str:
    if s.get("eval_split", "report") == "tune":
        return "TUNE scenes (seeds 20000+: an A/B on the split settings are chosen on, not a held-out result)"
    return "FRESH scenes (seeds 10000+)"


def _setup_base(s: dict) -> str:
    if s.get("train_encoder") and not s.get("pretrain_steps"):
        return (
            "Tiny SAM-2 (128 px input, random init with PyTorch's layer init), the WHOLE model trained, image "
            "encoder included (no embedding cache: a random encoder has nothing worth freezing, and at 128 px its "
            f"forward/backward costs little next to the decoder's rounds); focal weight {s.get('focal', 20.0)}; "
        )
    if not s.get("pretrain_steps"):
        return (
            "Tiny SAM-2 (128 px input, random init), image encoder frozen at its random init (embeddings cached); "
            "trained: granularity modules + LoRA + mask decoder + prompt encoder; "
        )
    return (
        f"Tiny SAM-2 (128 px input, random init). Stage 1: the WHOLE model (encoder included, no g, best of 3) "
        f"{s['pretrain_steps']} steps, lr {s['pretrain_lr']}, focal weight {s['pretrain_focal']}; '(d) untrained' "
        "is stage 1 plus fresh granularity modules. Stage 2 from it, encoder frozen (embeddings cached), trained: "
        "granularity modules + LoRA only (the recipe's set and losses); "
    )


def _mined(report: dict) -> str:
    """What the pseudo-labels of runs (b) / (e) cost: images (training seeds 0..N-1), wall and CPU seconds."""
    count = report.get("pseudo_images", 0)
    if not count:
        return "none (no run on pseudo-labels)"
    cpu, wall = report.get("pseudo_cpu_seconds", float("nan")), report.get("pseudo_seconds", float("nan"))
    head = (
        f"the images of training seeds 0-{count - 1} ({count} images, 1 worker, data preparation outside the "
    )
    if cpu != cpu:  # NaN: a label folder mined outside this bench
        return head + "training budget): cost not recorded (labels mined before this run)"
    wall_text = f"{wall:.0f} s wall, " if wall == wall else ""
    return head + f"training budget): {wall_text}{cpu:.0f} s CPU, {cpu / count:.2f} s CPU / image"


def write_report(report: dict, path: Path) -> None:
    s = report["settings"]
    lines = [
        "# UnSAMv2 training: does it learn to obey g? (benchmarks/bench_unsamv2_train.py)",
        "",
        f"Date {report['date']}, machine {report['machine']} (2 cores SHARED with other engineers' jobs; the load",
        "average was high, so seconds are inflated; runs one at a time under `nice -n 5`).",
        f"Command: `{report['command']}`",
        "",
        _setup(s) + f"{s['steps']} steps x batch "
        f"{s['batch_size']}, lr {s['lr']}, <= {s['max_masks']} masks per image, 1 + {s['correction_clicks']} clicks "
        f"per mask, loss at {s['loss_resolution']} resolution. Synthetic "
        f"training scenes (runs a / c): seeds 0-{s['train_scenes'] - 1}; evaluation: {report['report_clicks']} clicks (one per GT part "
        f"of objects with >= 2 parts) on {s['eval_scenes']} {_split(s)}; the no-g model's fixed "
        f"output chosen on {s['tune_scenes']} tune scenes (seeds 20000+).",
        "",
        "Training wall time (s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in report["train_seconds"].items())
        + "; CPU time of the training processes (s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in report.get("train_cpu_seconds", {}).items()),
        f"; pseudo-labelling {_mined(report)}.",
        "",
        "## One click inside a part: IoU with the GT part at small g and with the GT object at g = 1",
        "",
    ]
    columns = ["part IoU g=0.1", "part IoU g=0.2", "part IoU g=0.3", "object IoU g=1.0", "Spearman pooled",
               "Spearman per click"]  # fmt: skip
    lines += _table(report["single_click"], columns)
    lines += [
        "",
        "Same clicks, a protocol consistent with the GT's own g (DESIGN.md formula: a part's g is often > 0.3 "
        "because its sub-parts stretch the range): IoU with the GT level AT THE CLICK whose exact g is nearest "
        "to the requested g (sub-part / part / object), and with the GT part when asked at the part's own g. "
        "The no-g model: one fixed output per column group, chosen on the tune split (label: part / object / "
        "nearest).",
        "",
    ]
    lines += _table(report["single_click"], [*FIXED_GROUPS["nearest"], *FIXED_GROUPS["own"]])
    lines += [
        "",
        "## NoC with oracle g (`granseg eval interactive`, COCO export of the report scenes' parts)",
        "",
    ]
    lines += _table(report["noc"], ["NoC@85", "NoC@90", "1-IoU", "instances"])
    lines += [
        "",
        f"## Training throughput (masks/s; each mask = 1 + {s['correction_clicks']} decoder passes)",
        "",
    ]
    for architecture, values in report["throughput"].items():
        for label, value in values.items():
            lines.append(f"- {architecture}: {label}: **{value:.1f} masks/s**")
    lines += ["", f"![mIoU vs g]({s['tag']}_miou_vs_g.png)", ""]
    path.write_text("\n".join(lines) + "\n")
