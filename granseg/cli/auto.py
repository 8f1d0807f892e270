"""``granseg auto``: whole-image masks at one granularity or at all of them (COCO RLE records, docs/auto.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from granseg.cli.parsing import output_format


def _preset_lines() -> str:
    from granseg.predict.automatic.config import PRESET_HELP

    return "; ".join(f"{name}: {text}" for name, text in PRESET_HELP.items())


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "auto",
        parents=[common],
        help="segment the whole image at a granularity (grid of point prompts, or the hierarchy's region tree)",
        description=(
            "Prompt the model with a regular grid of points and keep the confident, stable, non-overlapping "
            "masks; the hierarchy model reads every region of its region tree instead (--source, docs/auto.md). --granularity all = union of the masks at g = 0.1 .. 1.0, with the "
            "part-whole tree (each mask's parent_id at the next coarser level). An empty result is an empty list."
        ),
    )
    parser.add_argument("image", type=Path)
    parser.add_argument(
        "--granularity",
        default="all",
        metavar="G|all",
        help="g in [0.1, 1], a list 'a,b', or 'all' (default)",
    )
    parser.add_argument(
        "--preset", choices=["official", "fast"], default="official", help="settings: " + _preset_lines()
    )
    parser.add_argument(
        "--points-per-side", type=int, default=None, help="grid size in [1, 256] (overrides the preset)"
    )
    parser.add_argument(
        "--source",
        choices=["auto", "grid", "tree"],
        default="auto",
        help="candidates: the point grid (any model), every region of the hierarchy model's region tree (no grid), "
        "or auto (default: the tree for hierarchy, the grid otherwise)",
    )
    parser.add_argument(
        "--dedup",
        type=float,
        default=None,
        metavar="IOU",
        help="merge masks of different g with IoU >= IOU (smallest g kept, granularity_range recorded)",
    )
    parser.add_argument("--out", type=Path, default=None, help="masks.json ('-': standard output)")
    parser.add_argument(
        "--partition",
        type=Path,
        default=None,
        metavar="NPZ|PNG",
        help="also (or only) write the hierarchy model's whole-image partition at each g: one cut of its region "
        "tree per g, nested across g (.npz: int32 'labels' G x H x W and 'granularity'; .png: one g, 16-bit "
        "labels)",
    )
    parser.add_argument("--format", choices=["json", "coco"], default=None)
    parser.add_argument(
        "--overlay",
        type=Path,
        default=None,
        metavar="PNG",
        help="also write a picture (long side <= 2048 px)",
    )
    parser.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (default 50 MP)")
    parser.add_argument(
        "--max-bytes", type=int, default=None, help="refuse larger image files (default 256 MiB)"
    )
    parser.set_defaults(func=run)


def _config(args: argparse.Namespace, levels):
    """The preset with the command line's overrides; bad values are InputErrors (exit 2) before any work."""
    from granseg.errors import InputError
    from granseg.predict.automatic.config import MAX_POINTS_PER_SIDE, preset_config

    if args.points_per_side is not None and not 1 <= args.points_per_side <= MAX_POINTS_PER_SIDE:
        raise InputError(f"--points-per-side must be between 1 and {MAX_POINTS_PER_SIDE}")
    if args.dedup is not None and not 0 < args.dedup <= 1:
        raise InputError("--dedup must lie in (0, 1]")
    return preset_config(
        args.preset,
        granularities=tuple(float(g) for g in levels),
        points_per_side=args.points_per_side,
        dedup_iou=args.dedup,
        source=args.source,
    )


