"""Tests of the package's region hierarchy (granseg.regions) and of its use by the hierarchy predictor."""

from __future__ import annotations

import numpy as np
import pytest

from granseg.regions import chains as ch
from granseg.regions.colour import fit_gmm, leaf_log_likelihood_ratio, log_density
from granseg.regions.graphcut import grabcut_leaves
from granseg.regions.tree import TreeParams, build_region_tree
from tests.test_hierarchy import BODY, PART, box_mask, iou, toy_image


@pytest.fixture(scope="module")
def tree():
    return build_region_tree(toy_image(), TreeParams())


def test_tree_invariants(tree):  # the default (learned) tree
    n = tree.n_leaves
    assert tree.n_nodes == 2 * n - 1
    merged = np.arange(n, tree.n_nodes)
    for node in merged.tolist():
        a, b = tree.children[node]
        assert tree.lo[node] == tree.lo[a] and tree.hi[a] == tree.lo[b] and tree.hi[node] == tree.hi[b]
        assert tree.area[node] == tree.area[a] + tree.area[b]
        assert tree.height[node] >= max(tree.height[a], tree.height[b])
    assert tree.leaf_colours.shape == (n, len(tree.colour_centres))
    assert np.allclose(np.asarray(tree.leaf_colours.sum(1)).ravel(), tree.leaf_area)


def test_gmm_separates_two_colours():
    rng = np.random.default_rng(0)
    red = rng.normal([50, 180, 150], 3, (200, 3))
    blue = rng.normal([40, 140, 80], 3, (200, 3))
    points = np.concatenate([red, blue])
    weights_red = np.r_[np.ones(200), np.zeros(200)]
    model_red = fit_gmm(points, weights_red, 3)
    model_blue = fit_gmm(points, 1 - weights_red, 3)
    ratio = log_density(points, model_red) - log_density(points, model_blue)
    assert (ratio[:200] > 0).all() and (ratio[200:] < 0).all()


def test_leaf_likelihood_ratio_follows_the_foreground_colours(tree):
    body = ch.selection_from_mask(tree, box_mask(BODY) & ~box_mask(PART))
    ratio = leaf_log_likelihood_ratio(tree, body)
    background = ch.selection_from_mask(tree, ~box_mask(BODY))
    assert np.median(ratio[body]) > 0 > np.median(ratio[background])


def test_chain_levels_span_leaf_to_top_and_node_for_click_avoids_other_clicks(tree):
    leaf = ch.points_to_leaves(tree, np.array([[65.0, 70.0]]), (160, 200))[0]
    chain = tree.chain(int(tree.leaf_node[leaf]))
    top = ch.chain_top(tree, chain, 0.01, 0.7)
    nodes, levels = ch.chain_levels(tree, chain, top)
    assert levels[0] == pytest.approx(0.1) and levels[-1] == pytest.approx(1.0)
    assert np.all(np.diff(levels) > 0) and nodes[0] == chain[0] and nodes[-1] == chain[top]
    assert ch.node_for_click(tree, nodes, levels, 1.0, np.zeros(0, np.int64)) == nodes[-1]
    other = ch.points_to_leaves(tree, np.array([[100.0, 115.0]]), (160, 200))
    node = ch.node_for_click(tree, nodes, levels, 1.0, other)
    assert node is not None and not (tree.lo[node] <= other[0] < tree.hi[node])


def test_grabcut_leaves_keeps_hard_constraints_and_recovers_the_body(tree):
    partial = box_mask(BODY)
    partial[95:] = False  # the hierarchy's guess misses the lower third of the body
    reference = ch.selection_from_mask(tree, partial)
    pos = ch.points_to_leaves(tree, np.array([[65.0, 70.0], [100.0, 115.0]]), (160, 200))
    neg = ch.points_to_leaves(tree, np.array([[10.0, 10.0]]), (160, 200))
    out = grabcut_leaves(tree, reference, pos, neg, smoothness=2.0, prior_weight=0.1, iterations=2)
    assert out[pos].all() and not out[neg].any()
    mask = ch.upsample_selection(tree, out, (160, 200))
    assert iou(mask, box_mask(BODY)) > 0.8


