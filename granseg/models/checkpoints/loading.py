"""Loading UnSAMv2 / SAM-2 checkpoints in any supported layout (the safe readers, key maps and converters it
uses are the sibling modules).

Layouts understood:

* ``official``: the UnSAMv2 release, a torch file ``{"model": state_dict}`` with Meta SAM-2 key names plus the
  granularity keys (``sam_prompt_encoder.granularity_embedding.weight``, ``sam_prompt_encoder.fourier_embedder.mlp.
  mlp.{0,3,6}.*``, ``sam_mask_decoder.gra_token.weight``, ``sam_mask_decoder.gra_output_token_mlp.layers.{0,1,2}.*``)
  and unmerged LoRA keys (``<proj>.original_layer.{weight,bias}``, ``<proj>.lora_A`` [r, in], ``<proj>.lora_B``
  [out, r]). The same Meta naming with merged LoRA (plain ``<proj>.weight``) is also accepted.
* ``meta``: plain SAM-2 / SAM-2.1 files from Meta (``{"model": state_dict}``); video-only tensors (memory attention,
  memory encoder, object pointers) are kept aside in ``model.passthrough`` so that exporting back loses nothing.
* ``hf``: a Hugging Face ``facebook/sam2(.1)-hiera-*`` folder (``config.json`` + ``model.safetensors``).
* ``package``: this package's ``.safetensors`` (the model's own ``state_dict`` names) with its
  :class:`~granseg.models.unsamv2.UnSAMv2Config` as JSON beside it (``<stem>.json``, also in the file's metadata).
  A ``granseg train`` output folder (``<output_dir>/model/unsamv2.safetensors``) loads as that package file.

Loading is safe (``torch.load(weights_only=True)`` or safetensors, always onto the CPU first) and strict: every
missing, unexpected or mis-shaped key is reported in a :class:`~granseg.errors.CheckpointError`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from granseg.errors import CheckpointError
from granseg.models.checkpoints.convert import infer_meta_config, meta_to_package_state_dict
from granseg.models.checkpoints.keymap import HF_VIDEO_PATTERNS, PACKAGE_FORMAT, PROMPT_PE_KEY, SHARED_PE_KEY
from granseg.models.checkpoints.report import KeyReport, load_package_state_dict
from granseg.models.checkpoints.safe_io import safe_safetensors_load, safe_torch_load
from granseg.models.checkpoints.save import config_path_for
from granseg.models.unsamv2 import Sam2Architecture, UnSAMv2Config, UnSAMv2Model


def _read_config_override(config: Any) -> UnSAMv2Config | None:
    if config is None or isinstance(config, UnSAMv2Config):
        return config
    return UnSAMv2Config.from_json(config)


def training_output_model(path: str | Path) -> Path:
    """A ``granseg train`` output folder (or its ``model/``) holding ``unsamv2.safetensors`` -> that file;
    any other path unchanged."""
    path = Path(path)
    for candidate in (path / "model" / "unsamv2.safetensors", path / "unsamv2.safetensors"):
        if path.is_dir() and candidate.is_file():
            return candidate
    return path


def load_model_from_path(
    path: str | Path, device: str = "cpu", config: UnSAMv2Config | str | Path | None = None, **overrides: Any
) -> UnSAMv2Model:
    """Load any supported SAM-2 / UnSAMv2 layout (see module docstring). ``config`` forces the architecture (an
    :class:`UnSAMv2Config` or a JSON path); other keyword overrides replace config fields (e.g. ``resize_mode``).
    Other families' folders (Gen2Seg) are told apart by :func:`granseg.models.registry.load_model`."""
    model, _ = load_with_report(path, config=config, **overrides)
    return model.to(device)


def load_with_report(
    path: str | Path, config: UnSAMv2Config | str | Path | None = None, **overrides: Any
) -> tuple[UnSAMv2Model, KeyReport]:
    """Like :func:`load_model_from_path` (on the CPU) but also returns the key report."""
    path = training_output_model(path)
    forced = _read_config_override(config)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        return _load_hf_dir(path, forced, overrides)
    if path.suffix == ".safetensors":
        return _load_safetensors(path, forced, overrides)
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        return _load_meta_file(path, forced, overrides)
    raise CheckpointError(
        f"unknown checkpoint type {path.suffix!r} ({path}); use .safetensors, .pt/.pth or a folder"
    )


