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
    nodes, levels, _ = ch.chain_levels(tree, chain, top)
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


def _naive_cosine_levels(features, edges, thetas):
    """Reference: merge the most similar adjacent pair (recomputing every pair) while its cosine >= theta."""
    groups = [{i} for i in range(len(features))]
    adjacent = {tuple(sorted(e)) for e in np.asarray(edges).tolist()}
    out = []
    for theta in thetas:
        while True:
            best, pair = -np.inf, None
            for i, gi in enumerate(groups):
                for j in range(i + 1, len(groups)):
                    gj = groups[j]
                    if not any((min(a, b), max(a, b)) in adjacent for a in gi for b in gj):
                        continue
                    u, v = features[list(gi)].sum(0), features[list(gj)].sum(0)
                    sim = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
                    if sim > best:
                        best, pair = sim, (i, j)
            if pair is None or best < theta:
                break
            groups[pair[0]] |= groups.pop(pair[1])
        out.append(sorted(tuple(sorted(g)) for g in groups))
    return out


def test_engine_merging_is_the_region_tree_loop_and_matches_a_naive_merge(monkeypatch):
    """The pseudo-label engine's merge hierarchy (conquer parts, region proposals, stuff) runs on the region
    tree's greedy loop (issue 18: one region hierarchy), and its levels equal the naive best-pair-first merging."""
    from granseg.regions import agglomerate, merge

    calls = []
    real = agglomerate.agglomerate

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(agglomerate, "agglomerate", counted)
    rng = np.random.default_rng(3)
    for _ in range(4):
        h, w = rng.integers(3, 6, 2)
        centres = rng.normal(size=(3, 6))
        features = centres[rng.integers(0, 3, h * w)] + rng.normal(scale=0.5, size=(h * w, 6)) + 2
        edges = merge.grid_edges(int(h), int(w))
        thetas = (0.99, 0.95, 0.9, 0.8)
        levels = merge.merge_graph(features, edges, None, thetas, min_size=1)
        got = [
            sorted(tuple(np.flatnonzero(lv.labels == v).tolist()) for v in np.unique(lv.labels))
            for lv in levels
        ]
        assert got == _naive_cosine_levels(features, edges, thetas)
    assert len(calls) == 4


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


def test_disk_selection_holds_the_leaves_around_the_point(tree):
    sel = ch.disk_selection(tree, np.array([75.0, 80.0]), (160, 200), 0.1)  # radius 20 px around (75, 80)
    mask = ch.upsample_selection(tree, sel, (160, 200))
    yy, xx = np.mgrid[:160, :200]
    disk = (xx - 75) ** 2 + (yy - 80) ** 2 <= 20**2
    assert iou(mask, disk) > 0.6
    assert not ch.disk_selection(tree, np.array([75.0, 80.0]), (160, 200), 0.0).any()


def test_st_min_cut_on_a_chain():
    from granseg.regions.graphcut import st_min_cut

    # 0 - 1 - 2 - 3: node 0 wants the source, node 3 the sink; the cheap edge (1, 2) is cut
    cut = st_min_cut(
        np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([5.0, 0.5, 5.0]), [9, 0, 0, 0], [0, 0, 0, 9]
    )
    assert cut.tolist() == [True, True, False, False]


def test_refine_outline_moves_a_shifted_outline_onto_the_colour_edge():
    """A red square on grey; the leaf-level mask is the square shifted by 3 px: the band cut puts the outline
    back on the colour edge (IoU 0.84 -> > 0.95) and keeps the clicked pixels' labels."""
    from granseg.regions.cues import colour_bins, to_lab
    from granseg.regions.pixelcut import pixel_image, refine_outline

    image = np.full((80, 80, 3), 128, np.uint8)
    image[20:60, 20:60] = (200, 30, 30)
    square = np.zeros((80, 80), bool)
    square[20:60, 20:60] = True
    shifted = np.roll(square, 3, axis=1)
    lab = to_lab(image)
    bins, _ = colour_bins(lab)
    used, index = np.unique(bins.ravel(), return_inverse=True)
    ratio = np.where(np.isin(used, bins[square]), 5.0, -5.0)
    fixed = np.zeros((80, 80), np.int8)
    fixed[40, 61] = 1  # a positive click just outside the square stays object
    out = refine_outline(pixel_image(lab, index.reshape(bins.shape)), shifted, ratio, fixed, 4, 2.0)
    assert iou(shifted, square) < 0.9 and iou(out, square) > 0.95
    assert out[40, 61]


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


