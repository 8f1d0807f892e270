"""Safe checkpoint loading, key maps and converters for UnSAMv2 / SAM-2 weights.

Layouts understood:

* ``official``: the UnSAMv2 release, a torch file ``{"model": state_dict}`` with Meta SAM-2 key names plus the
  granularity keys (``sam_prompt_encoder.granularity_embedding.weight``, ``sam_prompt_encoder.fourier_embedder.mlp.
  mlp.{0,3,6}.*``, ``sam_mask_decoder.gra_token.weight``, ``sam_mask_decoder.gra_output_token_mlp.layers.{0,1,2}.*``)
  and unmerged LoRA keys (``<proj>.original_layer.{weight,bias}``, ``<proj>.lora_A`` [r, in], ``<proj>.lora_B``
  [out, r]). The same Meta naming with merged LoRA (plain ``<proj>.weight``) is also accepted.
* ``meta``: plain SAM-2 / SAM-2.1 files from Meta (``{"model": state_dict}``); video-only tensors (memory attention,
  memory encoder, object pointers) are kept aside in ``model.passthrough`` so that exporting back loses nothing.
* ``hf``: a Hugging Face ``facebook/sam2(.1)-hiera-*`` folder (``config.json`` + ``model.safetensors``).
* ``package``: this package's ``.safetensors`` (the model's own ``state_dict`` names) with its
  :class:`~granseg.models.unsamv2.UnSAMv2Config` as JSON beside it (``<stem>.json``, also in the file's metadata).

Loading is safe (``torch.load(weights_only=True)`` or safetensors, always onto the CPU first) and strict: every
missing, unexpected or mis-shaped key is reported in a :class:`~granseg.errors.CheckpointError`.

The Meta <-> transformers SAM-2 name map below was written from the facts in transformers' SAM-2 / SAM-3 conversion
scripts (Meta ``image_encoder.trunk`` = HF ``vision_encoder.backbone``, ``normN`` = ``layer_normN``, 3-layer MLP
``layers.{0,1,2}`` = ``proj_in, layers.0, proj_out``, ``out_proj`` = ``o_proj``, ``output_upscaling.{0,1,3}``,
``mask_downscaling.{0,1,3,4,6}``, ``point_embeddings.i`` stacked into ``point_embed``, ...).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from granseg.errors import CheckpointError
from granseg.models.unsamv2 import (
    SAM2_ARCHITECTURES,
    LoraSettings,
    Sam2Architecture,
    UnSAMv2Config,
    UnSAMv2Model,
    lora_modules,
)

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


# ------------------------------------------------------------------------------------------------ reporting
@dataclasses.dataclass
class KeyReport:
    """What did not line up between a checkpoint and a model."""

    missing: list[str] = dataclasses.field(default_factory=list)
    unexpected: list[str] = dataclasses.field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = dataclasses.field(default_factory=list)  # key, file, model
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing (e.g. {self.missing[0]!r})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected (e.g. {self.unexpected[0]!r})")
        if self.mismatched:
            key, got, want = self.mismatched[0]
            parts.append(
                f"{len(self.mismatched)} with the wrong shape (e.g. {key!r}: {list(got)} in the file, {list(want)} expected)"
            )
        return "; ".join(parts) or "all keys match"

    def details(self, limit: int = 20) -> str:
        lines = []
        for title, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            if items:
                lines.append(f"  {title} ({len(items)}):")
                lines += [f"    {k}" for k in items[:limit]]
                if len(items) > limit:
                    lines.append(f"    ... and {len(items) - limit} more")
        if self.mismatched:
            lines.append(f"  wrong shape ({len(self.mismatched)}):")
            lines += [f"    {k}: file {list(a)} vs model {list(b)}" for k, a, b in self.mismatched[:limit]]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def raise_if_bad(self, source: str, model_name: str) -> None:
        if not self.ok:
            raise CheckpointError(
                f"checkpoint {source} does not match model {model_name}: {self.summary()}\n{self.details()}"
            )


def load_package_state_dict(
    model: UnSAMv2Model, state_dict: dict[str, torch.Tensor], source: str
) -> KeyReport:
    """Strict load of package-named tensors (plus ``passthrough.*``) into ``model``; raises on any mismatch."""
    expected = model.state_dict()
    report = KeyReport()
    passthrough = {
        k[len(PASSTHROUGH_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(PASSTHROUGH_PREFIX)
    }
    tensors = {k: v for k, v in state_dict.items() if not k.startswith(PASSTHROUGH_PREFIX)}
    report.missing = sorted(set(expected) - set(tensors))
    report.unexpected = sorted(set(tensors) - set(expected))
    report.mismatched = [
        (k, tuple(v.shape), tuple(expected[k].shape))
        for k, v in sorted(tensors.items())
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    report.raise_if_bad(source, model.name)
    model.load_state_dict(tensors, strict=True)
    model.passthrough = dict(passthrough)
    if passthrough:
        report.notes.append(f"{len(passthrough)} video-only tensors kept aside for export")
    return report


# ---------------------------------------------------------------------------------------------- safe reading
def safe_torch_load(path: str | Path) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` on the CPU; unwraps ``{"model": ...}`` / ``{"state_dict": ...}``.
    Anything that is not plain tensors (pickled code, objects) is refused with a :class:`CheckpointError`."""
    path = Path(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for code/objects, RuntimeError for corrupt archives
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"refusing to load {path}: not a plain-tensor checkpoint (torch.load(weights_only=True) failed: {first}). "
            "Only weights-only torch files and .safetensors are accepted."
        ) from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        loaded = loaded["model"]
    elif isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not loaded:
        raise CheckpointError(f"{path} holds no state dict (expected a dict of tensors or {{'model': ...}})")
    bad = [k for k, v in loaded.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entry {bad[0]!r} is not a tensor ({len(bad)} such entries)")
    return loaded


def safe_safetensors_load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a ``.safetensors`` file (CPU)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path} as safetensors: {exc}") from exc
    return tensors, metadata