def with_overrides(config: UnSAMv2Config, overrides: dict[str, Any]) -> UnSAMv2Config:
    names = {f.name for f in dataclasses.fields(UnSAMv2Config)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise CheckpointError(f"unknown model option(s) {unknown}; known: {sorted(names)}")
    return dataclasses.replace(config, **overrides) if overrides else config


def _load_meta_file(
    path: Path, forced: UnSAMv2Config | None, overrides: dict
) -> tuple[UnSAMv2Model, KeyReport]:
    state = safe_torch_load(path)
    beside = config_path_for(path)
    if forced is None and beside.is_file():
        forced = UnSAMv2Config.from_json(beside)
    if forced is None:
        forced = infer_meta_config(state, path.stem)
    config = with_overrides(forced, overrides)
    model = UnSAMv2Model(config)
    converted, report = meta_to_package_state_dict(state, model)
    report.raise_if_bad(str(path), model.name)
    load_package_state_dict(model, converted, str(path))
    if model.passthrough:
        report.notes.append(
            f"{len(model.passthrough)} video-only tensors kept aside (exported back unchanged)"
        )
    return model, report


def _load_safetensors(
    path: Path, forced: UnSAMv2Config | None, overrides: dict
) -> tuple[UnSAMv2Model, KeyReport]:
    tensors, metadata = safe_safetensors_load(path)
    beside = config_path_for(path)
    if forced is None and beside.is_file():
        forced = UnSAMv2Config.from_json(beside)
    if forced is None and metadata.get("format") == PACKAGE_FORMAT and "config" in metadata:
        forced = UnSAMv2Config.from_json(metadata["config"])
    if forced is None:
        if (path.parent / "config.json").is_file():
            # a Hugging Face SAM-2 config beside this file: these weights with that config
            return _load_hf_dir(path.parent, None, overrides, weights=path)
        raise CheckpointError(
            f"{path}: no model config found (expected {beside.name} next to it); "
            "convert official/Meta .pt files with `granseg convert SRC DST.safetensors`"
        )
    model = UnSAMv2Model(with_overrides(forced, overrides))
    report = load_package_state_dict(model, tensors, str(path))
    return model, report


def _hf_weights_file(folder: Path) -> Path:
    for candidate in ("model.safetensors", "pytorch_model.bin"):
        if (folder / candidate).is_file():
            return folder / candidate
    if (folder / "model.safetensors.index.json").is_file():
        raise CheckpointError(
            f"{folder}: sharded Hugging Face checkpoints are not supported; merge the shards first"
        )
    raise CheckpointError(
        f"{folder} has a config.json but no model.safetensors: the weights were not downloaded. Download the whole "
        "repository (e.g. `hf download facebook/sam2.1-hiera-small --local-dir DIR`) and pass DIR"
    )


def _load_hf_dir(
    folder: Path, forced: UnSAMv2Config | None, overrides: dict, weights: Path | None = None
) -> tuple[UnSAMv2Model, KeyReport]:
    """A Hugging Face SAM-2 folder: its ``config.json`` and ``weights`` (default: the folder's weights file)."""
    if (folder / "config.json").is_file() is False:
        raise CheckpointError(
            f"{folder} is a folder without config.json: not a Hugging Face SAM-2 checkpoint"
        )
    try:
        hf_config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{folder}/config.json is not valid JSON: {exc}") from exc
    if hf_config.get("model_type") not in ("sam2", "sam2_video"):
        raise CheckpointError(
            f"{folder}: model_type {hf_config.get('model_type')!r} is not SAM-2 (sam2 / sam2_video)"
        )
    weights = weights if weights is not None else _hf_weights_file(folder)
    if weights.suffix == ".safetensors":
        tensors, _ = safe_safetensors_load(weights)
    else:
        tensors = safe_torch_load(weights)
    if forced is None:
        forced = UnSAMv2Config(
            name=folder.name, sam2=Sam2Architecture.from_hf_dict(hf_config), granularity=False, lora=None
        )
    model = UnSAMv2Model(with_overrides(forced, overrides))
    video = {k for k in tensors if any(re.match(p, k) for p in HF_VIDEO_PATTERNS)}
    renamed = {"sam." + k: v for k, v in tensors.items() if k not in video}
    if SHARED_PE_KEY not in renamed and PROMPT_PE_KEY in renamed:
        renamed[SHARED_PE_KEY] = renamed[PROMPT_PE_KEY]
    report = load_package_state_dict(model, renamed, str(folder))
    if video:
        report.notes.append(f"{len(video)} video-only tensors of the HF video model ignored")
    return model, report
