"""``granseg models``: registered names and what is cached locally."""

from __future__ import annotations

import argparse

from granseg.cli import common_flags


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "models",
        parents=[common_flags(model=False, device=False)],
        help="list registered models and local checkpoints",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from granseg.models.registry import cached_checkpoints, checkpoint_dir, list_models, resolve_auto

    entries = list_models()
    width = max(len(e.name) for e in entries)
    print(f"{'name'.ljust(width)}  {'family':<10}  weights   description")
    for entry in entries:
        weights = "none" if not entry.needs_weights else "needed"
        print(f"{entry.name.ljust(width)}  {entry.family:<10}  {weights:<8}  {entry.description}")
    cached = cached_checkpoints()
    print(f"\nlocal checkpoints in {checkpoint_dir()}: {len(cached)}")
    for path in cached:
        print(f"  {path}")
    print(f"--model auto -> {resolve_auto()[1]}")
    return 0
