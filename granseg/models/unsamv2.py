"""UnSAMv2 on transformers' SAM-2: frozen ``Sam2Model`` + granularity encoder/token + LoRA (peft) on the decoder.

The SAM-2 parts (Hiera image encoder, FPN neck, prompt encoder, two-way transformer, heads) are transformers'
own modules, used as they are; this module adds the granularity prompt token and the granularity output token
(:mod:`granseg.models.granularity`), wraps the 28 attention projections of the decoder's two-way transformer with
peft LoRA adapters, and runs the decoder with the UnSAMv2 token order (docs/unsamv2.md):

* sparse prompt tokens: ``[points..., (padding point when no box) | box corners + padding, granularity]``;
* output tokens: ``[obj_score, iou, mask x4, granularity]`` followed by the sparse prompt tokens.

Shapes: ``B`` images, ``P`` prompts per image (a g-sweep is ``P = K`` prompts that share points and differ in g),
``N`` points, ``C`` decoder width (256 for every SAM-2 size), ``h x w`` the image-embedding grid (64 x 64 at 1024 px),
masks come out at ``4h x 4w`` (256 x 256) as logits. Point coordinates here are in pixels of the *model input*
(the resized 1024 px frame); :mod:`granseg.predict.predictor` maps original-image pixels to it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from granseg.config import Config
from granseg.errors import CheckpointError
from granseg.models.granularity import GranularityDecoderHead, GranularityPromptEncoder

# The 28 LoRA sites: q/k/v/out projections of self_attn, cross_attn_token_to_image, cross_attn_image_to_token in
# both two-way blocks (24) and of final_attn_token_to_image (4). Names are relative to the two-way transformer.
LORA_TARGET_REGEX = (
    r"(layers\.\d+\.(self_attn|cross_attn_token_to_image|cross_attn_image_to_token)|final_attn_token_to_image)"
    r"\.(q_proj|k_proj|v_proj|o_proj)"
)
GRANULARITY_TOKEN_INDEX = 6  # [obj_score, iou, mask x4, granularity]


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
    resize_mode: "longest_side_pad" (resize the long side to image_size, pad bottom/right) or "squash"
    (resize to image_size x image_size, what Meta's SAM-2 predictor does).
    """

    name: str = "unsamv2-hiera-small"
    sam2: Sam2Architecture = field(default_factory=Sam2Architecture)
    granularity: bool = True
    lora: LoraSettings | None = field(default_factory=LoraSettings)
    dedicated_iou_head: bool = False
    resize_mode: str = "longest_side_pad"
    mask_threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.resize_mode not in ("longest_side_pad", "squash"):
            raise CheckpointError(f"resize_mode must be longest_side_pad or squash, got {self.resize_mode!r}")


@dataclass
class UnSAMv2Output:
    """Decoder output.

    mask_logits:         ``(B, P, M, 4h, 4w)`` low-res logits; M = 1 (granularity or single mask) or 3 (multimask).
    iou_scores:          ``(B, P, M)`` predicted IoU in [0, 1].
    object_score_logits: ``(B, P, 1)`` object-presence logit.
    output_tokens:       ``(B, P, M, C)`` decoder output token of each returned mask (for a granularity mask: the
                         granularity token, which the official video model uses as the object pointer).
    """

    mask_logits: torch.Tensor
    iou_scores: torch.Tensor
    object_score_logits: torch.Tensor
    output_tokens: torch.Tensor


def lora_config(settings: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=LORA_TARGET_REGEX,
        bias="none",
    )


def lora_modules(module: nn.Module) -> dict[str, nn.Module]:
    """Name -> peft LoRA layer, for every adapted linear under ``module``."""
    from peft.tuners.lora import LoraLayer

    return {name: sub for name, sub in module.named_modules() if isinstance(sub, LoraLayer)}


