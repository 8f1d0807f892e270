"""``granseg eval {interactive,auto,edges,video}``: the evaluation protocols of docs/eval.md.

Every subcommand writes ``metrics.json`` (machine-readable), ``report.md`` and PNG plots into ``--out``. This
module parses arguments, resolves ``--model auto`` and prints; the protocols themselves live in
:mod:`granseg.eval.interactive` and :mod:`granseg.eval.runs`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "eval", help="benchmarks: interactive NoC, whole-image AR, edges, video J&F"
    )
    sub = parser.add_subparsers(dest="eval_command", metavar="PROTOCOL", parser_class=type(parser))
    sub.required = True
    for add in (_add_interactive, _add_auto, _add_edges, _add_video):
        add(sub, common)


def _add_interactive(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("interactive", parents=[common], help="NoC@85/90/95 with the isegm/RITM clicker")
    p.add_argument(
        "--dataset",
        required=True,
        help="grabcut, berkeley, davis, coco-mval, sbd, pascalpart, partimagenet, coco, sa1b",
    )
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-clicks", type=int, default=20)
    p.add_argument(
        "--iou", default="0.85,0.9,0.95", help="IoU targets, comma-separated (default 0.85,0.9,0.95)"
    )
    p.add_argument(
        "--granularity", default="oracle", help="'oracle' (best g of 0.1..1.0 per instance) or a fixed g"
    )
    p.add_argument(
        "--threshold", type=float, default=0.49, help="probability threshold (0.49 RITM; 0.5 GraCo)"
    )
    p.add_argument(
        "--max-instances", type=int, default=None, help="evaluate at most N instances (quick runs)"
    )
    p.add_argument("--subset", default=None, help="comma-separated sample ids, or @FILE with one id per line")
    p.add_argument(
        "--split", default=None, help="dataset split where it applies (sbd: val; partimagenet: test)"
    )
    p.add_argument("--annotations", type=Path, default=None, help="instances JSON for --dataset coco")
    p.add_argument("--level", default=None, choices=["part", "object"], help="pascalpart: parts or objects")
    p.add_argument("--no-early-stop", action="store_true", help="always run max-clicks clicks (exact curves)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes over images")
    p.add_argument(
        "--clicker",
        default="ritm",
        choices=["ritm", "gen2seg"],
        help="robot user: isegm/RITM (default) or the Gen2Seg paper's centre clicks (use --max-clicks 9)",
    )
    p.set_defaults(func=run_interactive)


def _add_auto(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "auto", parents=[common], help="AR@1/10/100/1000 of whole-image masks (COCOeval, class-agnostic)"
    )
    p.add_argument(
        "--gt", type=Path, required=True, help="COCO-style instances JSON, or a folder of SA-1B JSONs"
    )
    p.add_argument("--images", type=Path, default=None, help="image folder (needed to generate predictions)")
    p.add_argument(
        "--predictions", type=Path, default=None, help="predictions JSON (or folder); skips the model"
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--preset", choices=["official", "fast"], default="official", help="see granseg auto -h")
    p.add_argument("--points-per-side", type=int, default=None, help="grid size (overrides the preset)")
    p.add_argument(
        "--source", choices=["auto", "grid", "tree"], default="auto", help="candidates (see granseg auto -h)"
    )
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--all-images", action="store_true", help="score every GT image, not only predicted ones")
    p.set_defaults(func=run_auto)


def _add_edges(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("edges", parents=[common], help="boundary P/R on BSDS500: ODS/OIS F, AP, AP for R<0.2")
    p.add_argument("--dataset", default="bsds500", choices=["bsds500"])
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--thresholds", type=int, default=99, help="number of thresholds (BSDS: 99)")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--edge-map",
        default="auto",
        choices=["auto", "sobel", "ucm", "ucm-single", "features", "masks"],
        help="sobel: Sobel + NMS on the image; ucm: the hierarchy model's contour map (mean of five trees' UCMs); "
        "ucm-single: the UCM of the hierarchy predictor's own tree; features: Sobel + NMS "
        "on a Gen2Seg feature image; masks: Sobel + NMS on the model's automatic masks (any model) "
        "(default auto: by --model; --model auto means sobel here)",
    )
    p.set_defaults(func=run_edges)


def _add_video(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("video", parents=[common], help="J&F on DAVIS")
    p.add_argument(
        "--data-root", type=Path, required=True, help="DAVIS root (JPEGImages/480p, Annotations/480p)"
    )
    p.add_argument("--predictions", type=Path, default=None, help="folder <seq>/<frame>.png to score")
    p.add_argument("--granularity", type=float, default=1.0, help="g used on every frame (model propagation)")
    p.add_argument("--sequences", default=None, help="comma-separated sequence names")
    p.add_argument("--max-frames", type=int, default=None, help="first N frames per sequence (quick runs)")
    p.add_argument(
        "--propagation",
        choices=["reclick", "track"],
        default="track",
        help="track (default): follow the first mask with a VideoSession (neural memory for UnSAMv2/SAM-2; "
        "motion + optical flow + GrabCut for hierarchy, see docs/video.md); reclick: the older baseline, a click "
        "on each frame at the previous mask's deepest point",
    )
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=run_video)


def parse_id_list(text: str | None) -> list[str] | None:
    """Sample ids from ``--subset``-style text: ``@FILE`` (one id a line) or a comma-separated list; None when
    empty. Also used by the benchmark scripts."""
    if not text:
        return None
    if text.startswith("@"):
        return [line.strip() for line in Path(text[1:]).read_text().splitlines() if line.strip()]
    return [t.strip() for t in text.split(",") if t.strip()]


def _model_name(args) -> str:
    """``--model``, with ``auto`` resolved to the model it picks here (said on stderr)."""
    from granseg.cli import info
    from granseg.models.registry import resolve_auto

    if args.model == "auto":
        name, reason = resolve_auto()
        info(args, f"model: {reason}")
        return name
    return args.model


def _predictor_factory(args) -> tuple[str, object]:
    """``(model name actually used, picklable predictor factory)``; an unknown name fails before any work."""
    import functools

    from granseg.models.registry import get_entry
    from granseg.predict.factory import load_predictor

    model_name = _model_name(args)
    if not Path(model_name).exists():
        get_entry(model_name)
    return model_name, functools.partial(load_predictor, model_name, device=args.device)


def _interactive_config(args):
    from granseg.errors import InputError
    from granseg.eval.interactive import InteractiveConfig
    from granseg.predict.base import parse_granularity

    try:
        targets = tuple(float(t) for t in args.iou.split(",") if t.strip())
    except ValueError:
        raise InputError(f"--iou must be comma-separated numbers, got {args.iou!r}") from None
    if not targets or any(not 0 < t <= 1 for t in targets):
        raise InputError("--iou targets must lie in (0, 1]")
    if args.max_clicks < 1:
        raise InputError("--max-clicks must be >= 1")
    if not 0 < args.threshold < 1:
        raise InputError("--threshold must lie in (0, 1)")
    granularity = None if args.granularity == "oracle" else float(parse_granularity(args.granularity)[0])
    return InteractiveConfig(
        max_clicks=args.max_clicks,
        iou_targets=targets,
        primary_target=0.9 if 0.9 in targets else targets[0],
        pred_threshold=args.threshold,
        granularity=granularity,
        early_stop=not args.no_early_stop,
        clicker=args.clicker,
    )


def run_interactive(args: argparse.Namespace) -> int:
    from granseg.cli import info
    from granseg.errors import InputError
    from granseg.eval.datasets import load_dataset
    from granseg.eval.interactive import evaluate_dataset, summarize, write_outputs
    from granseg.eval.runs import command_line

    config = _interactive_config(args)
    dataset = load_dataset(
        args.dataset, args.data_root, split=args.split, annotation=args.annotations, level=args.level
    )
    dataset.restrict(parse_id_list(args.subset))
    model_name, factory = _predictor_factory(args)
    results = evaluate_dataset(dataset, factory, config, args.max_instances, max(1, args.workers), args.quiet)
    if not results:
        raise InputError("no instances were evaluated")
    metrics = summarize(results, config)
    meta = {
        "model": model_name,
        "dataset": args.dataset,
        "data_root": str(args.data_root),
        "command": command_line(),
    }
    write_outputs(args.out, results, metrics, config, meta)
    targets_text = ", ".join(
        f"NoC@{round(t * 100)} {metrics[f'NoC@{round(t * 100)}']:.2f}" for t in config.iou_targets
    )
    info(
        args, f"{metrics['instances']} instances: {targets_text}, 1-IoU {metrics['1-IoU']:.3f} -> {args.out}"
    )
    return 0


def run_auto(args: argparse.Namespace) -> int:
    from granseg.cli import info
    from granseg.errors import InputError
    from granseg.eval.runs import evaluate_auto

    model_name = factory = None
    if args.predictions is None:
        if args.images is None:
            raise InputError("give --predictions, or --images to generate masks with --model")
        model_name, factory = _predictor_factory(args)
    metrics = evaluate_auto(
        args.gt,
        args.out,
        predictions=args.predictions,
        predictor_factory=factory,
        model_name=model_name,
        images=args.images,
        points_per_side=args.points_per_side,
        max_images=args.max_images,
        all_images=args.all_images,
        preset=args.preset,
        source=args.source,
        quiet=args.quiet,
    )
    info(
        args,
        "  ".join(f"{k} {metrics[k]:.3f}" for k in ("AR@1", "AR@10", "AR@100", "AR@1000"))
        + f" -> {args.out}",
    )
    return 0


def run_edges(args: argparse.Namespace) -> int:
    from granseg.cli import info
    from granseg.eval.runs import evaluate_edges

    metrics = evaluate_edges(
        args.data_root,
        args.out,
        model_name=args.model if args.model != "auto" else "sobel",
        split=args.split,
        n_thresholds=args.thresholds,
        max_images=args.max_images,
        device=args.device,
        edge_map=args.edge_map,
        workers=args.workers,
        quiet=args.quiet,
    )
    info(
        args,
        f"ODS F {metrics['ODS_F']:.3f}  OIS F {metrics['OIS_F']:.3f}  AP {metrics['AP']:.3f}  "
        f"AP(R<0.2, area) {metrics['ap_r20_area']:.3f}  P@R=0.2 {metrics['p_at_r20']:.3f} -> {args.out}",
    )
    return 0


def run_video(args: argparse.Namespace) -> int:
    from granseg.cli import info
    from granseg.eval.runs import evaluate_video

    model_name = factory = None
    if args.predictions is None:
        model_name, factory = _predictor_factory(args)
    metrics = evaluate_video(
        args.data_root,
        args.out,
        predictions=args.predictions,
        predictor_factory=factory,
        model_name=model_name,
        granularity=args.granularity,
        sequences=parse_id_list(args.sequences),
        max_frames=args.max_frames,
        quiet=args.quiet,
        propagation=args.propagation,
    )
    info(args, f"J {metrics['J']:.3f}  F {metrics['F']:.3f}  J&F {metrics['J&F']:.3f} -> {args.out}")
    return 0
