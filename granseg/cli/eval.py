"""``granseg eval {interactive,auto,edges,video}``: the evaluation protocols of DESIGN.md sec. 6.

Every subcommand writes ``metrics.json`` (machine-readable), ``report.md`` and PNG plots into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "eval", help="benchmarks: interactive NoC, whole-image AR, edges, video J&F"
    )
    sub = parser.add_subparsers(dest="eval_command", metavar="PROTOCOL", parser_class=type(parser))
    sub.required = True

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
    p.set_defaults(func=run_interactive)

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
    p.add_argument("--points-per-side", type=int, default=64)
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--all-images", action="store_true", help="score every GT image, not only predicted ones")
    p.set_defaults(func=run_auto)

    p = sub.add_parser("edges", parents=[common], help="boundary P/R on BSDS500: ODS/OIS F, AP, AP for R<0.2")
    p.add_argument("--dataset", default="bsds500", choices=["bsds500"])
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--thresholds", type=int, default=99, help="number of thresholds (BSDS: 99)")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=run_edges)  # --model auto means plain Sobel here (see run_edges)

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
        choices=["track", "reclick"],
        default="track",
        help="track: VideoSession (flow + appearance + snapping); reclick: re-click each frame (old baseline)",
    )
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=run_video)


def _command_line() -> str:
    return "granseg " + " ".join(sys.argv[1:])


def _parse_subset(text: str | None) -> list[str] | None:
    if not text:
        return None
    if text.startswith("@"):
        return [line.strip() for line in Path(text[1:]).read_text().splitlines() if line.strip()]
    return [t.strip() for t in text.split(",") if t.strip()]


def _model_name(args) -> str:
    from granseg.cli import info
    from granseg.models.registry import resolve_auto

    if args.model == "auto":
        name, reason = resolve_auto()
        info(args, f"model: {reason}")
        return name
    return args.model


def run_interactive(args: argparse.Namespace) -> int:
    import functools

    from granseg.cli import info
    from granseg.errors import InputError
    from granseg.eval.datasets import load_dataset
    from granseg.eval.interactive import InteractiveConfig, evaluate_dataset, summarize, write_outputs
    from granseg.models.registry import get_entry, load_predictor
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
    config = InteractiveConfig(
        max_clicks=args.max_clicks,
        iou_targets=targets,
        primary_target=0.9 if 0.9 in targets else targets[0],
        pred_threshold=args.threshold,
        granularity=granularity,
        early_stop=not args.no_early_stop,
    )
    dataset = load_dataset(
        args.dataset, args.data_root, split=args.split, annotation=args.annotations, level=args.level
    )
    dataset.restrict(_parse_subset(args.subset))
    model_name = _model_name(args)
    if not Path(model_name).exists():
        get_entry(model_name)  # unknown names fail before any work
    factory = functools.partial(load_predictor, model_name, device=args.device)
    results = evaluate_dataset(dataset, factory, config, args.max_instances, max(1, args.workers), args.quiet)
    if not results:
        raise InputError("no instances were evaluated")
    metrics = summarize(results, config)
    meta = {
        "model": model_name,
        "dataset": args.dataset,
        "data_root": str(args.data_root),
        "command": _command_line(),
    }
    write_outputs(args.out, results, metrics, config, meta)
    targets_text = ", ".join(f"NoC@{round(t * 100)} {metrics[f'NoC@{round(t * 100)}']:.2f}" for t in targets)
    info(
        args, f"{metrics['instances']} instances: {targets_text}, 1-IoU {metrics['1-IoU']:.3f} -> {args.out}"
    )
    return 0


def run_auto(args: argparse.Namespace) -> int:
    from granseg.cli import info
    from granseg.errors import InputError
    from granseg.eval.whole_image import evaluate_ar, load_ground_truth, plot_ar, render_report
    from granseg.io.files import atomic_write_json, atomic_write_text

    gt = load_ground_truth(args.gt)
    if args.predictions is not None:
        predictions = args.predictions
        model_name = f"predictions {args.predictions}"
    else:
        if args.images is None:
            raise InputError("give --predictions, or --images to generate masks with --model")
        predictions = _generate_auto_predictions(args, gt)
        model_name = args.model
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out / "predictions.json", predictions)
    metrics = evaluate_ar(gt, predictions, all_images=args.all_images)
    meta = {"model": model_name, "gt": str(args.gt), "command": _command_line()}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "metrics.json", {"meta": meta, "metrics": metrics})
    atomic_write_text(args.out / "report.md", render_report(metrics, meta))
    plot_ar(args.out / "ar.png", metrics)
    info(
        args,
        "  ".join(f"{k} {metrics[k]:.3f}" for k in ("AR@1", "AR@10", "AR@100", "AR@1000"))
        + f" -> {args.out}",
    )
    return 0


def _generate_auto_predictions(args, gt: dict) -> list[dict]:
    from granseg.errors import InputError
    from granseg.io.images import load_image
    from granseg.models.registry import load_predictor
    from granseg.utils.progress import progress

    try:
        from granseg.predict.automatic import AutomaticConfig, AutomaticSegmenter
    except ImportError:
        raise InputError("automatic mask generation is not available; pass --predictions") from None
    predictor = load_predictor(_model_name(args), device=args.device)
    segmenter = AutomaticSegmenter(predictor, AutomaticConfig(points_per_side=args.points_per_side))
    images = sorted(gt["images"], key=lambda i: i["id"])[: args.max_images]
    out = []
    for info_ in progress(images, desc="auto", quiet=args.quiet):
        path = args.images / info_["file_name"]
        if not path.is_file():
            continue
        for record in segmenter.generate(load_image(path)):
            out.append(
                {"image_id": info_["id"], "segmentation": record["segmentation"], "score": record["score"]}
            )
    if not out:
        raise InputError(f"no predictions: none of the GT images were found in {args.images}")
    return out


def _edge_map_factory(model_name: str, device: str):
    """A function image -> ``H x W`` boundary map: plain Sobel, or Sobel + NMS on a model's feature image."""
    from granseg.eval.edges import sobel_nms

    if model_name == "sobel":
        return sobel_nms
    from granseg.errors import InputError
    from granseg.models.registry import load_model

    model = load_model(model_name, device=device)
    if model_name == "hierarchy" or getattr(model, "name", "") == "hierarchy":
        from granseg.eval.edges import ultrametric_contour_map

        predictor = model.create_predictor()

        def hierarchy_edges(image):
            predictor.set_image(image)
            return ultrametric_contour_map(predictor.tree, image.shape[:2])

        return hierarchy_edges
    if hasattr(model, "feature_image"):
        return lambda image: sobel_nms(model.feature_image(image))
    if hasattr(model, "boundary_map"):
        return model.boundary_map
    raise InputError(f"model {model_name!r} gives no feature image or boundary map for edge evaluation")