class UnSAMv2Model(nn.Module):
    """SAM-2 (transformers) + UnSAMv2 granularity modules + decoder LoRA. See the module docstring for shapes.

    Submodules: ``sam`` (``transformers.Sam2Model``, frozen), ``granularity_encoder``
    (:class:`GranularityPromptEncoder`), ``granularity_head`` (:class:`GranularityDecoderHead`); LoRA adapters sit
    inside ``sam.mask_decoder.transformer``. ``passthrough`` keeps Meta-checkpoint tensors this image model does not
    use (the video memory modules) so that converting back to the Meta layout loses nothing.
    """

    # the keyword options create_predictor() takes (callers such as the CLI pass their cache/decoder flags by these)
    predictor_options = ("cache_dir", "cache_max_bytes", "decoder", "decoder_dtype")

    def __init__(self, config: UnSAMv2Config) -> None:
        super().__init__()
        from transformers import Sam2Model

        self.config = config
        hf_config = config.sam2.to_hf()
        hf_config._attn_implementation = "sdpa"
        self.sam = Sam2Model(hf_config)
        with torch.no_grad():  # Meta SAM-2 has one Gaussian matrix for prompts and the image-wide encoding
            self.sam.shared_image_embedding.positional_embedding.copy_(
                self.sam.prompt_encoder.shared_embedding.positional_embedding
            )
        hidden = config.sam2.hidden_size
        self.granularity_encoder: GranularityPromptEncoder | None = None
        self.granularity_head: GranularityDecoderHead | None = None
        if config.granularity:
            self.granularity_encoder = GranularityPromptEncoder(hidden)
            self.granularity_head = GranularityDecoderHead(
                hidden, config.dedicated_iou_head, config.sam2.iou_head_hidden_dim
            )
        if config.lora is not None:
            self._attach_lora(config.lora)
        self.passthrough: dict[str, torch.Tensor] = {}
        self.freeze_base()
        self.eval()

    # ----------------------------------------------------------------------------------------------- setup
    @property
    def name(self) -> str:
        return self.config.name

    def _attach_lora(self, settings: LoraSettings) -> None:
        from peft import inject_adapter_in_model

        transformer = self.sam.mask_decoder.transformer
        inject_adapter_in_model(lora_config(settings), transformer)
        adapted = lora_modules(transformer)
        if len(adapted) != 28:
            raise RuntimeError(f"expected 28 LoRA sites in the two-way transformer, found {len(adapted)}")
        with torch.no_grad():
            for layer in adapted.values():
                nn.init.normal_(layer.lora_A["default"].weight, std=settings.init_a_std)
                nn.init.zeros_(layer.lora_B["default"].weight)

    def freeze_base(self) -> None:
        """Only the granularity modules and LoRA adapters train; SAM-2 stays frozen."""
        for name, parameter in self.named_parameters():
            parameter.requires_grad = (
                name.startswith(("granularity_encoder.", "granularity_head.")) or ".lora_" in name
            )

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def parameter_counts(self) -> dict[str, int]:
        """``{"total", "trainable", "granularity", "lora"}`` parameter counts."""
        params = dict(self.named_parameters())
        return {
            "total": sum(p.numel() for p in params.values()),
            "trainable": sum(p.numel() for p in params.values() if p.requires_grad),
            "granularity": sum(p.numel() for n, p in params.items() if n.startswith("granularity_")),
            "lora": sum(p.numel() for n, p in params.items() if ".lora_" in n),
        }

    def create_predictor(
        self, cache_dir=None, decoder: str = "fast", decoder_dtype: str = "float32", **options
    ):
        """:class:`~granseg.predict.predictor.UnSAMv2Predictor` (see there for the options)."""
        from granseg.predict.predictor import UnSAMv2Predictor

        return UnSAMv2Predictor(
            self, cache_dir=cache_dir, decoder=decoder, decoder_dtype=decoder_dtype, **options
        )

    @property
    def device(self) -> torch.device:
        return self.sam.no_memory_embedding.device

    # ---------------------------------------------------------------------------------------------- image
    @torch.no_grad()
    def embed_image(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 3, S, S)`` normalised pixels -> ``[(B, C/8, 4h, 4w), (B, C/4, 2h, 2w), (B, C, h, w)]`` (the
        high-resolution features already projected by the decoder's conv_s0/conv_s1, as transformers does)."""
        return self.sam.get_image_embeddings(pixel_values)

    def image_positional_embeddings(self) -> torch.Tensor:
        """``(1, C, h, w)`` dense positional encoding of the embedding grid."""
        return self.sam.get_image_wide_positional_embeddings()

    # --------------------------------------------------------------------------------------------- prompts
    def encode_prompts(
        self,
        points: torch.Tensor | None,
        labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_logits: torch.Tensor | None = None,
        granularity: torch.Tensor | None = None,
        batch_size: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse and dense prompt embeddings.

        points ``(B, P, N, 2)`` model-input pixels, labels ``(B, P, N)`` (1, 0, -1 not-a-point, -10 ignore),
        boxes ``(B, P, 4)``, mask_logits ``(B or B*P, 1, 4h, 4w)``, granularity ``(B, P)``.
        Returns sparse ``(B, P, T, C)`` (granularity token last when given) and dense ``(B or B*P, C, h, w)``.
        """
        encoder = self.sam.prompt_encoder
        if points is None and boxes is None:  # transformers' convention: one not-a-point
            points = torch.zeros(batch_size, 1, 1, 2, device=self.device)
            labels = -torch.ones(batch_size, 1, 1, dtype=torch.long, device=self.device)
        if mask_logits is not None and tuple(mask_logits.shape[-2:]) != tuple(encoder.mask_input_size):
            raise ValueError(
                f"mask_logits must be (..., 1, {encoder.mask_input_size[0]}, {encoder.mask_input_size[1]})"
            )
        sparse, dense = encoder(points, labels, boxes, mask_logits)
        if granularity is not None:
            if self.granularity_encoder is None:
                raise ValueError(f"{self.name} has no granularity modules (plain SAM-2)")
            g_token = self.granularity_encoder(granularity).to(sparse.dtype)  # (B, P, C)
            sparse = torch.cat([sparse, g_token[:, :, None, :]], dim=2)
        return sparse, dense

    # --------------------------------------------------------------------------------------------- decoder
    def decode(
        self,
        image_embeddings: list[torch.Tensor],
        sparse: torch.Tensor,
        dense: torch.Tensor,
        with_granularity: bool,
        multimask_output: bool = True,
        image_positional_embeddings: torch.Tensor | None = None,
        transformer: nn.Module | None = None,
        fast: tuple | None = None,
    ) -> UnSAMv2Output:
        """Run SAM-2's mask decoder modules with the UnSAMv2 token order.

        with_granularity=True: output tokens ``[obj, iou, mask x4, granularity]``; returns the granularity mask only
        (M = 1). with_granularity=False: exactly SAM-2 (``[obj, iou, mask x4]``; M = 3 with multimask_output,
        else 1 chosen by transformers' stability rule in eval mode).
        ``transformer`` replaces the two-way transformer (e.g. the LoRA-merged copy from
        :func:`inference_transformer`, which predictors use: same outputs, no adapter overhead).
        ``fast = (FastMaskDecoder, DecoderImageState)`` runs the two-way transformer and upscaling with
        :mod:`granseg.models.fast_decoder` instead (inference, one image; the state must match ``dense``).
        """
        decoder = self.sam.mask_decoder
        features = image_embeddings[-1]
        batch, channels, height, width = features.shape
        prompts = sparse.shape[1]
        token_list = [decoder.obj_score_token.weight, decoder.iou_token.weight, decoder.mask_tokens.weight]
        if with_granularity:
            if self.granularity_head is None:
                raise ValueError(f"{self.name} has no granularity modules (plain SAM-2)")
            token_list.append(self.granularity_head.token.weight)
        output_tokens = torch.cat(token_list, dim=0).expand(batch, prompts, -1, -1)
        tokens = torch.cat([output_tokens, sparse.to(output_tokens.dtype)], dim=2)

        if fast is not None:
            if batch != 1:
                raise ValueError("the fast decoder runs one image at a time")
            engine, state = fast
            tokens_out, keys = engine.transformer(state, tokens[0])
            tokens_out = tokens_out.to(tokens.dtype)[None]

            def project(hyper: torch.Tensor) -> torch.Tensor:
                return engine.masks(state, keys, hyper[0])[None]

        else:
            tokens_out, upscaled = self._reference_transformer_and_upscaling(
                image_embeddings, tokens, dense, image_positional_embeddings, transformer
            )

            def project(hyper: torch.Tensor) -> torch.Tensor:
                return (hyper @ upscaled).view(batch, prompts, -1, 4 * height, 4 * width)

        object_score_logits = decoder.pred_obj_score_head(tokens_out[:, :, 0, :])
        if with_granularity:
            head = self.granularity_head
            g_token = tokens_out[
                :, :, GRANULARITY_TOKEN_INDEX : GRANULARITY_TOKEN_INDEX + 1, :
            ]  # (B, P, 1, C)
            hyper = head.hypernetwork(g_token)  # (B, P, 1, C/8)
            masks = project(hyper)
            if head.iou_head is not None:
                iou = head.iou_head(g_token[:, :, 0, :])
            else:  # official: the frozen IoU head's channel 0
                iou = decoder.iou_prediction_head(tokens_out[:, :, 1, :])[..., :1]
            return UnSAMv2Output(masks, iou, object_score_logits, g_token)

        mask_tokens = tokens_out[:, :, 2 : 2 + decoder.num_mask_tokens, :]
        hyper = torch.stack(
            [mlp(mask_tokens[:, :, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=2
        )
        masks = project(hyper)
        iou = decoder.iou_prediction_head(tokens_out[:, :, 1, :])
        if multimask_output:
            masks, iou, mask_tokens = masks[:, :, 1:], iou[:, :, 1:], mask_tokens[:, :, 1:]
        elif decoder.dynamic_multimask_via_stability and not self.training:
            masks, iou = decoder._dynamic_multimask_via_stability(masks, iou)
            mask_tokens = mask_tokens[:, :, :1]
        else:
            masks, iou, mask_tokens = masks[:, :, :1], iou[:, :, :1], mask_tokens[:, :, :1]
        return UnSAMv2Output(masks, iou, object_score_logits, mask_tokens)

    def _reference_transformer_and_upscaling(
        self,
        image_embeddings: list[torch.Tensor],
        tokens: torch.Tensor,
        dense: torch.Tensor,
        image_positional_embeddings: torch.Tensor | None,
        transformer: nn.Module | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """transformers' modules: tokens ``(B, P, T, C)`` -> ``(tokens_out (B, P, T, C),
        upscaled (B, P, C/8, 16 h w))``."""
        decoder = self.sam.mask_decoder
        features = image_embeddings[-1]
        batch, channels, height, width = features.shape
        prompts = tokens.shape[1]
        if image_positional_embeddings is None:
            image_positional_embeddings = self.image_positional_embeddings()
        # (1, C, h, w) broadcasts inside the transformer: no per-prompt copy of the positional encoding.
        positional = image_positional_embeddings[:1]
        transformer = transformer or decoder.transformer
        if dense.shape[0] == batch and not self.training:
            # Inference with one dense prompt per image: the first two-way block's image-side work is shared
            # by all P prompts (see shared_first_block_transformer).
            tokens_out, image_out = shared_first_block_transformer(
                transformer, tokens, features + dense, positional
            )
        else:
            if dense.shape[0] == batch:
                image = (features + dense).repeat_interleave(prompts, dim=0)
            elif dense.shape[0] == batch * prompts:
                image = features.repeat_interleave(prompts, dim=0) + dense
            else:
                raise ValueError(
                    f"dense prompts for {dense.shape[0]} masks, expected {batch} or {batch * prompts}"
                )
            tokens_out, image_out = transformer(
                point_embeddings=tokens,
                image_embeddings=image,
                image_positional_embeddings=positional,
                attention_similarity=None,
            )
        image_out = image_out.transpose(2, 3).reshape(batch * prompts, channels, height, width)
        feat_s0, feat_s1 = image_embeddings[0], image_embeddings[1]
        if prompts > 1 and batch > 1:
            feat_s0 = feat_s0.repeat_interleave(prompts, dim=0)
            feat_s1 = feat_s1.repeat_interleave(prompts, dim=0)
        # with one image the (1, ...) high-resolution features broadcast over the P prompts (no copies)
        upscaled = decoder.activation(decoder.upscale_layer_norm(decoder.upscale_conv1(image_out) + feat_s1))
        upscaled = decoder.activation(decoder.upscale_conv2(upscaled) + feat_s0)
        _, up_channels, up_height, up_width = upscaled.shape
        return tokens_out, upscaled.view(batch, prompts, up_channels, up_height * up_width)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        image_embeddings: list[torch.Tensor] | None = None,
        input_points: torch.Tensor | None = None,
        input_labels: torch.Tensor | None = None,
        input_boxes: torch.Tensor | None = None,
        input_masks: torch.Tensor | None = None,
        granularity: torch.Tensor | None = None,
        multimask_output: bool = True,
    ) -> UnSAMv2Output:
        """Full forward. ``granularity (B, P)`` given -> the granularity mask; None -> plain SAM-2 outputs.
        Give exactly one of ``pixel_values (B, 3, S, S)`` and ``image_embeddings`` (from :meth:`embed_image`)."""
        if (pixel_values is None) == (image_embeddings is None):
            raise ValueError("give exactly one of pixel_values and image_embeddings")
        if image_embeddings is None:
            image_embeddings = self.embed_image(pixel_values)
        if input_points is not None and input_labels is None:
            input_labels = torch.ones(input_points.shape[:-1], dtype=torch.long, device=input_points.device)
        sparse, dense = self.encode_prompts(
            input_points,
            input_labels,
            input_boxes,
            input_masks,
            granularity,
            batch_size=image_embeddings[-1].shape[0],
        )
        return self.decode(image_embeddings, sparse, dense, granularity is not None, multimask_output)


def _attention_heads(
    attention: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
) -> torch.Tensor:
    """transformers' ``Sam2Attention`` math for inputs ``(N, L, C)`` (N shared by q/k/v): ``(N, Lq, C)``."""
    heads, head_dim = attention.num_attention_heads, attention.head_dim
    q = attention.q_proj(query).unflatten(-1, (heads, head_dim)).transpose(1, 2)
    k = attention.k_proj(key).unflatten(-1, (heads, head_dim)).transpose(1, 2)
    v = attention.v_proj(value).unflatten(-1, (heads, head_dim)).transpose(1, 2)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=attention.scaling)
    return attention.o_proj(out.transpose(1, 2).flatten(-2))


def shared_first_block_transformer(
    transformer: nn.Module, tokens: torch.Tensor, image: torch.Tensor, positional: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' ``Sam2TwoWayTransformer.forward`` for P prompts that share one image (eval mode).

    tokens ``(B, P, T, C)``; image ``(B, C, h, w)`` (embedding + dense prompt, *not* repeated per prompt);
    positional ``(1, C, h, w)``. Returns ``(tokens (B, P, T, C), keys (B*P, 1, h*w, C))`` like transformers.

    In the first block the image tokens are still identical for every prompt, so the token-to-image keys/values
    and the image-to-token queries are projected once instead of P times, and the P prompts' tokens attend to
    them as one longer query sequence (attention is independent per query: same result). Later blocks run
    transformers' own modules on the per-prompt image tokens.
    """
    first, rest = transformer.layers[0], transformer.layers[1:]
    if not first.skip_first_layer_pe:
        raise RuntimeError("expected SAM-2's first two-way block (skip_first_layer_pe=True)")
    batch, prompts, count, channels = tokens.shape
    keys = image.flatten(2).transpose(1, 2)  # (B, hw, C)
    key_pe = positional.flatten(2).transpose(1, 2)  # (1, hw, C)
    keys_with_pe = keys + key_pe

    queries, _ = first.self_attn(query=tokens, key=tokens, value=tokens)
    queries = first.layer_norm1(queries)
    flat = (queries + tokens).reshape(batch, prompts * count, channels)
    attn_out = _attention_heads(first.cross_attn_token_to_image, flat, keys_with_pe, keys)
    queries = first.layer_norm2(queries + attn_out.view(batch, prompts, count, channels))
    queries = first.layer_norm3(queries + first.mlp(queries))

    image_to_token = first.cross_attn_image_to_token
    heads, head_dim = image_to_token.num_attention_heads, image_to_token.head_dim
    token_side = (queries + tokens).reshape(batch * prompts, count, channels)
    q = image_to_token.q_proj(keys_with_pe).unflatten(-1, (heads, head_dim)).transpose(1, 2)  # (B, H, hw, d)
    q = q.repeat_interleave(prompts, dim=0)
    k = image_to_token.k_proj(token_side).unflatten(-1, (heads, head_dim)).transpose(1, 2)
    v = image_to_token.v_proj(queries.reshape(batch * prompts, count, channels))
    v = v.unflatten(-1, (heads, head_dim)).transpose(1, 2)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=image_to_token.scaling)
    out = image_to_token.o_proj(out.transpose(1, 2).flatten(-2))  # (B*P, hw, C)
    keys = first.layer_norm4(keys.repeat_interleave(prompts, dim=0) + out).unsqueeze(1)  # (B*P, 1, hw, C)

    key_pe = key_pe.unsqueeze(1)  # (1, 1, hw, C)
    for layer in rest:
        queries, keys, _ = layer(
            queries=queries,
            keys=keys,
            query_point_embedding=tokens,
            key_point_embedding=key_pe,
            attention_similarity=None,
        )
    attn_out, _ = transformer.final_attn_token_to_image(query=queries + tokens, key=keys + key_pe, value=keys)
    queries = transformer.layer_norm_final_attn(queries + attn_out)
    return queries, keys


def inference_transformer(model: UnSAMv2Model) -> nn.Module:
    """A copy of the decoder's two-way transformer with every LoRA adapter merged into a plain ``nn.Linear``
    (``W + (alpha / r) * B @ A``). Same outputs as the adapted module in eval mode, without peft's per-call
    overhead (the rank-8 matmuls on 4096 image tokens cost more than the base projections on CPU)."""
    import copy

    transformer = copy.deepcopy(model.sam.mask_decoder.transformer).eval()
    for name, layer in lora_modules(transformer).items():
        base = layer.base_layer
        merged = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
        with torch.no_grad():
            delta = layer.lora_B["default"].weight @ layer.lora_A["default"].weight
            merged.weight.copy_(base.weight + layer.scaling["default"] * delta)
            if base.bias is not None:
                merged.bias.copy_(base.bias)
        parent_name, _, child = name.rpartition(".")
        setattr(
            transformer.get_submodule(parent_name), child, merged.to(base.weight.device, base.weight.dtype)
        )
    for parameter in transformer.parameters():
        parameter.requires_grad = False
    return transformer


def build_unsamv2(config: UnSAMv2Config, device: str = "cpu", seed: int | None = 0) -> UnSAMv2Model:
    """A randomly initialised model for ``config`` (deterministic for a given seed)."""
    if seed is not None:
        torch.manual_seed(seed)
    return UnSAMv2Model(config).to(device)


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


# ------------------------------------------------------------------------------------------ registry builders
def _named_builder(name: str):
    def build(device: str = "cpu", **overrides):
        from granseg.models.checkpoints import build_named_model

        return build_named_model(name, device=device, **overrides)

    build.__name__ = "build_" + name.replace("/", "_").replace("-", "_").replace(".", "_")
    build.__doc__ = f"Build {name!r} (local weights only; see granseg.models.checkpoints.build_named_model)."
    return build


build_unsamv2_tiny_random = _named_builder("unsamv2-tiny-random")
build_unsamv2_hiera_small = _named_builder("unsamv2-hiera-small")
build_sam2_hiera_tiny = _named_builder("sam2-hiera-tiny")
build_sam2_hiera_small = _named_builder("sam2-hiera-small")
build_sam2_hiera_base_plus = _named_builder("sam2-hiera-base-plus")
build_sam2_hiera_large = _named_builder("sam2-hiera-large")
build_sam2_1_hiera_tiny = _named_builder("sam2.1-hiera-tiny")
build_sam2_1_hiera_small = _named_builder("sam2.1-hiera-small")
build_sam2_1_hiera_base_plus = _named_builder("sam2.1-hiera-base-plus")
build_sam2_1_hiera_large = _named_builder("sam2.1-hiera-large")