def run(args: argparse.Namespace) -> int:
    from granseg.cli import info
    from granseg.cli.segment import OVERLAY_LONG_SIDE, image_limits
    from granseg.errors import InputError
    from granseg.io.files import clean_stale_temporaries, json_text
    from granseg.io.images import load_image
    from granseg.io.masks import records_to_coco
    from granseg.io.outputs import OutputSet, is_stdout
    from granseg.models.registry import load_model, resolve_auto
    from granseg.predict.automatic import AutomaticSegmenter
    from granseg.predict.base import parse_granularity
    from granseg.predict.factory import create_predictor

    if args.out is None and args.partition is None:
        raise InputError("give --out masks.json, --partition labels.npz, or both")
    if args.out is None and args.overlay is not None:
        raise InputError("--overlay draws the masks of --out: give --out too")
    fmt = output_format(args.out, args.format, ("json", "coco")) if args.out is not None else None
    levels = parse_granularity(args.granularity)
    partition_kind = _partition_kind(args.partition, levels)
    config = _config(args, levels)
    outputs = OutputSet(inputs=[args.image])
    for name in [args.out, args.overlay, args.partition]:
        if name is not None:
            outputs.reserve(name)
    image = load_image(args.image, **image_limits(args))
    model_name = args.model
    if model_name == "auto":
        model_name, reason = resolve_auto()
        info(args, f"model: {reason}")
    if config.source == "tree" and model_name != "hierarchy":
        raise InputError("--source tree needs the hierarchy model (a region tree); use grid or auto")
    if args.partition is not None and model_name != "hierarchy":
        raise InputError(f"--partition needs the hierarchy model (a region tree), not {model_name!r}")
    predictor = create_predictor(load_model(model_name, device=args.device))
    shown = ", ".join(f"{g:.1f}" for g in levels)
    if args.out is not None:
        segmenter = AutomaticSegmenter(predictor, config)
        records = segmenter.generate(image, quiet=args.quiet)
        height, width = image.shape[:2]
        document = records_to_coco(records, str(args.image), height, width) if fmt == "coco" else records
        outputs.put(args.out, json_text(document).encode())
        if args.overlay is not None:
            outputs.put(args.overlay, _overlay_png(image, records, OVERLAY_LONG_SIDE))
        stats = segmenter.stats
        work = (
            f"{stats['nodes']} regions of the region tree"
            if stats["source"] == "tree"
            else f"{stats['decoded']} (point, g) pairs decoded"
        )
        info(args, f"{len(records)} masks at g = {shown} ({args.preset} preset, {work})")
    if args.partition is not None:
        if not predictor.is_image_set:
            predictor.set_image(image)
        labels = predictor.partition(levels)
        outputs.put(args.partition, _partition_bytes(labels, levels, partition_kind))
        counts = ", ".join(str(int(m.max()) + 1) for m in labels)
        info(args, f"partition at g = {shown}: {counts} regions")
    for name in (args.out, args.partition):
        if name is not None and not is_stdout(name):
            clean_stale_temporaries(Path(name).parent)
    written = outputs.commit()
    for path in written[::-1] if not is_stdout(args.out) else []:
        print(path)
    return 0


def _partition_kind(path: Path | None, levels) -> str | None:
    """``"npz"`` or ``"png"`` from ``--partition``'s extension (None without it); InputError otherwise, or for a
    PNG asked for several g."""
    from granseg.errors import InputError

    if path is None:
        return None
    if str(path) == "-":
        raise InputError("--partition writes a file (.npz or .png), not standard output")
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("npz", "png"):
        raise InputError(f"--partition: name a .npz or .png file, got {path.name!r}")
    if kind == "png" and len(levels) != 1:
        raise InputError("--partition .png holds one g: give --granularity G, or name a .npz for several")
    return kind


def _partition_bytes(labels, levels, kind: str) -> bytes:
    """The ``(G, H, W)`` int32 partition as ``.npz`` bytes (``labels``, ``granularity``) or a 16-bit PNG (one g)."""
    import io

    import cv2
    import numpy as np

    from granseg.errors import InputError

    if kind == "png":
        if int(labels.max()) > 65535:
            raise InputError(f"{int(labels.max()) + 1} regions do not fit a 16-bit PNG: name a .npz")
        ok, encoded = cv2.imencode(".png", labels[0].astype(np.uint16))
        if not ok:
            raise RuntimeError("PNG encoding failed")
        return encoded.tobytes()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, labels=labels.astype(np.int32), granularity=np.asarray(levels, np.float64))
    return buffer.getvalue()


def _overlay_png(image, records: list[dict], long_side: int) -> bytes:
    """PNG of the records' masks over the image, at most ``long_side`` px on its long side."""
    import cv2
    import numpy as np

    from granseg.io.images import encode_rgb_png, fit_long_side
    from granseg.io.masks import decode_rle
    from granseg.viz import granularity_colors, overlay_masks

    small = fit_long_side(image, long_side)
    size = small.shape[1::-1]
    masks = np.zeros((len(records), *small.shape[:2]), bool)
    for index, record in enumerate(records):  # one full-size mask at a time
        full = decode_rle(record["segmentation"]).astype(np.uint8)
        masks[index] = cv2.resize(full, size, interpolation=cv2.INTER_NEAREST) > 0
    colors = granularity_colors([r["granularity"] for r in records])
    return encode_rgb_png(overlay_masks(small, masks, colors, alpha=0.35))
