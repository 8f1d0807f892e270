"""Embed once, decode many: the interactive predictor for UnSAMv2 and plain SAM-2 (:mod:`granseg.models.unsamv2`).

Pre-processing is this package's own (OpenCV; no torchvision, no ``Sam2ImageProcessor``), set by the model's
``config.resize_mode``:

* ``"squash"`` (default): the image is resized to ``S x S`` (the model's input size, 1024 for the released models)
  without keeping its aspect ratio, as Meta's SAM-2 predictor and transformers' ``Sam2ImageProcessor`` do and as
  the released weights were trained;
* ``"longest_side_pad"``: the long side is resized to ``S`` and the image padded at the bottom/right to a square.

Then the ImageNet mean/std. Points and boxes are ``(x, y)`` pixels of the original image, scaled per axis into the
resized content (``x * w' / W``, ``y * h' / H``, with ``h' x w'`` the content size: ``S x S`` when squashed). The
decoder's ``4h x 4w`` (256 x 256) low-resolution logits are upsampled to ``S x S``, cropped to the content (nothing
to crop when squashed), resized to the original ``H x W`` and thresholded at the model's ``mask_threshold`` (0).

A g-sweep (``granularity="all"`` or a list) is one batched decoder call: ``K`` prompts that share the points and
differ only in their granularity token. ``Prediction.low_res_logits`` (``K x 256 x 256``) can be fed back as
``mask_input`` on the next click (one mask for all levels, or one per level).

Optional on-disk embedding cache (``cache_dir``, at most ``cache_max_bytes``, least recently used entries deleted
first): :mod:`granseg.predict.embedding_cache`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from granseg.errors import InputError
from granseg.predict.base import BasePredictor, Prediction
from granseg.predict.embedding_cache import DEFAULT_CACHE_MAX_BYTES, EmbeddingCache

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resized_shape(height: int, width: int, size: int, mode: str) -> tuple[int, int]:
    """``(h', w')`` of the image content inside the ``size x size`` model input."""
    if mode == "squash":
        return size, size
    scale = size / max(height, width)
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def preprocess_image(
    image: np.ndarray, size: int, mode: str = "squash"
) -> tuple[torch.Tensor, tuple[int, int]]:
    """``H x W x 3`` uint8 RGB -> ``(1, 3, size, size)`` float32 normalised pixels and the content size ``(h', w')``
    (``(size, size)`` when squashed; the content sits at the top-left, zero-padded, otherwise)."""
    import cv2

    height, width = image.shape[:2]
    new_h, new_w = resized_shape(height, width, size, mode)
    interpolation = cv2.INTER_AREA if new_h * new_w < height * width else cv2.INTER_LINEAR
    resized = (
        cv2.resize(image, (new_w, new_h), interpolation=interpolation)
        if (new_h, new_w) != (height, width)
        else image
    )
    pixels = torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    pixels = (pixels - mean) / std
    padded = torch.zeros(1, 3, size, size)
    padded[0, :, :new_h, :new_w] = pixels
    return padded, (new_h, new_w)


def upsample_logits(
    low_res: torch.Tensor, size: int, content_hw: tuple[int, int], original_hw: tuple[int, int]
) -> torch.Tensor:
    """``(K, h, w)`` low-res logits -> ``(K, H, W)`` logits at the original resolution: upsampled to the
    ``size x size`` input frame, cropped to the content ``content_hw`` (the padding goes; the whole frame when
    squashed), resized to ``original_hw`` (bilinear, ``align_corners=False`` throughout)."""
    logits = F.interpolate(low_res[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)
    logits = logits[..., : content_hw[0], : content_hw[1]]
    if tuple(logits.shape[-2:]) != tuple(original_hw):
        logits = F.interpolate(logits, size=original_hw, mode="bilinear", align_corners=False)
    return logits[:, 0]


def sam2_mask_index_for_granularity(granularity: np.ndarray) -> np.ndarray:
    """Plain SAM-2 has no g: pick its multimask output 0/1/2 (roughly sub-part / part / whole) by g."""
    return np.digitize(granularity, [0.4, 0.7])


class UnSAMv2Predictor(BasePredictor):
    """:class:`BasePredictor` over an :class:`~granseg.models.unsamv2.UnSAMv2Model` (or plain SAM-2 config)."""

    provides_logits = True
    batched_points = True

    # the keyword options the constructor takes (callers such as the CLI pass their cache/decoder flags by these)
    options = ("cache_dir", "cache_max_bytes", "decoder", "decoder_dtype")

    def __init__(
        self,
        model,
        cache_dir: str | Path | None = None,
        cache_max_bytes: int | None = DEFAULT_CACHE_MAX_BYTES,
        decoder: str = "fast",
        decoder_dtype: str = "float32",
    ) -> None:
        """decoder: ``"fast"`` (the model's :meth:`~granseg.models.unsamv2.UnSAMv2Model.fast_decoder`:
        transformers' decoder function evaluated in a cheaper order, LoRA merged; same results up to float
        rounding) or ``"reference"`` (``UnSAMv2Model.decode`` on transformers' two-way transformer and upscaling
        modules as they are, peft adapters included, the image tokens repeated per prompt; this package's token
        order and granularity head on top).
        decoder_dtype: ``"float32"`` or ``"bfloat16"`` (fast decoder only; an approximation, worthwhile on CPUs
        with AMX / AVX512-BF16 and on GPUs)."""
        super().__init__()
        if decoder not in ("fast", "reference"):
            raise InputError(f"decoder must be 'fast' or 'reference', got {decoder!r}")
        if decoder_dtype not in ("float32", "bfloat16"):
            raise InputError(f"decoder_dtype must be 'float32' or 'bfloat16', got {decoder_dtype!r}")
        if decoder == "reference" and decoder_dtype != "float32":
            raise InputError("decoder_dtype='bfloat16' needs decoder='fast'")
        self.model = model.eval()
        self.model_name = model.name
        self.decoder = decoder
        self.decoder_dtype = getattr(torch, decoder_dtype)
        self._cache = EmbeddingCache(cache_dir, model, cache_max_bytes)
        self._features: list[torch.Tensor] | None = None
        self._decoder_state = None
        self._content_hw: tuple[int, int] = (0, 0)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the model's weights (the model's fast decoder and the positional encoding are snapshots; call
        this after changing the model's weights, e.g. after training steps)."""
        self._cache.forget_fingerprint()  # the embedding-cache key follows the weights too
        with torch.inference_mode():
            self._positional = self.model.image_positional_embeddings()
        self._fast = (
            self.model.fast_decoder(self.decoder_dtype, refresh=True) if self.decoder == "fast" else None
        )
        self._decoder_state = self._fast_state() if self._features is not None else None

    # ---------------------------------------------------------------------------------------------- image
    @property
    def input_size(self) -> int:
        return self.model.config.sam2.image_size

    @property
    def image_embeddings(self) -> list[torch.Tensor]:
        """The cached image features ``[(1, C/8, 4h, 4w), (1, C/4, 2h, 2w), (1, C, h, w)]``."""
        if self._features is None:
            raise InputError("call set_image(image) before predict()")
        return self._features

    def _set_image(self, image: np.ndarray) -> None:
        height, width = image.shape[:2]
        self._content_hw = resized_shape(height, width, self.input_size, self.model.config.resize_mode)
        features = self._cache.read(image)
        if features is None:
            pixels, _ = preprocess_image(image, self.input_size, self.model.config.resize_mode)
            with torch.inference_mode():
                features = self.model.embed_image(pixels.to(self.model.device))
            self._cache.write(image, features)
        self._features = features
        self._decoder_state = self._fast_state()

    @torch.inference_mode()
    def _fast_state(self, dense: torch.Tensor | None = None):
        """The fast decoder's state of the current image for a dense prompt ``(1 or K, C, h, w)``; without one,
        the no-mask state computed once per image. None when the reference decoder is used."""
        if self._fast is None:
            return None
        if dense is None:
            _, dense = self.model.encode_prompts(None, None, None, None, None)
            return self._fast.image_state(self._features, dense, self._positional)
        return self._fast.image_state(self._features, dense, self._positional, same_image=self._decoder_state)

    @property
    def cache_dir(self) -> Path | None:
        """The embedding cache's folder (None: no cache)."""
        return self._cache.directory

    @property
    def cache_max_bytes(self) -> int | None:
        """The embedding cache's size limit (None: unbounded)."""
        return self._cache.max_bytes

    def model_fingerprint(self) -> str:
        """The embedding cache's key for this model (see :meth:`EmbeddingCache.fingerprint`)."""
        return self._cache.fingerprint()

    # --------------------------------------------------------------------------------------------- decode
    def _scale_xy(self) -> np.ndarray:
        height, width = self.image_size
        return np.array([self._content_hw[1] / width, self._content_hw[0] / height])

    def _mask_prompt(self, mask_input, count: int) -> torch.Tensor | None:
        if mask_input is None:
            return None
        expected = tuple(self.model.sam.prompt_encoder.mask_input_size)
        array = np.asarray(mask_input, dtype=np.float32)
        if array.shape[-2:] != expected:
            raise InputError(
                f"mask_input must be low-res logits of shape (..., {expected[0]}, {expected[1]})"
            )
        array = array.reshape(-1, 1, *expected)
        if array.shape[0] not in (1, count):
            raise InputError(
                f"mask_input has {array.shape[0]} masks; give 1 or one per granularity ({count})"
            )
        return torch.from_numpy(array).to(self.model.device)

    def _granularity_tensor(self, granularity: np.ndarray) -> torch.Tensor | None:
        """``(K,)`` g values -> ``(1, K)`` float32 on the model's device; None for a model without g input."""
        if not self.model.config.granularity:
            return None
        return torch.as_tensor(granularity, dtype=torch.float32, device=self.model.device)[None]

    def _decode(self, embeddings, sparse: torch.Tensor, dense: torch.Tensor, fast_state):
        """The model's decoder on the current image, all mask outputs, with the image's positional encoding."""
        use_granularity = self.model.config.granularity
        return self.model.decode(
            embeddings,
            sparse,
            dense,
            use_granularity,
            True,
            image_positional_embeddings=self._positional,
            fast_state=fast_state,
        )

    @torch.inference_mode()
    def decode_logits(
        self,
        points: np.ndarray,
        labels: np.ndarray,
        box: np.ndarray | None,
        granularity: np.ndarray,
        mask_input=None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One batched decoder call for ``K = len(granularity)`` levels. Inputs as in :meth:`_predict` (validated,
        original-image pixels). Returns low-res logits ``(K, 4h, 4w)``, scores ``(K,)``, object logits ``(K,)``."""
        embeddings = self.image_embeddings  # (raises the "call set_image" error first)
        device = self.model.device
        count = len(granularity)
        scale = self._scale_xy()
        use_granularity = self.model.config.granularity
        prompts = count if use_granularity else 1
        point_tensor = label_tensor = box_tensor = None
        if len(points):
            scaled = torch.as_tensor(points * scale, dtype=torch.float32, device=device)
            point_tensor = scaled[None, None].expand(1, prompts, -1, -1)
            label_tensor = torch.as_tensor(labels, dtype=torch.long, device=device)[None, None].expand(
                1, prompts, -1
            )
        if box is not None:
            scaled_box = torch.as_tensor(box * np.tile(scale, 2), dtype=torch.float32, device=device)
            box_tensor = scaled_box[None, None].expand(1, prompts, -1)
        masks = self._mask_prompt(mask_input, count)
        if not use_granularity and masks is not None and masks.shape[0] > 1:
            masks = masks[:1]
        g = self._granularity_tensor(granularity)
        sparse, dense = self.model.encode_prompts(point_tensor, label_tensor, box_tensor, masks, g)
        state = None
        if self._fast is not None:
            state = self._decoder_state if masks is None else self._fast_state(dense)
        out = self._decode(embeddings, sparse, dense, state)
        if use_granularity:
            return out.mask_logits[0, :, 0], out.iou_scores[0, :, 0], out.object_score_logits[0, :, 0]
        index = torch.as_tensor(sam2_mask_index_for_granularity(granularity), device=device)
        return (
            out.mask_logits[0, 0, index],
            out.iou_scores[0, 0, index],
            out.object_score_logits[0, 0, 0].expand(count),
        )

    def _predict(
        self, points, labels, box, granularity, mask_input, return_logits: bool = False
    ) -> Prediction:
        low_res, scores, object_logits = self.decode_logits(points, labels, box, granularity, mask_input)
        with torch.inference_mode():
            logits = self.upsample_to_image(low_res)
            masks = (logits > self.model.config.mask_threshold).cpu().numpy()
        return Prediction(
            masks=masks,
            scores=scores.float().cpu().numpy(),
            granularity=np.asarray(granularity, dtype=np.float64),
            low_res_logits=low_res.float().cpu().numpy(),
            logits=logits.float().cpu().numpy() if return_logits else None,
            extra={"object_score_logits": object_logits.float().cpu().numpy()},
        )

    # ------------------------------------------------------------------------------------ whole-image batches
    @property
    def content_shape(self) -> tuple[int, int]:
        """``(h', w')`` of the image content inside the ``input_size`` square model frame."""
        return self._content_hw

    @torch.inference_mode()
    def upsample_to_image(self, low_res: torch.Tensor) -> torch.Tensor:
        """``(N, 4h, 4w)`` low-res logits -> ``(N, H, W)`` float32 logits at the original image size."""
        return upsample_logits(low_res, self.input_size, self._content_hw, self.image_size)

    @torch.inference_mode()
    def decode_points(self, points: np.ndarray, granularity: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """N single positive clicks, each at its own g, in one decoder call on the current image.

        points ``(N, 2)`` (x, y) pixels of the original image (inside it; not re-validated here), granularity
        ``(N,)``. Returns low-res logits ``(N, 4h, 4w)`` and scores ``(N,)``, equal (up to float rounding) to
        what :meth:`decode_logits` gives each click alone. UnSAMv2: one prompt per (point, g) pair; plain SAM-2
        (no g): one multimask prompt per distinct point, the output picked by g as in :meth:`predict`."""
        embeddings = self.image_embeddings
        device = self.model.device
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        granularity = np.asarray(granularity, dtype=np.float64).reshape(-1)
        use_granularity = self.model.config.granularity
        if use_granularity:
            unique, inverse = points, np.arange(len(points))
        else:
            unique, inverse = np.unique(points, axis=0, return_inverse=True)
            inverse = inverse.reshape(-1)
        scaled = torch.as_tensor(unique * self._scale_xy(), dtype=torch.float32, device=device)
        labels = torch.ones(1, len(unique), 1, dtype=torch.long, device=device)
        g = self._granularity_tensor(granularity)
        sparse, dense = self.model.encode_prompts(scaled[None, :, None], labels, None, None, g)
        out = self._decode(embeddings, sparse, dense, self._decoder_state if self._fast is not None else None)
        if use_granularity:
            return out.mask_logits[0, :, 0], out.iou_scores[0, :, 0]
        rows = torch.as_tensor(inverse, device=device)
        index = torch.as_tensor(sam2_mask_index_for_granularity(granularity), device=device)
        return out.mask_logits[0, rows, index], out.iou_scores[0, rows, index]
