"""UnSAMv2 on transformers' ``Sam2VideoModel``: SAM-2's memory attention, memory encoder and object pointers, with
the granularity prompt token and the granularity output token on every frame (DESIGN sec. 4).

:class:`UnSAMv2VideoModel` subclasses ``Sam2VideoModel`` and swaps two of its modules for subclasses:

* :class:`GranularityVideoPromptEncoder` appends the granularity prompt token (the image model's
  :class:`~granseg.models.granularity.GranularityPromptEncoder`) after the point tokens while a g is set;
* :class:`GranularityVideoMaskDecoder` adds the granularity output token after ``[obj_score, iou, mask x4]`` and
  returns the granularity mask only (``M = 1``), its IoU from the frozen IoU head's channel 0 (or the dedicated
  head), and the granularity token's output as the SAM output token, so the object pointer is taken from it.

Everything else (frame features, memory conditioning, memory encoding, object pointers) is transformers' code.
:meth:`UnSAMv2VideoModel.at_granularity` sets the g of the decoder calls inside it. :func:`build_video_model` makes
the video model from an :class:`~granseg.models.unsamv2.UnSAMv2Model` (same config, same weights, LoRA merged);
the memory tensors come from the image model's ``passthrough`` (the Meta-named video tensors of the checkpoint it
was loaded from, renamed by :mod:`granseg.models.video_keys`), or are random (seeded) when it has none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers.models.sam2_video.modeling_sam2_video import (
    Sam2VideoMaskDecoder,
    Sam2VideoModel,
    Sam2VideoPromptEncoder,
    Sam2VideoRoPEAttention,
)

from granseg.errors import CheckpointError
from granseg.models.granularity import GranularityDecoderHead, GranularityPromptEncoder
from granseg.models.unsamv2 import UnSAMv2Model
from granseg.models.video_config import VideoMemoryConfig, video_config_from_meta
from granseg.models.video_keys import is_hf_video_key, is_meta_video_key, load_meta_video_weights


class GranularityVideoPromptEncoder(Sam2VideoPromptEncoder):
    """transformers' prompt encoder; while ``granularity`` (a ``(1, 1)`` tensor) is set, the granularity token is
    appended to the sparse embeddings: ``(B, P, N, C) -> (B, P, N + 1, C)``."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.granularity_encoder = GranularityPromptEncoder(config.hidden_size)
        self.granularity: torch.Tensor | None = None

    def forward(self, input_points, input_labels, input_boxes, input_masks):
        sparse, dense = super().forward(input_points, input_labels, input_boxes, input_masks)
        if self.granularity is None:
            return sparse, dense
        batch, prompts = sparse.shape[:2]
        g_token = self.granularity_encoder(self.granularity.expand(batch, prompts)).to(sparse.dtype)
        return torch.cat([sparse, g_token[:, :, None, :]], dim=2), dense


