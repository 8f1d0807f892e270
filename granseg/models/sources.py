"""Where released weights come from (addresses only: granseg never downloads anything).

The one place that knows Meta's download addresses and the Hugging Face repositories of the SAM-2 checkpoints,
and that looks for Hugging Face downloads already on this machine (through huggingface_hub's own cache look-up).
"""

from __future__ import annotations

from pathlib import Path

# Meta's SAM-2 (July 2024) and SAM-2.1 (September 2024) image+video checkpoints; {size}: tiny, small, base_plus, large.
META_DOWNLOADS = {
    "sam2.1": "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_{size}.pt",
    "sam2": "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_{size}.pt",
}
UNSAMV2_RELEASE = (
    "the official UnSAMv2 release checkpoint (arXiv 2511.13714; a torch file {'model': state_dict})"
)


def is_sam2_name(name: str) -> bool:
    """``sam2-hiera-*`` / ``sam2.1-hiera-*`` (optionally ``facebook/``-prefixed)."""
    return name.split("/")[-1].startswith(("sam2-", "sam2.1-"))


def meta_download_url(name: str) -> str:
    """Meta's address of a registered SAM-2 name, e.g. ``sam2.1-hiera-base-plus`` -> ``.../sam2.1_hiera_base_plus.pt``."""
    short = name.split("/")[-1]
    family = "sam2.1" if short.startswith("sam2.1-") else "sam2"
    return META_DOWNLOADS[family].format(size=short.split("hiera-")[1].replace("-", "_"))


def hf_repo_id(name: str) -> str:
    """The Hugging Face repository of a registered SAM-2 name (``facebook/<name>``)."""
    return f"facebook/{name.split('/')[-1]}"


def cached_hf_snapshot(repo_id: str, cache_dir: str | Path | None = None) -> Path | None:
    """The folder of the locally cached snapshot of ``repo_id`` (the revision ``main`` points to), or None.

    Uses ``huggingface_hub.try_to_load_from_cache`` (which honours ``HF_HOME`` / ``HF_HUB_CACHE``); nothing is
    downloaded. A snapshot counts when its ``config.json`` is cached."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir)
    return Path(found).parent if isinstance(found, str) else None
