"""The neural video backend of :class:`granseg.predict.video.VideoSession`: UnSAMv2 (or plain SAM-2) on
transformers' ``Sam2VideoModel`` memory (:class:`granseg.models.video_model.UnSAMv2VideoModel`).

One pass of the session (:meth:`NeuralVideoTracker.run`) drives transformers' own per-frame steps
(``_run_single_frame_inference``: memory attention over the memory bank and the object pointers, the mask decoder
with the granularity token; ``_batch_encode_memories``: the memory encoder) object by object, on a
:class:`LazyInferenceSession` (transformers' ``Sam2VideoInferenceSession`` whose frames are read and pre-processed
only when the model asks for them). Per object and frame:

* a frame with a prompt for the object is a conditioning frame, decoded from the prompt alone (SAM-2's behaviour
  for prompts given before propagation) at the prompt's g; its memory stays in the bank for the whole pass;
* any other frame is decoded from its features conditioned on the memory bank (the object's conditioning frames
  plus its ``num_maskmem - 1`` most recent frames of this pass) and object pointers, at the g of the object's last
  prompt met in this pass (the granularity token is given on every frame);
* each object's memory is encoded on its own (no batching across objects, so no object's prompts change
  another's masks).

Bounded memory: the session caches the features of one frame (embeddings dropped once used), and after every
step the tracked frames that the memory bank and the object pointers can no longer reach are deleted together
with every stored full-resolution mask; frames are read lazily from :class:`granseg.io.frames.Frames`.

Masks: the decoder's ``4h x 4w`` logits are upsampled exactly as the image predictor does
(:func:`granseg.predict.unsamv2.upsample_logits`), so with the memory disabled (``num_maskmem = 0``) a session
equals frame-by-frame decoding with :class:`granseg.predict.unsamv2.UnSAMv2Predictor`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

from granseg.io.frames import Frames
from granseg.models.unsamv2 import UnSAMv2Model
from granseg.models.video_config import VideoMemoryConfig
from granseg.models.video_model import UnSAMv2VideoModel, build_video_model
from granseg.predict.unsamv2 import preprocess_image, resized_shape, upsample_logits


class LazyInferenceSession(Sam2VideoInferenceSession):
    """transformers' inference session over :class:`Frames` read on demand: ``get_frame(i)`` decodes and
    pre-processes frame ``i`` (``(3, S, S)`` normalised pixels) each time the model asks (once per frame: the
    features of the last frame are cached)."""

    def __init__(self, frames: Frames, size: int, resize_mode: str, device: torch.device) -> None:
        height, width = frames.size
        super().__init__(
            video_height=height,
            video_width=width,
            inference_device=device,
            inference_state_device=device,
            video_storage_device=device,
            dtype=torch.float32,
            max_vision_features_cache_size=1,
        )
        self.frames = frames
        self.size = size
        self.resize_mode = resize_mode

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def get_frame(self, frame_idx: int) -> torch.Tensor:
        pixels, _ = preprocess_image(self.frames[frame_idx], self.size, self.resize_mode)
        return pixels[0].to(self.inference_device)

    def prune(self, obj_idx: int, frame_idx: int, keep: int) -> None:
        """Delete the object's tracked-frame outputs more than ``keep`` frames from ``frame_idx``."""
        tracked = self.output_dict_per_obj[obj_idx]["non_cond_frame_outputs"]
        for old in [f for f in tracked if abs(f - frame_idx) > keep]:
            del tracked[old]

    def state_bytes(self) -> int:
        """Bytes of every tensor the session holds (memory bank, object pointers, cached features)."""
        total = 0

        def visit(value) -> None:
            nonlocal total
            if isinstance(value, torch.Tensor):
                total += value.numel() * value.element_size()
            elif isinstance(value, dict):
                for item in value.values():
                    visit(item)
            elif isinstance(value, list | tuple):
                for item in value:
                    visit(item)

        visit(self.output_dict_per_obj)
        visit(self.cache._vision_features)
        return total


