"""The ``unsamv2`` task for :class:`granseg.train.trainer.Trainer`: teach SAM-2 to obey the granularity g.

Per image: the frozen encoder's embeddings come from :class:`~granseg.predict.unsamv2.UnSAMv2Predictor` (the
same pre-processing as inference, one code path; cached on disk, least recently used entries pruned beyond
``cache_max_gb``). Each of its <= 30 masks is one prompt ``(click, g)``; the decoder runs ``1 + correction_clicks``
rounds (:mod:`granseg.train.unsamv2_prompts`), every round adds a click and feeds back the previous low-res logits
(detached) as the mask prompt, and the loss (:mod:`granseg.train.unsamv2_losses`) is averaged over rounds.

A model without granularity input (``model.granularity = false``, the ablation baseline) is trained like SAM:
three outputs per prompt, the loss of each prompt's best output (lowest loss) counts. A granularity model with
``no_g_warmup_steps`` N is trained that way for its first N steps (its g modules unused), then its granularity
token starts from the SAM-2 output that won the most prompts (:meth:`UnSAMv2Task.begin_step`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from granseg.errors import InputError
from granseg.models.unsamv2 import UnSAMv2Model, UnSAMv2Output
from granseg.train.unsamv2_config import UnSAMv2TrainConfig
from granseg.train.unsamv2_data import BadSample, MixedMaskDataset
from granseg.train.unsamv2_losses import best_of_outputs, unsamv2_loss, unsamv2_loss_per_mask
from granseg.train.unsamv2_prompts import (
    correction_clicks,
    first_clicks,
    masks_to_input_frame,
    nearest_level_granularity,
)

MAX_REPLACEMENTS = 10  # a bad sample is replaced by another index at most this many times
MODEL_FILE = "unsamv2.safetensors"
# Parts of the cached image embedding (transformers applies the decoder's conv_s0/conv_s1 in get_image_embeddings):
# never trained, or cached embeddings and the exported model would disagree.
EMBEDDING_PARTS = ("sam.vision_encoder.", "sam.mask_decoder.conv_s0.", "sam.mask_decoder.conv_s1.")


@dataclasses.dataclass
class PreparedImage:
    """One image of a batch. features: the encoder's ``[(1, C/8, 4h, 4w), (1, C/4, 2h, 2w), (1, C, h, w)]``
    (with ``train_image_encoder``: ``[(1, 3, S, S)]`` normalised pixels, embedded in the loss with gradients);
    targets ``(P, S, S)`` bool in the model-input frame; granularity ``(P,)``; rng for the correction clicks."""

    features: list[torch.Tensor]
    targets: np.ndarray
    granularity: np.ndarray
    rng: np.random.Generator


class UnSAMv2TrainModule(torch.nn.Module):
    """The trainable wrapper (what accelerate prepares): ``forward`` = one decoder pass for one image's ``P``
    prompts. points ``(P, N, 2)`` model-input pixels, labels ``(P, N)``, mask_input ``(P, 1, 4h, 4w)`` or None,
    granularity ``(P,)`` or None (plain SAM-2: three outputs); ``auxiliary_multimask``: with granularity, also
    SAM-2's three outputs of the same pass (:meth:`UnSAMv2Model.decode`).

    With ``count_best`` it holds the buffer ``best_counts`` ``(3,)``: how many prompts each SAM-2 output won
    during a no-g warm-up (saved in checkpoints for an exact resume; not part of the exported model)."""

    def __init__(self, model: UnSAMv2Model, count_best: bool = False) -> None:
        super().__init__()
        self.model = model
        if count_best:
            self.register_buffer("best_counts", torch.zeros(3, dtype=torch.float64))

    def forward(
        self, features, points, labels, mask_input, granularity, auxiliary_multimask: bool = False
    ) -> UnSAMv2Output:
        return self.model(
            image_embeddings=features,
            input_points=points[None],
            input_labels=labels[None],
            input_masks=mask_input,
            granularity=None if granularity is None else granularity[None],
            multimask_output=granularity is None,
            auxiliary_multimask=auxiliary_multimask,
        )


def _per_output_losses(logits, targets, iou, out: UnSAMv2Output, weights) -> torch.Tensor:
    """``(M, P)`` per-prompt loss of each of M outputs: logits ``(P, M, H, W)``, targets ``(P, H, W)``, iou ``(P, M)``."""
    return torch.stack(
        [
            unsamv2_loss_per_mask(logits[:, m], targets, iou[:, m], out.object_score_logits[0, :, 0], weights)
            for m in range(logits.shape[1])
        ]
    )


def _transfer_weights(source: UnSAMv2Model, target: UnSAMv2Model) -> int:
    """Copy every tensor of ``source`` into ``target`` by name (LoRA-wrapped ``x.base_layer.w`` <- ``x.w``) where
    shapes agree; returns the number copied. Missing ones (new granularity modules / LoRA) keep their init."""
    source_state = source.state_dict()
    copied = 0
    with torch.no_grad():
        for name, tensor in target.state_dict().items():
            candidate = source_state.get(name, source_state.get(name.replace(".base_layer", "")))
            if candidate is not None and candidate.shape == tensor.shape:
                tensor.copy_(candidate)
                copied += 1
    return copied


def reset_random_init(model: UnSAMv2Model) -> int:
    """Re-initialise the SAM-2 part of a model that trains from scratch with PyTorch's default layer init
    (Kaiming-uniform Linear / Conv, N(0, 1) Embedding, as Meta's SAM-2 modules are built); returns the count.

    transformers' ``Sam2PreTrainedModel._init_weights`` draws every Linear / Conv weight from N(0, 0.02): right for
    weights that are about to be overwritten by a checkpoint, but at the tiny widths (C = 32) the signal vanishes
    through the network: the decoder's logits come out ~1e-5 everywhere, independent of the click, and training
    collapses to empty masks. LoRA adapters (``lora_B`` = 0 by design) and the granularity modules (already PyTorch
    defaults) are left alone."""
    layers = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.Embedding)
    count = 0
    for name, module in model.sam.named_modules():
        if isinstance(module, layers) and ".lora_" not in f".{name}":
            module.reset_parameters()
            count += 1
    return count


def start_granularity_head(model: UnSAMv2Model, output: int) -> None:
    """The switch after a no-g warm-up: the granularity output token and its hypernetwork take the weights of the
    SAM-2 mask token behind multimask ``output`` (0-2; mask token ``output + 1``), so the granularity mask starts as
    that output's mask; the last layer of the granularity prompt encoder's MLP is zeroed (weight and bias), so the
    new g prompt token starts as its constant type embedding and g enters as training grows that layer."""
    decoder = model.sam.mask_decoder
    head, encoder = model.granularity_head, model.granularity_encoder
    with torch.no_grad():
        head.token.weight.copy_(decoder.mask_tokens.weight[output + 1 : output + 2])
        head.hypernetwork.load_state_dict(decoder.output_hypernetworks_mlps[output + 1].state_dict())
        encoder.mlp.mlp[-1].weight.zero_()
        encoder.mlp.mlp[-1].bias.zero_()


def _init_granularity(model: UnSAMv2Model, config: UnSAMv2TrainConfig) -> None:
    if not model.config.granularity:
        return
    if config.granularity_init == "unit_variance":
        model.granularity_encoder.reset_unit_variance()
    elif config.granularity_init == "zero":
        model.granularity_encoder.reset_zero()


def build_training_model(config: UnSAMv2TrainConfig) -> UnSAMv2Model:
    """The model to train: ``config.model`` at random init, or ``init_from``'s weights in the architecture of
    ``config.model`` (default: ``init_from``'s own, with granularity modules and LoRA added)."""
    from granseg.models.unsamv2 import LoraSettings

    if config.init_from is None:
        model = UnSAMv2Model(config.model)
        reset_random_init(model)
        _init_granularity(model, config)
    else:
        from granseg.models.registry import load_model

        base = load_model(config.init_from, device="cpu")
        if not isinstance(base, UnSAMv2Model):
            raise InputError(f"init_from {config.init_from!r} is not a SAM-2 / UnSAMv2 model")
        wanted = config.model or dataclasses.replace(
            base.config, granularity=True, lora=base.config.lora or LoraSettings()
        )
        model = UnSAMv2Model(wanted)
        _init_granularity(model, config)  # before the transfer: a checkpoint's own g modules win
        if _transfer_weights(base, model) == 0:
            raise InputError(f"init_from {config.init_from!r} shares no weights with the configured model")
    for name, parameter in model.named_parameters():
        if config.train_image_encoder or (
            name.startswith(tuple(config.extra_trainable)) and not name.startswith(EMBEDDING_PARTS)
        ):
            parameter.requires_grad = True
    return model


class UnSAMv2Task:
    config_class = UnSAMv2TrainConfig
    seeded_samples = True  # load_samples(indices, seed=...) (see Trainer)

    def __init__(self, config: UnSAMv2TrainConfig) -> None:
        self.config = config
        self.dataset = MixedMaskDataset(config.data, config.seed)
        self._predictor = None
        self._step = 0  # the optimizer step being trained (set by begin_step)

    @property
    def counts(self) -> dict[str, int]:
        """Skipped samples and dropped annotations so far (logged by the trainer)."""
        return dict(self.dataset.counts)

    def build_module(self) -> UnSAMv2TrainModule:
        model = build_training_model(self.config)
        module = UnSAMv2TrainModule(model, count_best=self._warms_up(model))
        self._predictor = None
        self._model = model
        return module

    def _warms_up(self, model: UnSAMv2Model) -> bool:
        return model.config.granularity and self.config.no_g_warmup_steps > 0

    def begin_step(self, module: torch.nn.Module, step: int) -> None:
        """Called by the Trainer before each optimizer step (0-based). At ``step == no_g_warmup_steps`` the
        granularity head starts from the SAM-2 output that won the most prompts during the warm-up
        (:func:`start_granularity_head`; counts summed over processes, ties to the lowest index)."""
        self._step = step
        if not (self._warms_up(self._model) and step == self.config.no_g_warmup_steps):
            return
        counts = module.best_counts.clone()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
        start_granularity_head(self._model, int(counts.argmax()))

    def granularity_loss_weight(self) -> float:
        """The weight of the granularity mask's own loss at the current step: ``g_loss_ramp_steps`` N > 0 makes it
        ``k / N`` at the g phase's k-th step (1-based; the phase starts at ``no_g_warmup_steps``), 1 from step N on."""
        ramp = self.config.g_loss_ramp_steps
        if not ramp:
            return 1.0
        return min(1.0, (self._step - self.config.no_g_warmup_steps + 1) / ramp)

    def dataset_size(self) -> int:
        return len(self.dataset)

    # --------------------------------------------------------------------------------------------- samples
    def predictor(self):
        """The predictor that embeds images (frozen encoder; built once per module)."""
        if self._predictor is None:
            from granseg.predict.unsamv2 import UnSAMv2Predictor

            cfg = self.config
            cache = None
            if cfg.cache_embeddings:
                cache = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.output_dir) / "embedding_cache"
            training = self._model.training
            # Building it creates layers (random init): keep the training RNG stream untouched (exact resume).
            with torch.random.fork_rng(devices=[]):
                self._predictor = UnSAMv2Predictor(
                    self._model,
                    cache_dir=cache,
                    cache_max_bytes=int(cfg.cache_max_gb * 2**30),
                    decoder="reference",
                )
            self._model.train(training)  # the predictor put the model in eval mode
        return self._predictor

    def prepare(self, index: int, rng: np.random.Generator) -> PreparedImage:
        sample = self.dataset.load(index, rng)
        config = self._model.config
        if self.config.train_image_encoder:  # the pixels (1, 3, S, S); embedded in image_loss, with gradients
            from granseg.predict.unsamv2 import preprocess_image

            features = [preprocess_image(sample.image, config.sam2.image_size, config.resize_mode)[0]]
        else:
            predictor = self.predictor()
            training = self._model.training
            predictor.set_image(sample.image)
            self._model.train(training)
            features = [f.clone() for f in predictor.image_embeddings]  # normal tensors (not inference-mode)
        targets = masks_to_input_frame(sample.masks, config.sam2.image_size, config.resize_mode)
        present = targets.reshape(len(targets), -1).any(1)
        if not present.any():
            raise BadSample(f"{sample.key}: every mask vanishes at the model's input size")
        return PreparedImage(features, targets[present], sample.granularity[present], rng)

    def load_samples(self, indices: Sequence[int], seed: Sequence[int] = (0,)) -> list[PreparedImage]:
        """The prepared images of a micro-batch; a bad sample is replaced by another index (counted)."""
        batch = []
        for position, index in enumerate(indices):
            rng = np.random.default_rng([*seed, position])
            for attempt in range(MAX_REPLACEMENTS + 1):
                candidate = (int(index) + attempt * 7919) % len(self.dataset)
                try:
                    batch.append(self.prepare(candidate, rng))
                    break
                except BadSample:
                    continue
        return batch

    # ------------------------------------------------------------------------------------------------ loss
    def _targets_for_loss(self, targets: torch.Tensor, low_res: int) -> torch.Tensor:
        if self.config.loss_resolution == "input":
            return targets
        return (F.interpolate(targets[:, None], size=(low_res, low_res), mode="area")[:, 0] >= 0.5).float()

    def _logits_for_loss(self, logits: torch.Tensor, size: int) -> torch.Tensor:
        """``(P, M, 4h, 4w)`` -> ``(P, M, S, S)`` (input resolution) or unchanged (low-res)."""
        if self.config.loss_resolution == "low_res":
            return logits
        return F.interpolate(logits.float(), size=(size, size), mode="bilinear", align_corners=False)

    def _round_loss(
        self,
        module: torch.nn.Module,
        out: UnSAMv2Output,
        logits: torch.Tensor,
        targets: torch.Tensor,
        size: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One round's loss and the output each prompt continues from ``(P,)`` long; logits ``(P, M, H, W)`` at the
        loss resolution, targets ``(P, H, W)``. A granularity mask (M = 1): :meth:`granularity_loss_weight` x
        :func:`unsamv2_loss`, plus (after a no-g warm-up, ``g_phase_multimask_weight`` > 0) that weight x the
        best-of-3 loss of SAM-2's three outputs of the same pass (``out.multimask_logits``; no object-score term:
        the granularity loss has it). Plain SAM-2 (M = 3): the best of its outputs per prompt, wins counted during
        a granularity model's warm-up."""
        weights = self.config.loss
        if logits.shape[1] == 1:
            best = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
            loss = (
                self.granularity_loss_weight()
                * unsamv2_loss(
                    logits[:, 0], targets, out.iou_scores[0, :, 0], out.object_score_logits[0, :, 0], weights
                )[0]
            )
            if out.multimask_logits is not None:
                extra = self._logits_for_loss(out.multimask_logits[0], size)
                mask_only = dataclasses.replace(weights, object_score=0.0)
                aux = best_of_outputs(
                    _per_output_losses(extra, targets, out.multimask_iou[0], out, mask_only)
                )[1]
                loss = loss + self.config.g_phase_multimask_weight * aux
            return best, loss
        best, loss = best_of_outputs(_per_output_losses(logits, targets, out.iou_scores[0], out, weights))
        counts = getattr(getattr(module, "module", module), "best_counts", None)  # DDP: .module
        if counts is not None:  # a granularity model's no-g warm-up
            counts += torch.bincount(best, minlength=3).to(counts)
        return best, loss

    def image_loss(self, module: torch.nn.Module, item: PreparedImage) -> torch.Tensor:
        """Mean loss over the ``1 + correction_clicks`` rounds of one image's prompts."""
        device = item.features[-1].device
        size = item.targets.shape[-1]
        features = item.features
        if self.config.train_image_encoder:  # transformers' get_image_embeddings without its no_grad
            sam = self._model.sam
            features = type(sam).get_image_embeddings.__wrapped__(sam, item.features[0].to(device))
        chosen = np.arange(len(item.targets))
        if self.config.max_prompts and len(chosen) > self.config.max_prompts:  # the rest only give levels
            chosen = np.sort(item.rng.choice(chosen, self.config.max_prompts, replace=False))
        masks = item.targets[chosen]  # (P, S, S) bool
        targets = torch.from_numpy(masks).float().to(device)
        with_g = self._model.config.granularity and self._step >= self.config.no_g_warmup_steps
        clicks = first_clicks(masks, item.rng)  # (P, 2)
        values = item.granularity[chosen]
        if with_g and self.config.granularity_sampling == "nearest_level":
            values = nearest_level_granularity(item.targets, item.granularity, clicks, values, item.rng)
        granularity = torch.from_numpy(values).float().to(device) if with_g else None
        points = torch.from_numpy(clicks)[:, None].to(device)  # (P, 1, 2)
        labels = torch.ones(points.shape[:2], dtype=torch.long, device=device)
        mask_input = None
        total = torch.zeros((), device=device)
        loss_targets = None
        auxiliary = with_g and self.config.g_phase_multimask_weight > 0
        for round_index in range(1 + self.config.correction_clicks):
            out = module(features, points, labels, mask_input, granularity, auxiliary)
            low_res_logits = out.mask_logits[0]  # (P, M, 4h, 4w)
            logits = self._logits_for_loss(low_res_logits, size)
            if loss_targets is None:
                loss_targets = self._targets_for_loss(targets, logits.shape[-1])
            best, round_loss = self._round_loss(module, out, logits, loss_targets, size)
            total = total + round_loss
            if round_index == self.config.correction_clicks:
                break
            rows = torch.arange(len(best), device=device)
            chosen = low_res_logits[rows, best][:, None].detach()  # (P, 1, 4h, 4w)
            full = F.interpolate(chosen.float(), size=(size, size), mode="bilinear", align_corners=False)
            prediction = (full[:, 0] > 0).cpu().numpy()
            new_points, new_labels = correction_clicks(prediction, masks, item.rng)
            points = torch.cat([points, torch.from_numpy(new_points)[:, None].to(device)], dim=1)
            labels = torch.cat([labels, torch.from_numpy(new_labels)[:, None].to(device)], dim=1)
            mask_input = chosen.to(low_res_logits.dtype)
        return total / (1 + self.config.correction_clicks)

    def loss(self, module: torch.nn.Module, batch: list[PreparedImage]) -> torch.Tensor:
        """Mean of :meth:`image_loss` over the batch (a zero that keeps the graph when every sample was bad)."""
        if not batch:
            return sum(p.sum() * 0 for p in module.parameters() if p.requires_grad)
        return sum(self.image_loss(module, item) for item in batch) / len(batch)

    def masks_per_batch(self, batch: list[PreparedImage]) -> int:
        """Trained masks (prompts) of a batch."""
        limit = self.config.max_prompts or None
        return sum(min(len(item.targets), limit or len(item.targets)) for item in batch)

    # ---------------------------------------------------------------------------------------------- export
    def export(self, module: torch.nn.Module, folder: Path) -> None:
        """``folder/unsamv2.safetensors`` + ``unsamv2.json``: loads with ``granseg segment --model``."""
        from granseg.models.checkpoints import save_package

        model = module.model
        folder.mkdir(parents=True, exist_ok=True)
        model.config = dataclasses.replace(model.config, name=Path(self.config.output_dir).name)
        save_package(model, folder / MODEL_FILE)
