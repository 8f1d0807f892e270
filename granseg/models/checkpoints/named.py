"""Registered SAM-2 / UnSAMv2 names: find their weights on this machine (never downloaded) and build them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from granseg.errors import CheckpointError
from granseg.models.checkpoints.loading import load_model_from_path, with_overrides
from granseg.models.sources import (
    UNSAMV2_RELEASE,
    cached_hf_snapshot,
    hf_repo_id,
    is_sam2_name,
    meta_download_url,
)
from granseg.models.unsamv2 import UnSAMv2Model, build_unsamv2, named_config


def weight_candidates(name: str) -> list[Path]:
    """Where a registered model's weights may already be on this machine (never downloaded): files in the
    package's checkpoint folder, then the Hugging Face cache (huggingface_hub's own look-up)."""
    from granseg.models.registry import checkpoint_dir

    short = name.split("/")[-1]
    root = checkpoint_dir()
    candidates = [root / f"{short}{suffix}" for suffix in (".safetensors", ".pt", ".pth")]
    meta_style = short.replace("-", "_")
    candidates += [root / f"{meta_style}.pt", root / short]
    if is_sam2_name(short):
        snapshot = cached_hf_snapshot(hf_repo_id(short))
        if snapshot is not None:
            candidates.append(snapshot)
    return candidates


def build_named_model(name: str, device: str = "cpu", **overrides: Any) -> UnSAMv2Model:
    """A registered name: the tiny random model, or real weights found locally; else a clear CheckpointError."""
    if name == "unsamv2-tiny-random":
        seed = overrides.pop("seed", 0)
        config = with_overrides(named_config(name), overrides)
        return build_unsamv2(config, device=device, seed=seed)
    named_config(name)  # unknown names fail here
    for candidate in weight_candidates(name):
        if candidate.is_file() or (candidate.is_dir() and (candidate / "config.json").is_file()):
            return load_model_from_path(candidate, device=device, **overrides)
    short = name.split("/")[-1]
    if is_sam2_name(short):
        where = f"Meta's {meta_download_url(short)} or the Hugging Face repository {hf_repo_id(short)}"
    else:
        where = UNSAMV2_RELEASE
    from granseg.models.registry import checkpoint_dir

    raise CheckpointError(
        f"no weights for {name!r} on this machine, and granseg never downloads any. Get {where}, then pass the "
        f"file or folder with --model PATH, or put it in {checkpoint_dir()} as {short}.pt / {short}.safetensors "
        "(`granseg convert` turns official/Meta files into the package format)"
    )


# ------------------------------------------------------------------------------------------ registry builders
def _named_builder(name: str):
    def build(device: str = "cpu", **overrides):
        return build_named_model(name, device=device, **overrides)

    build.__name__ = "build_" + name.replace("/", "_").replace("-", "_").replace(".", "_")
    build.__doc__ = f"Build {name!r} (local weights only; see build_named_model)."
    return build


build_unsamv2_tiny_random = _named_builder("unsamv2-tiny-random")
build_unsamv2_hiera_small = _named_builder("unsamv2-hiera-small")
build_sam2_hiera_tiny = _named_builder("sam2-hiera-tiny")
build_sam2_hiera_small = _named_builder("sam2-hiera-small")
build_sam2_hiera_base_plus = _named_builder("sam2-hiera-base-plus")
build_sam2_hiera_large = _named_builder("sam2-hiera-large")
build_sam2_1_hiera_tiny = _named_builder("sam2.1-hiera-tiny")
build_sam2_1_hiera_small = _named_builder("sam2.1-hiera-small")
build_sam2_1_hiera_base_plus = _named_builder("sam2.1-hiera-base-plus")
build_sam2_1_hiera_large = _named_builder("sam2.1-hiera-large")
