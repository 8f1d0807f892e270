"""Safe reading of weight files: weights-only ``torch.load`` and safetensors, always onto the CPU."""

from __future__ import annotations

from pathlib import Path

import torch

from granseg.errors import CheckpointError


def safe_torch_load(path: str | Path) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` on the CPU; unwraps ``{"model": ...}`` / ``{"state_dict": ...}``.
    Anything that is not plain tensors (pickled code, objects) is refused with a :class:`CheckpointError`."""
    import re
    import warnings

    path = Path(path)
    try:
        with (
            warnings.catch_warnings()
        ):  # e.g. "Detected pickle protocol 4": noise before our own one-line error
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for code/objects, RuntimeError for corrupt archives
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = re.sub(r"\x1b\[[0-9;]*m", "", first)  # torch's message holds terminal bold codes
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