@pytest.mark.parametrize("leaves", ["slic", "watershed"])
def test_the_compiled_merge_loop_makes_the_python_loops_tree(leaves):
    pytest.importorskip("numba")
    from granseg.regions.cues import to_lab
    from granseg.regions.learned import default_model, learned_merge
    from granseg.regions.superpixels import resize_long_side
    from granseg.regions.tree import TreeParams, learned_leaves, learned_statistics
    from granseg.synth import SynthConfig, generate_scene

    model = default_model(leaves)
    for image in (toy_image(), generate_scene(seed=3, config=SynthConfig(size=192)).image):
        small, _ = resize_long_side(image, 320)
        lab = to_lab(small)
        labels, cues = learned_leaves(small, lab, TreeParams(n_superpixels=300), leaves)
        merged = []
        for compiled in (True, False):
            stats, edges = learned_statistics(labels, lab, cues)
            merged.append((learned_merge(stats, edges, model, compiled=compiled), stats))
        (parent, children, height, area), stats = merged[0]
        (parent_py, children_py, height_py, area_py), stats_py = merged[1]
        assert len(parent) == 2 * (int(labels.max()) + 1) - 1  # merged up to one root
        assert np.array_equal(parent, parent_py) and np.array_equal(children, children_py)
        assert np.array_equal(area, area_py)
        np.testing.assert_allclose(height, height_py, rtol=0, atol=1e-12)
        for name in ("perimeter", "lab", "hist"):  # the node statistics are written as the Python loop does
            np.testing.assert_allclose(getattr(stats, name), getattr(stats_py, name), rtol=1e-12, atol=1e-9)


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


@pytest.mark.parametrize("leaves", ["slic", "watershed"])
def test_shipped_merge_criteria_are_monotone_in_the_border_and_colour_evidence(leaves):
    """p(same) never rises with a stronger border (every border feature at once, any region size) or a larger
    colour difference: the old fit had a positive weight on the squared border mean, so above a mean of about 0.5
    a stronger outline merged earlier and the top of the coffee photo's tree collapsed into one plateau."""
    from granseg.regions.learned import BORDER_FEATURES, FEATURE_SIGNS, FEATURES, default_model

    model = default_model(leaves)
    signs = np.sign(model.weights)
    assert np.all(signs * FEATURE_SIGNS >= 0)  # the fit's sign constraints hold in the shipped file
    names = list(FEATURES)

    def logit(border: float, log_min_area: float, lab: float) -> float:
        x = model.mean.copy()
        x[: len(BORDER_FEATURES)] = border
        x[names.index("log_border_mean")] = np.log(border + 0.05)
        x[names.index("border_mean*log_min_area")] = border * log_min_area
        x[names.index("log_min_area")] = log_min_area
        x[names.index("lab")] = lab
        x[names.index("lab*log_min_area")] = lab * log_min_area
        return float(model.logit(x[None])[0])

    for log_min_area in (-11.0, -7.0, -3.0, -0.7):
        for lab in (0.0, 0.3):
            along_border = [logit(b, log_min_area, lab) for b in np.linspace(0.0, 1.5, 31)]
            assert np.all(np.diff(along_border) <= 1e-9), (log_min_area, lab)
        along_colour = [logit(0.3, log_min_area, c) for c in np.linspace(0.0, 1.0, 21)]
        assert np.all(np.diff(along_colour) <= 1e-9), log_min_area


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
    if merge == "learned":  # calibrated heights (1 - p(same)) ** power: the map is 1 - p(same)
        top = heights.max() ** (1 / tree.height_power)
        assert 0 < heights.max() <= 1 and ucm.max() == pytest.approx(top, abs=1e-4)
    else:
        assert ucm.max() == pytest.approx(1.0)
    # the body/background border is stronger than borders inside the background
    assert ucm[30:130, 28:32].max() > np.median(ucm[140:, :][ucm[140:, :] > 0])
    with pytest.raises(ValueError):
        build_region_tree(toy_image(), merge="nope")


def test_ucm_single_edge_map_uses_the_learned_tree():
    from granseg.eval.edge_maps import edge_map_function, tree_contour_map
    from granseg.predict.hierarchy import HierarchyConfig

    image = toy_image()
    edges = edge_map_function("hierarchy", kind="ucm-single")(image)
    tree = build_region_tree(image, HierarchyConfig().tree_params(), merge="learned")
    assert np.allclose(edges, tree_contour_map(tree, image.shape[:2]))
    assert build_region_tree(image).criterion == "learned"  # one tree for the package (issue 18)


def test_height_power_keeps_the_learned_tree_its_order_and_its_edge_map():
    from granseg.eval.edge_maps import tree_contour_map

    assert TreeParams().height_power == 3.0
    plain = build_region_tree(toy_image(), TreeParams(height_power=1.0))
    powered = build_region_tree(toy_image(), TreeParams(height_power=3.0))
    assert np.array_equal(plain.parent, powered.parent) and np.array_equal(plain.leaf_map, powered.leaf_map)
    assert np.allclose(powered.height, plain.height**3)
    # the ucm edge map is 1 - p(same) whatever the power
    assert np.allclose(tree_contour_map(powered, (160, 200)), tree_contour_map(plain, (160, 200)), atol=1e-4)


