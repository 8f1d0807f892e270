"""Argument parsers shared by subcommands (points, boxes, output formats)."""

from __future__ import annotations

import argparse
from pathlib import Path


def parse_point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a point is X,Y in pixels, got {text!r}") from None
    return x, y


def parse_box(text: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a box is X0,Y0,X1,Y1 in pixels, got {text!r}") from None
    return x0, y0, x1, y1


def output_format(out: Path, explicit: str | None, allowed: tuple[str, ...]) -> str:
    """The output format: ``--format`` if given, else from the file extension (.png -> png, .json -> json)."""
    from granseg.errors import InputError

    if str(out) == "-":  # standard output: JSON only
        fmt = explicit or "json"
        if fmt == "png":
            raise InputError("--out - writes JSON to standard output: use --format json (or coco)")
    elif explicit:
        fmt = explicit
    elif out.suffix.lower() == ".png":
        fmt = "png"
    elif out.suffix.lower() == ".json":
        fmt = "json"
    else:
        raise InputError(
            f"cannot tell the output format from {out.name!r}: use a .png/.json name or --format"
        )
    if fmt not in allowed:
        raise InputError(f"format {fmt!r} is not available here (choose from {', '.join(allowed)})")
    return fmt