class NeuralVideoTracker:
    """Runs :class:`~granseg.predict.video.VideoSession` passes on an UnSAMv2 video model.

    ``model``: an :class:`UnSAMv2Model` (its video model is built by
    :func:`~granseg.models.video_model.build_video_model` with ``memory``) or an :class:`UnSAMv2VideoModel`.
    """

    def __init__(self, model, memory: VideoMemoryConfig | None = None) -> None:
        if isinstance(model, UnSAMv2Model):
            model = build_video_model(model, memory)
        if not isinstance(model, UnSAMv2VideoModel):
            raise TypeError(f"expected an UnSAMv2 model, got {type(model).__name__}")
        self.video = model.eval()
        self.image_config = model.image_config
        self.last_session: LazyInferenceSession | None = None
        # tracked frames the memory bank (num_maskmem - 1 back) or the object pointers can still reach
        self.keep = max(model.num_maskmem - 1, model.config.max_object_pointers_in_encoder - 1, 0)

    @property
    def device(self) -> torch.device:
        return self.video.no_memory_embedding.device

    def run(self, frames: Frames, prompts: dict, order: range, joins: dict[int, int]) -> Iterator:
        """One pass over ``order`` (see :meth:`VideoSession._run`); yields ``(frame_idx, {obj_id: H x W float32
        logits})``. ``prompts``: ``obj_id -> frame_idx -> VideoPrompt``."""
        size = self.image_config.sam2.image_size
        session = LazyInferenceSession(frames, size, self.image_config.resize_mode, self.device)
        self.last_session = session
        reverse = order.step < 0
        step = -1 if reverse else 1
        active_g: dict[int, float] = {}
        for frame_idx in order:
            out: dict[int, np.ndarray] = {}
            for obj in sorted(prompts):
                prompt = prompts[obj].get(frame_idx)
                if obj not in active_g:
                    if frame_idx != joins[obj]:
                        continue
                    if prompt is None:  # seeded from its prompt one frame back in the direction of travel
                        seed = prompts[obj][frame_idx - step]
                        self._step(session, obj, seed.frame_idx, seed, seed.granularity, reverse)
                        active_g[obj] = seed.granularity
                if prompt is not None:
                    active_g[obj] = prompt.granularity
                low_res = self._step(session, obj, frame_idx, prompt, active_g[obj], reverse)
                out[obj] = self._to_image(low_res, frames.size)
            if out:
                yield frame_idx, out

    @torch.inference_mode()
    def _step(self, session: LazyInferenceSession, obj: int, frame_idx: int, prompt, g: float, reverse: bool):
        """Decode ``obj`` on ``frame_idx`` (from ``prompt`` when given, else from memory), encode its memory,
        prune the bank. Returns the ``(4h, 4w)`` low-res logits."""
        video = self.video
        obj_idx = session.obj_id_to_idx(obj)
        conditioning = prompt is not None
        point_inputs = mask_inputs = None
        if prompt is not None and prompt.mask is not None:
            mask_inputs = self._mask_tensor(prompt.mask)
        elif prompt is not None:
            point_inputs = self._point_inputs(prompt.points, prompt.labels, session.frames.size)
        with video.at_granularity(g):
            current = video._run_single_frame_inference(
                inference_session=session,
                frame_idx=frame_idx,
                obj_idx=obj_idx,
                batch_size=1,
                is_init_cond_frame=conditioning,
                point_inputs=point_inputs,
                mask_inputs=mask_inputs,
                reverse=reverse,
            )
        session.store_output(obj_idx, frame_idx, output_value=current, is_conditioning_frame=conditioning)
        if video.num_maskmem > 0:
            video._batch_encode_memories(
                session,
                frame_idx,
                [obj_idx],
                [current["high_res_masks"]],
                [current["object_score_logits"]],
                [conditioning],
            )
        kind = "cond_frame_outputs" if conditioning else "non_cond_frame_outputs"
        stored = session.output_dict_per_obj[obj_idx][kind][frame_idx]
        stored.pop(
            "high_res_masks", None
        )  # full-resolution (S x S) logits: only the memory encoder reads them
        stored.pop("pred_masks", None)
        session.prune(obj_idx, frame_idx, self.keep)
        low_res = current["pred_masks"]
        return low_res.reshape(-1, *low_res.shape[-2:])[0]

    def _content_hw(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        config = self.image_config
        return resized_shape(frame_hw[0], frame_hw[1], config.sam2.image_size, config.resize_mode)

    def _point_inputs(self, points: np.ndarray, labels: np.ndarray, frame_hw: tuple[int, int]) -> dict:
        """Original-frame ``(N, 2)`` (x, y) px -> transformers' point inputs in model-input pixels."""
        content_h, content_w = self._content_hw(frame_hw)
        scale = np.array([content_w / frame_hw[1], content_h / frame_hw[0]])
        coords = torch.as_tensor(points * scale, dtype=torch.float32, device=self.device)
        return {
            "point_coords": coords[None, None],
            "point_labels": torch.as_tensor(labels, dtype=torch.long, device=self.device)[None, None],
        }

    def _mask_tensor(self, mask: np.ndarray) -> torch.Tensor:
        """``H x W`` bool -> ``(1, 1, S, S)`` float in the model-input frame (content resized, padding zero)."""
        import cv2

        size = self.image_config.sam2.image_size
        content_h, content_w = self._content_hw(mask.shape)
        resized = cv2.resize(mask.astype(np.float32), (content_w, content_h), interpolation=cv2.INTER_LINEAR)
        frame = torch.zeros(1, 1, size, size)
        frame[0, 0, :content_h, :content_w] = torch.from_numpy(resized)
        return frame.to(self.device)

    @torch.inference_mode()
    def _to_image(self, low_res: torch.Tensor, frame_hw: tuple[int, int]) -> np.ndarray:
        size = self.image_config.sam2.image_size
        logits = upsample_logits(low_res[None], size, self._content_hw(frame_hw), frame_hw)[0]
        return logits.float().cpu().numpy()

    @property
    def mask_threshold(self) -> float:
        return self.image_config.mask_threshold
