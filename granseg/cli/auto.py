"""``granseg auto``: whole-image masks at one granularity or at all of them (COCO RLE records)."""

from __future__ import annotations

import argparse
from pathlib import Path

from granseg.cli.parsing import output_format


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "auto",
        parents=[common],
        help="segment the whole image at a granularity (grid of point prompts)",
        description=(
            "Prompt the model with a regular grid of points and keep the confident, stable, non-overlapping "
            "masks (docs/eval.md). --granularity all = union of the masks at g = 0.1 .. 1.0."
        ),
    )
    parser.add_argument("image", type=Path)
    parser.add_argument(
        "--granularity", default="all", metavar="G|all", help="g in [0.1, 1] or 'all' (default)"
    )
    parser.add_argument(
        "--points-per-side", type=int, default=None, help="grid size (default 64; 16 is fast)"
    )
    parser.add_argument("--out", type=Path, required=True, help="masks.json")
    parser.add_argument("--format", choices=["json", "coco"], default=None)
    parser.add_argument("--overlay", type=Path, default=None, metavar="PNG", help="also write a picture")
    parser.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (default 50 MP)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from granseg.cli import info
    from granseg.errors import InputError
    from granseg.io.files import atomic_write_json
    from granseg.io.images import DEFAULT_MAX_PIXELS, load_image
    from granseg.io.masks import decode_rle, records_to_coco
    from granseg.models.registry import load_model, resolve_auto
    from granseg.predict.automatic import AutomaticConfig, AutomaticSegmenter
    from granseg.predict.base import parse_granularity
    from granseg.predict.factory import create_predictor

    fmt = output_format(args.out, args.format, ("json", "coco"))
    levels = parse_granularity(args.granularity)
    config = AutomaticConfig(granularities=tuple(float(g) for g in levels))
    if args.points_per_side is not None:
        if not 1 <= args.points_per_side <= 256:
            raise InputError("--points-per-side must be between 1 and 256")
        config.points_per_side = args.points_per_side
    image = load_image(args.image, max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS)
    model_name = args.model
    if model_name == "auto":
        model_name, reason = resolve_auto()
        info(args, f"model: {reason}")
    predictor = create_predictor(load_model(model_name, device=args.device))
    records = AutomaticSegmenter(predictor, config).generate(image, quiet=args.quiet)
    height, width = image.shape[:2]
    document = records_to_coco(records, str(args.image), height, width) if fmt == "coco" else records
    atomic_write_json(args.out, document)
    if args.overlay is not None:
        import numpy as np

        from granseg.viz import granularity_colors, overlay_masks, save_rgb_png

        masks = (
            np.stack([decode_rle(r["segmentation"]) for r in records])
            if records
            else np.zeros((0, height, width), bool)
        )
        colors = granularity_colors([r["granularity"] for r in records])
        save_rgb_png(args.overlay, overlay_masks(image, masks, colors, alpha=0.35))
        print(args.overlay)
    info(args, f"{len(records)} masks at g = {', '.join(f'{g:.1f}' for g in levels)}")
    print(args.out)
    return 0
