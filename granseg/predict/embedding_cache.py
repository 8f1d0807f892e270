"""On-disk cache of SAM-2 image embeddings, shared by processes, bounded in size (least recently used go first).

Entries are files ``<model>-<image>.safetensors`` holding the three feature levels ``level0..2``
(``(1, C/8, 4h, 4w)``, ``(1, C/4, 2h, 2w)``, ``(1, C, h, w)``), keyed by the first 16 hex digits of the model's
fingerprint (SHA-256 over the SAM-2 architecture, the resize mode and every tensor that shapes the embedding) and
32 of the image's SHA-256 (pixels + shape). Writes are atomic; a file that cannot be read is recomputed and
overwritten; "recently used" is the file's modification time, touched on every hit.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

DEFAULT_CACHE_MAX_BYTES = 2 * 2**30  # least recently used entries go beyond this (~16 MB per 1024 px image)
# The state-dict prefixes of Sam2Model that shape the cached features (image encoder + decoder's conv_s0/s1).
EMBEDDING_PREFIXES = ("vision_encoder.", "mask_decoder.conv_s", "no_memory_embedding")


def prune_cache(directory: Path, max_bytes: int, keep: Path | None = None) -> list[Path]:
    """Delete the least recently used ``*.safetensors`` entries of an embedding cache until it holds at most
    ``max_bytes`` (``keep`` is never deleted). Entries that vanish meanwhile (another process) are skipped.
    Returns the deleted paths."""
    entries = []
    for path in directory.glob("*.safetensors"):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        entries.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in entries)
    deleted = []
    for _, size, path in sorted(entries, key=lambda entry: entry[0]):
        if total <= max_bytes:
            break
        if keep is not None and path == keep:
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        total -= size
        deleted.append(path)
    return deleted


def model_fingerprint(model) -> str:
    """SHA-256 (hex) over ``model.config.sam2``, ``model.config.resize_mode`` and the :data:`EMBEDDING_PREFIXES`
    tensors of ``model.sam`` (an :class:`~granseg.models.unsamv2.UnSAMv2Model`)."""
    digest = hashlib.sha256(model.config.sam2.to_json().encode())
    digest.update(model.config.resize_mode.encode())
    for name, tensor in sorted(model.sam.state_dict().items()):
        if name.startswith(EMBEDDING_PREFIXES):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class EmbeddingCache:
    """The cache of one model in ``directory`` (None: a cache that never hits and never writes)."""

    def __init__(self, directory: str | Path | None, model, max_bytes: int | None = DEFAULT_CACHE_MAX_BYTES):
        self.directory = Path(directory) if directory is not None else None
        self.model = model
        self.max_bytes = max_bytes
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        """:func:`model_fingerprint` of the model, computed once (until :meth:`forget_fingerprint`)."""
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model)
        return self._fingerprint

    def forget_fingerprint(self) -> None:
        """The model's weights changed: compute the fingerprint again on next use."""
        self._fingerprint = None

    def path(self, image: np.ndarray) -> Path:
        """The entry of ``image`` (``H x W x 3`` uint8) for this model."""
        if self.directory is None:
            raise ValueError("this embedding cache has no folder")
        image_digest = hashlib.sha256(np.ascontiguousarray(image).tobytes())
        image_digest.update(repr(image.shape).encode())
        return self.directory / f"{self.fingerprint()[:16]}-{image_digest.hexdigest()[:32]}.safetensors"

    def read(self, image: np.ndarray) -> list[torch.Tensor] | None:
        """The cached features of ``image`` on the model's device, or None (no cache, no entry, unreadable)."""
        from granseg.errors import CheckpointError
        from granseg.models.checkpoints.safe_io import safe_safetensors_load

        if self.directory is None:
            return None
        path = self.path(image)
        if not path.is_file():
            return None
        try:
            tensors, _ = safe_safetensors_load(path)
            features = [tensors[f"level{i}"].to(self.model.device) for i in range(3)]
        except (CheckpointError, KeyError):
            return None  # unreadable cache entry: recompute and overwrite
        try:
            os.utime(path)  # mark as recently used (eviction goes by modification time)
        except OSError:
            pass
        return features

    def write(self, image: np.ndarray, features: list[torch.Tensor]) -> None:
        """Store ``features`` of ``image`` (atomic), then prune the folder to ``max_bytes``. No-op without a folder."""
        from safetensors.torch import save

        from granseg.io.files import atomic_write_bytes

        if self.directory is None:
            return
        path = self.path(image)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = save({f"level{i}": f.detach().cpu().contiguous() for i, f in enumerate(features)})
        atomic_write_bytes(path, payload)
        if self.max_bytes is not None:
            prune_cache(path.parent, self.max_bytes, keep=path)
