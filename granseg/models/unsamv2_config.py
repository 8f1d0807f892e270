"""Typed configurations of SAM-2 / UnSAMv2 models (saved as JSON next to every checkpoint) and the built-in ones.

:class:`Sam2Architecture` holds the SAM-2 image-model hyper-parameters (it converts to ``transformers.Sam2Config``);
:class:`UnSAMv2Config` adds the granularity modules, LoRA and the pre-processing; :func:`named_config` gives the
configuration of a registered name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from granseg.config import Config
from granseg.errors import CheckpointError


@dataclass
class Sam2Architecture(Config):
    """The SAM-2 image-model hyper-parameters (everything Sam2Config needs for the image path)."""

    image_size: int = 1024
    embed_dim: int = 96  # Hiera stage-1 width; stages are embed_dim * (1, 2, 4, 8)
    num_heads: int = 1  # stage-1 heads; stages are num_heads * (1, 2, 4, 8)
    blocks_per_stage: tuple[int, ...] = (1, 2, 11, 2)
    global_attention_blocks: tuple[int, ...] = (7, 10, 13)
    window_size_per_stage: tuple[int, ...] = (8, 4, 14, 7)
    window_pos_embed_background: tuple[int, ...] = (7, 7)
    hidden_size: int = 256  # FPN / prompt encoder / mask decoder width
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8
    iou_head_hidden_dim: int = 256
    mask_input_channels: int = 16

    def to_hf(self):
        """The equivalent ``transformers.Sam2Config``."""
        from transformers import Sam2Config
        from transformers.models.sam2.configuration_sam2 import (
            Sam2HieraDetConfig,
            Sam2MaskDecoderConfig,
            Sam2PromptEncoderConfig,
            Sam2VisionConfig,
        )

        dims = [self.embed_dim * 2**i for i in range(4)]
        size = self.image_size
        backbone = Sam2HieraDetConfig(
            hidden_size=self.embed_dim,
            num_attention_heads=self.num_heads,
            image_size=[size, size],
            blocks_per_stage=list(self.blocks_per_stage),
            embed_dim_per_stage=dims,
            num_attention_heads_per_stage=[self.num_heads * 2**i for i in range(4)],
            window_size_per_stage=list(self.window_size_per_stage),
            global_attention_blocks=list(self.global_attention_blocks),
            window_positional_embedding_background_size=list(self.window_pos_embed_background),
        )
        vision = Sam2VisionConfig(
            backbone_config=backbone,
            backbone_channel_list=dims[::-1],
            backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [size // 16] * 2],
            fpn_hidden_size=self.hidden_size,
        )
        prompt = Sam2PromptEncoderConfig(
            hidden_size=self.hidden_size,
            image_size=size,
            patch_size=16,
            mask_input_channels=self.mask_input_channels,
        )
        decoder = Sam2MaskDecoderConfig(
            hidden_size=self.hidden_size,
            mlp_dim=self.decoder_mlp_dim,
            num_attention_heads=self.decoder_heads,
            iou_head_hidden_dim=self.iou_head_hidden_dim,
        )
        return Sam2Config(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)

    @classmethod
    def from_hf_dict(cls, data: dict) -> Sam2Architecture:
        """From a Hugging Face ``config.json`` of ``facebook/sam2(.1)-hiera-*`` (model_type sam2 / sam2_video)."""
        try:
            vision = data["vision_config"]
            backbone = vision["backbone_config"]
            prompt = data.get("prompt_encoder_config", {})
            decoder = data.get("mask_decoder_config", {})
            image_size = backbone.get("image_size", [1024, 1024])
            return cls(
                image_size=int(image_size[0] if isinstance(image_size, list) else image_size),
                embed_dim=int(backbone["hidden_size"]),
                num_heads=int(backbone.get("num_attention_heads", 1)),
                blocks_per_stage=tuple(backbone["blocks_per_stage"]),
                global_attention_blocks=tuple(backbone["global_attention_blocks"]),
                window_size_per_stage=tuple(backbone.get("window_size_per_stage", (8, 4, 14, 7))),
                window_pos_embed_background=tuple(
                    backbone.get("window_positional_embedding_background_size", (7, 7))
                ),
                hidden_size=int(vision.get("fpn_hidden_size", 256)),
                decoder_mlp_dim=int(decoder.get("mlp_dim", 2048)),
                decoder_heads=int(decoder.get("num_attention_heads", 8)),
                iou_head_hidden_dim=int(decoder.get("iou_head_hidden_dim", 256)),
                mask_input_channels=int(prompt.get("mask_input_channels", 16)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"not a SAM-2 Hugging Face config (missing or bad field: {exc})") from exc


# The four released SAM-2 / SAM-2.1 image-encoder sizes (identical for 2 and 2.1 on the image path).
SAM2_ARCHITECTURES: dict[str, Sam2Architecture] = {
    "tiny": Sam2Architecture(blocks_per_stage=(1, 2, 7, 2), global_attention_blocks=(5, 7, 9)),
    "small": Sam2Architecture(),
    "base-plus": Sam2Architecture(
        embed_dim=112,
        num_heads=2,
        blocks_per_stage=(2, 3, 16, 3),
        global_attention_blocks=(12, 16, 20),
        window_pos_embed_background=(14, 14),
    ),
    "large": Sam2Architecture(
        embed_dim=144,
        num_heads=2,
        blocks_per_stage=(2, 6, 36, 4),
        global_attention_blocks=(23, 33, 43),
        window_size_per_stage=(8, 4, 16, 8),
    ),
}

# A few-hundred-KB SAM-2 for tests and CLI smoke runs (random weights; 128 px input, 8 x 8 embedding grid).
TINY_ARCHITECTURE = Sam2Architecture(
    image_size=128,
    embed_dim=16,
    num_heads=1,
    blocks_per_stage=(1, 1, 2, 1),
    global_attention_blocks=(3,),
    window_size_per_stage=(4, 2, 4, 2),
    window_pos_embed_background=(4, 4),
    hidden_size=32,
    decoder_mlp_dim=64,
    decoder_heads=2,
    iou_head_hidden_dim=32,
)


@dataclass
class LoraSettings(Config):
    """LoRA on the decoder's 28 attention projections (official: rank 8, alpha 16, dropout 0.1)."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.1
    init_a_std: float = 0.01  # official init: A ~ randn * 0.01, B = 0

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


