"""Converters between layouts: Meta/official state dicts <-> this package's names, and LoRA merging."""

from __future__ import annotations

import dataclasses
import re

import torch

from granseg.errors import CheckpointError
from granseg.models.checkpoints.keymap import (
    META_VIDEO_PREFIXES,
    PASSTHROUGH_PREFIX,
    POINT_EMBED_KEY,
    PROMPT_PE_KEY,
    SHARED_PE_KEY,
    package_key_to_meta,
)
from granseg.models.checkpoints.report import KeyReport, load_package_state_dict
from granseg.models.lora import lora_modules, merged_copy
from granseg.models.unsamv2 import (
    SAM2_ARCHITECTURES,
    LoraSettings,
    Sam2Architecture,
    UnSAMv2Config,
    UnSAMv2Model,
)


def infer_meta_config(state_dict: dict[str, torch.Tensor], name: str) -> UnSAMv2Config:
    """Guess the config of a Meta/official state dict from its shapes (the four released Hiera sizes)."""
    patch = state_dict.get("image_encoder.trunk.patch_embed.proj.weight")
    if patch is None:
        raise CheckpointError(
            f"{name}: not a SAM-2 checkpoint (no 'image_encoder.trunk.patch_embed.proj.weight'); "
            "if it is this package's format, use .safetensors with its .json config beside it"
        )
    blocks = {
        int(m.group(1)) for k in state_dict if (m := re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", k))
    }
    embed_dim = int(patch.shape[0])
    arch = next(
        (
            a
            for a in SAM2_ARCHITECTURES.values()
            if a.embed_dim == embed_dim and sum(a.blocks_per_stage) == len(blocks)
        ),
        None,
    )
    if arch is None:
        raise CheckpointError(
            f"{name}: Hiera with embed dim {embed_dim} and {len(blocks)} blocks is not one of the released SAM-2 sizes; "
            "pass its UnSAMv2Config (a JSON file next to the checkpoint, <stem>.json)"
        )
    return config_from_meta_keys(state_dict, name, arch)


def config_from_meta_keys(
    state_dict: dict[str, torch.Tensor], name: str, arch: Sam2Architecture
) -> UnSAMv2Config:
    """Granularity / LoRA / IoU-head switches from which keys a Meta-layout state dict has."""
    granularity = "sam_mask_decoder.gra_token.weight" in state_dict
    lora_a = [v for k, v in state_dict.items() if k.endswith(".lora_A")]
    return UnSAMv2Config(
        name=name,
        sam2=arch,
        granularity=granularity,
        lora=LoraSettings(rank=int(lora_a[0].shape[0])) if lora_a else None,
        dedicated_iou_head=any(k.startswith("sam_mask_decoder.gra_iou_prediction_head.") for k in state_dict),
    )


def meta_to_package_state_dict(
    state_dict: dict[str, torch.Tensor], model: UnSAMv2Model
) -> tuple[dict[str, torch.Tensor], KeyReport]:
    """Rename a Meta/official state dict into ``model``'s names. Video-only tensors go to ``passthrough.*``.
    Unknown tensors are reported as unexpected (nothing is dropped silently)."""
    expected = model.state_dict()
    inverse = {package_key_to_meta(k): k for k in expected if k not in (POINT_EMBED_KEY, SHARED_PE_KEY)}
    report = KeyReport()
    converted: dict[str, torch.Tensor] = {}
    point_rows: dict[int, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key in inverse:
            converted[inverse[key]] = value
        elif match := re.fullmatch(r"sam_prompt_encoder\.point_embeddings\.(\d+)\.weight", key):
            point_rows[int(match.group(1))] = value
        elif key.startswith(META_VIDEO_PREFIXES):
            converted[PASSTHROUGH_PREFIX + key] = value
        else:
            report.unexpected.append(key)
    if point_rows:
        count = expected[POINT_EMBED_KEY].shape[0]
        if sorted(point_rows) != list(range(count)):
            report.missing += [
                f"sam_prompt_encoder.point_embeddings.{i}.weight" for i in range(count) if i not in point_rows
            ]
        else:
            converted[POINT_EMBED_KEY] = torch.cat(
                [point_rows[i].reshape(1, -1) for i in range(count)], dim=0
            )
    else:
        report.missing.append("sam_prompt_encoder.point_embeddings.*.weight")
    if PROMPT_PE_KEY in converted:
        converted[SHARED_PE_KEY] = converted[PROMPT_PE_KEY]  # one Gaussian matrix in Meta's SAM-2
    for key in expected:
        if key not in converted and key != POINT_EMBED_KEY:
            report.missing.append(package_key_to_meta(key) if key != SHARED_PE_KEY else key)
    report.mismatched = [
        (
            package_key_to_meta(k) if k not in (POINT_EMBED_KEY, SHARED_PE_KEY) else k,
            tuple(v.shape),
            tuple(expected[k].shape),
        )
        for k, v in converted.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    return converted, report


def to_meta_state_dict(model: UnSAMv2Model, merge_lora: bool = False) -> dict[str, torch.Tensor]:
    """The model in Meta/official names (unmerged LoRA as ``original_layer``/``lora_A``/``lora_B``, or merged),
    plus the kept video-only tensors."""
    source = merged_state_dict(model) if merge_lora else model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if key == SHARED_PE_KEY:
            continue
        if key == POINT_EMBED_KEY:
            for index in range(value.shape[0]):
                out[f"sam_prompt_encoder.point_embeddings.{index}.weight"] = value[index : index + 1].clone()
            continue
        out[package_key_to_meta(key)] = value.detach().clone().contiguous()
    for key, value in model.passthrough.items():
        out[key] = value
    return out


def merged_state_dict(model: UnSAMv2Model) -> dict[str, torch.Tensor]:
    """Package ``state_dict`` with every LoRA merged by peft (:func:`granseg.models.lora.merged_copy`,
    ``W + (alpha / r) * B @ A``) and plain linear names (``<proj>.weight`` instead of ``base_layer`` + adapters)."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    prefix = "sam.mask_decoder.transformer."
    if not lora_modules(model.sam.mask_decoder.transformer):
        return state
    merged = merged_copy(model.sam.mask_decoder.transformer).state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(prefix)}
    state.update({prefix + k: v.detach().clone() for k, v in merged.items()})
    return state


def merge_lora(model: UnSAMv2Model) -> UnSAMv2Model:
    """A new model without adapters whose decoder weights include the LoRA update (same outputs, faster)."""
    if model.config.lora is None:
        return model
    config = dataclasses.replace(model.config, lora=None)
    merged = UnSAMv2Model(config)
    load_package_state_dict(merged, merged_state_dict(model), "merged LoRA")
    merged.passthrough = dict(model.passthrough)
    return merged.to(model.device)