_EDGE_WORKER: dict = {}


def _edge_init(root, split, model_name, device, thresholds):
    from granseg.eval.datasets.bsds import BSDS500

    _EDGE_WORKER.update(
        ds=BSDS500(root, split), fn=_edge_map_factory(model_name, device), thresholds=thresholds
    )


def _edge_one(image_id: str):
    from granseg.eval.edges import evaluate_boundary_image

    image, gts = _EDGE_WORKER["ds"].load(image_id)
    return evaluate_boundary_image(_EDGE_WORKER["fn"](image), gts, _EDGE_WORKER["thresholds"], image_id)


def run_edges(args: argparse.Namespace) -> int:
    from granseg.cli import info
    from granseg.errors import InputError
    from granseg.eval.datasets.bsds import BSDS500
    from granseg.eval.edges import bsds_thresholds, plot_pr, summarize_edges
    from granseg.io.files import atomic_write_json, atomic_write_text
    from granseg.utils.progress import progress

    if args.thresholds < 2:
        raise InputError("--thresholds must be >= 2")
    dataset = BSDS500(args.data_root, args.split)
    ids = dataset.ids[: args.max_images]
    if not ids:
        raise InputError(f"no images in {args.data_root} ({args.split})")
    thresholds = bsds_thresholds(args.thresholds)
    model_name = args.model if args.model != "auto" else "sobel"
    init_args = (args.data_root, args.split, model_name, args.device, thresholds)
    if args.workers <= 1:
        _edge_init(*init_args)
        per_image = [_edge_one(i) for i in progress(ids, desc="bsds500", quiet=args.quiet)]
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers, initializer=_edge_init, initargs=init_args) as pool:
            per_image = list(
                progress(pool.map(_edge_one, ids), desc="bsds500", total=len(ids), quiet=args.quiet)
            )
    metrics = summarize_edges(per_image, thresholds)
    meta = {"model": model_name, "dataset": f"bsds500/{args.split}", "command": _command_line()}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "metrics.json", {"meta": meta, "metrics": metrics})
    lines = [
        f"# Edge evaluation: {model_name} on BSDS500 {args.split} ({len(ids)} images)",
        "",
        f"command: `{meta['command']}`",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for key in ("ODS_F", "OIS_F", "AP", "ap_r20_area", "p_at_r20", "ODS_P", "ODS_R", "max_recall"):
        lines.append(f"| {key} | {metrics[key]:.4f} |")
    lines += [
        "",
        "ap_r20_area: area under the PR curve for recall in [0, 0.2] / 0.2; p_at_r20: precision at recall 0.2",
        "(the two readings of Gen2Seg's 'AP for recall < 20%').",
    ]
    atomic_write_text(args.out / "report.md", "\n".join(lines) + "\n")
    curve = metrics["pr_curve"]
    plot_pr(
        args.out / "pr_curve.png",
        {model_name: (curve["recall"], curve["precision"])},
        "BSDS500 " + args.split,
    )
    info(
        args,
        f"ODS F {metrics['ODS_F']:.3f}  OIS F {metrics['OIS_F']:.3f}  AP {metrics['AP']:.3f}  "
        f"AP(R<0.2, area) {metrics['ap_r20_area']:.3f}  P@R=0.2 {metrics['p_at_r20']:.3f} -> {args.out}",
    )
    return 0


def run_video(args: argparse.Namespace) -> int:
    from granseg.cli import info
    from granseg.errors import InputError
    from granseg.eval.video import (
        davis_sequences,
        propagate_with_clicks,
        propagate_with_session,
        read_binary_mask,
        score_sequence,
        summarize_sequences,
    )
    from granseg.io.files import atomic_write_json, atomic_write_text
    from granseg.io.images import load_image
    from granseg.utils.progress import progress

    sequences = davis_sequences(args.data_root)
    wanted = _parse_subset(args.sequences)
    if wanted:
        missing = set(wanted) - set(sequences)
        if missing:
            raise InputError(f"unknown sequence(s): {', '.join(sorted(missing))}")
        sequences = {k: v for k, v in sequences.items() if k in wanted}
    predictor = None
    if args.predictions is None:
        from granseg.models.registry import load_predictor

        predictor = load_predictor(_model_name(args), device=args.device)
    per_sequence = {}
    for name, (frames, masks) in progress(
        sequences.items(), desc="davis", total=len(sequences), quiet=args.quiet
    ):
        frames, masks = frames[: args.max_frames], masks[: args.max_frames]
        gts = [read_binary_mask(m) for m in masks]
        if predictor is None:
            preds = []
            for frame in frames:
                path = args.predictions / name / f"{frame.stem}.png"
                if not path.is_file():
                    raise InputError(f"missing prediction {path}")
                preds.append(read_binary_mask(path))
        elif args.propagation == "track":
            preds = propagate_with_session(predictor, frames, gts[0], args.granularity)
        else:
            preds = propagate_with_clicks(
                predictor, [load_image(f) for f in frames], gts[0], args.granularity
            )
        per_sequence[name] = score_sequence(gts, preds)
    metrics = summarize_sequences(per_sequence)
    meta = {
        "model": str(args.predictions or args.model),
        "dataset": str(args.data_root),
        "command": _command_line(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "metrics.json", {"meta": meta, "metrics": metrics})
    lines = [
        f"# Video evaluation (DAVIS J&F): {meta['model']}",
        "",
        f"command: `{meta['command']}`",
        "",
        "| sequence | J | F | J&F |",
        "|---|---|---|---|",
    ]
    lines += [f"| {k} | {v['J']:.3f} | {v['F']:.3f} | {v['J&F']:.3f} |" for k, v in per_sequence.items()]
    lines.append(f"| **mean** | {metrics['J']:.3f} | {metrics['F']:.3f} | {metrics['J&F']:.3f} |")
    atomic_write_text(args.out / "report.md", "\n".join(lines) + "\n")
    info(args, f"J {metrics['J']:.3f}  F {metrics['F']:.3f}  J&F {metrics['J&F']:.3f} -> {args.out}")
    return 0