@dataclass
class UnSAMv2Config(Config):
    """Everything needed to rebuild the model; saved as JSON next to every checkpoint.

    granularity: False builds plain SAM-2 (no granularity modules; g picks among SAM-2's three masks).
    lora: None means no adapters (plain SAM-2, or an UnSAMv2 whose LoRA was merged into the weights).
    dedicated_iou_head: False = official behaviour (granularity mask IoU from the frozen IoU head's channel 0).
    resize_mode: "squash" (default: resize to image_size x image_size ignoring the aspect ratio, what Meta's SAM-2
    predictor and transformers' Sam2ImageProcessor do, so what the released weights saw in training) or
    "longest_side_pad" (resize the long side to image_size, pad bottom/right).
    """

    name: str = "unsamv2-hiera-small"
    sam2: Sam2Architecture = field(default_factory=Sam2Architecture)
    granularity: bool = True
    lora: LoraSettings | None = field(default_factory=LoraSettings)
    dedicated_iou_head: bool = False
    resize_mode: str = "squash"
    mask_threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.resize_mode not in ("longest_side_pad", "squash"):
            raise CheckpointError(f"resize_mode must be longest_side_pad or squash, got {self.resize_mode!r}")


def tiny_config(name: str = "unsamv2-tiny-random", **changes) -> UnSAMv2Config:
    """The tiny random-weight configuration used by tests and CLI smoke runs."""
    return dataclasses.replace(UnSAMv2Config(name=name, sam2=TINY_ARCHITECTURE), **changes)


def named_config(name: str) -> UnSAMv2Config:
    """Config for a registered name: ``sam2-hiera-<size>``, ``sam2.1-hiera-<size>``, ``unsamv2-hiera-small``."""
    if name == "unsamv2-tiny-random":
        return tiny_config()
    if name == "unsamv2-hiera-small":
        return UnSAMv2Config(name=name, sam2=SAM2_ARCHITECTURES["small"])
    short = name.split("/")[-1]
    for prefix in ("sam2.1-hiera-", "sam2-hiera-"):
        if short.startswith(prefix) and short[len(prefix) :] in SAM2_ARCHITECTURES:
            return UnSAMv2Config(
                name=short, sam2=SAM2_ARCHITECTURES[short[len(prefix) :]], granularity=False, lora=None
            )
    raise CheckpointError(f"no built-in configuration named {name!r}")
