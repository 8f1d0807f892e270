"""Several cleaned sources mixed per micro-batch (the paper: Hypersim 90 % of the time, Virtual KITTI 2 10 %).

A micro-batch comes from one source so that its samples share a size (each source has its own training size).
The source is drawn from ``weights`` with a generator seeded by ``(seed, first index of the micro-batch)``, so
the draw is a pure function of the trainer's sample positions (resumable); index ``i`` of that source is
``i mod len(source)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class MixedSources:
    def __init__(self, sources: Sequence, weights: Sequence[float], seed: int = 0) -> None:
        total = float(sum(weights))
        if len(sources) != len(weights) or total <= 0:
            raise ValueError("one positive weight per source is needed")
        self.sources = list(sources)
        self.probabilities = np.asarray(weights, dtype=np.float64) / total
        self.seed = int(seed)

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources)

    def choose(self, indices: Sequence[int]) -> int:
        """Which source serves the micro-batch of these dataset indices."""
        rng = np.random.default_rng([self.seed, int(indices[0])])
        return int(rng.choice(len(self.sources), p=self.probabilities))

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        source = self.sources[self.choose(indices)]
        return source.batch([int(i) % len(source) for i in indices])

    @property
    def skipped(self) -> dict[str, dict[str, int]]:
        return {s.name: s.skipped for s in self.sources}
