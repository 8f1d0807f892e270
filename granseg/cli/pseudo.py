"""``granseg pseudo-label IMAGES_DIR --out LABELS_DIR``: mine hierarchical pseudo-labels (divide and conquer).

Writes ``LABELS_DIR/<stem>.json`` per image (COCO RLE masks with granularity, instance_id, is_part, is_divide,
is_conquer), ``config.json``, ``manifest.jsonl`` and ``failures.json``; ``--viz`` adds ``viz/<stem>.png``. Exit code 1 when some images failed
(their reasons are in ``failures.json``; the other images' labels are kept), 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from granseg.cli import common_flags


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "pseudo-label",
        parents=[common_flags(model=False)],
        help="mine pseudo-label mask hierarchies from a folder of images",
        description="Divide (MaskCut normalised cuts) and conquer (iterative patch merging) every image of "
        "IMAGES_DIR into one JSON of masks with granularity per image. Resumable and parallel.",
    )
    parser.add_argument("images_dir", metavar="IMAGES_DIR", help="folder of images (not recursive)")
    parser.add_argument("--out", required=True, metavar="LABELS_DIR", help="output folder")
    parser.add_argument(
        "--features",
        default=None,
        help="classical (weight-free, default), dinov2-small/base/large, dinov3-vits16/vitb16/vitl16, or a "
        "local DINOv2/DINOv3 directory / cached Hugging Face id",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--resume", action="store_true", help="skip images already labelled in LABELS_DIR")
    parser.add_argument(
        "--viz", action="store_true", help="also write viz/<stem>.png overlays (colour = granularity)"
    )
    parser.add_argument("--config", metavar="CONFIG.json", help="PseudoLabelConfig JSON (flags override it)")
    parser.add_argument("--conquer-size", type=int, help="long side of the per-instance crop (default 768)")
    parser.add_argument(
        "--external-masks", metavar="PATH", help="SA-1B per-image JSON folder or COCO JSON merged into divide"
    )
    parser.add_argument("--backend", choices=["processes", "dask"], default="processes")
    parser.add_argument(
        "--scheduler", metavar="ADDRESS", help="Dask scheduler address (default: a local cluster)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from granseg.cli import info
    from granseg.errors import InputError
    from granseg.pseudo.pipeline import PseudoLabelConfig, print_summary, run_pipeline

    if not Path(args.images_dir).is_dir():
        raise InputError(f"not a directory: {args.images_dir}")
    config = PseudoLabelConfig.from_json(args.config) if args.config else PseudoLabelConfig()
    overrides = {}
    if args.features is not None:
        overrides["features"] = args.features
    if args.conquer_size is not None:
        overrides["conquer_long_side"] = args.conquer_size
    if args.external_masks is not None:
        if not Path(args.external_masks).exists():
            raise InputError(f"external masks not found: {args.external_masks}")
        overrides["external_masks"] = str(Path(args.external_masks).resolve())
    if args.device != "auto":
        overrides["device"] = args.device
    elif overrides.get("features", config.features) != "classical":
        import torch

        overrides["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    config = dataclasses.replace(config, **overrides).validate()
    if config.features != "classical":
        from granseg.pseudo.features import get_feature_extractor

        get_feature_extractor(config.features, device=config.device)  # fail early, with a clear message
    info(args, f"pseudo-label: features={config.features} workers={args.workers} backend={args.backend}")
    summary = run_pipeline(
        args.images_dir,
        args.out,
        config,
        workers=args.workers,
        resume=args.resume,
        viz=args.viz,
        backend=args.backend,
        scheduler=args.scheduler,
        quiet=args.quiet,
    )
    if not args.quiet:
        print_summary(summary, Path(args.out))
        for failure in summary["failures"][:10]:
            info(args, f"  failed: {failure['image']}: {failure['error']}")
    if summary["failed"]:  # outputs of the other images are kept; exit 1 so that scripts notice
        print(
            f"error: {summary['failed']} of {summary['total']} images failed (see {Path(args.out) / 'failures.json'})",
            file=sys.stderr,
        )
        return 1
    return 0
