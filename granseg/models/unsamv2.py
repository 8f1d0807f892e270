"""UnSAMv2 on transformers' SAM-2: frozen ``Sam2Model`` + granularity encoder/token + LoRA (peft) on the decoder.

The SAM-2 parts (Hiera image encoder, FPN neck, prompt encoder, two-way transformer, heads) are transformers'
own modules, used as they are; this module adds the granularity prompt token and the granularity output token
(:mod:`granseg.models.granularity`), wraps the 28 attention projections of the decoder's two-way transformer with
peft LoRA adapters (:mod:`granseg.models.lora`), and runs the decoder with the UnSAMv2 token order
(docs/unsamv2.md):

* sparse prompt tokens: ``[points..., (padding point when no box) | box corners + padding, granularity]``;
* output tokens: ``[obj_score, iou, mask x4, granularity]`` followed by the sparse prompt tokens.

Shapes: ``B`` images, ``P`` prompts per image (a g-sweep is ``P = K`` prompts that share points and differ in g),
``N`` points, ``C`` decoder width (256 for every SAM-2 size), ``h x w`` the image-embedding grid (64 x 64 at 1024 px),
masks come out at ``4h x 4w`` (256 x 256) as logits. Point coordinates here are in pixels of the *model input*
(the resized 1024 px frame); :mod:`granseg.predict.unsamv2` maps original-image pixels to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from granseg.models.fast_decoder import DecoderImageState, FastMaskDecoder
from granseg.models.granularity import GranularityDecoderHead, GranularityPromptEncoder
from granseg.models.lora import LORA_TARGET_REGEX, attach_lora, lora_config, lora_modules
from granseg.models.unsamv2_config import (
    SAM2_ARCHITECTURES,
    TINY_ARCHITECTURE,
    LoraSettings,
    Sam2Architecture,
    UnSAMv2Config,
    named_config,
    tiny_config,
)

__all__ = [  # the config and LoRA names are re-exported: `from granseg.models.unsamv2 import ...` gets them all
    "GRANULARITY_TOKEN_INDEX",
    "LORA_TARGET_REGEX",
    "SAM2_ARCHITECTURES",
    "TINY_ARCHITECTURE",
    "LoraSettings",
    "Sam2Architecture",
    "UnSAMv2Config",
    "UnSAMv2Model",
    "UnSAMv2Output",
    "build_unsamv2",
    "lora_config",
    "lora_modules",
    "named_config",
    "tiny_config",
]

GRANULARITY_TOKEN_INDEX = 6  # [obj_score, iou, mask x4, granularity]


@dataclass
class UnSAMv2Output:
    """Decoder output.

    mask_logits:         ``(B, P, M, 4h, 4w)`` low-res logits; M = 1 (granularity or single mask) or 3 (multimask).
    iou_scores:          ``(B, P, M)`` predicted IoU in [0, 1].
    object_score_logits: ``(B, P, 1)`` object-presence logit.
    output_tokens:       ``(B, P, M, C)`` decoder output token of each returned mask (for a granularity mask: the
                         granularity token, which the official video model uses as the object pointer).
    multimask_logits:    ``(B, P, 3, 4h, 4w)`` SAM-2's three multimask outputs of the same decoder pass, only when a
                         granularity mask was asked for with ``auxiliary_multimask=True`` (training); else None.
    multimask_iou:       ``(B, P, 3)`` their predicted IoU (the IoU head's channels 1-3), or None.
    """

    mask_logits: torch.Tensor
    iou_scores: torch.Tensor
    object_score_logits: torch.Tensor
    output_tokens: torch.Tensor
    multimask_logits: torch.Tensor | None = None
    multimask_iou: torch.Tensor | None = None


class UnSAMv2Model(nn.Module):
    """SAM-2 (transformers) + UnSAMv2 granularity modules + decoder LoRA. See the module docstring for shapes.

    Submodules: ``sam`` (``transformers.Sam2Model``, frozen), ``granularity_encoder``
    (:class:`GranularityPromptEncoder`), ``granularity_head`` (:class:`GranularityDecoderHead`); LoRA adapters sit
    inside ``sam.mask_decoder.transformer``. ``passthrough`` keeps Meta-checkpoint tensors this image model does not
    use (the video memory modules) so that converting back to the Meta layout loses nothing.
    """

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
        self._fast_decoders: dict[torch.dtype, FastMaskDecoder] = {}
        self.freeze_base()
        self.eval()

    # ----------------------------------------------------------------------------------------------- setup
    @property
    def name(self) -> str:
        return self.config.name

    def _attach_lora(self, settings: LoraSettings) -> None:
        attach_lora(self.sam.mask_decoder.transformer, settings)

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
    def fast_decoder(self, dtype: torch.dtype = torch.float32, refresh: bool = False) -> FastMaskDecoder:
        """The fast decoder this model holds (one per dtype, built on first use): a snapshot of the mask
        decoder's weights with LoRA merged (:mod:`granseg.models.fast_decoder`). ``refresh=True`` re-reads the
        weights (after training steps or ``load_state_dict``). It follows ``model.to(...)``; it is not part of
        the model's ``state_dict`` (it is derived from it)."""
        decoder = self._fast_decoders.get(dtype)
        if decoder is None or refresh:
            decoder = FastMaskDecoder(self, dtype).to(self.device)
            self._fast_decoders[dtype] = decoder
        return decoder

    def _apply(self, fn, recurse: bool = True):
        # .to() / .cuda() / .float() reach the held fast decoders too (they sit outside the module tree so that
        # checkpoints stay the model's own weights).
        super()._apply(fn, recurse)
        for decoder in self._fast_decoders.values():
            decoder._apply(fn, recurse)
        return self

    def decode(
        self,
        image_embeddings: list[torch.Tensor],
        sparse: torch.Tensor,
        dense: torch.Tensor,
        with_granularity: bool,
        multimask_output: bool = True,
        image_positional_embeddings: torch.Tensor | None = None,
        fast_state: DecoderImageState | None = None,
        auxiliary_multimask: bool = False,
    ) -> UnSAMv2Output:
        """Run SAM-2's mask decoder with the UnSAMv2 token order.

        with_granularity=True: output tokens ``[obj, iou, mask x4, granularity]``; returns the granularity mask only
        (M = 1). with_granularity=False: exactly SAM-2 (``[obj, iou, mask x4]``; M = 3 with multimask_output,
        else 1 chosen by transformers' stability rule in eval mode).
        Without ``fast_state`` the two-way transformer and the upscaling are transformers' modules (with their
        peft adapters: the reference, and the path training takes). With ``fast_state`` (from
        ``model.fast_decoder(dtype).image_state(...)``, matching ``dense``; inference, one image) they run in
        the fast decoder the state belongs to; the token heads are this model's modules either way.
        ``auxiliary_multimask`` (with granularity): also return SAM-2's three multimask outputs of the same pass
        (``multimask_logits`` / ``multimask_iou``), for the trainer's auxiliary best-of-3 loss.
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

        if fast_state is not None:
            if batch != 1:
                raise ValueError("the fast decoder runs one image at a time")
            engine = fast_state.decoder
            tokens_out, keys = engine.transformer(fast_state, tokens[0])
            tokens_out = tokens_out.to(tokens.dtype)[None]

            def project(hyper: torch.Tensor) -> torch.Tensor:
                return engine.masks(fast_state, keys, hyper[0])[None]

        else:
            tokens_out, upscaled = self._reference_transformer_and_upscaling(
                image_embeddings, tokens, dense, image_positional_embeddings
            )

            def project(hyper: torch.Tensor) -> torch.Tensor:
                return (hyper @ upscaled).view(batch, prompts, -1, 4 * height, 4 * width)

        return self._heads(tokens_out, project, with_granularity, multimask_output, auxiliary_multimask)

    def _heads(
        self,
        tokens_out: torch.Tensor,
        project,
        with_granularity: bool,
        multimask_output: bool,
        auxiliary_multimask: bool = False,
    ) -> UnSAMv2Output:
        """Object score, hypernetworks and IoU heads on the two-way transformer's output tokens
        ``(B, P, T, C)``; ``project(hyper (B, P, M, C/8)) -> (B, P, M, 4h, 4w)`` applies the upscaled image."""
        decoder = self.sam.mask_decoder
        object_score_logits = decoder.pred_obj_score_head(tokens_out[:, :, 0, :])
        if with_granularity:
            head = self.granularity_head
            g_token = tokens_out[
                :, :, GRANULARITY_TOKEN_INDEX : GRANULARITY_TOKEN_INDEX + 1, :
            ]  # (B, P, 1, C)
            masks = project(head.hypernetwork(g_token))  # hypernetwork: (B, P, 1, C/8)
            if head.iou_head is not None:
                iou = head.iou_head(g_token[:, :, 0, :])
            else:  # official: the frozen IoU head's channel 0
                iou = decoder.iou_prediction_head(tokens_out[:, :, 1, :])[..., :1]
            output = UnSAMv2Output(masks, iou, object_score_logits, g_token)
            if auxiliary_multimask:
                sam_output = self._heads(tokens_out, project, False, True)
                output.multimask_logits, output.multimask_iou = sam_output.mask_logits, sam_output.iou_scores
            return output

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
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """transformers' modules: tokens ``(B, P, T, C)`` -> ``(tokens_out (B, P, T, C),
        upscaled (B, P, C/8, 16 h w))``. The image tokens are repeated per prompt, as transformers does."""
        decoder = self.sam.mask_decoder
        features = image_embeddings[-1]
        batch, channels, height, width = features.shape
        prompts = tokens.shape[1]
        if image_positional_embeddings is None:
            image_positional_embeddings = self.image_positional_embeddings()
        # (1, C, h, w) broadcasts inside the transformer: no per-prompt copy of the positional encoding.
        positional = image_positional_embeddings[:1]
        if dense.shape[0] == batch:
            image = (features + dense).repeat_interleave(prompts, dim=0)
        elif dense.shape[0] == batch * prompts:
            image = features.repeat_interleave(prompts, dim=0) + dense
        else:
            raise ValueError(
                f"dense prompts for {dense.shape[0]} masks, expected {batch} or {batch * prompts}"
            )
        tokens_out, image_out = decoder.transformer(
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
        auxiliary_multimask: bool = False,
    ) -> UnSAMv2Output:
        """Full forward. ``granularity (B, P)`` given -> the granularity mask; None -> plain SAM-2 outputs.
        Give exactly one of ``pixel_values (B, 3, S, S)`` and ``image_embeddings`` (from :meth:`embed_image`).
        ``auxiliary_multimask``: see :meth:`decode`."""
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
        return self.decode(
            image_embeddings,
            sparse,
            dense,
            granularity is not None,
            multimask_output,
            auxiliary_multimask=auxiliary_multimask and granularity is not None,
        )


def build_unsamv2(config: UnSAMv2Config, device: str = "cpu", seed: int | None = 0) -> UnSAMv2Model:
    """A randomly initialised model for ``config`` (deterministic for a given seed)."""
    if seed is not None:
        torch.manual_seed(seed)
    return UnSAMv2Model(config).to(device)
