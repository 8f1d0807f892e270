"""The Gen2Seg training task for :class:`granseg.train.trainer.Trainer`: a Gen2Seg network trained with the
instance-colouring loss (or the plain foreground loss, the ablation baseline) on synthetic scenes or COCO JSON.

Defaults follow the Gen2Seg paper's recipe (docs/gen2seg.md): AdamW lr 6e-5, wd 1e-2, 100 warm-up steps, cosine, batch 2
x accumulation 4, gradient clip 1 (the paper trains 30k steps; set ``steps`` to what you can afford).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from granseg.errors import InputError
from granseg.io.files import atomic_write_text
from granseg.models.gen2seg import Gen2SegConfig, Gen2SegModel, build_network, load_gen2seg
from granseg.train.instance_data import InstanceDataConfig, build_instance_dataset
from granseg.train.losses import UNLABELLED_MODES, foreground_loss, instance_colouring_loss
from granseg.train.trainer import TrainConfig


@dataclasses.dataclass
class Gen2SegTrainConfig(TrainConfig):
    task: str = "gen2seg"
    output_dir: str = "runs/gen2seg"
    steps: int = 30000
    batch_size: int = 2
    grad_accumulation: int = 4
    lr: float = 6e-5
    weight_decay: float = 1e-2
    warmup_steps: int = 100
    schedule: str = "cosine"
    grad_clip: float = 1.0
    model: Gen2SegConfig = dataclasses.field(default_factory=Gen2SegConfig)
    init_from: str | None = None  # a local checkpoint folder (public layout or ours); None = random init
    data: InstanceDataConfig = dataclasses.field(default_factory=InstanceDataConfig)
    loss: str = "instance"  # "instance" (instance colouring) or "foreground" (ablation baseline)
    # unlabelled background (label -2, e.g. Virtual KITTI 2): "separation" keeps it among the "other" pixels of the
    # separation term (the authors' code); "ignore" leaves it out of every term
    unlabelled: str = "separation"
    # fine-tune only the last N blocks (transformer layers, or UNet down/mid/up blocks) and the output head;
    # 0 = everything (the paper's setting)
    trainable_layers: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss not in ("instance", "foreground"):
            raise InputError(f"loss must be 'instance' or 'foreground', got {self.loss!r}")
        if self.unlabelled not in UNLABELLED_MODES:
            raise InputError(f"unlabelled must be one of {UNLABELLED_MODES}, got {self.unlabelled!r}")
        if self.trainable_layers < 0:
            raise InputError("trainable_layers must be >= 0 (0 = train every layer)")


class Gen2SegModule(torch.nn.Module):
    """The trainable wrapper: ``forward(images)`` with images ``B x 3 x S x S`` in [0, 1] -> raw ``B x 3 x S x S``."""

    def __init__(self, model: Gen2SegModel) -> None:
        super().__init__()
        self.network = model.network
        self._model = model  # for preprocessing (not a registered submodule)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(self._model.preprocess(images))


class Gen2SegTask:
    config_class = Gen2SegTrainConfig

    def __init__(self, config: Gen2SegTrainConfig) -> None:
        self.config = config
        self.dataset = build_instance_dataset(config.data, config.model.image_size, config.model.backbone)

    def build_module(self) -> Gen2SegModule:
        cfg = self.config
        if cfg.init_from:
            model = load_gen2seg(
                cfg.init_from,
                device="cpu",
                image_size=cfg.model.image_size,
                sd_timestep=cfg.model.sd_timestep,
            )
        else:
            model = Gen2SegModel(cfg.model, build_network(cfg.model), device="cpu")
        if cfg.trainable_layers:
            freeze_all_but_last(model.network, cfg.trainable_layers)
        return Gen2SegModule(model)

    def dataset_size(self) -> int:
        return len(self.dataset)

    def load_samples(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        if hasattr(self.dataset, "batch"):  # cleaned / mixed sources (skips unusable images)
            return self.dataset.batch(indices)
        images, labels = zip(*(self.dataset[i] for i in indices))
        return torch.stack(images), torch.stack(labels)

    def loss(self, module: torch.nn.Module, batch) -> torch.Tensor:
        device = next(module.parameters()).device
        images, labels = batch[0].to(device), batch[1].to(device)
        prediction = module(images).float()
        if self.config.loss == "instance":
            return instance_colouring_loss(prediction, labels, unlabelled=self.config.unlabelled)
        return foreground_loss(prediction, labels)

    def export(self, module: torch.nn.Module, folder: Path) -> None:
        model = Gen2SegModel(
            self.config.model, module.network, device="cpu", name=Path(self.config.output_dir).name
        )
        model.save_pretrained(folder)
        skipped = getattr(self.dataset, "skipped", None)
        if skipped is not None:  # images the cleaned sources skipped, by reason
            atomic_write_text(
                Path(folder) / "data_report.json", json.dumps({"skipped": skipped}, indent=2) + "\n"
            )


def _layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The transformer layers of a transformers ViT-like model (``layers`` in transformers 5, ``encoder.layer``
    before)."""
    return model.layers if hasattr(model, "layers") else model.encoder.layer


def trainable_blocks(network: torch.nn.Module) -> tuple[list[torch.nn.Module], list[torch.nn.Module]]:
    """``(blocks in forward order, output head modules)`` of a Gen2Seg backbone, for :func:`freeze_all_but_last`."""
    if hasattr(network, "mae"):
        mae = network.mae
        return [*_layers(mae.vit), *mae.decoder.decoder_layers], [
            mae.decoder.decoder_norm,
            mae.decoder.decoder_pred,
        ]
    if hasattr(network, "unet"):
        unet = network.unet
        head = [m for m in (unet.conv_norm_out, unet.conv_out) if m is not None]
        return [*unet.down_blocks, unet.mid_block, *unet.up_blocks], head
    if hasattr(network, "dino"):
        return [*_layers(network.dino)], [network.to_latent]
    raise InputError(f"trainable_layers: unknown network {type(network).__name__}")


def freeze_all_but_last(network: torch.nn.Module, count: int) -> None:
    """Freeze every parameter except those of the last ``count`` blocks and the output head (a frozen VAE
    stays frozen)."""
    blocks, head = trainable_blocks(network)
    if count > len(blocks):
        raise InputError(f"trainable_layers={count} but the network has {len(blocks)} blocks")
    network.requires_grad_(False)
    for module in [*blocks[len(blocks) - count :], *head]:
        module.requires_grad_(True)