class GranularityVideoMaskDecoder(Sam2VideoMaskDecoder):
    """transformers' mask decoder plus the granularity output token (:class:`GranularityDecoderHead`). With
    ``use_granularity`` False it is transformers' decoder unchanged."""

    def __init__(self, config, dedicated_iou_head: bool = False) -> None:
        super().__init__(config)
        self.granularity_head = GranularityDecoderHead(
            config.hidden_size, dedicated_iou_head, config.iou_head_hidden_dim
        )
        self.use_granularity = False

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_positional_embeddings: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        high_resolution_features: list[torch.Tensor],
        attention_similarity: torch.Tensor | None = None,
        target_embedding: torch.Tensor | None = None,
        **kwargs,
    ):
        """As ``Sam2VideoMaskDecoder.forward``; with the granularity: tokens ``[obj, iou, mask x4, granularity]``
        + sparse prompts, returns ``masks (B, P, 1, 4h, 4w)``, ``iou (B, P, 1)``, ``g_token (B, P, 1, C)``,
        ``object_score_logits (B, P, 1)`` whatever ``multimask_output`` says."""
        if not self.use_granularity:
            return super().forward(
                image_embeddings,
                image_positional_embeddings,
                sparse_prompt_embeddings,
                dense_prompt_embeddings,
                multimask_output,
                high_resolution_features,
                attention_similarity,
                target_embedding,
                **kwargs,
            )
        head = self.granularity_head
        batch, channels, height, width = image_embeddings.shape
        prompts = sparse_prompt_embeddings.shape[1]
        weights = [
            self.obj_score_token.weight,
            self.iou_token.weight,
            self.mask_tokens.weight,
            head.token.weight,
        ]
        output_tokens = torch.cat(weights, dim=0).repeat(batch, prompts, 1, 1)
        tokens = torch.cat([output_tokens, sparse_prompt_embeddings.to(output_tokens.dtype)], dim=2)
        image = (image_embeddings + dense_prompt_embeddings).repeat_interleave(prompts, dim=0)
        positional = image_positional_embeddings.repeat_interleave(prompts, 0)
        tokens_out, image_out = self.transformer(
            point_embeddings=tokens,
            image_embeddings=image,
            image_positional_embeddings=positional,
            attention_similarity=attention_similarity,
            target_embedding=target_embedding,
            **kwargs,
        )
        image_out = image_out.transpose(2, 3).reshape(batch * prompts, channels, height, width)
        feat_s0, feat_s1 = (f.repeat_interleave(prompts, dim=0) for f in high_resolution_features)
        upscaled = self.activation(self.upscale_layer_norm(self.upscale_conv1(image_out) + feat_s1))
        upscaled = self.activation(self.upscale_conv2(upscaled) + feat_s0)
        _, up_channels, up_height, up_width = upscaled.shape
        upscaled = upscaled.view(batch, prompts, up_channels, up_height * up_width)
        g_token = tokens_out[:, :, 2 + self.num_mask_tokens : 3 + self.num_mask_tokens, :]  # (B, P, 1, C)
        masks = (head.hypernetwork(g_token) @ upscaled).view(batch, prompts, 1, up_height, up_width)
        if head.iou_head is not None:
            iou = head.iou_head(g_token[:, :, 0, :])
        else:  # official: the frozen IoU head's channel 0
            iou = self.iou_prediction_head(tokens_out[:, :, 1, :])[..., :1]
        object_score_logits = self.pred_obj_score_head(tokens_out[:, :, 0, :])
        return masks, iou, g_token, object_score_logits


