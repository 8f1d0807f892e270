"""Gen2Seg backbones as ``torch.nn.Module``: each maps a preprocessed ``B x 3 x S x S`` batch to a raw
``B x 3 x S x S`` feature image (no normalisation; the loss and the inference path min-max it).

* :class:`MAEFeatureNet`: transformers ``ViTMAEForPreTraining`` with mask ratio 0; encoder + decoder run end to end
  and the decoder's per-patch pixel predictions are unpatchified into an RGB image. Input: ImageNet mean/std.
* :class:`StableDiffusionFeatureNet`: diffusers ``UNet2DConditionModel`` + ``AutoencoderKL`` in one deterministic
  step: the image latent takes the place of the noise at t = 999, the UNet (conditioned on the cached empty-prompt
  embedding) predicts v, the predicted clean latent ``x0 = sqrt(abar) x_t - sqrt(1 - abar) v`` is decoded by the VAE.
  The VAE is frozen (``requires_grad=False``) but gradients flow through its decoder to the UNet. Input: [-1, 1].
* :class:`DinoVAEFeatureNet`: the paper's discriminative baseline, as we read it: DINOv2 patch tokens, a linear
  map to the 4 VAE latent channels, bilinear resize to the latent grid, the frozen SD VAE decoder. Input: ImageNet.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SD_TIMESTEP = 999


class MAEFeatureNet(nn.Module):
    """ViTMAEForPreTraining run without masking. ``forward``: ``B x 3 x S x S`` (ImageNet-normalised, S the
    config's image_size) -> ``B x 3 x S x S``."""

    input_range = "imagenet"

    def __init__(self, mae) -> None:
        super().__init__()
        mae.config.mask_ratio = 0.0
        self.mae = mae

    @property
    def image_size(self) -> int:
        return int(self.mae.config.image_size)

    @property
    def patch_size(self) -> int:
        return int(self.mae.config.patch_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        batch = pixel_values.shape[0]
        num_patches = (pixel_values.shape[-2] // self.patch_size) * (
            pixel_values.shape[-1] // self.patch_size
        )
        # Increasing noise makes ViTMAE's argsort "shuffle" the identity: nothing masked, patch order unchanged.
        noise = torch.arange(num_patches, device=pixel_values.device, dtype=torch.float32).expand(batch, -1)
        encoded = self.mae.vit(pixel_values, noise=noise)
        decoded = self.mae.decoder(encoded.last_hidden_state, encoded.ids_restore)
        return self.mae.unpatchify(decoded.logits, tuple(pixel_values.shape[-2:]))


class StableDiffusionFeatureNet(nn.Module):
    """One-step SD-2 (v-prediction). ``forward``: ``B x 3 x S x S`` in [-1, 1] -> ``B x 3 x S x S``."""

    input_range = "minus_one_one"

    def __init__(
        self,
        unet,
        vae,
        empty_prompt_embedding: torch.Tensor,
        alpha_bar: float,
        image_size: int,
        timestep: int = SD_TIMESTEP,
    ) -> None:
        super().__init__()
        self.unet = unet
        self.vae = vae
        self.vae.requires_grad_(False)
        self.register_buffer(
            "empty_prompt_embedding", empty_prompt_embedding.detach().clone(), persistent=False
        )
        self.alpha_bar = float(alpha_bar)  # of the scheduler at ``timestep``
        self.timestep = int(timestep)
        self.image_size = int(image_size)
        self.patch_size = 2 ** (len(vae.config.block_out_channels) - 1)  # the VAE's downsampling factor

    def train(self, mode: bool = True):
        super().train(mode)
        self.vae.eval()  # frozen: no dropout/statistics updates
        return self

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            latent = self.vae.encode(pixel_values).latent_dist.mode()
        return latent * self.vae.config.scaling_factor

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        latent = self.encode(pixel_values)
        batch = latent.shape[0]
        timestep = torch.full((batch,), self.timestep, device=latent.device, dtype=torch.long)
        context = self.empty_prompt_embedding.to(latent.dtype).expand(batch, -1, -1)
        velocity = self.unet(latent, timestep, encoder_hidden_states=context).sample
        clean = self.alpha_bar**0.5 * latent - (1.0 - self.alpha_bar) ** 0.5 * velocity
        return self.vae.decode(clean / self.vae.config.scaling_factor).sample


class DinoVAEFeatureNet(nn.Module):
    """DINOv2 + frozen VAE decoder baseline. ``forward``: ``B x 3 x S x S`` (ImageNet) -> ``B x 3 x S x S``."""

    input_range = "imagenet"

    def __init__(self, dino, vae, image_size: int) -> None:
        super().__init__()
        self.dino = dino
        self.vae = vae
        self.vae.requires_grad_(False)
        self.to_latent = nn.Linear(dino.config.hidden_size, vae.config.latent_channels)
        self.image_size = int(image_size)
        self.patch_size = int(dino.config.patch_size)
        self.latent_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    def train(self, mode: bool = True):
        super().train(mode)
        self.vae.eval()
        return self

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        height, width = pixel_values.shape[-2:]
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        tokens = self.dino(pixel_values).last_hidden_state[:, -grid_h * grid_w :]  # patch tokens, row-major
        latent = self.to_latent(tokens).transpose(1, 2).reshape(len(tokens), -1, grid_h, grid_w)
        size = (height // self.latent_factor, width // self.latent_factor)
        latent = nn.functional.interpolate(latent, size=size, mode="bilinear", align_corners=False)
        return self.vae.decode(latent / self.vae.config.scaling_factor).sample
