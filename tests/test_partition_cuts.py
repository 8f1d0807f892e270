"""Whole-image partitions at g (:mod:`granseg.regions.cuts`, ``HierarchyPredictor.partition``): one cut of the
region tree per g, checked against the tree's lowest common ancestors, nested across g."""

from __future__ import annotations

import numpy as np
import pytest

from granseg.errors import InputError
from granseg.predict.hierarchy import HierarchyConfig, HierarchyPredictor
from granseg.regions.cuts import cut_height, cut_regions, cut_scale_heights, partition_labels, partitions
from granseg.synth import SynthConfig, generate_scene

LEVELS = [round(0.1 * k, 1) for k in range(1, 11)]


@pytest.fixture(scope="module")
def scene():
    return generate_scene(seed=3, config=SynthConfig(size=128))


@pytest.fixture(scope="module")
def predictor(scene):
    predictor = HierarchyPredictor(HierarchyConfig())
    predictor.set_image(scene.image)
    return predictor


def lca_height(tree, heights, a: int, b: int) -> float:
    """Height of the lowest common ancestor of leaf ranks ``a`` and ``b`` (by walking both chains)."""
    up_a = tree.chain(int(tree.leaf_node[a]))
    up_b = set(tree.chain(int(tree.leaf_node[b])))
    common = next((n for n in up_a if n in up_b), None)
    return np.inf if common is None else float(heights[common])


def test_cut_height_is_linear_from_finest_to_coarsest():
    assert cut_height(0.1, 0.2, 0.6) == pytest.approx(0.2)
    assert cut_height(1.0, 0.2, 0.6) == pytest.approx(0.6)
    assert cut_height(0.55, 0.2, 0.6) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        cut_height(0.05, 0.2, 0.6)


def test_two_leaves_share_a_region_exactly_when_their_lowest_common_ancestor_is_low_enough(predictor):
    tree = predictor.tree
    heights = cut_scale_heights(tree)
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, tree.n_leaves, size=(300, 2))
    for threshold in (0.2, 0.4, 0.6):
        region = cut_regions(tree, threshold, heights)
        for a, b in pairs:
            same = region[a] == region[b]
            assert same == (a == b or lca_height(tree, heights, a, b) <= threshold), (threshold, a, b)


def test_partitions_are_numbered_regions_nested_across_g(predictor):
    tree, cfg = predictor.tree, predictor.config
    stack = partitions(tree, LEVELS, cfg.partition_finest, cfg.partition_coarsest)
    assert stack.shape == (len(LEVELS), *tree.leaf_map.shape) and stack.dtype == np.int32
    counts = [int(labels.max()) + 1 for labels in stack]
    for labels, count in zip(stack, counts):
        assert set(np.unique(labels).tolist()) == set(range(count))  # 0..K-1, none missing
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    for fine, coarse in zip(stack[:-1], stack[1:]):
        # each fine region lies inside one coarse region
        pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()]), axis=1)
        assert len(np.unique(pairs[0])) == pairs.shape[1]


def test_the_scene_s_objects_are_covered_better_than_by_one_region(predictor, scene):
    """Some g separates the scene's objects: the best partition's best-overlap covering of the objects beats
    the single-region partition's (a cut that merged everything, or never merged, would fail)."""

    def covering(gt: np.ndarray, seg: np.ndarray) -> float:
        total = 0.0
        for value in np.unique(gt):
            region = gt == value
            ious = [(region & (seg == s)).sum() / (region | (seg == s)).sum() for s in np.unique(seg[region])]
            total += region.sum() * max(ious)
        return total / gt.size

    gt = np.zeros(scene.image.shape[:2], np.int32)
    for index, node in enumerate(n for n in scene.nodes if n.level == "object"):  # the objects
        gt[node.mask] = index + 1
    best = max(covering(gt, labels) for labels in predictor.partition("all"))
    assert best > covering(gt, np.zeros_like(gt)) + 0.2


def test_the_whole_image_is_one_region_only_when_the_finest_cut_merges_it(predictor):
    tree = predictor.tree
    assert int(partition_labels(tree, 1.0, 0.1, 1.0).max()) + 1 >= 2  # coarsest 1.0: every merge allowed
    assert int(partition_labels(tree, 1.0, 0.01, 1.0).max()) + 1 >= 2
    uniform = HierarchyPredictor(HierarchyConfig())
    uniform.set_image(np.full((40, 50, 3), 90, np.uint8))
    assert [int(m.max()) + 1 for m in uniform.partition([0.1, 1.0])] == [1, 1]


def test_predictor_partition_is_at_the_original_size(predictor, scene):
    out = predictor.partition([0.3, 1.0])
    assert out.shape == (2, *scene.image.shape[:2]) and out.dtype == np.int32
    cfg = predictor.config
    small = partition_labels(predictor.tree, 0.3, cfg.partition_finest, cfg.partition_coarsest)
    assert int(out[0].max()) == int(small.max())  # the same regions, resized


def test_partition_needs_an_image_and_valid_settings():
    with pytest.raises(InputError, match="set_image"):
        HierarchyPredictor(HierarchyConfig()).partition(0.5)
    with pytest.raises(InputError, match="partition"):
        HierarchyConfig(partition_finest=0.8, partition_coarsest=0.2).validate()


def test_handcrafted_tree_heights_are_scaled_to_one():
    scene = generate_scene(seed=5, config=SynthConfig(size=96))
    predictor = HierarchyPredictor(HierarchyConfig(tree_merge="handcrafted", tree_starts=1))
    predictor.set_image(scene.image)
    heights = cut_scale_heights(predictor.tree)
    assert heights.max() == pytest.approx(1.0)
    assert int(predictor.partition(1.0).max()) + 1 <= int(predictor.partition(0.1).max()) + 1


def test_label_map_records_are_disjoint_regions_with_an_inner_click():
    from granseg.io.masks import decode_rle, label_map_to_records

    labels = np.zeros((40, 60), np.int64)
    labels[5:35, 5:35] = 7  # a square with a hole: a ring
    labels[15:25, 15:25] = 3
    labels[:, 45:] = -2
    records = label_map_to_records(labels, 0.4)
    masks = np.stack([decode_rle(r["segmentation"]) for r in records]).astype(bool)
    assert len(records) == 4 and masks.sum(0).max() == 1 and masks.any(0).all()  # a partition of the image
    assert [r["area"] for r in records] == sorted((r["area"] for r in records), reverse=True)
    assert all(r["granularity"] == 0.4 and r["score"] == 1.0 for r in records)
    for record, mask in zip(records, masks):
        ((x, y),) = record["point_coords"]
        assert mask[int(y), int(x)]  # the click lies inside its own region (the ring's too)
    ring = next(m for m in masks if m[5, 5])
    ((x, y),) = records[[m[5, 5] for m in masks].index(True)]["point_coords"]
    assert ring[int(y), int(x)] and not (15 <= y < 25 and 15 <= x < 25)
