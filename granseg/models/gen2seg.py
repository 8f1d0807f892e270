"""Gen2Seg models: a generative backbone (MAE or Stable Diffusion 2, or the DINO + VAE baseline) that paints
each instance of an image in its own colour, prompted by points (:mod:`granseg.predict.gen2seg`).

A :class:`Gen2SegModel` holds a :class:`Gen2SegConfig` and a network (see :mod:`granseg.models.gen2seg_backbones`).
``feature_image(image)`` returns the ``H x W x 3`` float32 feature image in [0, 1] at the original resolution
(square resize to the backbone's input size, per-sample min-max, gamma 0.7).

Checkpoint layouts read by :func:`load_gen2seg` (all local folders; nothing is downloaded):

* ``reachomk/gen2seg-mae-h`` and ``facebook/vit-mae-*``: a transformers ``ViTMAEForPreTraining`` folder
  (``config.json`` with ``model_type: vit_mae`` + weights);
* ``reachomk/gen2seg-sd``: a diffusers pipeline folder (``model_index.json``, ``unet/``, ``vae/``, optional
  ``scheduler/``, and either ``empty_prompt_embedding.safetensors`` or ``text_encoder/`` + ``tokenizer/`` from
  which the empty-prompt embedding is computed once and cached in memory);
* this package's own checkpoints: one of the above plus ``gen2seg_config.json`` (:class:`Gen2SegConfig`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from granseg.config import Config
from granseg.errors import CheckpointError, InputError

BACKBONES = ("mae", "sd", "dino-vae")
CONFIG_NAME = "gen2seg_config.json"
EMPTY_PROMPT_FILE = "empty_prompt_embedding.safetensors"
# SD-2 noise schedule (scheduler_config.json of stabilityai/stable-diffusion-2), used when the folder has none.
SD2_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
}


@dataclass
class Gen2SegConfig(Config):
    """What a Gen2Seg model is. ``architecture`` holds keyword overrides for a randomly initialised backbone
    (transformers/diffusers config kwargs, keyed ``mae``, ``unet``, ``vae``, ``dino``); ignored when weights are
    loaded from a folder. ``gamma`` is the inference gamma; ``image_size`` the square input side."""

    backbone: str = "mae"
    image_size: int = 224
    gamma: float = 0.7
    architecture: dict[str, Any] = field(default_factory=dict)
    prompt_embedding_dim: int = (
        1024  # SD: width of the (cached) empty-prompt embedding when randomly initialised
    )
    prompt_length: int = 77
    sd_timestep: int = (
        999  # SD: the one denoising step's timestep (the paper: 999; other values for ablations)
    )

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise InputError(f"Gen2SegConfig.backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.image_size < 1 or self.gamma <= 0:
            raise InputError("Gen2SegConfig: image_size must be >= 1 and gamma > 0")
        if not 0 <= self.sd_timestep <= 999:
            raise InputError(f"Gen2SegConfig: sd_timestep must lie in 0..999, got {self.sd_timestep}")


# --------------------------------------------------------------------------------------------------------------
# Building networks
# --------------------------------------------------------------------------------------------------------------
def _mae_from_config(config: Gen2SegConfig):
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    kwargs = {"image_size": config.image_size, "mask_ratio": 0.0, **config.architecture.get("mae", {})}
    return ViTMAEForPreTraining(ViTMAEConfig(**kwargs))


def _vae_from_config(config: Gen2SegConfig):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**config.architecture.get("vae", {}))


def _sd_alpha_bar(scheduler_config: dict[str, Any], timestep: int = 999) -> float:
    from diffusers import DDPMScheduler

    if scheduler_config.get("prediction_type", "v_prediction") != "v_prediction":
        raise CheckpointError(
            f"Gen2Seg SD expects a v-prediction scheduler, got prediction_type={scheduler_config['prediction_type']!r}"
        )
    keys = (
        "num_train_timesteps",
        "beta_start",
        "beta_end",
        "beta_schedule",
        "trained_betas",
        "prediction_type",
    )
    scheduler = DDPMScheduler(**{k: v for k, v in scheduler_config.items() if k in keys})
    return float(scheduler.alphas_cumprod[timestep])


def build_network(config: Gen2SegConfig, weights_dir: str | Path | None = None):
    """The ``nn.Module`` for ``config``: from the layout in ``weights_dir`` if given, else randomly initialised."""
    from granseg.models import gen2seg_backbones as nets

    root = Path(weights_dir) if weights_dir is not None else None
    if config.backbone == "mae":
        if root is None:
            return nets.MAEFeatureNet(_mae_from_config(config))
        return nets.MAEFeatureNet(_load_mae(root))
    if config.backbone == "sd":
        if root is None:
            from diffusers import UNet2DConditionModel

            unet_kwargs = {
                "cross_attention_dim": config.prompt_embedding_dim,
                **config.architecture.get("unet", {}),
            }
            unet = UNet2DConditionModel(**unet_kwargs)
            import torch

            embedding = torch.zeros(1, config.prompt_length, unet.config.cross_attention_dim)
            alpha_bar = _sd_alpha_bar(SD2_SCHEDULER, config.sd_timestep)
            vae = _vae_from_config(config)
            return nets.StableDiffusionFeatureNet(
                unet, vae, embedding, alpha_bar, config.image_size, config.sd_timestep
            )
        return _load_sd(root, config.image_size, config.sd_timestep)
    # dino-vae
    from transformers import Dinov2Config, Dinov2Model

    if root is None:
        dino = Dinov2Model(
            Dinov2Config(**{"image_size": config.image_size, **config.architecture.get("dino", {})})
        )
        return nets.DinoVAEFeatureNet(dino, _vae_from_config(config), config.image_size)
    network = nets.DinoVAEFeatureNet(
        _from_pretrained(Dinov2Model, root / "dino"), _load_vae(root / "vae"), config.image_size
    )
    head = root / "to_latent.safetensors"
    if head.is_file():
        from safetensors.torch import load_file

        network.to_latent.load_state_dict(load_file(str(head)))
    return network


def _from_pretrained(cls, folder: Path, **kwargs):
    if not folder.is_dir():
        raise CheckpointError(f"missing folder {folder} in the Gen2Seg checkpoint")
    if not any(folder.glob("*.safetensors")) and any(folder.glob("*.bin")):
        raise CheckpointError(
            f"{folder} holds only pickled weights (*.bin), which granseg never loads (a pickle can run code): "
            "save it with safetensors"
        )
    if "Tokenizer" not in cls.__name__:
        kwargs.setdefault("use_safetensors", True)  # never fall back to a pickle
    try:
        return cls.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"cannot load {cls.__name__} from {folder}: {str(exc).splitlines()[0]}"
        ) from exc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc


def _load_mae(root: Path):
    from transformers import ViTMAEForPreTraining

    model_type = (
        _read_json(root / "config.json").get("model_type") if (root / "config.json").is_file() else None
    )
    if model_type != "vit_mae":
        raise CheckpointError(
            f"{root} is not a ViT-MAE checkpoint (config.json model_type={model_type!r}, expected 'vit_mae')"
        )
    return _from_pretrained(ViTMAEForPreTraining, root, mask_ratio=0.0)


def _load_vae(folder: Path):
    from diffusers import AutoencoderKL

    return _from_pretrained(AutoencoderKL, folder)


def _empty_prompt_embedding(root: Path):
    """The cached empty-prompt embedding ``(1, L, D)``, or computed from ``text_encoder/`` + ``tokenizer/``."""
    import torch

    cached = root / EMPTY_PROMPT_FILE
    if cached.is_file():
        from safetensors.torch import load_file

        tensors = load_file(str(cached))
        if "embedding" not in tensors:
            raise CheckpointError(f"{cached} has no 'embedding' tensor")
        return tensors["embedding"].float()
    if (root / "text_encoder").is_dir() and (root / "tokenizer").is_dir():
        from transformers import AutoTokenizer, CLIPTextModel

        tokenizer = _from_pretrained(AutoTokenizer, root / "tokenizer")
        encoder = _from_pretrained(CLIPTextModel, root / "text_encoder")
        tokens = tokenizer(
            [""],
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        with torch.no_grad():
            return encoder(tokens.input_ids).last_hidden_state.float()
    raise CheckpointError(
        f"{root}: no {EMPTY_PROMPT_FILE} and no text_encoder/ + tokenizer/ to compute the empty-prompt embedding"
    )


def _load_sd(root: Path, image_size: int, timestep: int = 999):
    from diffusers import UNet2DConditionModel

    from granseg.models.gen2seg_backbones import StableDiffusionFeatureNet

    index = _read_json(root / "model_index.json") if (root / "model_index.json").is_file() else {}
    unet_class = (index.get("unet") or [None, None])[1]
    if unet_class not in (None, "UNet2DConditionModel"):
        raise CheckpointError(f"{root}: unet is a {unet_class}, expected UNet2DConditionModel")
    unet = _from_pretrained(UNet2DConditionModel, root / "unet")
    vae = _load_vae(root / "vae")
    scheduler_file = root / "scheduler" / "scheduler_config.json"
    scheduler_config = _read_json(scheduler_file) if scheduler_file.is_file() else SD2_SCHEDULER
    embedding = _empty_prompt_embedding(root)
    if embedding.shape[-1] != unet.config.cross_attention_dim:
        raise CheckpointError(
            f"empty-prompt embedding width {embedding.shape[-1]} != UNet cross_attention_dim {unet.config.cross_attention_dim}"
        )
    alpha_bar = _sd_alpha_bar(scheduler_config, timestep)
    return StableDiffusionFeatureNet(unet, vae, embedding, alpha_bar, image_size, timestep)


def is_gen2seg_checkpoint(path: str | Path) -> bool:
    """True for a folder :func:`load_gen2seg` reads (for ``load_model(path)`` dispatch): ours
    (``gen2seg_config.json``), a ViT-MAE folder, or a diffusers folder with ``unet/`` and ``vae/``."""
    root = Path(path)
    if not root.is_dir():
        return False
    if (root / CONFIG_NAME).is_file():
        return True
    if (root / "model_index.json").is_file():
        return (root / "unet").is_dir() and (root / "vae").is_dir()
    if (root / "config.json").is_file():
        try:
            return json.loads((root / "config.json").read_text()).get("model_type") == "vit_mae"
        except (OSError, json.JSONDecodeError):
            return False
    return False


def detect_layout(path: str | Path) -> str:
    """``"mae"``, ``"sd"`` or ``"dino-vae"`` for a checkpoint folder; :class:`CheckpointError` otherwise."""
    root = Path(path)
    if not root.is_dir():
        raise CheckpointError(f"{root} is not a Gen2Seg checkpoint folder")
    if (root / CONFIG_NAME).is_file():
        return Gen2SegConfig.from_json(root / CONFIG_NAME).backbone
    if (root / "model_index.json").is_file():
        return "sd"
    if (root / "config.json").is_file():
        model_type = _read_json(root / "config.json").get("model_type")
        if model_type == "vit_mae":
            return "mae"
        raise CheckpointError(
            f"{root} holds a {model_type!r} checkpoint, not a Gen2Seg one (expected a ViT-MAE or Stable Diffusion layout)"
        )
    raise CheckpointError(
        f"{root}: no {CONFIG_NAME}, model_index.json or config.json: not a Gen2Seg checkpoint"
    )


# --------------------------------------------------------------------------------------------------------------
# The model object
# --------------------------------------------------------------------------------------------------------------
class Gen2SegModel:
    """A Gen2Seg network plus its pre/post-processing. ``network`` is the ``nn.Module``; ``device`` a torch
    device string."""

    family = "gen2seg"

    def __init__(self, config: Gen2SegConfig, network, device: str = "cpu", name: str = "gen2seg") -> None:
        self.config = config
        self.network = network.to(device).eval()
        self.device = device
        self.name = name

    @property
    def patch_size(self) -> int:
        return int(self.network.patch_size)

    def preprocess(self, images):
        """``B x 3 x S x S`` float input for the network from ``B x 3 x S x S`` floats in [0, 1]."""
        import torch

        from granseg.models.gen2seg_backbones import IMAGENET_MEAN, IMAGENET_STD

        if self.network.input_range == "minus_one_one":
            return images * 2.0 - 1.0
        mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        return (images - mean) / std

    def image_to_tensor(self, image: np.ndarray):
        """``H x W x 3`` uint8 -> ``1 x 3 x S x S`` float in [0, 1] (bilinear square resize)."""
        import torch

        height, width = image.shape[:2]
        if min(height, width) < self.patch_size:
            raise InputError(
                f"image {width}x{height} is smaller than the model's patch size {self.patch_size}"
            )
        tensor = (
            torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))
            .permute(2, 0, 1)[None]
            .float()
            .div(255.0)
        )
        size = self.config.image_size
        return torch.nn.functional.interpolate(
            tensor, size=(size, size), mode="bilinear", align_corners=False
        )

    def feature_image(self, image: np.ndarray) -> np.ndarray:
        """``H x W x 3`` uint8 -> ``H x W x 3`` float32 in [0, 1]: min-max per sample, gamma, original size."""
        import torch

        height, width = image.shape[:2]
        batch = self.image_to_tensor(image).to(self.device)
        with torch.no_grad():
            raw = self.network(self.preprocess(batch)).float()
        low, high = raw.amin(), raw.amax()
        normalised = ((raw - low) / (high - low + 1e-8)).clamp(0, 1) ** self.config.gamma
        resized = torch.nn.functional.interpolate(
            normalised, size=(height, width), mode="bilinear", align_corners=False
        )
        return resized[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy().astype(np.float32)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the public layout of this backbone plus ``gen2seg_config.json`` (atomic per file)."""
        from safetensors.torch import save_file

        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        net = self.network
        if self.config.backbone == "mae":
            net.mae.save_pretrained(str(root))
        elif self.config.backbone == "sd":
            net.unet.save_pretrained(str(root / "unet"))
            net.vae.save_pretrained(str(root / "vae"))
            save_file(
                {"embedding": net.empty_prompt_embedding.cpu().contiguous()}, str(root / EMPTY_PROMPT_FILE)
            )
            index = {
                "_class_name": "Gen2SegPipeline",
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
            }
            (root / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        else:
            net.dino.save_pretrained(str(root / "dino"))
            net.vae.save_pretrained(str(root / "vae"))
            save_file(
                {k: v.contiguous() for k, v in net.to_latent.state_dict().items()},
                str(root / "to_latent.safetensors"),
            )
        self.config.to_json(root / CONFIG_NAME)
        return root


def load_gen2seg(path: str | Path, device: str = "cpu", **overrides: Any) -> Gen2SegModel:
    """Load a Gen2Seg model from a local folder in any layout of the module docstring."""
    root = Path(path)
    backbone = detect_layout(root)
    if (root / CONFIG_NAME).is_file():
        config = Gen2SegConfig.from_json(root / CONFIG_NAME)
    else:
        config = Gen2SegConfig(backbone=backbone)
        if backbone == "mae":
            config.image_size = int(_read_json(root / "config.json").get("image_size", 224))
        elif backbone == "sd":
            config.image_size = 512
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise InputError(f"unknown Gen2Seg option {key!r}")
        setattr(config, key, value)
    network = build_network(config, root)
    return Gen2SegModel(config, network, device=device, name=root.name)


# --------------------------------------------------------------------------------------------------------------
# Registry builders
# --------------------------------------------------------------------------------------------------------------
_TINY_VAE: dict[str, Any] = {
    "block_out_channels": (8, 8),
    "down_block_types": ("DownEncoderBlock2D",) * 2,
    "up_block_types": ("UpDecoderBlock2D",) * 2,
    "latent_channels": 4,
    "norm_num_groups": 4,
    "layers_per_block": 1,
    "sample_size": 32,
}

TINY_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "mae": {
        "mae": {
            "patch_size": 8,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "decoder_hidden_size": 32,
            "decoder_num_hidden_layers": 1,
            "decoder_num_attention_heads": 2,
            "decoder_intermediate_size": 64,
        }
    },
    "sd": {
        "unet": {
            "sample_size": 16,
            "in_channels": 4,
            "out_channels": 4,
            "layers_per_block": 1,
            "block_out_channels": (8, 16),
            "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
            "attention_head_dim": 2,
            "norm_num_groups": 4,
        },
        "vae": _TINY_VAE,
    },
    "dino-vae": {
        "dino": {
            "patch_size": 8,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "mlp_ratio": 2,
        },
        "vae": _TINY_VAE,
    },
}


