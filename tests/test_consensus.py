"""The consensus tree of several region trees (granseg/regions/consensus.py)."""

from __future__ import annotations

import numpy as np
import pytest
from test_ensemble import toy_image

from granseg.regions.consensus import (
    build_consensus_tree,
    consensus_tree,
    leaf_ultrametric,
    region_ultrametric,
)
from granseg.regions.cues import boundary_map, to_lab
from granseg.regions.ensemble import TreeStart, build_region_trees
from granseg.regions.superpixels import resize_long_side
from granseg.regions.tree import TreeParams, build_region_tree

STARTS = (TreeStart("slic", 300, owt=True), TreeStart("watershed", 200))


@pytest.fixture(scope="module")
def tree():
    return build_region_tree(toy_image(), TreeParams(n_superpixels=120))


def brute_ultrametric(tree, a: int, b: int) -> float:
    """``1 - p`` of the lowest common ancestor of leaf ranks a and b, by walking both chains."""
    if a == b:
        return 0.0
    above_a = set(tree.chain(int(tree.leaf_node[a])))
    for node in tree.chain(int(tree.leaf_node[b])):
        if node in above_a:
            return float(tree.height[node]) ** (1.0 / tree.height_power)
    raise AssertionError("no common ancestor")


def test_leaf_ultrametric_is_the_height_of_the_lowest_common_ancestor(tree):
    rng = np.random.default_rng(0)
    a = rng.integers(0, tree.n_leaves, 200)
    b = rng.integers(0, tree.n_leaves, 200)
    b[:10] = a[:10]
    expected = [brute_ultrametric(tree, int(i), int(j)) for i, j in zip(a, b)]
    assert np.allclose(leaf_ultrametric(tree, a, b), expected)
    assert np.all(leaf_ultrametric(tree, a[:10], b[:10]) == 0)
    assert len(set(np.round(expected, 6))) > 5  # not a trivial tree


def test_region_ultrametric_of_the_trees_own_leaves_is_its_ultrametric(tree):
    labels = tree.leaf_map.astype(np.int64)
    a, b = np.array([0, 3, 7, 11]), np.array([5, 4, 20, 11])
    assert np.allclose(region_ultrametric(labels, tree, a, b), leaf_ultrametric(tree, a, b))


def _inputs(image, params):
    small, scale = resize_long_side(image, params.internal_long_side)
    lab = to_lab(small)
    return small, lab, boundary_map(lab), scale


def test_consensus_of_one_tree_by_single_linkage_gives_back_its_ultrametric(tree):
    params = TreeParams(n_superpixels=120)
    same = consensus_tree(*_inputs(toy_image(), params), [tree], params, "base", "single", "pixel")
    assert same.n_leaves == tree.n_leaves
    # leaf ranks are renumbered: compare through the pixels (leaf of each pixel in both trees)
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, tree.leaf_map.size, (300, 2))
    ours = leaf_ultrametric(same, same.leaf_map.ravel()[pixels[:, 0]], same.leaf_map.ravel()[pixels[:, 1]])
    theirs = leaf_ultrametric(tree, tree.leaf_map.ravel()[pixels[:, 0]], tree.leaf_map.ravel()[pixels[:, 1]])
    assert np.allclose(ours, theirs)


def test_consensus_tree_is_a_valid_tree_holding_the_square():
    image = toy_image()
    params = TreeParams()
    trees = build_region_trees(image, params, STARTS)
    for leaves in ("base", "overlay"):
        for linkage in ("average", "single"):
            cons = consensus_tree(*_inputs(image, params), trees, params, leaves, linkage)
            assert (cons.parent < 0).sum() == 1  # one root
            assert cons.area[cons.parent < 0][0] == cons.leaf_map.size
            inner = cons.parent >= 0
            assert np.all(cons.height[cons.parent[inner]] >= cons.height[inner])
            square = np.zeros(image.shape[:2], bool)
            square[30:90, 40:100] = True
            best = 0.0
            for node in range(cons.n_leaves, cons.n_nodes):
                region = (cons.leaf_map >= cons.lo[node]) & (cons.leaf_map < cons.hi[node])
                best = max(best, (region & square).sum() / (region | square).sum())
            assert best > 0.9, (leaves, linkage, best)
    if_base = consensus_tree(*_inputs(image, params), trees, params, "base", "average")
    assert if_base.n_leaves == trees[0].n_leaves


def test_build_consensus_tree_and_bad_arguments():
    image = toy_image()
    cons = build_consensus_tree(image, TreeParams(), STARTS)
    assert cons.leaf_map.shape == image.shape[:2] and cons.criterion == "learned"
    trees = build_region_trees(image, TreeParams(), STARTS)
    with pytest.raises(ValueError):
        consensus_tree(*_inputs(image, TreeParams()), trees, TreeParams(), "base", "complete")
    with pytest.raises(ValueError):
        consensus_tree(*_inputs(image, TreeParams()), trees, TreeParams(), "pixels", "average")
    with pytest.raises(ValueError):
        consensus_tree(*_inputs(image, TreeParams()), trees, TreeParams(), "base", "average", "edge")


def test_predictor_tree_starts_option_uses_the_consensus_tree():
    from granseg.errors import InputError
    from granseg.predict.hierarchy import build_hierarchy
    from granseg.regions.ensemble import UCM_STARTS

    with pytest.raises(InputError):
        build_hierarchy(tree_starts=0)
    with pytest.raises(InputError):
        build_hierarchy(tree_starts=len(UCM_STARTS) + 1)
    image = toy_image()
    handcrafted = build_hierarchy(tree_starts=2, tree_merge="handcrafted").create_predictor()
    handcrafted.set_image(image)  # the handcrafted tree has no ensemble: its one tree
    assert handcrafted.tree.criterion == "handcrafted"
    assert build_hierarchy().config.tree_starts == 2  # the default since issue 18's covering work
    one = build_hierarchy(tree_starts=1).create_predictor()
    one.set_image(image)
    two = build_hierarchy(tree_starts=2).create_predictor()
    two.set_image(image)
    params = two.config.tree_params()
    expected = build_consensus_tree(image, params, UCM_STARTS[:2])
    assert np.array_equal(two.tree.leaf_map, expected.leaf_map)
    assert np.allclose(two.tree.height, expected.height)
    assert not np.allclose(np.sort(one.tree.height), np.sort(two.tree.height))  # not the one tree
    masks = two.predict([[70, 60]], [1], granularity="all").masks
    assert masks.shape == (10, *image.shape[:2]) and masks[-1].any()
    square = np.zeros(image.shape[:2], bool)
    square[30:90, 40:100] = True
    assert (masks[-1] & square).sum() / (masks[-1] | square).sum() > 0.8