def test_pseudo_engine_uses_the_regions_package():
    from granseg.pseudo import conquer, divide
    from granseg.regions import merge, superpixels

    assert conquer.merge_graph is merge.merge_graph
    assert divide.superpixels is superpixels.superpixels
    assert divide.snap_to_superpixels is superpixels.snap_to_superpixels


def test_predict_hierarchy_lives_in_predict_and_models_do_not_import_it():
    import granseg.predict.hierarchy as module
    from granseg.models.registry import get_entry

    assert get_entry("hierarchy").builder == "granseg.predict.hierarchy:build_hierarchy"
    assert module.HierarchyPredictor.__module__ == "granseg.predict.hierarchy"


def test_clicks_never_make_the_mask_much_worse():
    """RITM robot clicks on the toy body: with every click the IoU may not fall by more than 0.02, and the
    previous answer comes back through ``mask_input``."""
    from granseg.eval.clicker import Clicker
    from granseg.predict.hierarchy import HierarchyPredictor

    predictor = HierarchyPredictor()
    predictor.set_image(toy_image(3))
    target = box_mask(BODY)
    target[PART] = False  # the body without its violet part: needs corrections
    for g in (0.1, 0.5, 1.0):
        clicker = Clicker(target)
        prediction, logits, ious = np.zeros_like(target), None, []
        for _ in range(6):
            clicker.make_next_click(prediction)
            out = predictor.predict(
                clicker.points_xy(),
                clicker.labels(),
                granularity=g,
                mask_input=None if logits is None else logits[None],
            )
            prediction, logits = out.masks[0], out.low_res_logits[0]
            ious.append(iou(prediction, target))
        assert all(b >= a - 0.02 for a, b in zip(ious, ious[1:])), (g, ious)
        assert ious[-1] > 0.85, (g, ious)


