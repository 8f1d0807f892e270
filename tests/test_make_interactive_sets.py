"""The BSDS objects of benchmarks/make_interactive_sets.py: ``--rank k`` picks the k-th largest qualifying
segment (3-50 % of the image, at most two image borders), and ``--ids`` / ``--exclude`` read id lists."""

from __future__ import annotations

import numpy as np
from bench_helpers import load_benchmark

sets = load_benchmark("make_interactive_sets")


def toy_segmentation() -> np.ndarray:
    """20 x 20 labels: 0 the frame (touches 4 borders), 1 a 8 x 8 block, 2 a 6 x 6 block, 3 a 4 x 4 block,
    4 a single pixel (under 3 %)."""
    seg = np.zeros((20, 20), np.int32)
    seg[2:10, 2:10] = 1
    seg[11:17, 11:17] = 2
    seg[2:6, 12:16] = 3
    seg[18, 1] = 4
    return seg


def test_rank_picks_kth_largest_qualifying_segment():
    seg = toy_segmentation()
    assert np.array_equal(sets.bsds_object(seg), seg == 1)
    assert np.array_equal(sets.bsds_object(seg, rank=1), seg == 1)
    assert np.array_equal(sets.bsds_object(seg, rank=2), seg == 2)
    assert np.array_equal(sets.bsds_object(seg, rank=3), seg == 3)
    assert sets.bsds_object(seg, rank=4) is None  # the frame and the pixel do not qualify


def test_read_ids(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("101085\n 102061 \n\n")
    assert sets.read_ids(f"@{path}") == {"101085", "102061"}
    assert sets.read_ids("1,2") == {"1", "2"}
    assert sets.read_ids(None) is None