def tiny_config(backbone: str = "mae", image_size: int = 32) -> Gen2SegConfig:
    """A tiny randomly initialised architecture (tests, CPU experiments)."""
    return Gen2SegConfig(
        backbone=backbone,
        image_size=image_size,
        architecture=json.loads(json.dumps(TINY_ARCHITECTURES[backbone])),
        prompt_embedding_dim=16,
        prompt_length=4,
    )


def build_tiny(
    device: str = "cpu", backbone: str = "mae", image_size: int = 32, seed: int = 0, **_: Any
) -> Gen2SegModel:
    """Registry builder for ``gen2seg-*-tiny``: random weights (a seeded init), for tests and demos."""
    import torch

    torch.manual_seed(seed)
    config = tiny_config(backbone, image_size)
    return Gen2SegModel(config, build_network(config), device=device, name=f"gen2seg-{backbone}-tiny")


def _builder_for_weights(name: str, hub_id: str):
    def build(device: str = "cpu", path: str | None = None, **overrides: Any) -> Gen2SegModel:
        from granseg.models.registry import checkpoint_dir

        folder = Path(path) if path else checkpoint_dir() / name
        if not folder.is_dir():
            raise CheckpointError(
                f"{name} needs the weights of {hub_id}: put that folder at {folder} (or pass its path as --model)"
            )
        model = load_gen2seg(folder, device=device, **overrides)
        model.name = name
        return model

    return build


build_gen2seg_mae_h = _builder_for_weights("gen2seg-mae-h", "reachomk/gen2seg-mae-h")
build_gen2seg_sd = _builder_for_weights("gen2seg-sd", "reachomk/gen2seg-sd")