# ------------------------------------------------------------------ learned tree: cues, leaves, merge criterion
def test_oriented_gradients_peak_on_colour_and_texture_borders():
    from granseg.regions.cues import to_lab
    from granseg.regions.gradients import gradient_cues

    rng = np.random.default_rng(0)
    image = np.full((96, 128, 3), 128, np.uint8)
    image[:, 64:] = (40, 90, 200)  # colour step at column 64
    cues = gradient_cues(to_lab(image))
    assert cues.gradients.shape == (12, 96, 128) and cues.codes.shape == (4, 96, 128)
    colour = cues.gradients[3:9].mean(0)  # a and b at every scale
    assert colour[:, 62:66].mean() > 10 * colour[:, 10:40].mean() + 0.05
    # two textures with the same mean grey: stripes on the left, noise on the right
    texture = np.full((96, 128), 128.0)
    texture[:, :64] += np.where((np.arange(64) // 2) % 2 == 0, 60.0, -60.0)[None, :]
    texture[:, 64:] += rng.normal(0, 25, (96, 64))
    grey = np.repeat(np.clip(texture, 0, 255).astype(np.uint8)[..., None], 3, 2)
    texton = gradient_cues(to_lab(grey)).gradients[9:12].mean(0)  # texton, all scales
    assert texton[:, 60:68].mean() > 1.5 * max(texton[:, 16:40].mean(), texton[:, 88:112].mean())


def test_watershed_leaves_follow_the_boundary_ridge():
    from granseg.regions.superpixels import watershed_superpixels

    strength = np.zeros((60, 80), np.float32)
    strength[:, 37] = 1.0  # a boundary ridge at column 37
    labels = watershed_superpixels(strength, 40)
    assert 20 <= labels.max() + 1 <= 60
    assert not (np.isin(labels[:, :37], labels[:, 38:])).any()  # no leaf crosses the ridge


def test_pair_features_of_merged_nodes_equal_features_computed_from_scratch():
    from granseg.regions.cues import to_lab
    from granseg.regions.superpixels import resize_long_side
    from granseg.regions.tree import TreeParams, learned_leaves, learned_statistics

    small, _ = resize_long_side(toy_image(), 448)
    lab = to_lab(small)
    labels, cues = learned_leaves(small, lab, TreeParams(n_superpixels=60), "slic")
    stats, (ea, eb, borders) = learned_statistics(labels, lab, cues)
    a, b = int(ea[0]), int(eb[0])  # merge the first adjacent pair into node c
    n = int(labels.max()) + 1
    stats.merge(a, b, n, float(borders[0, 0]))
    merged_labels = np.where(labels == b, a, labels)
    _, merged_labels = np.unique(merged_labels, return_inverse=True)
    merged_labels = merged_labels.reshape(labels.shape)
    fresh, (fa, fb, fborders) = learned_statistics(merged_labels, lab, cues)
    new_id = int(merged_labels[labels == a][0])
    for row in np.flatnonzero((fa == new_id) | (fb == new_id)).tolist():
        other = int(fb[row] if fa[row] == new_id else fa[row])
        old_other = int(labels[merged_labels == other][0])
        # borders of c with the other node: sums of a's and b's borders with it
        want = np.zeros(borders.shape[1])
        for leaf in (a, b):
            hit = ((ea == min(leaf, old_other)) & (eb == max(leaf, old_other))).nonzero()[0]
            if hit.size:
                want += borders[hit[0]]
        assert np.allclose(fborders[row], want)
        incremental = stats.pair_features(np.array([n]), np.array([old_other]), want[None])
        scratch = fresh.pair_features(np.array([new_id]), np.array([other]), fborders[row][None])
        assert np.allclose(incremental, scratch)


def test_merge_model_file_round_trip_and_feature_check():
    from granseg.regions.learned import FEATURES, MergeModel, default_model

    model = default_model()
    assert model.weights.shape == (len(FEATURES),)
    again = MergeModel.from_dict(model.to_dict())
    x = np.random.default_rng(0).normal(size=(5, len(FEATURES)))
    assert np.allclose(again.logit(x), model.logit(x))
    bad = model.to_dict()
    bad["features"] = bad["features"][::-1]
    with pytest.raises(ValueError):
        MergeModel.from_dict(bad)


@pytest.mark.parametrize("merge", ["learned", "handcrafted"])
def test_both_criteria_build_valid_trees(merge):
    from granseg.eval.edge_maps import tree_contour_map

    tree = build_region_tree(toy_image(), TreeParams(), merge=merge)
    n = tree.n_leaves
    assert tree.n_nodes == 2 * n - 1 and tree.criterion == merge
    heights = tree.height[n:]
    for node in range(n, tree.n_nodes):
        assert tree.height[node] >= tree.height[tree.children[node]].max()
    ucm = tree_contour_map(tree, (160, 200))
    if merge == "learned":  # calibrated heights 1 - p(same): kept as they are
        assert 0 < heights.max() <= 1 and ucm.max() == pytest.approx(heights.max(), abs=1e-4)
    else:
        assert ucm.max() == pytest.approx(1.0)
    # the body/background border is stronger than borders inside the background
    assert ucm[30:130, 28:32].max() > np.median(ucm[140:, :][ucm[140:, :] > 0])
    with pytest.raises(ValueError):
        build_region_tree(toy_image(), merge="nope")


def test_ucm_edge_map_uses_the_learned_tree():
    from granseg.eval.edge_maps import edge_map_function, tree_contour_map
    from granseg.predict.hierarchy import HierarchyConfig

    image = toy_image()
    edges = edge_map_function("hierarchy", kind="ucm")(image)
    tree = build_region_tree(image, HierarchyConfig().tree_params(), merge="learned")
    assert np.allclose(edges, tree_contour_map(tree, image.shape[:2]))
    assert build_region_tree(image).criterion == "handcrafted"  # the predictor's default tree
