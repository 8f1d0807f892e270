"""Key maps between Meta SAM-2 / UnSAMv2 checkpoints and transformers' ``Sam2VideoModel`` for the video-only
tensors: memory attention, memory encoder, memory / object-pointer embeddings.

The image part of a checkpoint goes through :mod:`granseg.models.checkpoints` (which keeps these video tensors
aside, unchanged, under their Meta names). This module renames them for ``Sam2VideoModel`` and back, and loads
them strictly. The names follow the facts in transformers' ``convert_sam2_video_to_hf.py``:

=====================================================  =========================================================
Meta SAM-2                                             transformers ``Sam2VideoModel``
=====================================================  =========================================================
``maskmem_tpos_enc``                                   ``memory_temporal_positional_encoding``
``no_mem_embed`` / ``no_mem_pos_enc``                  ``no_memory_embedding`` / ``no_memory_positional_encoding``
``no_obj_ptr``                                         ``no_object_pointer``
``no_obj_embed_spatial``                               ``occlusion_spatial_embedding_parameter``
``obj_ptr_proj.layers.{0,1,2}``                        ``object_pointer_proj.{proj_in,layers.0,proj_out}``
``obj_ptr_tpos_proj``                                  ``temporal_positional_encoding_projection_layer``
``mask_downsample``                                    ``mask_downsample``
``memory_attention.layers.i.*.out_proj``               ``memory_attention.layers.i.*.o_proj``
``memory_attention.layers.i.normK``, ``...norm``       ``...layer_normK``, ``memory_attention.layer_norm``
``memory_encoder.mask_downsampler.encoder.{3j,3j+1}``  ``memory_encoder.mask_downsampler.layers.j.{conv,layer_norm}``
``memory_encoder.mask_downsampler.encoder.{3n}``       ``memory_encoder.mask_downsampler.final_conv`` (n layers)
``memory_encoder.pix_feat_proj`` / ``.out_proj``       ``memory_encoder.feature_projection`` / ``.projection``
``memory_encoder.fuser.layers.i.{gamma,dwconv,norm,``  ``memory_encoder.memory_fuser.layers.i.{scale,``
``pwconv1,pwconv2}``                                   ``depthwise_conv,layer_norm,pointwise_conv1,pointwise_conv2}``
=====================================================  =========================================================

Tensors keep their shapes (pure renames).
"""

from __future__ import annotations

import re

import torch

from granseg.errors import CheckpointError
from granseg.models.checkpoints.keymap import META_VIDEO_PREFIXES as IMAGE_SIDE_VIDEO_PREFIXES

# The image converter's video-only prefixes, plus ``no_mem_embed``: the image model uses it too, so the converter
# keeps it among the image tensors, while the video model renames it (``no_memory_embedding``).
META_VIDEO_PREFIXES = (*IMAGE_SIDE_VIDEO_PREFIXES, "no_mem_embed")
HF_VIDEO_PREFIXES = (
    "memory_attention.",
    "memory_encoder.",
    "memory_temporal_positional_encoding",
    "no_memory_embedding",
    "no_memory_positional_encoding",
    "no_object_pointer",
    "object_pointer_proj.",
    "temporal_positional_encoding_projection_layer.",
    "mask_downsample.",
    "occlusion_spatial_embedding_parameter",
)

_PLAIN = [  # (Meta, HF) whole-name or dotted-prefix renames
    ("maskmem_tpos_enc", "memory_temporal_positional_encoding"),
    ("no_mem_embed", "no_memory_embedding"),
    ("no_mem_pos_enc", "no_memory_positional_encoding"),
    ("no_obj_ptr", "no_object_pointer"),
    ("no_obj_embed_spatial", "occlusion_spatial_embedding_parameter"),
    ("obj_ptr_tpos_proj.", "temporal_positional_encoding_projection_layer."),
    ("obj_ptr_proj.layers.0.", "object_pointer_proj.proj_in."),
    ("obj_ptr_proj.layers.1.", "object_pointer_proj.layers.0."),
    ("obj_ptr_proj.layers.2.", "object_pointer_proj.proj_out."),
    ("memory_encoder.pix_feat_proj.", "memory_encoder.feature_projection."),
    ("memory_encoder.out_proj.", "memory_encoder.projection."),
    ("memory_attention.norm.", "memory_attention.layer_norm."),
]
_FUSER = {"gamma": "scale", "dwconv": "depthwise_conv", "norm": "layer_norm", "pwconv1": "pointwise_conv1"}
_FUSER["pwconv2"] = "pointwise_conv2"


def is_meta_video_key(key: str) -> bool:
    return key.startswith(META_VIDEO_PREFIXES)


def is_hf_video_key(key: str) -> bool:
    return key.startswith(HF_VIDEO_PREFIXES)


