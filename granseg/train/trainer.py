"""A small generic trainer (accelerate): AdamW, linear warm-up + cosine decay, gradient accumulation, gradient
clipping, fp32 or bf16, resumable checkpoints written atomically, multi-GPU through ``accelerate launch``.

A *task* supplies what is specific to a model family (see :class:`Task`): the trainable module, the dataset, the
loss of a batch and the export of the final model. Tasks are registered by name in :data:`TASKS`
(``"name": "module:Class"``) so that ``granseg train --config CONFIG.json`` finds them from the config's ``task``.

Output folder layout (``TrainConfig.output_dir``)::

    train_config.json          the full config (the task's subclass of TrainConfig)
    log.jsonl, log.csv         one line per logged step (step, loss, lr, seconds, masks_per_s, skipped counts)
    tensorboard/               scalars, when the tensorboard package is installed
    checkpoints/step_000100/   state.pt (model, optimizer, scheduler, step, torch RNG) + train_config.json
    checkpoints/latest         name of the newest complete checkpoint folder
    model/                     the exported model (task.export) + train_config.json, written at the end

Data order is a pure function of (seed, sample position), so a resumed run sees the same samples as an
uninterrupted one. Checkpoint folders are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from granseg.config import Config, read_json
from granseg.errors import CheckpointError, InputError
from granseg.io.files import atomic_write_text
from granseg.train.config_check import check_json
from granseg.train.train_log import TrainLogger

TASKS: dict[str, str] = {
    "gen2seg": "granseg.train.gen2seg_task:Gen2SegTask",
    "unsamv2": "granseg.train.unsamv2_task:UnSAMv2Task",
}


@dataclasses.dataclass
class TrainConfig(Config):
    """Optimisation settings shared by every task. Subclasses add ``model``/``data`` fields."""

    task: str = "gen2seg"
    output_dir: str = "runs/train"
    steps: int = 1000  # optimizer steps
    max_steps: int | None = None  # stop (and end the schedule) earlier than ``steps``: a shortened run
    batch_size: int = 2  # per process and micro-step
    grad_accumulation: int = 1
    lr: float = 1e-4
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    schedule: str = "cosine"  # "cosine" or "constant" (after warm-up)
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0  # <= 0: no clipping
    precision: str = "fp32"  # "fp32", "bf16" or "auto" (bf16 where supported: CUDA with bf16)
    seed: int = 0
    save_every: int = 500  # optimizer steps; the last step is always saved
    keep_checkpoints: int = 2
    log_every: int = 10

    @property
    def total_steps(self) -> int:
        """Optimizer steps this run trains for (and its schedule spans): ``min(steps, max_steps)``."""
        return min(self.steps, self.max_steps) if self.max_steps is not None else self.steps

    def schedule_phases(self) -> tuple[int, ...]:
        """First optimizer step of each lr phase (ascending, starting with 0): every phase runs its own warm-up
        and decay to its end (:func:`lr_factor`). One phase here; a task's config may restart the schedule."""
        return (0,)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.grad_accumulation < 1:
            raise InputError("steps, batch_size and grad_accumulation must be >= 1")
        if self.schedule not in ("cosine", "constant"):
            raise InputError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.precision not in ("fp32", "bf16", "auto"):
            raise InputError(f"precision must be 'fp32', 'bf16' or 'auto', got {self.precision!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise InputError("max_steps must be >= 1 (or null)")
        if self.warmup_steps < 0 or self.lr <= 0:
            raise InputError("warmup_steps must be >= 0 and lr > 0")


class Task(Protocol):
    """What a model family provides to :class:`Trainer`. Optional: ``begin_step(module, step)``, called with the
    unwrapped module before each optimizer step (0-based; after a resume, first with the resumed step), for
    changes that depend on the step (the unsamv2 task's no-g warm-up switch); its state must live in the module
    (checkpointed) or follow from ``step``, so that a resume stays exact."""

    config: TrainConfig

    def build_module(self) -> torch.nn.Module: ...

    def dataset_size(self) -> int: ...

    def load_samples(self, indices: Sequence[int]) -> Any: ...

    def loss(self, module: torch.nn.Module, batch: Any) -> torch.Tensor: ...

    def export(self, module: torch.nn.Module, folder: Path) -> None: ...


def resolve_task(name: str) -> tuple[type, type[TrainConfig]]:
    """``(task class, its config class)`` for a registered task name."""
    if name not in TASKS:
        raise InputError(f"unknown training task {name!r} (known: {', '.join(sorted(TASKS))})")
    from granseg.registry_utils import resolve_target

    task_class = resolve_target(TASKS[name])
    return task_class, task_class.config_class


def load_train_config(path_or_text: str | Path) -> TrainConfig:
    """Parse a training config JSON, dispatching on its ``task`` key (default ``gen2seg``)."""
    data = read_json(path_or_text, "training config")
    if not isinstance(data, dict):
        raise InputError("a training config is a JSON object")
    _, config_class = resolve_task(data.get("task", "gen2seg"))
    check_json(data, config_class)
    return config_class.from_dict(data)


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based): linear warm-up then cosine/constant, within
    the lr phase that holds ``step`` (``config.schedule_phases()``; one phase = the whole run). Each phase has the
    warm-up ``warmup_steps`` and its cosine ends at the phase's last step."""
    phases = config.schedule_phases()
    begin = max((s for s in phases if s <= step), default=0)
    end = min((s for s in phases if s > step), default=config.total_steps)
    local, length, warmup = step - begin, end - begin, config.warmup_steps
    if warmup and local < warmup:
        return (local + 1) / warmup
    if config.schedule == "constant":
        return 1.0
    span = max(length - warmup, 1)
    progress = min(max(local - warmup, 0) / span, 1.0)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def sample_indices(
    config: TrainConfig, dataset_size: int, step: int, micro: int, rank: int, world: int
) -> list[int]:
    """Dataset indices of one micro-batch: a seeded permutation per epoch, positions never repeat across
    processes. Pure function of its arguments (resumable)."""
    first = ((step * config.grad_accumulation + micro) * world + rank) * config.batch_size
    indices = []
    for position in range(first, first + config.batch_size):
        epoch, offset = divmod(position, dataset_size)
        permutation = np.random.default_rng([config.seed, epoch]).permutation(dataset_size)
        indices.append(int(permutation[offset]))
    return indices