# --------------------------------------------------------------------------------------------- Meta <-> package
def infer_meta_config(state_dict: dict[str, torch.Tensor], name: str) -> UnSAMv2Config:
    """Guess the config of a Meta/official state dict from its shapes (the four released Hiera sizes)."""
    patch = state_dict.get("image_encoder.trunk.patch_embed.proj.weight")
    if patch is None:
        raise CheckpointError(
            f"{name}: not a SAM-2 checkpoint (no 'image_encoder.trunk.patch_embed.proj.weight'); "
            "if it is this package's format, use .safetensors with its .json config beside it"
        )
    blocks = {
        int(m.group(1)) for k in state_dict if (m := re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", k))
    }
    embed_dim = int(patch.shape[0])
    arch = next(
        (
            a
            for a in SAM2_ARCHITECTURES.values()
            if a.embed_dim == embed_dim and sum(a.blocks_per_stage) == len(blocks)
        ),
        None,
    )
    if arch is None:
        raise CheckpointError(
            f"{name}: Hiera with embed dim {embed_dim} and {len(blocks)} blocks is not one of the released SAM-2 sizes; "
            "pass its UnSAMv2Config (a JSON file next to the checkpoint, <stem>.json)"
        )
    return config_from_meta_keys(state_dict, name, arch)


def config_from_meta_keys(
    state_dict: dict[str, torch.Tensor], name: str, arch: Sam2Architecture
) -> UnSAMv2Config:
    """Granularity / LoRA / IoU-head switches from which keys a Meta-layout state dict has."""
    granularity = "sam_mask_decoder.gra_token.weight" in state_dict
    lora_a = [v for k, v in state_dict.items() if k.endswith(".lora_A")]
    return UnSAMv2Config(
        name=name,
        sam2=arch,
        granularity=granularity,
        lora=LoraSettings(rank=int(lora_a[0].shape[0])) if lora_a else None,
        dedicated_iou_head=any(k.startswith("sam_mask_decoder.gra_iou_prediction_head.") for k in state_dict),
    )


def meta_to_package_state_dict(
    state_dict: dict[str, torch.Tensor], model: UnSAMv2Model
) -> tuple[dict[str, torch.Tensor], KeyReport]:
    """Rename a Meta/official state dict into ``model``'s names. Video-only tensors go to ``passthrough.*``.
    Unknown tensors are reported as unexpected (nothing is dropped silently)."""
    expected = model.state_dict()
    inverse = {package_key_to_meta(k): k for k in expected if k not in (POINT_EMBED_KEY, SHARED_PE_KEY)}
    report = KeyReport()
    converted: dict[str, torch.Tensor] = {}
    point_rows: dict[int, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key in inverse:
            converted[inverse[key]] = value
        elif match := re.fullmatch(r"sam_prompt_encoder\.point_embeddings\.(\d+)\.weight", key):
            point_rows[int(match.group(1))] = value
        elif key.startswith(META_VIDEO_PREFIXES):
            converted[PASSTHROUGH_PREFIX + key] = value
        else:
            report.unexpected.append(key)
    if point_rows:
        count = expected[POINT_EMBED_KEY].shape[0]
        if sorted(point_rows) != list(range(count)):
            report.missing += [
                f"sam_prompt_encoder.point_embeddings.{i}.weight" for i in range(count) if i not in point_rows
            ]
        else:
            converted[POINT_EMBED_KEY] = torch.cat(
                [point_rows[i].reshape(1, -1) for i in range(count)], dim=0
            )
    else:
        report.missing.append("sam_prompt_encoder.point_embeddings.*.weight")
    if PROMPT_PE_KEY in converted:
        converted[SHARED_PE_KEY] = converted[PROMPT_PE_KEY]  # one Gaussian matrix in Meta's SAM-2
    for key in expected:
        if key not in converted and key != POINT_EMBED_KEY:
            report.missing.append(package_key_to_meta(key) if key != SHARED_PE_KEY else key)
    report.mismatched = [
        (
            package_key_to_meta(k) if k not in (POINT_EMBED_KEY, SHARED_PE_KEY) else k,
            tuple(v.shape),
            tuple(expected[k].shape),
        )
        for k, v in converted.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    return converted, report


def to_meta_state_dict(model: UnSAMv2Model, merge_lora: bool = False) -> dict[str, torch.Tensor]:
    """The model in Meta/official names (unmerged LoRA as ``original_layer``/``lora_A``/``lora_B``, or merged),
    plus the kept video-only tensors."""
    source = merged_state_dict(model) if merge_lora else model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if key == SHARED_PE_KEY:
            continue
        if key == POINT_EMBED_KEY:
            for index in range(value.shape[0]):
                out[f"sam_prompt_encoder.point_embeddings.{index}.weight"] = value[index : index + 1].clone()
            continue
        out[package_key_to_meta(key)] = value.detach().clone().contiguous()
    for key, value in model.passthrough.items():
        out[key] = value
    return out


# ------------------------------------------------------------------------------------------------------ LoRA
def merged_state_dict(model: UnSAMv2Model) -> dict[str, torch.Tensor]:
    """Package ``state_dict`` with every LoRA folded in (``W + (alpha / r) * B @ A``) and plain linear names."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    transformer_prefix = "sam.mask_decoder.transformer."
    for name, layer in lora_modules(model.sam.mask_decoder.transformer).items():
        prefix = transformer_prefix + name
        a = state.pop(f"{prefix}.lora_A.default.weight")
        b = state.pop(f"{prefix}.lora_B.default.weight")
        scaling = layer.scaling["default"]
        state[f"{prefix}.weight"] = state.pop(f"{prefix}.base_layer.weight") + scaling * (b @ a)
        state[f"{prefix}.bias"] = state.pop(f"{prefix}.base_layer.bias")
    return state


def merge_lora(model: UnSAMv2Model) -> UnSAMv2Model:
    """A new model without adapters whose decoder weights include the LoRA update (same outputs, faster)."""
    if model.config.lora is None:
        return model
    config = dataclasses.replace(model.config, lora=None)
    merged = UnSAMv2Model(config)
    load_package_state_dict(merged, merged_state_dict(model), "merged LoRA")
    merged.passthrough = dict(model.passthrough)
    return merged.to(model.device)


# ------------------------------------------------------------------------------------------------ save / load
def config_path_for(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix(".json")


def save_package(model: UnSAMv2Model, path: str | Path, merge_lora: bool = False) -> Path:
    """Write ``path`` (.safetensors, package names + ``passthrough.*``) and ``<stem>.json`` (the config)."""
    from safetensors.torch import save

    from granseg.io.files import atomic_write_bytes

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"package checkpoints are .safetensors files, got {path.name}")
    config = dataclasses.replace(model.config, lora=None) if merge_lora else model.config
    state = merged_state_dict(model) if merge_lora else model.state_dict()
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    tensors.update({PASSTHROUGH_PREFIX + k: v.contiguous().cpu() for k, v in model.passthrough.items()})
    payload = save(tensors, metadata={"format": PACKAGE_FORMAT, "config": config.to_json()})
    atomic_write_bytes(path, payload)
    config.to_json(config_path_for(path))
    return path


def save_meta(model: UnSAMv2Model, path: str | Path, merge_lora: bool = False) -> Path:
    """Write the official/Meta layout: ``torch.save({"model": state_dict})`` (weights-only loadable)."""
    import io

    from granseg.io.files import atomic_write_bytes

    buffer = io.BytesIO()
    torch.save({"model": to_meta_state_dict(model, merge_lora=merge_lora)}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def _read_config_override(config: Any) -> UnSAMv2Config | None:
    if config is None or isinstance(config, UnSAMv2Config):
        return config
    return UnSAMv2Config.from_json(config)


def training_output_model(path: str | Path) -> Path:
    """A ``granseg train`` output folder (or its ``model/``) holding ``unsamv2.safetensors`` -> that file;
    any other path unchanged."""
    path = Path(path)
    for candidate in (path / "model" / "unsamv2.safetensors", path / "unsamv2.safetensors"):
        if path.is_dir() and candidate.is_file():
            return candidate
    return path


def load_model_from_path(
    path: str | Path, device: str = "cpu", config: UnSAMv2Config | str | Path | None = None, **overrides: Any
):
    """Load any supported layout (see module docstring). ``config`` forces the architecture (an
    :class:`UnSAMv2Config` or a JSON path); other keyword overrides replace config fields (e.g. ``resize_mode``).
    Gen2Seg checkpoint folders (:func:`granseg.models.gen2seg.is_gen2seg_checkpoint`) go to their own loader."""
    path = training_output_model(path)
    if config is None and Path(path).is_dir():
        from granseg.models import gen2seg

        if gen2seg.is_gen2seg_checkpoint(path):
            return gen2seg.load_gen2seg(path, device=device, **overrides)
    model, _ = load_with_report(path, config=config, **overrides)
    return model.to(device)


def load_with_report(
    path: str | Path, config: UnSAMv2Config | str | Path | None = None, **overrides: Any
) -> tuple[UnSAMv2Model, KeyReport]:
    """Like :func:`load_model_from_path` (on the CPU) but also returns the key report."""
    path = Path(path)
    forced = _read_config_override(config)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        return _load_hf_dir(path, forced, overrides)
    if path.suffix == ".safetensors":
        return _load_safetensors(path, forced, overrides)
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        return _load_meta_file(path, forced, overrides)
    raise CheckpointError(
        f"unknown checkpoint type {path.suffix!r} ({path}); use .safetensors, .pt/.pth or a folder"
    )


def _with_overrides(config: UnSAMv2Config, overrides: dict[str, Any]) -> UnSAMv2Config:
    names = {f.name for f in dataclasses.fields(UnSAMv2Config)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise CheckpointError(f"unknown model option(s) {unknown}; known: {sorted(names)}")
    return dataclasses.replace(config, **overrides) if overrides else config


def _load_meta_file(
    path: Path, forced: UnSAMv2Config | None, overrides: dict
) -> tuple[UnSAMv2Model, KeyReport]:
    state = safe_torch_load(path)
    beside = config_path_for(path)
    if forced is None and beside.is_file():
        forced = UnSAMv2Config.from_json(beside)
    if forced is None:
        forced = infer_meta_config(state, path.stem)
    config = _with_overrides(forced, overrides)
    model = UnSAMv2Model(config)
    converted, report = meta_to_package_state_dict(state, model)
    report.raise_if_bad(str(path), model.name)
    load_package_state_dict(model, converted, str(path))
    if model.passthrough:
        report.notes.append(
            f"{len(model.passthrough)} video-only tensors kept aside (exported back unchanged)"
        )
    return model, report


def _load_safetensors(
    path: Path, forced: UnSAMv2Config | None, overrides: dict
) -> tuple[UnSAMv2Model, KeyReport]:
    tensors, metadata = safe_safetensors_load(path)
    beside = config_path_for(path)
    if forced is None and beside.is_file():
        forced = UnSAMv2Config.from_json(beside)
    if forced is None and metadata.get("format") == PACKAGE_FORMAT and "config" in metadata:
        forced = UnSAMv2Config.from_json(metadata["config"])
    if forced is None:
        if (path.parent / "config.json").is_file():
            return _load_hf_dir(path.parent, None, overrides)
        raise CheckpointError(
            f"{path}: no model config found (expected {beside.name} next to it); "
            "convert official/Meta .pt files with `granseg convert SRC DST.safetensors`"
        )
    model = UnSAMv2Model(_with_overrides(forced, overrides))
    report = load_package_state_dict(model, tensors, str(path))
    return model, report


def _hf_weights_file(folder: Path) -> Path:
    for candidate in ("model.safetensors", "pytorch_model.bin"):
        if (folder / candidate).is_file():
            return folder / candidate
    if (folder / "model.safetensors.index.json").is_file():
        raise CheckpointError(
            f"{folder}: sharded Hugging Face checkpoints are not supported; merge the shards first"
        )
    raise CheckpointError(
        f"{folder} has a config.json but no model.safetensors: the weights were not downloaded. Download the whole "
        "repository (e.g. `huggingface-cli download facebook/sam2.1-hiera-small --local-dir DIR`) and pass DIR"
    )


def _load_hf_dir(
    folder: Path, forced: UnSAMv2Config | None, overrides: dict
) -> tuple[UnSAMv2Model, KeyReport]:
    if (folder / "config.json").is_file() is False:
        raise CheckpointError(
            f"{folder} is a folder without config.json: not a Hugging Face SAM-2 checkpoint"
        )
    try:
        hf_config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{folder}/config.json is not valid JSON: {exc}") from exc
    if hf_config.get("model_type") not in ("sam2", "sam2_video"):
        raise CheckpointError(
            f"{folder}: model_type {hf_config.get('model_type')!r} is not SAM-2 (sam2 / sam2_video)"
        )
    weights = _hf_weights_file(folder)
    if weights.suffix == ".safetensors":
        tensors, _ = safe_safetensors_load(weights)
    else:
        tensors = safe_torch_load(weights)
    if forced is None:
        forced = UnSAMv2Config(
            name=folder.name, sam2=Sam2Architecture.from_hf_dict(hf_config), granularity=False, lora=None
        )
    model = UnSAMv2Model(_with_overrides(forced, overrides))
    video = {k for k in tensors if any(re.match(p, k) for p in HF_VIDEO_PATTERNS)}
    renamed = {"sam." + k: v for k, v in tensors.items() if k not in video}
    if SHARED_PE_KEY not in renamed and PROMPT_PE_KEY in renamed:
        renamed[SHARED_PE_KEY] = renamed[PROMPT_PE_KEY]
    report = load_package_state_dict(model, renamed, str(folder))
    if video:
        report.notes.append(f"{len(video)} video-only tensors of the HF video model ignored")
    return model, report


# ----------------------------------------------------------------------------------------------- named models
META_DOWNLOADS = {
    "sam2.1": "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_{size}.pt",
    "sam2": "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_{size}.pt",
}


def weight_candidates(name: str) -> list[Path]:
    """Where a registered model's weights may already be on this machine (never downloaded)."""
    from granseg.models.registry import checkpoint_dir

    short = name.split("/")[-1]
    root = checkpoint_dir()
    candidates = [root / f"{short}{suffix}" for suffix in (".safetensors", ".pt", ".pth")]
    meta_style = short.replace("-", "_")
    candidates += [root / f"{meta_style}.pt", root / short]
    if short.startswith(("sam2-", "sam2.1-")):
        hub = Path(
            os.environ.get(
                "HF_HUB_CACHE",
                Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub",
            )
        )
        snapshots = hub / f"models--facebook--{short}" / "snapshots"
        if snapshots.is_dir():
            candidates += sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    return candidates


def build_named_model(name: str, device: str = "cpu", **overrides: Any) -> UnSAMv2Model:
    """A registered name: the tiny random model, or real weights found locally; else a clear CheckpointError."""
    from granseg.models.unsamv2 import build_unsamv2, named_config

    if name == "unsamv2-tiny-random":
        seed = overrides.pop("seed", 0)
        config = _with_overrides(named_config(name), overrides)
        return build_unsamv2(config, device=device, seed=seed)
    named_config(name)  # unknown names fail here
    for candidate in weight_candidates(name):
        if candidate.is_file() or (candidate.is_dir() and (candidate / "config.json").is_file()):
            return load_model_from_path(candidate, device=device, **overrides)
    short = name.split("/")[-1]
    if short.startswith(("sam2-", "sam2.1-")):
        family = "sam2.1" if short.startswith("sam2.1-") else "sam2"
        size = short.split("hiera-")[1].replace("-", "_")
        where = f"Meta's {META_DOWNLOADS[family].format(size=size)} or the Hugging Face repository facebook/{short}"
    else:
        where = (
            "the official UnSAMv2 release checkpoint (arXiv 2511.13714; a torch file {'model': state_dict})"
        )
    from granseg.models.registry import checkpoint_dir

    raise CheckpointError(
        f"no weights for {name!r} on this machine, and granseg never downloads any. Get {where}, then pass the "
        f"file or folder with --model PATH, or put it in {checkpoint_dir()} as {short}.pt / {short}.safetensors "
        "(`granseg convert` turns official/Meta files into the package format)"
    )
