"""Region trees from several superpixel starts (granseg/regions/ensemble.py) and the mean UCM edge map."""

from __future__ import annotations

import numpy as np
import pytest


def toy_image() -> np.ndarray:
    """``120 x 160 x 3`` uint8: a noisy red square on a noisy grey background, a blue bar in the background."""
    rng = np.random.default_rng(3)
    image = np.full((120, 160, 3), 110.0)
    image[30:90, 40:100] = (200, 40, 40)
    image[10:20, 110:150] = (40, 60, 190)
    image += rng.normal(0, 10, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_each_start_gives_the_tree_its_leaves_give_alone():
    from granseg.regions.ensemble import UCM_STARTS, TreeStart, build_region_trees
    from granseg.regions.tree import TreeParams, build_region_tree

    image = toy_image()
    assert UCM_STARTS[0] == TreeStart(
        "slic", TreeParams().n_superpixels, owt=True
    )  # the predictor's start + OWT
    assert not TreeParams().owt  # the predictor's tree keeps the largest orientation (held-out covering)
    starts = (
        TreeStart("slic", 200, owt=True),
        TreeStart("watershed", 150),
        TreeStart("slic", 300, owt=False),
    )
    trees = build_region_trees(image, TreeParams(), starts)
    for start, tree in zip(starts, trees):
        params = TreeParams(n_superpixels=start.n_superpixels, owt=start.owt)
        alone = build_region_tree(image, params, leaves=start.leaves)
        assert np.array_equal(tree.leaf_map, alone.leaf_map) and np.array_equal(tree.parent, alone.parent)
        assert np.allclose(tree.height, alone.height) and tree.height_power == alone.height_power
    assert trees[0].n_leaves != trees[1].n_leaves


def test_ucm_edge_map_is_the_mean_of_the_trees_maps():
    from granseg.eval.edge_maps import edge_map_function, ensemble_contour_map, tree_contour_map
    from granseg.predict.hierarchy import HierarchyConfig
    from granseg.regions.ensemble import UCM_STARTS, build_region_trees

    image = toy_image()
    edges = edge_map_function("hierarchy", kind="ucm")(image)
    trees = build_region_trees(image, HierarchyConfig().tree_params())
    assert len(trees) == len(UCM_STARTS) >= 2
    maps = [tree_contour_map(tree, image.shape[:2]) for tree in trees]
    assert np.allclose(edges, np.mean(maps, axis=0), atol=1e-6)
    assert np.allclose(ensemble_contour_map(trees, image.shape[:2]), edges)
    # every tree marks the square's outline; the ensemble keeps it above the background's inner borders
    outline = edges[30:90, 38:42].max(1)
    inside_background = edges[95:, :][edges[95:, :] > 0]
    assert np.median(outline) > np.percentile(inside_background, 90)
    assert not np.allclose(maps[0], maps[1])  # the starts differ


def test_ucm_single_needs_the_hierarchy_model():
    from granseg.errors import InputError
    from granseg.eval.edge_maps import check_edge_map

    check_edge_map("hierarchy", "ucm-single")
    with pytest.raises(InputError):
        check_edge_map("sobel", "ucm-single")
