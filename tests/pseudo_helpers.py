"""Shared settings of the pseudo-label engine tests (tests/test_pseudo.py, tests/test_pseudo_pipeline.py)."""

# small, fast settings for every pipeline test
FAST = dict(divide_long_side=96, conquer_long_side=64, num_cuts=2, split_cuts=2, refine_segments=200)
