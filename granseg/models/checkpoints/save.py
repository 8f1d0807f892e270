"""Writing checkpoints: this package's ``.safetensors`` + JSON config, or the official/Meta torch layout."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from granseg.errors import CheckpointError
from granseg.models.checkpoints.convert import merged_state_dict, to_meta_state_dict
from granseg.models.checkpoints.keymap import PACKAGE_FORMAT, PASSTHROUGH_PREFIX
from granseg.models.unsamv2 import UnSAMv2Model


def config_path_for(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix(".json")


def save_package(model: UnSAMv2Model, path: str | Path, merge_lora: bool = False) -> Path:
    """Write ``path`` (.safetensors, package names + ``passthrough.*``) and ``<stem>.json`` (the config)."""
    from safetensors.torch import save

    from granseg.io.files import atomic_write_bytes

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"package checkpoints are .safetensors files, got {path.name}")
    config = dataclasses.replace(model.config, lora=None) if merge_lora else model.config
    state = merged_state_dict(model) if merge_lora else model.state_dict()
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    tensors.update({PASSTHROUGH_PREFIX + k: v.contiguous().cpu() for k, v in model.passthrough.items()})
    payload = save(tensors, metadata={"format": PACKAGE_FORMAT, "config": config.to_json()})
    atomic_write_bytes(path, payload)
    config.to_json(config_path_for(path))
    return path


def save_meta(model: UnSAMv2Model, path: str | Path, merge_lora: bool = False) -> Path:
    """Write the official/Meta layout: ``torch.save({"model": state_dict})`` (weights-only loadable)."""
    import io

    from granseg.io.files import atomic_write_bytes

    buffer = io.BytesIO()
    torch.save({"model": to_meta_state_dict(model, merge_lora=merge_lora)}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
