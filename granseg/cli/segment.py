"""``granseg segment``: one prompted mask (or one per granularity) for one image."""

from __future__ import annotations

import argparse
from pathlib import Path

from granseg.cli.parsing import output_format, parse_box, parse_point


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "segment",
        parents=[common],
        help="segment the object or part at the clicked point(s), at a granularity",
        description=(
            "Segment what the points indicate. --granularity 0.1 gives a small part, 1.0 the whole object; "
            "'all' gives one mask per level 0.1..1.0 (PNG output then writes NAME_g0.1.png ... NAME_g1.0.png)."
        ),
    )
    parser.add_argument("image", type=Path, help="input image (JPEG, PNG, BMP, TIFF, WebP)")
    parser.add_argument(
        "--point",
        type=parse_point,
        action="append",
        default=[],
        metavar="X,Y",
        help="positive click in pixels of the image (repeatable)",
    )
    parser.add_argument(
        "--negative",
        type=parse_point,
        action="append",
        default=[],
        metavar="X,Y",
        help="negative click (repeatable)",
    )
    parser.add_argument("--box", type=parse_box, default=None, metavar="X0,Y0,X1,Y1")
    parser.add_argument(
        "--granularity",
        default="1.0",
        metavar="G|all",
        help="g in [0.1, 1], a list such as 0.2,0.8, or 'all' (default 1.0)",
    )
    parser.add_argument("--out", type=Path, required=True, help="mask.png or masks.json")
    parser.add_argument(
        "--format",
        choices=["png", "json", "coco"],
        default=None,
        help="output format (default: from --out's extension)",
    )
    parser.add_argument(
        "--overlay",
        type=Path,
        default=None,
        metavar="PNG",
        help="also write a picture of the mask(s) over the image (coloured by granularity)",
    )
    parser.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (default 50 MP)")
    _add_neural_flags(parser)
    parser.set_defaults(func=run)


def _add_neural_flags(parser: argparse.ArgumentParser) -> None:
    """Flags for the models whose predictor takes them (see :func:`predictor_options`)."""
    neural = parser.add_argument_group("SAM-2 / UnSAMv2 models")
    neural.add_argument(
        "--embedding-cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="on-disk image-embedding cache, keyed by image pixels + model weights "
        "(default: $GRANSEG_HOME/embeddings, i.e. ~/.cache/granseg/embeddings)",
    )
    neural.add_argument("--no-embedding-cache", action="store_true", help="do not read or write the cache")
    neural.add_argument(
        "--embedding-cache-gb",
        type=float,
        default=2.0,
        metavar="GB",
        help="cache size limit; least recently used embeddings are deleted beyond it (default 2; ~16 MB per image)",
    )
    neural.add_argument(
        "--decoder-dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="mask-decoder arithmetic: float32 (exact) or bfloat16 (faster on CPUs with AMX/AVX512-BF16 "
        "and on GPUs; approximate)",
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from granseg.cli import info
    from granseg.errors import InputError
    from granseg.io.images import DEFAULT_MAX_PIXELS, load_image
    from granseg.models.registry import load_model, resolve_auto
    from granseg.predict.base import parse_granularity, validate_prompts
    from granseg.predict.factory import create_predictor

    fmt = output_format(args.out, args.format, ("png", "json", "coco"))
    levels = parse_granularity(args.granularity)
    if not args.point and args.box is None:
        raise InputError("give at least one --point X,Y (or a --box)")
    image = load_image(args.image, max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS)
    height, width = image.shape[:2]
    points = np.asarray(args.point + args.negative, dtype=float).reshape(-1, 2)
    labels = np.asarray([1] * len(args.point) + [0] * len(args.negative), dtype=np.int64)
    validate_prompts(points, labels, args.box, height, width)  # fail before loading any model

    model_name = args.model
    if model_name == "auto":
        model_name, reason = resolve_auto()
        info(args, f"model: {reason}")
    model = load_model(model_name, device=args.device)
    predictor = create_predictor(model, **predictor_options(model, args))
    predictor.set_image(image)
    prediction = predictor.predict(points, labels, box=args.box, granularity=levels)
    written = _write_outputs(args, fmt, image, prediction, points, labels)
    for index, g in enumerate(prediction.granularity):
        area = int(prediction.masks[index].sum())
        info(
            args,
            f"g={g:.2f}: mask of {area} px ({100.0 * area / (height * width):.1f}% of the image), "
            f"score {float(prediction.scores[index]):.3f}",
        )
    for path in written:
        print(path)
    return 0


def _write_outputs(args: argparse.Namespace, fmt: str, image, prediction, points, labels) -> list[Path]:
    """The mask file(s) in ``fmt`` and the optional overlay picture; returns the paths written."""
    from granseg.io.files import atomic_write_json
    from granseg.io.masks import masks_to_records, records_to_coco, save_mask_png

    height, width = image.shape[:2]
    written: list[Path] = []
    if fmt == "png":
        if len(prediction.granularity) == 1:
            written.append(save_mask_png(args.out, prediction.masks[0]))
        else:
            for g, mask in zip(prediction.granularity, prediction.masks):
                path = args.out.with_name(f"{args.out.stem}_g{g:.1f}{args.out.suffix}")
                written.append(save_mask_png(path, mask))
    else:
        records = masks_to_records(prediction.masks, prediction.scores, prediction.granularity, points)
        document = records_to_coco(records, str(args.image), height, width) if fmt == "coco" else records
        written.append(atomic_write_json(args.out, document))
    if args.overlay is not None:
        from granseg.viz import granularity_colors, overlay_masks, save_rgb_png, tile

        pictures = [
            overlay_masks(image, mask, granularity_colors([g]), points=points, labels=labels)
            for g, mask in zip(prediction.granularity, prediction.masks)
        ]
        captions = [f"g={g:.1f}" for g in prediction.granularity]
        written.append(save_rgb_png(args.overlay, tile(pictures, min(5, len(pictures)), captions=captions)))
    return written


def predictor_options(model, args: argparse.Namespace) -> dict:
    """Keyword options for ``create_predictor(model, ...)`` from the SAM-2 / UnSAMv2 flags.

    A model's predictor names the options it takes (:func:`granseg.predict.factory.predictor_options`; UnSAMv2 /
    SAM-2: ``cache_dir``,
    ``cache_max_bytes``, ``decoder``, ``decoder_dtype``; models without the attribute take none). The embedding
    cache is on by default where it is taken; ``--decoder-dtype bfloat16`` for a model without it is an error.
    """
    from granseg.errors import InputError
    from granseg.models.registry import granseg_home
    from granseg.predict.factory import predictor_options as predictor_options_of

    accepted = predictor_options_of(model)
    options = {}
    if "cache_dir" in accepted and not args.no_embedding_cache:
        if args.embedding_cache_gb <= 0:
            raise InputError(
                "--embedding-cache-gb must be > 0 (use --no-embedding-cache to turn the cache off)"
            )
        options["cache_dir"] = args.embedding_cache or granseg_home() / "embeddings"
        options["cache_max_bytes"] = int(args.embedding_cache_gb * 2**30)
    if args.decoder_dtype != "float32":
        if "decoder_dtype" not in accepted:
            raise InputError(f"--decoder-dtype applies to SAM-2 / UnSAMv2 models, not {model.name!r}")
        options["decoder_dtype"] = args.decoder_dtype
    return options
