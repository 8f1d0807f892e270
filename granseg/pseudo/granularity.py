"""Granularity of pseudo-label masks, per instance hierarchy.

Every mask of one hierarchy (the instance and all of its parts, from divide and conquer) gets the UnSAMv2
sqrt-area granularity relative to the other masks of that hierarchy (formula and edge cases in
:mod:`granseg.regions.granularity`, shared with the synthetic world): the instance gets 1.0, its smallest part 0.1,
and an instance without parts 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from granseg.regions.granularity import granularity_from_areas


def hierarchy_granularity(instance_ids: Sequence[int], areas: Sequence[float]) -> np.ndarray:
    """(N,) granularity for N masks given each mask's ``instance_id`` and pixel ``area``; masks sharing an
    instance id form one hierarchy."""
    instance_ids = np.asarray(instance_ids, dtype=np.int64).reshape(-1)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if instance_ids.shape != areas.shape:
        raise ValueError("instance_ids and areas must have the same length")
    result = np.zeros(len(areas), dtype=np.float64)
    for instance in np.unique(instance_ids):
        members = instance_ids == instance
        result[members] = granularity_from_areas(areas[members])
    return result
