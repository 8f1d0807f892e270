"""The video-memory hyper-parameters of SAM-2 / UnSAMv2 (:class:`VideoMemoryConfig`) and the
``transformers.Sam2VideoConfig`` they make together with an image model's :class:`Sam2Architecture`.

Widths left at ``None`` follow the image model's decoder width ``C`` the way the released SAM-2.1 models do
(``C = 256``): memory channels ``C / 4`` (64), memory-attention feed-forward ``8 C`` (2048), memory-fuser
intermediate ``4 C`` (1024). :func:`video_config_from_meta` reads the settings back from the Meta-named video
tensors of a checkpoint, so an official file builds the video model it was trained as.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import torch

from granseg.config import Config
from granseg.errors import CheckpointError
from granseg.models.unsamv2_config import Sam2Architecture


@dataclass
class VideoMemoryConfig(Config):
    """SAM-2's memory: ``num_maskmem`` memory slots (the prompted frames plus the ``num_maskmem - 1`` most recent
    tracked frames; 0 disables the memory), up to ``max_object_pointers`` object pointers, a
    ``memory_attention_layers``-layer memory attention. Defaults: the released SAM-2.1 models."""

    num_maskmem: int = 7
    max_object_pointers: int = 16
    memory_attention_layers: int = 4
    memory_dim: int | None = None  # memory-encoder output channels (None: C / 4)
    feed_forward_dim: int | None = None  # memory-attention MLP width (None: 8 C)
    fuser_dim: int | None = None  # memory-fuser intermediate width (None: 4 C)
    fuser_layers: int = 2
    occlusion_embedding: bool = True  # SAM-2.1's no_obj_embed_spatial (SAM-2.0: False)
    max_cond_frames: int = -1  # prompted frames attended to (-1: all)

    def __post_init__(self) -> None:
        if self.num_maskmem < 0 or self.max_object_pointers < 1 or self.memory_attention_layers < 1:
            raise CheckpointError(
                "video memory: num_maskmem >= 0, max_object_pointers >= 1, memory_attention_layers >= 1"
            )

    def to_hf(self, sam2: Sam2Architecture):
        """The ``transformers.Sam2VideoConfig`` of ``sam2``'s image path plus this memory (sdpa attention)."""
        from transformers import Sam2VideoConfig

        image = sam2.to_hf()
        hidden = sam2.hidden_size
        grid = sam2.image_size // 16
        config = Sam2VideoConfig(
            vision_config=image.vision_config,
            prompt_encoder_config=image.prompt_encoder_config.to_dict(),
            mask_decoder_config=image.mask_decoder_config.to_dict(),
            image_size=sam2.image_size,
            num_maskmem=self.num_maskmem,
            max_object_pointers_in_encoder=self.max_object_pointers,
            max_cond_frame_num=self.max_cond_frames,
            enable_occlusion_spatial_embedding=self.occlusion_embedding,
            memory_attention_hidden_size=hidden,
            memory_attention_num_layers=self.memory_attention_layers,
            memory_attention_feed_forward_hidden_size=self.feed_forward_dim or 8 * hidden,
            memory_attention_rope_feat_sizes=[grid, grid],
            memory_encoder_hidden_size=hidden,
            memory_encoder_output_channels=self.memory_dim or hidden // 4,
            mask_downsampler_embed_dim=hidden,
            memory_fuser_embed_dim=hidden,
            memory_fuser_intermediate_dim=self.fuser_dim or 4 * hidden,
            memory_fuser_num_layers=self.fuser_layers,
        )
        config._attn_implementation = "sdpa"
        return config


def video_config_from_meta(
    tensors: dict[str, torch.Tensor], base: VideoMemoryConfig | None = None
) -> VideoMemoryConfig:
    """The memory settings that fit Meta-named video tensors (``maskmem_tpos_enc``, ``memory_attention.*``,
    ...; e.g. an UnSAMv2 model's ``passthrough``). Settings the tensors do not fix come from ``base``."""
    base = base or VideoMemoryConfig()
    try:
        tpos = tensors["maskmem_tpos_enc"]  # (num_maskmem, 1, 1, memory_dim)
        layers = {int(m[1]) for k in tensors if (m := re.match(r"memory_attention\.layers\.(\d+)\.", k))}
        feed_forward = tensors["memory_attention.layers.0.linear1.weight"].shape[0]
        fuser = {int(m[1]) for k in tensors if (m := re.match(r"memory_encoder\.fuser\.layers\.(\d+)\.", k))}
        fuser_dim = tensors["memory_encoder.fuser.layers.0.pwconv1.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"the checkpoint's video tensors are incomplete (no {exc})") from exc
    return dataclasses.replace(
        base,
        num_maskmem=int(tpos.shape[0]),
        memory_dim=int(tpos.shape[-1]),
        memory_attention_layers=len(layers),
        feed_forward_dim=int(feed_forward),
        fuser_layers=len(fuser),
        fuser_dim=int(fuser_dim),
        occlusion_embedding="no_obj_embed_spatial" in tensors,
    )
