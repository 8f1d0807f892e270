"""Registry of named model builders (timm-style) and the ``load_model`` entry point.

Each entry maps a name to a builder given as ``"module:function"`` (resolved by
:func:`granseg.registry_utils.resolve_target`), imported only when the model is built, so that listing models costs
no heavy imports. A builder takes ``device=`` (a resolved ``torch``-style device string) plus keyword overrides and
returns a *model* (an object with ``name``); the predictor for it is made in :mod:`granseg.predict.factory`.

``load_model("auto")`` picks a local neural checkpoint when one is cached (``$GRANSEG_HOME/checkpoints``,
default ``~/.cache/granseg/checkpoints``), else the weight-free ``hierarchy`` model, and says which one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from granseg.errors import UnknownModelError
from granseg.registry_utils import resolve_target, warn_duplicate

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    builder: str  # "package.module:function"
    description: str
    needs_weights: bool = True

    def resolve_builder(self) -> Callable[..., Any]:
        return resolve_target(self.builder)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    family: str,
    builder: str,
    description: str,
    needs_weights: bool = True,
) -> ModelEntry:
    """Add a named model (a name registered again replaces the old entry, with a warning). ``builder`` is
    ``"module:function"``."""
    entry = ModelEntry(name, family, builder, description, needs_weights)
    if name in _REGISTRY:
        warn_duplicate("model", name, _REGISTRY[name].builder, builder)
    _REGISTRY[name] = entry
    return entry


def list_models() -> list[ModelEntry]:
    return sorted(_REGISTRY.values(), key=lambda e: (e.family, e.name))


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownModelError(
            f"unknown model {name!r}: not a registered name ({known}) nor an existing path"
        )
    return _REGISTRY[name]


def granseg_home() -> Path:
    return Path(os.environ.get("GRANSEG_HOME", Path.home() / ".cache" / "granseg"))


def checkpoint_dir() -> Path:
    return granseg_home() / "checkpoints"


def cached_checkpoints() -> list[Path]:
    """Checkpoint files and Hugging Face model folders under :func:`checkpoint_dir`, newest first."""
    root = checkpoint_dir()
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if (p.is_file() and p.suffix in CHECKPOINT_SUFFIXES) or (p.is_dir() and (p / "config.json").is_file())
    ]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` if available, else ``mps``, else ``cpu``. Other values are checked and returned."""
    if device not in ("auto", "cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise UnknownModelError(f"unknown device {device!r} (use auto, cpu, cuda or mps)")
    if device == "cpu":
        return device
    try:
        import torch
    except ImportError:
        if device == "auto":
            return "cpu"
        raise
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UnknownModelError("--device cuda was asked for but CUDA is not available on this machine")
    if device == "mps" and not torch.backends.mps.is_available():
        raise UnknownModelError("--device mps was asked for but MPS is not available on this machine")
    return device


def resolve_auto() -> tuple[str, str]:
    """What ``--model auto`` means here: ``(name_or_path, human-readable reason)``."""
    cached = cached_checkpoints()
    if cached:
        return str(cached[0]), f"local checkpoint {cached[0]}"
    return "hierarchy", f"weight-free 'hierarchy' model (no neural checkpoint in {checkpoint_dir()})"


def load_model(name_or_path: str = "auto", device: str = "auto", **overrides: Any) -> Any:
    """Build a registered model by name, or load a checkpoint file/folder by path.

    A folder is a Gen2Seg checkpoint when :func:`granseg.models.gen2seg.is_gen2seg_checkpoint` says so, else a
    SAM-2 / UnSAMv2 checkpoint (:func:`granseg.models.checkpoints.load_model_from_path`). Returns the model
    (wrap it with :func:`granseg.predict.factory.create_predictor`). Raises :class:`UnknownModelError` for an
    unknown name.
    """
    if name_or_path == "auto":
        name_or_path, _ = resolve_auto()
    resolved_device = resolve_device(device)
    if name_or_path in _REGISTRY:
        return _REGISTRY[name_or_path].resolve_builder()(device=resolved_device, **overrides)
    if Path(name_or_path).exists():
        from granseg.models import gen2seg  # heavy modules: imported when a path is loaded

        if Path(name_or_path).is_dir() and gen2seg.is_gen2seg_checkpoint(name_or_path):
            return gen2seg.load_gen2seg(name_or_path, device=resolved_device, **overrides)
        from granseg.models import checkpoints

        return checkpoints.load_model_from_path(name_or_path, device=resolved_device, **overrides)
    get_entry(name_or_path)  # raises with the list of names
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------------------------
# Built-in models. Families add their entries here (one line each); builders are imported lazily.
# ---------------------------------------------------------------------------------------------------------------
register_model(
    "hierarchy",
    family="hierarchy",
    builder="granseg.predict.hierarchy:build_hierarchy",
    description="weight-free region hierarchy (superpixels + boundary-aware merging); runs anywhere",
    needs_weights=False,
)
register_model(
    "grabcut-baseline",
    family="baseline",
    builder="granseg.predict.grabcut:build_grabcut_baseline",
    description="classical OpenCV GrabCut driven by clicks (evaluation baseline; ignores granularity)",
    needs_weights=False,
)
register_model(
    "gen2seg-mae-h",
    family="gen2seg",
    builder="granseg.models.gen2seg:build_gen2seg_mae_h",
    description="Gen2Seg on ViT-MAE-huge (instance-colouring feature image, point prompts; ignores granularity)",
)
register_model(
    "gen2seg-sd",
    family="gen2seg",
    builder="granseg.models.gen2seg:build_gen2seg_sd",
    description="Gen2Seg on Stable Diffusion 2, one step at t=999 (point prompts; ignores granularity)",
)
register_model(
    "gen2seg-mae-tiny",
    family="gen2seg",
    builder="granseg.models.gen2seg:build_tiny",
    description="tiny randomly initialised Gen2Seg MAE (tests and demos only)",
    needs_weights=False,
)
register_model(
    "unsamv2-tiny-random",
    family="unsamv2",
    builder="granseg.models.checkpoints.named:build_unsamv2_tiny_random",
    description="tiny random-weight UnSAMv2 (128 px) for tests and smoke runs; its masks are meaningless",
    needs_weights=False,
)
register_model(
    "unsamv2-hiera-small",
    family="unsamv2",
    builder="granseg.models.checkpoints.named:build_unsamv2_hiera_small",
    description="UnSAMv2 (granularity-controllable SAM-2.1 hiera-small + LoRA); official release weights",
)
for _version in ("sam2", "sam2.1"):
    for _size in ("tiny", "small", "base-plus", "large"):
        _name = f"{_version}-hiera-{_size}"
        _builder = f"granseg.models.checkpoints.named:build_{_name.replace('.', '_').replace('-', '_')}"
        for _alias in (_name, f"facebook/{_name}"):
            register_model(
                _alias,
                family="sam2",
                builder=_builder,
                description=f"plain {_version.upper()} hiera-{_size} (no granularity; g picks one of its 3 masks)",
            )
