"""LoRA on SAM-2's two-way transformer, through peft: the 28 adapted projections and merging them away.

Merging happens here only, with peft's own ``LoraLayer.merge`` (``W + (alpha / r) * B @ A``), followed by putting
each layer's base ``nn.Linear`` back in its place (what peft's ``merge_and_unload`` does for a ``PeftModel``; the
adapters here are injected with ``inject_adapter_in_model``, so there is no ``PeftModel`` to call it on).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from granseg.models.unsamv2_config import LoraSettings

# The 28 LoRA sites: q/k/v/out projections of self_attn, cross_attn_token_to_image, cross_attn_image_to_token in
# both two-way blocks (24) and of final_attn_token_to_image (4). Names are relative to the two-way transformer.
LORA_TARGET_REGEX = (
    r"(layers\.\d+\.(self_attn|cross_attn_token_to_image|cross_attn_image_to_token)|final_attn_token_to_image)"
    r"\.(q_proj|k_proj|v_proj|o_proj)"
)
LORA_SITES = 28


def lora_config(settings: LoraSettings):
    """peft ``LoraConfig`` for ``settings`` on :data:`LORA_TARGET_REGEX`."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=LORA_TARGET_REGEX,
        bias="none",
    )


def lora_modules(module: nn.Module) -> dict[str, nn.Module]:
    """Name -> peft LoRA layer, for every adapted linear under ``module``."""
    from peft.tuners.lora import LoraLayer

    return {name: sub for name, sub in module.named_modules() if isinstance(sub, LoraLayer)}


def attach_lora(transformer: nn.Module, settings: LoraSettings) -> None:
    """Inject peft adapters into the two-way transformer, initialised as the official release does
    (``A ~ N(0, init_a_std)``, ``B = 0``: the adapted model starts equal to the base)."""
    from peft import inject_adapter_in_model

    inject_adapter_in_model(lora_config(settings), transformer)
    adapted = lora_modules(transformer)
    if len(adapted) != LORA_SITES:
        raise RuntimeError(
            f"expected {LORA_SITES} LoRA sites in the two-way transformer, found {len(adapted)}"
        )
    with torch.no_grad():
        for layer in adapted.values():
            nn.init.normal_(layer.lora_A["default"].weight, std=settings.init_a_std)
            nn.init.zeros_(layer.lora_B["default"].weight)


def merged_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` (eval mode, no gradients) in which every peft LoRA layer is merged by peft
    (``LoraLayer.merge``) and replaced by its base ``nn.Linear``: same outputs in eval mode, plain names
    (``<proj>.weight`` instead of ``<proj>.base_layer.weight`` + ``lora_A/B``), no per-call adapter cost."""
    merged = copy.deepcopy(module).eval()
    for name, layer in lora_modules(merged).items():
        layer.merge(safe_merge=True)
        parent_name, _, child = name.rpartition(".")
        parent = merged.get_submodule(parent_name) if parent_name else merged
        setattr(parent, child, layer.get_base_layer())
    for parameter in merged.parameters():
        parameter.requires_grad = False
    return merged
