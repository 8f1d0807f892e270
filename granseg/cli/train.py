"""``granseg train --config CONFIG.json [--resume] [--out DIR]``: run a training task (the config's ``task``
key picks it: ``gen2seg``, ...). Writes checkpoints and the exported model under the config's ``output_dir``."""

from __future__ import annotations

import argparse

from granseg.cli import common_flags


def register(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "train", parents=[common_flags(model=False)], help="train a model from a JSON config"
    )
    parser.add_argument("--config", required=True, help="training config JSON (see docs)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in output_dir"
    )
    parser.add_argument("--out", default=None, help="output folder (overrides the config's output_dir)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from granseg.cli import info
    from granseg.train.trainer import Trainer, load_train_config, resolve_task

    config = load_train_config(args.config)
    if args.out:
        config.output_dir = args.out
    task_class, _ = resolve_task(config.task)
    task = task_class(config)

    def log(record: dict) -> None:
        info(args, f"step {record['step']}/{config.steps}  loss {record['loss']:.4f}  lr {record['lr']:.2e}")

    exported = Trainer(task, on_log=log, cpu=args.device == "cpu").fit(resume=args.resume)
    info(args, f"model written to {exported}")
    return 0