class UnSAMv2VideoModel(Sam2VideoModel):
    """``Sam2VideoModel`` with UnSAMv2's granularity modules (``granularity=False``: plain SAM-2 video).

    State-dict names are transformers' own plus ``prompt_encoder.granularity_encoder.*`` and
    ``mask_decoder.granularity_head.*``. Differences from ``Sam2VideoModel`` beyond the granularity: with
    ``num_maskmem = 0`` (memory disabled) the no-memory embedding is added to every frame's features, as SAM-2's
    image predictor does, so that a memory-less session decodes each frame exactly as the image model does; the
    memory attention's cross-attention takes ``memory_encoder_output_channels`` inputs (transformers fixes 64,
    the released models' value; smaller test models use ``C / 4``).
    """

    def __init__(self, config, granularity: bool = True, dedicated_iou_head: bool = False) -> None:
        super().__init__(config)
        if (
            config.memory_encoder_output_channels != 64
        ):  # transformers builds these for 64 memory channels only
            for layer in self.memory_attention.layers:
                layer.cross_attn_image = Sam2VideoRoPEAttention(
                    config, kv_in_dim=config.memory_encoder_output_channels, rope_k_repeat=True
                )
        self.has_granularity = granularity
        if granularity:
            self.prompt_encoder = GranularityVideoPromptEncoder(config.prompt_encoder_config)
            self.mask_decoder = GranularityVideoMaskDecoder(config.mask_decoder_config, dedicated_iou_head)
        self.eval()

    @contextmanager
    def at_granularity(self, granularity: float | None) -> Iterator[None]:
        """Decoder calls inside use the granularity token at ``granularity`` (None, or a plain SAM-2 model:
        transformers' decoder as it is)."""
        if granularity is None or not self.has_granularity:
            yield
            return
        value = torch.tensor([[float(granularity)]], device=self.no_memory_embedding.device)
        self.prompt_encoder.granularity = value
        self.mask_decoder.use_granularity = True
        try:
            yield
        finally:
            self.prompt_encoder.granularity = None
            self.mask_decoder.use_granularity = False

    def _prepare_memory_conditioned_features(
        self,
        inference_session,
        frame_idx,
        obj_idx,
        is_initial_conditioning_frame,
        current_vision_features,
        current_vision_positional_embeddings,
        num_total_frames,
        track_in_reverse_time=False,
        streaming=False,
    ):
        if self.num_maskmem == 0:  # memory disabled: SAM-2's image path (features + no-memory embedding)
            batch = current_vision_features.size(1)
            height, width = self.backbone_feature_sizes[-1]
            features = current_vision_features + self.no_memory_embedding
            return features.permute(1, 2, 0).view(batch, self.hidden_dim, height, width)
        return super()._prepare_memory_conditioned_features(
            inference_session,
            frame_idx,
            obj_idx,
            is_initial_conditioning_frame,
            current_vision_features,
            current_vision_positional_embeddings,
            num_total_frames,
            track_in_reverse_time,
            streaming,
        )


def _image_state_dict(model: UnSAMv2Model) -> dict[str, torch.Tensor]:
    """The image model's weights (LoRA merged) under :class:`UnSAMv2VideoModel` names."""
    from granseg.models.checkpoints.convert import merged_state_dict

    out = {}
    for key, value in merged_state_dict(model).items():
        if key.startswith("sam."):
            out[key[4:]] = value
        elif key.startswith("granularity_encoder."):
            out["prompt_encoder." + key] = value
        elif key.startswith("granularity_head."):
            out["mask_decoder." + key] = value
        else:
            raise CheckpointError(f"unexpected image-model tensor {key!r}")
    return out


def build_video_model(
    model: UnSAMv2Model, memory: VideoMemoryConfig | None = None, seed: int | None = 0
) -> UnSAMv2VideoModel:
    """The video model of ``model`` (an :class:`UnSAMv2Model`): same architecture and image weights (LoRA
    merged), the memory modules from ``model.passthrough`` when it holds a checkpoint's video tensors (their
    settings read from them; ``memory`` may then only change settings that have no tensors, such as
    ``max_object_pointers``), else randomly initialised (seeded) with ``memory``'s settings."""
    meta_video = {k: v for k, v in model.passthrough.items() if is_meta_video_key(k)}
    if meta_video:
        memory = video_config_from_meta(meta_video, memory)
    memory = memory or VideoMemoryConfig()
    hf_config = memory.to_hf(model.config.sam2)
    if seed is not None:
        torch.manual_seed(seed)
    video = UnSAMv2VideoModel(hf_config, model.config.granularity, model.config.dedicated_iou_head)
    video.memory_config = memory
    video.image_config = model.config
    own = video.state_dict()
    image = _image_state_dict(model)
    missing = sorted(k for k in own if not is_hf_video_key(k) and k not in image)
    unexpected = sorted(k for k in image if k not in own)
    if missing or unexpected:
        raise CheckpointError(
            f"image weights do not fit the video model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    with torch.no_grad():
        for key, value in image.items():
            own[key].copy_(value)
    if meta_video:  # Meta's no_mem_embed is an image tensor too: the image converter has it
        meta_video.setdefault("no_mem_embed", image["no_memory_embedding"])
        load_meta_video_weights(video, meta_video)
    return video.to(model.device).eval()
