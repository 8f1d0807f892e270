"""The covering benchmark's partitions (benchmarks/bench_hierarchy.py ``hierarchy_partitions``) follow the
predictor's own chain rule (its ``_chain``: chain top with ``top_size_power``)."""

from __future__ import annotations

import numpy as np
from bench_helpers import load_benchmark

from granseg.predict.hierarchy import build_hierarchy
from tests.test_ensemble import toy_image

bench = load_benchmark("bench_hierarchy")


def test_partitions_read_the_predictors_chain():
    predictor = build_hierarchy().create_predictor()
    predictor.set_image(toy_image())
    tree = predictor.tree
    calls = []

    def leaf_only(rank, box_counts, distinct=True):  # every click's chain: its leaf alone, at g = 1
        calls.append(rank)
        return np.array([int(tree.leaf_node[rank])]), np.array([1.0]), None

    predictor._chain = leaf_only
    parts = bench.hierarchy_partitions(predictor)
    assert sorted(calls) == list(range(tree.n_leaves))
    assert len(parts) == 10
    for labels in parts:  # each leaf is its own region
        assert len(np.unique(labels)) == tree.n_leaves
        assert np.array_equal(np.unique(labels[tree.leaf_map == 0]), [tree.leaf_node[0]])


def test_partitions_change_with_the_top_rule():
    image = toy_image()
    parts = {}
    for fraction in (0.7, 0.05):
        predictor = build_hierarchy(max_object_fraction=fraction).create_predictor()
        predictor.set_image(image)
        parts[fraction] = bench.hierarchy_partitions(predictor)
    counts = {f: [len(np.unique(labels)) for labels in p] for f, p in parts.items()}
    assert counts[0.05] != counts[0.7]  # a smaller cap on the top: other, smaller tops
    assert all(a >= b for a, b in zip(counts[0.05], counts[0.7]))  # ... never larger ones
