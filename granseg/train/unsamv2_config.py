"""The ``unsamv2`` training config (:class:`UnSAMv2TrainConfig`) and a strict type check of parsed configs.

Defaults follow the paper's recipe (DESIGN.md sec. 4): AdamW lr 1e-4 with cosine decay to 1e-5, batch 4, up to 30
masks per image, 1 + 3 clicks per mask, losses focal x 20 + dice + IoU L1 + object BCE; only the granularity
modules and the decoder LoRA train (``extra_trainable`` can add decoder parameters, e.g. for a random-init model).
"""

from __future__ import annotations

import dataclasses

from granseg.errors import InputError
from granseg.models.unsamv2 import UnSAMv2Config
from granseg.train.trainer import TrainConfig
from granseg.train.unsamv2_data import UnSAMv2DataConfig
from granseg.train.unsamv2_losses import LossWeights

# how the NEW granularity prompt encoder starts (UnSAMv2TrainConfig.granularity_init)
GRANULARITY_INITS = ("default", "unit_variance", "zero")


@dataclasses.dataclass
class UnSAMv2TrainConfig(TrainConfig):
    task: str = "unsamv2"
    output_dir: str = "runs/unsamv2"
    steps: int = 7500  # 6,000 images x 5 epochs / batch 4
    batch_size: int = 4
    lr: float = 1e-4
    warmup_steps: int = 250
    min_lr_ratio: float = 0.1  # cosine to 1e-5 at lr 1e-4
    model: UnSAMv2Config | None = None  # architecture for random init; None: from init_from
    # registered model name or checkpoint path (SAM-2 / UnSAMv2 weights); None: random init of ``model``
    init_from: str | None = "sam2.1-hiera-small"
    data: UnSAMv2DataConfig = dataclasses.field(default_factory=UnSAMv2DataConfig)
    correction_clicks: int = 3
    loss: LossWeights = dataclasses.field(default_factory=LossWeights)
    loss_resolution: str = "input"  # "input" (logits upsampled to S x S) or "low_res" (targets at 4h x 4w)
    extra_trainable: tuple[str, ...] = ()  # parameter-name prefixes trained too (never the image encoder)
    # stage 1 of a from-scratch model: train EVERY parameter, image encoder included (no embedding cache); stands
    # in for the pre-trained SAM-2 that ``init_from`` normally gives (use a model without granularity: best of 3)
    train_image_encoder: bool = False
    cache_embeddings: bool = True  # frozen encoder: embed each (image, flip) once, on disk
    cache_dir: str | None = None  # default <output_dir>/embedding_cache
    cache_max_gb: float = 4.0
    # the requested g of a prompt: "label" (the mask's own g: the paper's recipe) or "nearest_level" (uniform over
    # the g range for which the mask is the nearest level at the click; unsamv2_prompts.nearest_level_granularity)
    granularity_sampling: str = "label"
    # prompts (trained masks) per image, drawn from its <= data.max_masks masks; 0: all. The others still count as
    # levels at a click for "nearest_level"
    max_prompts: int = 0
    # a granularity model's first N steps train it as plain SAM-2 (no g input, three outputs, best of 3: the no-g
    # twin's loss); then its granularity token and hypernetwork start from the mask token that won the most prompts
    # (unsamv2_task.start_granularity_head). For a decoder trained from scratch (extra_trainable covering
    # sam.mask_decoder), which otherwise sits on an empty-mask plateau; 0: off (the paper's recipe)
    no_g_warmup_steps: int = 0
    # with no_g_warmup_steps N: the lr schedule restarts at the switch (steps 0..N-1 and N..end each get the
    # warm-up ``warmup_steps`` and a cosine to their own end), so the g head does not start at the first
    # phase's decayed lr; False: one schedule over the whole run
    g_phase_lr_restart: bool = False
    # a granularity model's g phase (after a no-g warm-up, or the whole run without one): add this weight x SAM-2's
    # best-of-3 loss on the model's own three multimask outputs of the same decoder pass, so the shared decoder
    # also learns the twin's task (a from-scratch decoder leaves the empty-mask plateau sooner); 0: off
    g_phase_multimask_weight: float = 0.0
    # with g_phase_multimask_weight > 0: the granularity mask's own loss weight rises linearly from 1/N to 1 over
    # the first N steps of the g phase (from the no-g warm-up's switch, or from step 0), while the best-of-3 term
    # keeps its full weight: the shared decoder first learns the twin's task, then the g output takes over
    # gradually instead of at a hard switch; 0: off (full weight from the start)
    g_loss_ramp_steps: int = 0
    # the NEW granularity prompt MLP's init (checkpoint weights, when init_from has them, replace it): "default"
    # (PyTorch's Linear init: the g-dependent part of the prompt token is ~7 % of its norm at start) or
    # "unit_variance" (GranularityPromptEncoder.reset_unit_variance: as large as the N(0, 1) type embedding) or
    # "zero" (GranularityPromptEncoder.reset_zero: the whole g prompt token starts at 0, type embedding included)
    granularity_init: str = "default"

    def schedule_phases(self) -> tuple[int, ...]:
        """The lr restarts at the no-g warm-up's switch with ``g_phase_lr_restart`` (trainer.lr_factor)."""
        return (0, self.no_g_warmup_steps) if self.g_phase_lr_restart and self.no_g_warmup_steps else (0,)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model is None and self.init_from is None:
            raise InputError("give 'model' (random init) or 'init_from' (a checkpoint or model name)")
        if self.correction_clicks < 0:
            raise InputError("correction_clicks must be >= 0")
        if self.loss_resolution not in ("input", "low_res"):
            raise InputError(f"loss_resolution must be 'input' or 'low_res', got {self.loss_resolution!r}")
        if any(p.startswith("sam.vision_encoder") for p in self.extra_trainable):
            raise InputError("extra_trainable: the image encoder stays frozen (its embeddings are cached)")
        if self.train_image_encoder and self.cache_embeddings:
            raise InputError(
                "train_image_encoder needs cache_embeddings: false (the embeddings change each step)"
            )
        if self.granularity_sampling not in ("label", "nearest_level"):
            raise InputError(
                f"granularity_sampling must be 'label' or 'nearest_level', got {self.granularity_sampling!r}"
            )
        if self.granularity_init not in GRANULARITY_INITS:
            raise InputError(
                f"granularity_init must be one of {', '.join(GRANULARITY_INITS)}, got {self.granularity_init!r}"
            )
        if self.max_prompts < 0:
            raise InputError("max_prompts must be >= 0 (0: every mask of the image)")
        if self.no_g_warmup_steps < 0:
            raise InputError("no_g_warmup_steps must be >= 0 (0: off)")
        if self.no_g_warmup_steps >= self.total_steps:
            raise InputError(
                f"no_g_warmup_steps ({self.no_g_warmup_steps}) must be below the run's steps ({self.total_steps})"
            )
        decoder_trainable = any("sam.mask_decoder.".startswith(p) for p in self.extra_trainable)
        if self.no_g_warmup_steps and not decoder_trainable:
            raise InputError(
                "no_g_warmup_steps needs the mask decoder trainable: add 'sam.mask_decoder.' to extra_trainable"
            )
        if self.g_phase_lr_restart and not self.no_g_warmup_steps:
            raise InputError("g_phase_lr_restart needs no_g_warmup_steps > 0")
        if self.g_phase_multimask_weight and not decoder_trainable:
            raise InputError(
                "g_phase_multimask_weight trains SAM-2's own outputs: add 'sam.mask_decoder.' to extra_trainable"
            )
        if self.g_loss_ramp_steps < 0:
            raise InputError("g_loss_ramp_steps must be >= 0 (0: off)")
        if self.g_loss_ramp_steps and not self.g_phase_multimask_weight:
            raise InputError(
                "g_loss_ramp_steps needs g_phase_multimask_weight > 0 (the term that trains while the ramp is low)"
            )
        if self.g_phase_multimask_weight < 0:
            raise InputError("g_phase_multimask_weight must be >= 0 (0: off)")
        if self.cache_max_gb <= 0:
            raise InputError("cache_max_gb must be > 0")