def meta_to_hf_key(key: str, downsampler_layers: int = 4) -> str:
    """The ``Sam2VideoModel`` name of a Meta video key (``downsampler_layers``: the mask downsampler's conv
    stages, 4 in every released model)."""
    for meta, hf in _PLAIN:
        if key == meta or (meta.endswith(".") and key.startswith(meta)):
            return hf + key[len(meta) :]
    if m := re.fullmatch(
        r"memory_attention\.layers\.(\d+)\.(self_attn|cross_attn_image)\.out_proj\.(.+)", key
    ):
        return f"memory_attention.layers.{m[1]}.{m[2]}.o_proj.{m[3]}"
    if m := re.fullmatch(r"memory_attention\.layers\.(\d+)\.norm(\d)\.(.+)", key):
        return f"memory_attention.layers.{m[1]}.layer_norm{m[2]}.{m[3]}"
    if m := re.fullmatch(r"memory_encoder\.mask_downsampler\.encoder\.(\d+)\.(.+)", key):
        index = int(m[1])
        if index == 3 * downsampler_layers:
            return f"memory_encoder.mask_downsampler.final_conv.{m[2]}"
        part = {0: "conv", 1: "layer_norm"}.get(index % 3)
        if part is None:
            raise CheckpointError(f"unexpected mask-downsampler key {key!r} (activations have no weights)")
        return f"memory_encoder.mask_downsampler.layers.{index // 3}.{part}.{m[2]}"
    if m := re.fullmatch(
        r"memory_encoder\.fuser\.layers\.(\d+)\.(gamma|dwconv|norm|pwconv1|pwconv2)(.*)", key
    ):
        return f"memory_encoder.memory_fuser.layers.{m[1]}.{_FUSER[m[2]]}{m[3]}"
    if is_meta_video_key(key):  # names both sides share (memory attention q/k/v, linear1/2, mask_downsample)
        return key
    raise CheckpointError(f"{key!r} is not a SAM-2 video key")


def hf_to_meta_key(key: str, downsampler_layers: int = 4) -> str:
    """The Meta name of a ``Sam2VideoModel`` video key (the inverse of :func:`meta_to_hf_key`)."""
    for meta, hf in _PLAIN:
        if key == hf or (hf.endswith(".") and key.startswith(hf)):
            return meta + key[len(hf) :]
    if m := re.fullmatch(r"memory_attention\.layers\.(\d+)\.(self_attn|cross_attn_image)\.o_proj\.(.+)", key):
        return f"memory_attention.layers.{m[1]}.{m[2]}.out_proj.{m[3]}"
    if m := re.fullmatch(r"memory_attention\.layers\.(\d+)\.layer_norm(\d)\.(.+)", key):
        return f"memory_attention.layers.{m[1]}.norm{m[2]}.{m[3]}"
    if m := re.fullmatch(r"memory_encoder\.mask_downsampler\.final_conv\.(.+)", key):
        return f"memory_encoder.mask_downsampler.encoder.{3 * downsampler_layers}.{m[1]}"
    if m := re.fullmatch(r"memory_encoder\.mask_downsampler\.layers\.(\d+)\.(conv|layer_norm)\.(.+)", key):
        index = 3 * int(m[1]) + (0 if m[2] == "conv" else 1)
        return f"memory_encoder.mask_downsampler.encoder.{index}.{m[3]}"
    inverse = {hf: meta for meta, hf in _FUSER.items()}
    pattern = r"memory_encoder\.memory_fuser\.layers\.(\d+)\.(scale|depthwise_conv|layer_norm|pointwise_conv[12])(.*)"
    if m := re.fullmatch(pattern, key):
        return f"memory_encoder.fuser.layers.{m[1]}.{inverse[m[2]]}{m[3]}"
    if is_hf_video_key(key):
        return key
    raise CheckpointError(f"{key!r} is not a Sam2VideoModel video key")


def _downsampler_layers(model: torch.nn.Module) -> int:
    return len(model.memory_encoder.mask_downsampler.layers)


def meta_video_state_dict_to_hf(state_dict: dict[str, torch.Tensor], downsampler_layers: int = 4) -> dict:
    """The video tensors of a Meta-layout state dict (other keys are ignored), under ``Sam2VideoModel`` names."""
    return {meta_to_hf_key(k, downsampler_layers): v for k, v in state_dict.items() if is_meta_video_key(k)}


def hf_video_state_dict_to_meta(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The video tensors of a ``Sam2VideoModel`` under Meta names (what an official checkpoint holds)."""
    layers = _downsampler_layers(model)
    return {hf_to_meta_key(k, layers): v for k, v in model.state_dict().items() if is_hf_video_key(k)}


def load_meta_video_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Copy the Meta-named video tensors of ``state_dict`` into ``model`` (a ``Sam2VideoModel``), strictly: every
    video tensor of the model must be given, none may be left over, shapes must match."""
    converted = meta_video_state_dict_to_hf(state_dict, _downsampler_layers(model))
    own = {k: v for k, v in model.state_dict().items() if is_hf_video_key(k)}
    missing = sorted(set(own) - set(converted))
    unexpected = sorted(set(converted) - set(own))
    shapes = [k for k in set(own) & set(converted) if tuple(own[k].shape) != tuple(converted[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} video key(s), e.g. {hf_to_meta_key(missing[0])}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}, e.g. {unexpected[0]}")
        if shapes:
            k = sorted(shapes)[0]
            parts.append(f"shape mismatch at {k}: {tuple(converted[k].shape)} vs {tuple(own[k].shape)}")
        raise CheckpointError("video weights do not fit the model: " + "; ".join(parts))
    with torch.no_grad():
        for key, value in converted.items():
            own[key].copy_(value)
