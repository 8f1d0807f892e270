"""``granseg video``: follow objects (or parts) through a clip at a fixed granularity, one PNG per frame.

One object from ``--point/--negative/--granularity/--frame``; more with repeated ``--obj SPEC``, where SPEC is
``;``-separated items: ``X,Y`` a positive click, ``neg=X,Y`` a negative click, ``g=G`` the granularity (default
1.0), ``f=F`` the prompt frame (default 0), e.g. ``--obj '120,80;g=0.3'`` ``--obj '300,200;neg=310,150;f=5'``.
Object ids are 1, 2, ... in the order given (``--point`` first).

Output ``DIR/<frame name>.png`` for every frame reached: with one object 0/255 (DAVIS-2016 style), with several
the object id per pixel (0 = background; where objects overlap the later one wins). ``DIR`` must be new or
empty, so no file the command did not create is replaced. Every PNG goes through
:class:`granseg.io.outputs.OutputSet` as soon as its frame is done (one set per frame: a complete file or none),
so after an error the frames already written are complete files; the overlay clip is one more set at the end.
Every output is checked before any work: none may be an input (a frame file or the video file).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from granseg.cli.parsing import parse_point


@dataclass
class ObjectSpec:
    points: list[tuple[float, float]] = field(default_factory=list)
    negatives: list[tuple[float, float]] = field(default_factory=list)
    granularity: float = 1.0
    frame: int = 0


def parse_obj(text: str) -> ObjectSpec:
    """Parse an ``--obj`` SPEC (see the module docstring)."""
    spec = ObjectSpec()
    for item in (part.strip() for part in text.split(";")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        try:
            if not sep:
                spec.points.append(parse_point(item))
            elif key == "neg":
                spec.negatives.append(parse_point(value))
            elif key == "g":
                spec.granularity = float(value)
            elif key == "f":
                spec.frame = int(value)
            else:
                raise argparse.ArgumentTypeError(f"unknown key {key!r} in --obj {text!r} (use neg=, g=, f=)")
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad item {item!r} in --obj {text!r}") from None
    if not spec.points:
        raise argparse.ArgumentTypeError(f"--obj {text!r} needs at least one positive click X,Y")
    return spec


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "video",
        parents=[common],
        help="follow an object or part through a video at a granularity",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source", type=Path, help="folder of JPEG/PNG frames (sorted by name) or a video file"
    )
    parser.add_argument("--point", type=parse_point, action="append", default=[], metavar="X,Y")
    parser.add_argument("--negative", type=parse_point, action="append", default=[], metavar="X,Y")
    parser.add_argument(
        "--granularity", type=float, default=1.0, help="g in [0.1, 1] for --point (default 1)"
    )
    parser.add_argument("--frame", type=int, default=0, help="frame of --point (0-based, default 0)")
    parser.add_argument("--obj", type=parse_obj, action="append", default=[], metavar="SPEC")
    parser.add_argument("--direction", choices=["forward", "backward", "both"], default="both")
    parser.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    parser.add_argument(
        "--overlay", type=Path, default=None, metavar="MP4|GIF", help="also write an overlay clip"
    )
    parser.add_argument("--fps", type=float, default=10.0, help="overlay frame rate (default 10)")
    parser.set_defaults(func=run)


def _objects(args: argparse.Namespace) -> list[ObjectSpec]:
    from granseg.errors import InputError

    objects = list(args.obj)
    if args.point:
        objects.insert(0, ObjectSpec(args.point, args.negative, args.granularity, args.frame))
    elif args.negative:
        raise InputError("--negative needs at least one --point")
    if not objects:
        raise InputError("give --point X,Y or at least one --obj SPEC")
    if len(objects) > 255:
        raise InputError("at most 255 objects")
    return objects


def run(args: argparse.Namespace) -> int:
    from granseg.cli import info
    from granseg.errors import InputError
    from granseg.io.frames import open_frames
    from granseg.models.registry import load_model, resolve_auto
    from granseg.predict.video import VideoSession

    objects = _objects(args)
    if args.overlay is not None and args.overlay.suffix.lower() not in (".mp4", ".gif"):
        raise InputError(f"--overlay must end in .mp4 or .gif, got {args.overlay.name!r}")
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise InputError(f"{args.out} exists and is not an empty folder")
    frames = open_frames(args.source)
    outputs = _reserve_outputs(args, frames)  # before any work: nothing is written when one is refused
    model_name = args.model
    if model_name == "auto":
        model_name, reason = resolve_auto()
        info(args, f"model: {reason}")
    session = VideoSession(load_model(model_name, device=args.device), frames)
    for obj_id, spec in enumerate(objects, start=1):
        labels = [1] * len(spec.points) + [0] * len(spec.negatives)
        session.add_prompt(spec.frame, spec.points + spec.negatives, labels, spec.granularity, obj_id)
    written = _write_masks(args, session, len(objects), outputs)
    info(args, f"{len(written)} of {len(frames)} frames, {len(objects)} object(s) -> {args.out}")
    if args.overlay is not None:
        _write_overlay(args, frames, sorted(written), outputs)
        print(args.overlay)
    print(args.out)
    return 0


def _inputs(frames) -> list[Path]:
    """The files ``frames`` reads (the frame images, or the video file)."""
    paths = getattr(frames, "paths", None)
    if paths is not None:
        return list(paths)
    path = getattr(frames, "path", None)
    return [Path(path)] if path is not None else []


def _reserve_outputs(args: argparse.Namespace, frames):
    """Check every output path (one PNG per frame, the overlay) against the inputs and each other; returns a
    ``reserve(path) -> OutputSet`` factory for the per-frame sets. Raises :class:`OutputError`."""
    from granseg.io.files import clean_stale_temporaries
    from granseg.io.outputs import OutputSet

    inputs = _inputs(frames)
    check = OutputSet(inputs=inputs)
    for index in range(len(frames)):
        check.reserve(args.out / f"{frames.name(index)}.png")
    if args.overlay is not None:
        check.reserve(args.overlay)
        if args.overlay.parent.is_dir():
            clean_stale_temporaries(args.overlay.parent)  # of killed runs (only ours)

    def new_set(path: Path) -> OutputSet:
        outputs = OutputSet(inputs=inputs)
        outputs.reserve(path)
        return outputs

    return new_set


def _write_masks(args: argparse.Namespace, session, n_objects: int, new_set) -> set[int]:
    """Propagate and commit one PNG per frame, each as its own output set (a frame the two passes of "both"
    share is read back and merged: a file this run created); returns the frames written."""
    import numpy as np

    from granseg.io.images import load_image
    from granseg.io.masks import encode_mask_png
    from granseg.utils.progress import progress

    written: set[int] = set()
    total = len(session) if args.direction == "both" else None
    steps = progress(session.propagate(args.direction), desc="video", total=total, quiet=args.quiet)
    for frame_idx, masks in steps:
        path = args.out / f"{session.frames.name(frame_idx)}.png"
        if n_objects == 1:
            picture = masks[1]
        else:
            picture = np.zeros(session.frames.size, dtype=np.uint8)
            if frame_idx in written:
                picture = load_image(path)[..., 0].copy()
            for obj_id in sorted(masks):
                picture[masks[obj_id]] = obj_id
        outputs = new_set(path)
        outputs.put(path, encode_mask_png(picture))
        outputs.commit()
        written.add(frame_idx)
    return written


def _write_overlay(args: argparse.Namespace, frames, indices: list[int], new_set) -> None:
    """The written masks over their frames, as an MP4 or GIF: encoded in a private temporary folder, then
    committed as an output set."""
    import tempfile

    import numpy as np

    from granseg.io.frames import write_clip
    from granseg.io.images import load_image
    from granseg.viz import distinct_colors, overlay_masks

    def pictures():
        colors = distinct_colors(256)
        for index in indices:
            label = load_image(args.out / f"{frames.name(index)}.png")[..., 0]
            ids = [int(v) for v in np.unique(label) if v]
            masks = np.stack([label == v for v in ids]) if ids else np.zeros((0, *label.shape), bool)
            yield (
                overlay_masks(frames[index], masks, colors[[v % 256 for v in ids]]) if ids else frames[index]
            )

    outputs = new_set(args.overlay)
    with tempfile.TemporaryDirectory(prefix="granseg-video-") as folder:
        clip = write_clip(Path(folder) / f"overlay{args.overlay.suffix.lower()}", pictures(), args.fps)
        outputs.put(args.overlay, clip.read_bytes())
    outputs.commit()
