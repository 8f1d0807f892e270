"""Training logs of :class:`granseg.train.trainer.Trainer` (main process only): ``log.jsonl`` and ``log.csv`` (one
row per logged step: step, loss, lr, seconds, masks_per_s, skipped_samples, bad_annotations), TensorBoard scalars
under ``tensorboard/`` when the ``tensorboard`` package is installed, and a tqdm progress bar (on a terminal)."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CSV_FIELDS = ("step", "loss", "lr", "seconds", "masks_per_s", "skipped_samples", "bad_annotations")


def _tensorboard_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: CSV / JSONL only
        return None
    return SummaryWriter(str(folder))


class TrainLogger:
    """Accumulates losses and mask counts between logged steps; ``step()`` once per optimizer step."""

    def __init__(
        self,
        output_dir: Path,
        main: bool,
        on_log: Callable[[dict[str, Any]], None] | None,
        start: int,
        config,
    ) -> None:
        self.output_dir = output_dir
        self.main = main
        self.on_log = on_log
        self.config = config
        self.started = time.time()
        self.window_start = time.time()
        self.losses: list[float] = []
        self.masks = 0
        self.bar = None
        self.writer = None
        if main:
            from tqdm import tqdm

            self.bar = tqdm(total=config.total_steps, initial=start, desc="train", unit="step", disable=None)
            self.writer = _tensorboard_writer(output_dir / "tensorboard")

    def step(self, done: int, losses: list[float], lr: float, masks: int, counts: dict | None) -> None:
        self.losses += losses
        self.masks += masks
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if done % self.config.log_every and done != self.config.total_steps:
            return
        now = time.time()
        counts = counts or {}
        record = {
            "step": done,
            "loss": float(np.mean(self.losses)),
            "lr": lr,
            "seconds": round(now - self.started, 2),
            "masks_per_s": round(self.masks / max(now - self.window_start, 1e-9), 2),
            "skipped_samples": int(counts.get("skipped_samples", 0)),
            "bad_annotations": int(counts.get("bad_annotations", 0)),
        }
        self.losses, self.masks, self.window_start = [], 0, now
        if not self.main:
            return
        with open(self.output_dir / "log.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        csv_path = self.output_dir / "log.csv"
        new = not csv_path.is_file()
        with open(csv_path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(record)
        if self.writer is not None:
            for key in ("loss", "lr", "masks_per_s"):
                self.writer.add_scalar(f"train/{key}", record[key], done)
        if self.on_log:
            self.on_log(record)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
