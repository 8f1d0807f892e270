"""``granseg convert SRC DST``: checkpoint layouts (official UnSAMv2 / Meta SAM-2 / Hugging Face) <-> this package.

The output layout follows DST's extension: ``.safetensors`` -> this package (config JSON written beside it);
``.pt`` / ``.pth`` -> the official/Meta torch layout ``{"model": state_dict}`` (LoRA unmerged, official key names).
``--merge-lora`` folds the LoRA adapters into the decoder weights in either layout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from granseg.cli import common_flags


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "convert",
        parents=[common_flags(model=False, device=False)],
        help="convert official/Meta/Hugging Face SAM-2 or UnSAMv2 checkpoints to and from this package's format",
        description=(
            "Load SRC (official UnSAMv2 .pt, Meta SAM-2/2.1 .pt, a Hugging Face facebook/sam2.1-hiera-* folder, or "
            "this package's .safetensors) safely and strictly, and write DST: .safetensors = package layout "
            "(+ .json config beside it), .pt/.pth = official/Meta layout."
        ),
    )
    parser.add_argument("src", type=Path, help="checkpoint file or Hugging Face folder")
    parser.add_argument("dst", type=Path, help="output .safetensors (package) or .pt/.pth (official/Meta)")
    parser.add_argument("--merge-lora", action="store_true", help="fold LoRA into the decoder weights")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="UnSAMv2Config JSON for SRC (when its shapes are not a released size)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite DST if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from granseg.cli import info
    from granseg.errors import InputError

    if not args.src.exists():
        raise InputError(f"checkpoint not found: {args.src}")
    if args.dst.suffix not in (".safetensors", ".pt", ".pth"):
        raise InputError(
            f"DST must end in .safetensors (package) or .pt/.pth (official/Meta), got {args.dst.name}"
        )
    if args.dst.exists() and not args.force:
        raise InputError(f"{args.dst} exists (use --force to overwrite)")
    if args.dst.resolve() == args.src.resolve():
        raise InputError("SRC and DST are the same file")

    from granseg.models import checkpoints

    model, report = checkpoints.load_with_report(args.src, config=args.config)
    counts = model.parameter_counts()
    info(
        args,
        f"loaded {args.src} as {model.name}: {counts['total']:,} parameters "
        f"(granularity modules: {'yes' if model.config.granularity else 'no'}, "
        f"LoRA: {'rank ' + str(model.config.lora.rank) if model.config.lora else 'none'})",
    )
    for note in report.notes:
        info(args, f"note: {note}")
    if args.dst.suffix == ".safetensors":
        written = checkpoints.save_package(model, args.dst, merge_lora=args.merge_lora)
        info(args, f"config: {checkpoints.config_path_for(written)}")
    else:
        written = checkpoints.save_meta(model, args.dst, merge_lora=args.merge_lora)
    print(written)
    return 0
