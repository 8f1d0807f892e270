"""Key names: package (transformers' ``Sam2Model`` + this package's modules) <-> Meta / official SAM-2 names.

The Meta <-> transformers SAM-2 name map below was written from the facts in transformers' SAM-2 / SAM-3 conversion
scripts (Meta ``image_encoder.trunk`` = HF ``vision_encoder.backbone``, ``normN`` = ``layer_normN``, 3-layer MLP
``layers.{0,1,2}`` = ``proj_in, layers.0, proj_out``, ``out_proj`` = ``o_proj``, ``output_upscaling.{0,1,3}``,
``mask_downscaling.{0,1,3,4,6}``, ``point_embeddings.i`` stacked into ``point_embed``, ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from granseg.errors import CheckpointError

PACKAGE_FORMAT = "granseg-unsamv2"
PASSTHROUGH_PREFIX = "passthrough."
# Meta SAM-2 tensors that belong to the video model only (kept aside, never silently dropped).
META_VIDEO_PREFIXES = (
    "memory_attention.",
    "memory_encoder.",
    "maskmem_tpos_enc",
    "no_mem_pos_enc",
    "no_obj_ptr",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
    "mask_downsample.",
    "no_obj_embed_spatial",
)
# transformers' own "video-only keys" patterns (Sam2PreTrainedModel._keys_to_ignore_on_load_unexpected).
HF_VIDEO_PATTERNS = (
    r"^memory_.*",
    r"^mask_downsample.*",
    r"^object_pointer_proj.*",
    r"^temporal_positional_encoding_projection_layer.*",
    r"^no_memory_positional_encoding$",
    r"^no_object_pointer$",
    r"^occlusion_spatial_embedding_parameter$",
)
POINT_EMBED_KEY = "sam.prompt_encoder.point_embed.weight"
SHARED_PE_KEY = "sam.shared_image_embedding.positional_embedding"
PROMPT_PE_KEY = "sam.prompt_encoder.shared_embedding.positional_embedding"


# ----------------------------------------------------------------------------------------- name map (package -> Meta)
_THREE_LAYER = {"proj_in": "layers.0", "layers.0": "layers.1", "proj_out": "layers.2"}
_MASK_EMBED = {"conv1": "0", "layer_norm1": "1", "conv2": "3", "layer_norm2": "4", "conv3": "6"}
_UPSCALE = {"upscale_conv1": "0", "upscale_layer_norm": "1", "upscale_conv2": "3"}
_TP = r"(weight|bias)"

# First matching rule wins; each produces the complete Meta name. Names have the "sam." prefix removed.
_SAM_RULES: list[tuple[str, str | Callable[[re.Match], str]]] = [
    (r"^no_memory_embedding$", "no_mem_embed"),
    (
        rf"^vision_encoder\.backbone\.patch_embed\.projection\.{_TP}$",
        r"image_encoder.trunk.patch_embed.proj.\1",
    ),
    (
        rf"^vision_encoder\.backbone\.blocks\.(\d+)\.layer_norm([12])\.{_TP}$",
        r"image_encoder.trunk.blocks.\1.norm\2.\3",
    ),
    (
        rf"^vision_encoder\.backbone\.blocks\.(\d+)\.mlp\.proj_in\.{_TP}$",
        r"image_encoder.trunk.blocks.\1.mlp.layers.0.\2",
    ),
    (
        rf"^vision_encoder\.backbone\.blocks\.(\d+)\.mlp\.proj_out\.{_TP}$",
        r"image_encoder.trunk.blocks.\1.mlp.layers.1.\2",
    ),
    (r"^vision_encoder\.backbone\.(.+)$", r"image_encoder.trunk.\1"),
    (rf"^vision_encoder\.neck\.convs\.(\d+)\.{_TP}$", r"image_encoder.neck.convs.\1.conv.\2"),
    (
        r"^prompt_encoder\.shared_embedding\.positional_embedding$",
        "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
    ),
    (
        rf"^prompt_encoder\.mask_embed\.(conv1|layer_norm1|conv2|layer_norm2|conv3)\.{_TP}$",
        lambda m: f"sam_prompt_encoder.mask_downscaling.{_MASK_EMBED[m.group(1)]}.{m.group(2)}",
    ),
    (r"^prompt_encoder\.(no_mask_embed|not_a_point_embed)\.weight$", r"sam_prompt_encoder.\1.weight"),
    (
        rf"^mask_decoder\.transformer\.layers\.(\d+)\.layer_norm(\d)\.{_TP}$",
        r"sam_mask_decoder.transformer.layers.\1.norm\2.\3",
    ),
    (
        rf"^mask_decoder\.transformer\.layers\.(\d+)\.mlp\.proj_in\.{_TP}$",
        r"sam_mask_decoder.transformer.layers.\1.mlp.layers.0.\2",
    ),
    (
        rf"^mask_decoder\.transformer\.layers\.(\d+)\.mlp\.proj_out\.{_TP}$",
        r"sam_mask_decoder.transformer.layers.\1.mlp.layers.1.\2",
    ),
    (rf"^mask_decoder\.transformer\.(.+)\.o_proj\.{_TP}$", r"sam_mask_decoder.transformer.\1.out_proj.\2"),
    (
        rf"^mask_decoder\.transformer\.layer_norm_final_attn\.{_TP}$",
        r"sam_mask_decoder.transformer.norm_final_attn.\1",
    ),
    (
        rf"^mask_decoder\.(upscale_conv1|upscale_layer_norm|upscale_conv2)\.{_TP}$",
        lambda m: f"sam_mask_decoder.output_upscaling.{_UPSCALE[m.group(1)]}.{m.group(2)}",
    ),
    (
        rf"^mask_decoder\.(output_hypernetworks_mlps\.\d+|iou_prediction_head|pred_obj_score_head)\.(proj_in|layers\.0|proj_out)\.{_TP}$",
        lambda m: f"sam_mask_decoder.{m.group(1)}.{_THREE_LAYER[m.group(2)]}.{m.group(3)}",
    ),
    (r"^mask_decoder\.(.+)$", r"sam_mask_decoder.\1"),
]
_GRANULARITY_RULES: list[tuple[str, str | Callable[[re.Match], str]]] = [
    (r"^granularity_encoder\.type_embedding$", "sam_prompt_encoder.granularity_embedding.weight"),
    (rf"^granularity_encoder\.mlp\.mlp\.(\d+)\.{_TP}$", r"sam_prompt_encoder.fourier_embedder.mlp.mlp.\1.\2"),
    (r"^granularity_head\.token\.weight$", "sam_mask_decoder.gra_token.weight"),
    (
        rf"^granularity_head\.hypernetwork\.(proj_in|layers\.0|proj_out)\.{_TP}$",
        lambda m: f"sam_mask_decoder.gra_output_token_mlp.{_THREE_LAYER[m.group(1)]}.{m.group(2)}",
    ),
    # Not in the official release (its IoU comes from the frozen head): this package's optional extension.
    (
        rf"^granularity_head\.iou_head\.(proj_in|layers\.0|proj_out)\.{_TP}$",
        lambda m: f"sam_mask_decoder.gra_iou_prediction_head.{_THREE_LAYER[m.group(1)]}.{m.group(2)}",
    ),
]
_LORA_SUFFIX = re.compile(
    r"^(.+)\.(base_layer\.(weight|bias)|lora_A\.default\.weight|lora_B\.default\.weight)$"
)


def _apply_rules(name: str, rules) -> str | None:
    for pattern, replacement in rules:
        match = re.match(pattern, name)
        if match:
            return replacement(match) if callable(replacement) else match.expand(replacement)
    return None


def package_key_to_meta(key: str) -> str:
    """One package ``state_dict`` name -> its Meta/official name (LoRA kept unmerged, official naming).

    ``sam.prompt_encoder.point_embed.weight`` (4 rows -> 4 Meta keys) and the duplicated
    ``sam.shared_image_embedding.positional_embedding`` are handled by :func:`to_meta_state_dict`.
    """
    lora = _LORA_SUFFIX.match(key)
    if lora:
        base, part = lora.group(1), lora.group(2)
        probe = base + ".weight" if not part.endswith("bias") else base + ".bias"
        mapped = package_key_to_meta(probe)
        stem = mapped.rsplit(".", 1)[0]
        if part.startswith("base_layer"):
            return f"{stem}.original_layer.{part.rsplit('.', 1)[1]}"
        return f"{stem}.{part.split('.', 1)[0]}"
    if key.startswith("sam."):
        mapped = _apply_rules(key[4:], _SAM_RULES)
    else:
        mapped = _apply_rules(key, _GRANULARITY_RULES)
    if mapped is None:
        raise CheckpointError(f"no Meta name for package key {key!r}")
    return mapped
