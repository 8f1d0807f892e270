"""Strict key checking: what did not line up between a checkpoint and a model, and the strict load."""

from __future__ import annotations

import dataclasses

import torch

from granseg.errors import CheckpointError
from granseg.models.checkpoints.keymap import PASSTHROUGH_PREFIX
from granseg.models.unsamv2 import UnSAMv2Model


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
