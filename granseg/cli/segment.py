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
    parser.add_argument(
        "--out", type=Path, required=True, help="mask.png or masks.json; '-' writes JSON to stdout"
    )
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
        help="also write a picture of the mask(s) over the image (coloured by granularity; long side <= 2048 px)",
    )
    parser.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (default 50 MP)")
    parser.add_argument(
        "--max-bytes", type=int, default=None, help="refuse larger image files (default 256 MiB)"
    )
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
    from granseg.io.images import load_image
    from granseg.io.outputs import OutputSet, is_stdout, level_path
    from granseg.models.registry import load_model, resolve_auto
    from granseg.predict.base import parse_granularity, validate_prompts
    from granseg.predict.factory import create_predictor

    fmt = output_format(args.out, args.format, ("png", "json", "coco"))
    levels = parse_granularity(args.granularity)
    if not args.point and args.box is None:
        raise InputError("give at least one --point X,Y (or a --box)")
    outputs = OutputSet(inputs=[args.image])
    names = [level_path(args.out, g) for g in levels] if fmt == "png" and len(levels) > 1 else [args.out]
    for name in names + ([args.overlay] if args.overlay is not None else []):
        outputs.reserve(name)  # checked before any work: nothing is written when one is refused
    image = load_image(args.image, **image_limits(args))
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
    written = _write_outputs(args, fmt, image, prediction, points, labels, outputs, names)
    for index, g in enumerate(prediction.granularity):
        area = int(prediction.masks[index].sum())
        info(
            args,
            f"g={g:.2f}: mask of {area} px ({100.0 * area / (height * width):.1f}% of the image), "
            f"score {float(prediction.scores[index]):.3f}",
        )
    if not is_stdout(args.out):
        for path in written:
            print(path)
    return 0


def _write_outputs(args, fmt: str, image, prediction, points, labels, outputs, names) -> list[Path]:
    """The mask file(s) ``names`` in ``fmt`` and the optional overlay picture, committed as one
    :class:`~granseg.io.outputs.OutputSet`; returns the paths written."""
    from granseg.io.files import clean_stale_temporaries, json_text
    from granseg.io.masks import encode_mask_png, masks_to_records, records_to_coco
    from granseg.io.outputs import is_stdout

    height, width = image.shape[:2]
    if fmt == "png":
        for name, mask in zip(names, prediction.masks):
            outputs.put(name, encode_mask_png(mask))
    else:
        records = masks_to_records(prediction.masks, prediction.scores, prediction.granularity, points)
        document = records_to_coco(records, str(args.image), height, width) if fmt == "coco" else records
        outputs.put(args.out, json_text(document).encode())
    if args.overlay is not None:
        outputs.put(args.overlay, overlay_png(image, prediction, points, labels))
    for path in {Path(n).parent for n in [*names, args.overlay] if n is not None and not is_stdout(n)}:
        clean_stale_temporaries(path)  # of killed runs (only ours)
    return outputs.commit()


def predictor_options(model, args: argparse.Namespace) -> dict:
    """Keyword options for ``create_predictor(model, ...)`` from the SAM-2 / UnSAMv2 flags.

    A model's predictor names the options it takes (:func:`granseg.predict.factory.predictor_options`; UnSAMv2 /
    SAM-2: ``cache_dir``,
    ``cache_max_bytes``, ``decoder``, ``decoder_dtype``; models without the attribute take none). The embedding
    cache is on by default where it is taken; ``--decoder-dtype bfloat16`` for a model without it is an error.
    """
    import math

    from granseg.errors import InputError
    from granseg.models.registry import granseg_home
    from granseg.predict.factory import predictor_options as predictor_options_of

    accepted = predictor_options_of(model)
    options = {}
    if "cache_dir" in accepted and not args.no_embedding_cache:
        if not math.isfinite(args.embedding_cache_gb) or args.embedding_cache_gb <= 0:
            raise InputError(
                "--embedding-cache-gb must be a number > 0 (use --no-embedding-cache to turn the cache off)"
            )
        options["cache_dir"] = args.embedding_cache or granseg_home() / "embeddings"
        if options["cache_dir"].exists() and not options["cache_dir"].is_dir():
            raise InputError(f"--embedding-cache {options['cache_dir']} is not a folder")
        options["cache_max_bytes"] = int(args.embedding_cache_gb * 2**30)
    if args.decoder_dtype != "float32":
        if "decoder_dtype" not in accepted:
            raise InputError(f"--decoder-dtype applies to SAM-2 / UnSAMv2 models, not {model.name!r}")
        options["decoder_dtype"] = args.decoder_dtype
    return options


def image_limits(args: argparse.Namespace) -> dict:
    """``load_image`` limits from ``--max-pixels`` / ``--max-bytes`` (absent: the defaults; 0 is an error)."""
    from granseg.io.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

    max_pixels = getattr(args, "max_pixels", None)
    max_bytes = getattr(args, "max_bytes", None)
    return {
        "max_pixels": DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels,
        "max_bytes": DEFAULT_MAX_BYTES if max_bytes is None else max_bytes,
    }


OVERLAY_LONG_SIDE = 2048  # an --overlay picture is at most this many pixels on its long side


def overlay_png(image, prediction, points, labels) -> bytes:
    """PNG of one overlay per granularity (tiled, captioned), at most :data:`OVERLAY_LONG_SIDE` px long."""
    import math

    import cv2
    import numpy as np

    from granseg.io.images import encode_rgb_png, fit_long_side
    from granseg.io.outputs import format_granularity
    from granseg.viz import granularity_colors, overlay_masks, tile

    columns = min(5, len(prediction.masks))
    rows = math.ceil(len(prediction.masks) / columns)
    small = fit_long_side(image, OVERLAY_LONG_SIDE // max(columns, rows))
    scale = small.shape[1] / image.shape[1]
    pictures = [
        overlay_masks(
            small,
            cv2.resize(mask.astype(np.uint8), small.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0,
            granularity_colors([g]),
            points=np.asarray(points) * scale,
            labels=labels,
        )
        for g, mask in zip(prediction.granularity, prediction.masks)
    ]
    captions = [f"g={format_granularity(g)}" for g in prediction.granularity]
    return encode_rgb_png(fit_long_side(tile(pictures, columns, captions=captions), OVERLAY_LONG_SIDE))
