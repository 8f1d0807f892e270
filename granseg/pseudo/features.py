"""Dense patch features behind one interface.

Every extractor maps an ``H x W x 3`` uint8 RGB image to :class:`PatchFeatures`: an ``(h, w, C)`` float32
array of L2-normalised patch features on a regular grid (patch ``(i, j)`` covers image rows
``i * patch_size .. (i + 1) * patch_size`` and columns ``j * patch_size ..``, in the pixels of the image the
extractor was given after it was resized to a multiple of the patch size), and the patch size.

Extractors:

- ``classical``: weight-free colour (CIE Lab mean/std) + texture (gradient-orientation histogram, uniform LBP
  histogram, gradient energy) per patch, with a 3 x 3 patch context, standardised per image and L2-normalised.
  Runs anywhere, in milliseconds, on real photographs.
- ``dinov2*`` / ``dinov3*`` or any Hugging Face id/path of a ``Dinov2Model`` / ``Dinov2WithRegistersModel`` /
  ``DINOv3ViTModel``: last-layer patch tokens (CLS and register tokens dropped), any patch size.

Weights are never downloaded implicitly here: ids resolve from the local Hugging Face cache or a local path,
and a missing checkpoint raises :class:`~granseg.errors.CheckpointError` saying what to do.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from granseg.errors import CheckpointError, InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Short names for the official self-supervised backbones (resolved from the local cache only).
FEATURE_ALIASES = {
    "dinov2-small": "facebook/dinov2-small",
    "dinov2-base": "facebook/dinov2-base",
    "dinov2-large": "facebook/dinov2-large",
    "dinov2-base-reg": "facebook/dinov2-with-registers-base",
    "dinov3-vits16": "facebook/dinov3-vits16-pretrain-lvd1689m",
    "dinov3-vitb16": "facebook/dinov3-vitb16-pretrain-lvd1689m",
    "dinov3-vitl16": "facebook/dinov3-vitl16-pretrain-lvd1689m",
}


@dataclasses.dataclass
class PatchFeatures:
    """``features``: (h, w, C) float32, each vector L2-normalised; ``patch_size``: pixels per patch side.
    ``appearance_spread``: how much the appearance varies over the image before any standardisation (the
    classical features: the largest standard deviation over patches of a colour / gradient channel, in CIE Lab
    units); None when the backbone does not measure it (DINO)."""

    features: np.ndarray
    patch_size: int
    appearance_spread: float | None = None

    def is_featureless(self, min_spread: float) -> bool:
        """True when the appearance varies less than ``min_spread`` (0 = never; unknown spread: never)."""
        return min_spread > 0 and self.appearance_spread is not None and self.appearance_spread < min_spread


class FeatureExtractor(Protocol):
    """What the divide and conquer stages need from a feature backbone."""

    name: str
    patch_size: int

    def extract(self, image: np.ndarray) -> PatchFeatures:
        """``image``: H x W x 3 uint8 RGB whose sides are multiples of ``patch_size`` (others are cropped)."""
        ...


def resize_to_patch_multiple(image: np.ndarray, long_side: int, patch_size: int) -> np.ndarray:
    """Resize ``image`` (H x W x C) so its long side is about ``long_side`` and both sides are multiples of
    ``patch_size`` (at least one patch). Aspect ratio kept up to the rounding."""
    import cv2

    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    new_h = max(patch_size, int(round(height * scale / patch_size)) * patch_size)
    new_w = max(patch_size, int(round(width * scale / patch_size)) * patch_size)
    if (new_h, new_w) == (height, width):
        return image
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, (new_w, new_h), interpolation=interpolation)


def _crop_to_multiple(image: np.ndarray, patch_size: int) -> np.ndarray:
    height, width = image.shape[:2]
    h, w = (height // patch_size) * patch_size, (width // patch_size) * patch_size
    if h == 0 or w == 0:
        raise InputError(f"image {height}x{width} is smaller than one {patch_size}px patch")
    return image[:h, :w]


def l2_normalise(features: np.ndarray, axis: int = -1) -> np.ndarray:
    norm = np.linalg.norm(features, axis=axis, keepdims=True)
    return (features / np.maximum(norm, 1e-8)).astype(np.float32)


# ----------------------------------------------------------------------------------------------- classical
@dataclasses.dataclass
class ClassicalFeatures:
    """Weight-free colour + texture patch features.

    Per patch (``patch_size`` px): Lab mean (3) and std (3); gradient-orientation histogram (``orientations``
    bins, magnitude-weighted, unsigned) and mean gradient magnitude; uniform LBP (P=8, R=1) histogram (10).
    The same statistics averaged over the 3 x 3 neighbouring patches are appended (context makes textures
    coherent). Each channel is standardised over the image, each group (colour / texture, patch / context)
    is scaled to the weight given, and every vector is L2-normalised.
    """

    patch_size: int = 8
    orientations: int = 8
    colour_weight: float = 1.0
    texture_weight: float = 0.3
    context_weight: float = 0.8
    position_weight: float = 0.0
    name: str = "classical"

    def extract(self, image: np.ndarray) -> PatchFeatures:
        import cv2
        from skimage.feature import local_binary_pattern

        image = _crop_to_multiple(np.asarray(image), self.patch_size)
        p = self.patch_size
        h, w = image.shape[0] // p, image.shape[1] // p
        lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)  # L 0..100, a/b about +-100
        lab_patches = lab.reshape(h, p, w, p, 3)
        colour = np.concatenate([lab_patches.mean(axis=(1, 3)), lab_patches.std(axis=(1, 3))], axis=-1)

        lum = lab[..., 0]
        gx = cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3)
        magnitude = np.sqrt(gx * gx + gy * gy)
        angle = np.mod(np.arctan2(gy, gx), np.pi)
        bins = np.minimum((angle / np.pi * self.orientations).astype(np.int64), self.orientations - 1)
        onehot = np.zeros((*lum.shape, self.orientations), np.float32)
        np.put_along_axis(onehot, bins[..., None], magnitude[..., None], axis=-1)
        hog = onehot.reshape(h, p, w, p, self.orientations).mean(axis=(1, 3))
        energy = magnitude.reshape(h, p, w, p).mean(axis=(1, 3))[..., None]
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        codes = local_binary_pattern(gray, 8, 1, method="uniform").astype(np.int64)  # 0..9
        lbp = np.zeros((*gray.shape, 10), np.float32)
        np.put_along_axis(lbp, codes[..., None], 1.0, axis=-1)
        lbp = lbp.reshape(h, p, w, p, 10).mean(axis=(1, 3))
        texture = np.concatenate([np.sqrt(hog), np.sqrt(energy), np.sqrt(lbp)], axis=-1)

        groups = []
        for block, weight in ((colour, self.colour_weight), (texture, self.texture_weight)):
            context = cv2.blur(block, (3, 3), borderType=cv2.BORDER_REFLECT) if h > 1 and w > 1 else block
            groups.append((_standardise(block), weight))
            groups.append((_standardise(context), weight * self.context_weight))
        if self.position_weight > 0:  # a spatial prior: far-apart patches look less alike (compact regions)
            ys, xs = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
            scale = max(h, w) / np.array([max(w, 1), max(h, 1)], dtype=np.float32)  # same units on both axes
            position = np.stack([xs / scale[0], ys / scale[1]], axis=-1).astype(np.float32)
            groups.append((position * np.sqrt(2.0) / 0.577, self.position_weight))
        stacked = np.concatenate([g / np.sqrt(g.shape[-1]) * wt for g, wt in groups], axis=-1)
        # raw spread of colour (Lab mean / std) and gradient (orientation energies, magnitude) over patches:
        # near 0 for one flat colour or a uniform fine texture, where standardisation would amplify noise
        raw = np.concatenate([colour, hog, energy], axis=-1).reshape(h * w, -1)
        return PatchFeatures(l2_normalise(stacked), p, float(raw.std(axis=0).max()))


def _standardise(block: np.ndarray) -> np.ndarray:
    flat = block.reshape(-1, block.shape[-1])
    std = flat.std(axis=0)
    # channels that barely vary over the image carry no information; keep them near zero (no noise blow-up)
    scale = np.maximum(std, 0.05 * (std.max() + 1e-8))
    return ((block - flat.mean(axis=0)) / scale).astype(np.float32)


# ----------------------------------------------------------------------------------------------- DINO (HF)
class DinoFeatures:
    """Patch tokens of a transformers ``Dinov2Model`` / ``Dinov2WithRegistersModel`` / ``DINOv3ViTModel``.

    ``model`` is an instantiated module (e.g. built from a tiny random config in tests); the patch size and
    the number of prefix tokens (CLS + registers) are read from its config and checked against the output.
    """

    def __init__(
        self, model: Any, name: str = "dino", device: str = "cpu", mean=IMAGENET_MEAN, std=IMAGENET_STD
    ):
        import torch

        self.model = model.eval().to(device)
        self.device = device
        self.name = name
        patch = model.config.patch_size
        self.patch_size = int(patch[0] if isinstance(patch, list | tuple) else patch)
        self.num_registers = int(getattr(model.config, "num_register_tokens", 0) or 0)
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def extract(self, image: np.ndarray) -> PatchFeatures:
        import torch

        image = _crop_to_multiple(np.asarray(image), self.patch_size)
        h, w = image.shape[0] // self.patch_size, image.shape[1] // self.patch_size
        pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
        pixels = ((pixels - self._mean) / self._std).to(self.device)
        dtype = next(self.model.parameters()).dtype
        with torch.inference_mode():
            tokens = self.model(pixel_values=pixels.to(dtype)).last_hidden_state[0]
        num_prefix = tokens.shape[0] - h * w
        if num_prefix != 1 + self.num_registers:
            raise CheckpointError(
                f"{self.name}: got {tokens.shape[0]} tokens for a {h}x{w} patch grid; expected "
                f"1 CLS + {self.num_registers} register tokens before the patches"
            )
        patches = tokens[num_prefix:].float().reshape(h, w, -1).cpu().numpy()
        return PatchFeatures(l2_normalise(patches), self.patch_size)


def load_dino(name_or_path: str, device: str = "cpu") -> DinoFeatures:
    """Load a DINOv2/DINOv3 backbone from a local path or the local Hugging Face cache (no download)."""
    from transformers import AutoConfig, AutoModel

    source = FEATURE_ALIASES.get(name_or_path, name_or_path)
    local = Path(source).expanduser()
    if local.is_dir() and not any(local.glob("*.safetensors")) and any(local.glob("*.bin")):
        raise CheckpointError(
            f"feature backbone {local} holds only pickled weights (*.bin), which granseg never loads (a pickle "
            "can run code): save the model with safetensors (model.save_pretrained(dir, safe_serialization=True))"
        )
    try:
        config = AutoConfig.from_pretrained(str(local) if local.exists() else source, local_files_only=True)
        model = AutoModel.from_pretrained(
            str(local) if local.exists() else source, local_files_only=True, use_safetensors=True
        )
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"feature backbone '{name_or_path}' ({source}) is not available locally: download it once with "
            f"`hf download {source}` (or pass a local directory), or use --features classical "
            f"[{type(exc).__name__}]"
        ) from None
    if config.model_type not in ("dinov2", "dinov2_with_registers", "dinov3_vit"):
        raise CheckpointError(f"'{name_or_path}' is a {config.model_type} model, not DINOv2/DINOv3")
    return DinoFeatures(model, name=name_or_path, device=device)


def get_feature_extractor(name: str = "classical", device: str = "cpu", **options: Any) -> FeatureExtractor:
    """``classical`` (options: patch_size, ...), an alias in :data:`FEATURE_ALIASES`, or an HF id/path."""
    if name == "classical":
        return ClassicalFeatures(**options)
    if options:
        raise InputError(f"options {sorted(options)} only apply to the classical features")
    return load_dino(name, device=device)
