"""Granularity arithmetic shared by the synthetic world, the pseudo-label engine and the region hierarchy.

UnSAMv2's pseudo-labels (docs/pseudo.md) give every mask of one instance hierarchy (the instance itself and all of its parts,
sub-parts, ...) a granularity from its area relative to the other masks of the same hierarchy::

    g = (sqrt(A) - sqrt(A_min)) / (sqrt(A_max) - sqrt(A_min)) * 0.9 + 0.1

so the largest mask (the instance) gets 1.0 and the smallest 0.1. An instance without parts gets 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

G_MIN = 0.1
"""Granularity of the smallest mask of a multi-mask hierarchy."""
G_MAX = 1.0
"""Granularity of the largest mask (the instance)."""


def granularity_from_areas(areas: Sequence[float] | np.ndarray) -> np.ndarray:
    """UnSAMv2 granularity of each mask of one instance hierarchy.

    Args:
        areas: (N,) pixel areas of the masks of ONE hierarchy (instance + its parts at every depth), any order.
            Areas must be >= 0.
    Returns:
        (N,) float64 in [0.1, 1.0]: the sqrt-area min-max normalisation above. A single mask, or masks that all
        have the same area (no spread to normalise), get 1.0.
    """
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if areas.size == 0:
        return np.zeros(0, dtype=np.float64)
    if np.any(areas < 0) or not np.all(np.isfinite(areas)):
        raise ValueError("areas must be finite and >= 0")
    roots = np.sqrt(areas)
    low, high = roots.min(), roots.max()
    if high - low <= 0:
        return np.full(areas.shape, G_MAX)
    return (roots - low) / (high - low) * (G_MAX - G_MIN) + G_MIN