def _allow_new_precision(precision: str, cpu: bool) -> None:
    """accelerate keeps one process-wide AcceleratorState; a second Trainer in the same process with another
    precision (or device choice) would be refused. Clear that state (not the distributed PartialState) first."""
    from accelerate.state import AcceleratorState

    shared = AcceleratorState._shared_state
    if shared and (
        shared.get("_mixed_precision") != precision
        or (cpu and shared.get("device") is not None and shared["device"].type != "cpu")
    ):
        AcceleratorState._reset_state(reset_partial_state=False)


class Trainer:
    """Runs a :class:`Task`. ``fit(resume=...)`` returns the folder of the exported model."""

    def __init__(
        self, task: Task, on_log: Callable[[dict[str, Any]], None] | None = None, cpu: bool = False
    ) -> None:
        self.task = task
        self.cpu = cpu
        self.config = task.config
        self.output_dir = Path(self.config.output_dir)
        self.on_log = on_log

    # ---------------------------------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_root(self) -> Path:
        return self.output_dir / "checkpoints"

    def latest_checkpoint(self) -> Path | None:
        pointer = self.checkpoint_root / "latest"
        if not pointer.is_file():
            return None
        folder = self.checkpoint_root / pointer.read_text().strip()
        return folder if (folder / "state.pt").is_file() else None

    def _save(self, accelerator, module, optimizer, scheduler, step: int) -> None:
        if not accelerator.is_main_process:
            return
        name = f"step_{step:06d}"
        final = self.checkpoint_root / name
        temporary = self.checkpoint_root / f".{name}.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        state = {
            "model": accelerator.unwrap_model(module).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "torch_rng": torch.get_rng_state(),
        }
        torch.save(state, temporary / "state.pt")
        self.config.to_json(temporary / "train_config.json")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(temporary, final)
        atomic_write_text(self.checkpoint_root / "latest", name + "\n")
        kept = sorted(p for p in self.checkpoint_root.glob("step_*") if p.is_dir())
        for old in kept[: max(len(kept) - self.config.keep_checkpoints, 0)]:
            shutil.rmtree(old, ignore_errors=True)

    def _load(self, folder: Path, module, optimizer, scheduler) -> int:
        try:
            state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
            module.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            return int(state["step"])
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"cannot resume from {folder}: {str(exc).splitlines()[0]}") from exc

    # ---------------------------------------------------------------------------------------------- training
    def fit(self, resume: bool = False, stop_after: int | None = None) -> Path | None:
        """Train to ``config.total_steps`` (from the newest checkpoint if ``resume``) and export the model. With
        ``stop_after``, stop (with a checkpoint, without export, returning None) after that many optimizer steps
        of this run: for time-limited jobs that continue with ``resume=True``."""
        from accelerate import Accelerator

        config = self.config
        previous = self.output_dir / "train_config.json"
        if resume and previous.is_file():
            saved = json.loads(previous.read_text())
            if saved != json.loads(config.to_json()):
                raise InputError(f"--resume with a config that differs from {previous}")
        elif not resume and self.latest_checkpoint() is not None:
            raise InputError(
                f"{self.output_dir} already holds checkpoints: pass --resume or choose another output_dir"
            )
        precision = resolve_precision(config.precision, self.cpu)
        _allow_new_precision(precision, self.cpu)
        accelerator = Accelerator(
            mixed_precision=precision,
            gradient_accumulation_steps=config.grad_accumulation,
            cpu=self.cpu,
        )
        torch.manual_seed(config.seed)
        module = self.task.build_module()
        parameters = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            parameters, lr=config.lr, weight_decay=config.weight_decay, betas=tuple(config.betas)
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
        start = 0
        if resume:
            latest = self.latest_checkpoint()
            if latest is not None:
                start = self._load(latest, module, optimizer, scheduler)
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            config.to_json(previous)
        module, optimizer = accelerator.prepare(module, optimizer)
        module.train()
        logger = TrainLogger(self.output_dir, accelerator.is_main_process, self.on_log, start, config)
        try:
            stopped = self._loop(
                accelerator, module, optimizer, scheduler, parameters, start, stop_after, logger
            )
        except torch.OutOfMemoryError as exc:
            raise InputError(
                "out of memory: lower batch_size (raise grad_accumulation to keep the effective batch), "
                "data.max_masks or the model size, or use precision bf16"
            ) from exc
        finally:
            logger.close()
        accelerator.wait_for_everyone()
        if stopped:
            return None
        export = self.output_dir / "model"
        if accelerator.is_main_process:
            temporary = self.output_dir / ".model.tmp"
            shutil.rmtree(temporary, ignore_errors=True)
            self.task.export(accelerator.unwrap_model(module), temporary)
            config.to_json(temporary / "train_config.json")
            shutil.rmtree(export, ignore_errors=True)
            os.replace(temporary, export)
        return export

    def _loop(self, accelerator, module, optimizer, scheduler, parameters, start, stop_after, logger) -> bool:
        """Optimizer steps ``start .. total_steps``; True when stopped early by ``stop_after``."""
        config = self.config
        size = self.task.dataset_size()
        rank, world = accelerator.process_index, accelerator.num_processes
        seeded = getattr(self.task, "seeded_samples", False)
        count_masks = getattr(self.task, "masks_per_batch", None)
        total = config.total_steps
        begin_step = getattr(self.task, "begin_step", None)
        for step in range(start, total):
            if begin_step is not None:  # e.g. a phase switch; also called for the first step after a resume
                begin_step(accelerator.unwrap_model(module), step)
            losses, masks = [], 0
            for micro in range(config.grad_accumulation):
                indices = sample_indices(config, size, step, micro, rank, world)
                if seeded:
                    batch = self.task.load_samples(indices, seed=(config.seed, step, micro, rank))
                else:
                    batch = self.task.load_samples(indices)
                masks += count_masks(batch) if count_masks else len(indices)
                with accelerator.accumulate(module), accelerator.autocast():
                    loss = self.task.loss(module, batch)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.grad_clip > 0:
                        accelerator.clip_grad_norm_(parameters, config.grad_clip)
                    optimizer.step()
                    optimizer.zero_grad()
                losses.append(float(loss.detach()))
            used_lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            done = step + 1
            logger.step(done, losses, used_lr, masks, getattr(self.task, "counts", None))
            stopping = stop_after is not None and done - start >= stop_after and done < total
            if done % config.save_every == 0 or done == total or stopping:
                self._save(accelerator, module, optimizer, scheduler, done)
            if stopping:
                return True
        return False


def resolve_precision(precision: str, cpu: bool) -> str:
    """accelerate's ``mixed_precision`` for a config value: ``auto`` = bf16 on a CUDA device that supports it."""
    if precision == "auto":
        supported = not cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return "bf16" if supported else "no"
    return "bf16" if precision == "bf16" else "no"