def _grid_tree(rows: int, cols: int, lab: np.ndarray):
    """A stand-in for a RegionTree's leaf graph: ``rows x cols`` leaves (rank r * cols + c), 4-adjacent, each of
    area 1 with the ``(rows, cols, 3)`` CIELAB colour ``lab`` (only what :func:`chains.chroma_close_pieces`
    reads)."""
    from types import SimpleNamespace

    rank = np.arange(rows * cols).reshape(rows, cols)
    right = np.stack([rank[:, :-1].ravel(), rank[:, 1:].ravel()], 1)
    down = np.stack([rank[:-1].ravel(), rank[1:].ravel()], 1)
    pairs = np.concatenate([right, down])
    tree = SimpleNamespace(
        n_leaves=rows * cols,
        edge_a=pairs[:, 0],
        edge_b=pairs[:, 1],
        edge_len=np.ones(len(pairs)),
        leaf_area=np.ones(rows * cols, np.int64),
        leaf_lab=lab.reshape(-1, 3).astype(np.float32),
    )
    return tree, rank


def test_chroma_close_pieces_keeps_a_darker_part_and_drops_a_neighbour_of_another_colour():
    lab = np.zeros((4, 8, 3))
    lab[:, :3] = (60, 170, 160)  # the answer: columns 0-2, red
    lab[:, 3:5] = (30, 165, 158)  # a darker red part next to it (lightness ignored)
    lab[:, 5:] = (60, 110, 80)  # a touching neighbour, blue-green
    tree, rank = _grid_tree(4, 8, lab)
    base = np.zeros(tree.n_leaves, bool)
    base[rank[:, :3].ravel()] = True
    dark = np.zeros(tree.n_leaves, bool)
    dark[rank[:2, 3:5].ravel()] = True  # rows 0-1, columns 3-4
    other = np.zeros(tree.n_leaves, bool)
    other[rank[2:, 5:].ravel()] = True  # rows 2-3, columns 5-7: not joined to `dark`
    added = dark | other | base  # base's own leaves are never returned
    assert (ch.chroma_close_pieces(tree, base, added, 20.0) == dark).all()
    assert (ch.chroma_close_pieces(tree, base, added, 0.0) == (dark | other)).all()  # 0: off
    assert (ch.chroma_close_pieces(tree, base, added, 200.0) == (dark | other)).all()
    # one piece holding both colours is judged on its mean: kept or dropped whole
    joined = np.zeros(tree.n_leaves, bool)
    joined[rank[0, 3:].ravel()] = True  # row 0, columns 3-7: 2 dark red + 3 blue-green leaves
    assert not ch.chroma_close_pieces(tree, base, joined, 20.0).any()


def test_chroma_close_pieces_keeps_the_other_colour_of_a_two_coloured_object_along_a_long_seam():
    # object_prior_keep_shared: a far piece that borders the answer along much of its outline is kept (the teal
    # half of tests/test_video.py's red + teal object shares 0.34 of its outline with the red half)
    lab = np.zeros((6, 8, 3))
    lab[:, :3] = (60, 170, 160)  # the answer: columns 0-2, red
    lab[:, 3:] = (60, 110, 80)  # everything else blue-green
    tree, rank = _grid_tree(6, 8, lab)
    base = np.zeros(tree.n_leaves, bool)
    base[rank[:, :3].ravel()] = True
    half = np.zeros(tree.n_leaves, bool)
    half[rank[:4, 3:5].ravel()] = True  # rows 0-3, columns 3-4: 4 of its 10 outline edges border the answer
    touching = np.zeros(tree.n_leaves, bool)
    touching[rank[5, 3:].ravel()] = True  # row 5, columns 3-7: 1 of 6 (the image border is no outline)
    added = half | touching
    piece = ch.leaf_pieces(tree, added)
    shared = ch.shared_outline(tree, piece, base)
    assert shared[piece[half][0]] == pytest.approx(0.4) and shared[piece[touching][0]] == pytest.approx(1 / 6)
    assert not ch.chroma_close_pieces(tree, base, added, 20.0).any()  # both far in (a, b): the old gate
    assert (ch.chroma_close_pieces(tree, base, added, 20.0, 0.3) == half).all()
    assert not ch.chroma_close_pieces(tree, base, added, 20.0, 0.5).any()
    assert (ch.chroma_close_pieces(tree, base, added, 0.0, 0.3) == added).all()  # the colour gate off: all


def test_counting_gives_what_sorting_gave():
    # set_image's colour bins and the consensus overlay count instead of sorting: the same arrays as np.unique
    from types import SimpleNamespace

    from granseg.regions.consensus import overlay_labels
    from granseg.regions.cues import COLOUR_BINS, used_bins

    rng = np.random.default_rng(0)
    bins = rng.choice(rng.integers(0, int(np.prod(COLOUR_BINS)), 40), size=(30, 20))
    used, index = used_bins(bins)
    want_used, want_index = np.unique(bins.ravel(), return_inverse=True)
    assert np.array_equal(used, want_used) and np.array_equal(index, want_index)
    maps = [rng.integers(0, k, (30, 20)).astype(np.int32) for k in (7, 3, 11)]
    trees = [SimpleNamespace(leaf_map=m, n_leaves=int(m.max()) + 1) for m in maps]
    stacked = np.stack([m.ravel().astype(np.int64) for m in maps], 1)
    _, want = np.unique(stacked, axis=0, return_inverse=True)
    assert np.array_equal(overlay_labels(trees), want.reshape(30, 20))
