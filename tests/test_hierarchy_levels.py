"""Which chain regions are granularity levels (``part_min_distinct``) and the regions a single click's answer
stays inside (``clip_to_next_level``): granseg.regions.chains and the hierarchy predictor (issue 18, synthetic
parts)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from bench_helpers import load_benchmark
from scipy.sparse import csr_matrix

from granseg.io.images import load_image
from granseg.predict.hierarchy import build_hierarchy
from granseg.regions import chains as ch
from granseg.synth import SynthConfig, generate_scene

OLD = {"part_min_distinct": 0.0, "clip_to_next_level": False}  # the chain before these options


def nested_tree(colours: list[list[int]], intervals: list[tuple[int, int]]) -> SimpleNamespace:
    """A stand-in for a RegionTree: leaves with the given colour-bin counts, nodes = leaf-rank intervals."""
    counts = csr_matrix(np.asarray(colours, dtype=np.float64))
    area_of_leaf = np.asarray(counts.sum(axis=1)).ravel()
    lo = np.array([a for a, _ in intervals])
    hi = np.array([b for _, b in intervals])
    area = np.array([area_of_leaf[a:b].sum() for a, b in intervals])
    return SimpleNamespace(leaf_colours=counts, lo=lo, hi=hi, area=area, n_leaves=len(colours))


def test_colour_distinctness_separates_a_texture_fragment_from_a_part():
    # leaves 0-1: two pieces of one striped part (both stripe colours); leaves 2-3: a part of another colour
    tree = nested_tree(
        [[6, 4, 0], [5, 5, 0], [0, 0, 10], [0, 0, 10]],
        [(0, 1), (0, 2), (0, 4)],  # node 0: a fragment; node 1: the striped part; node 2: the object
    )
    nodes = np.arange(3)
    score = ch.colour_distinctness(tree, nodes)
    assert score[0] == pytest.approx(0.5 * (abs(0.6 - 0.5) + abs(0.4 - 0.5)))  # vs the rest of node 1
    assert score[1] == pytest.approx(1.0)  # vs leaves 2-3: no colour in common
    assert score[2] == 1.0  # the last region is always kept
    tree.height = np.zeros(3)
    kept, levels, _ = ch.chain_levels(tree, [0, 1, 2], 2, 0.0, 0.7)
    assert kept.tolist() == [1, 2] and levels.tolist() == pytest.approx([0.1, 1.0])
    kept_all, _, _ = ch.chain_levels(tree, [0, 1, 2], 2, 0.0, 0.0)
    assert kept_all.tolist() == [0, 1, 2]
    # no region below the top has colours of its own: every region stays (the chain is never just its top)
    uniform = nested_tree([[5, 5], [5, 5], [5, 5], [5, 5]], [(0, 1), (0, 2), (0, 4)])
    uniform.height = np.zeros(3)
    assert ch.chain_levels(uniform, [0, 1, 2], 2, 0.0, 0.7)[0].tolist() == [0, 1, 2]


def test_chain_levels_drop_only_the_fragments_below_the_first_distinct_region():
    # node 0: a fragment of the striped part (node 1); node 2: the part + a piece of a sibling part, which looks
    # half like its surroundings (0.67 < 0.7) but lies above the part, so it stays a level; node 3: the object
    tree = nested_tree(
        [[6, 4, 0], [5, 5, 0], [0, 0, 10], [0, 0, 10], [0, 0, 10], [0, 0, 10]],
        [(0, 1), (0, 2), (0, 3), (0, 6)],
    )
    tree.height = np.zeros(4)
    score = ch.colour_distinctness(tree, np.arange(4))
    assert score[0] < 0.7 <= score[1] and score[2] == pytest.approx(0.5 * (11 + 9 + 20) / 30)
    kept, _, distinctness = ch.chain_levels(tree, [0, 1, 2, 3], 3, 0.0, 0.7)
    assert kept.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(distinctness, ch.colour_distinctness(tree, kept))  # handed over, the same


def _part_and_object_iou(predictor, seed: int, own_pixels: bool = False) -> tuple[float, float]:
    """The synth benchmark's click (bench_hierarchy.largest_part_click): best part IoU at g <= 0.3 and object
    IoU at g = 1.0. ``own_pixels`` False: the click before session 16 (the whole part's deepest pixel), which
    the tests written then measured; True: the benchmark's click now (the deepest pixel of the part's own)."""
    scene = generate_scene(seed=seed, config=SynthConfig(size=256))
    obj, part, (x, y) = load_benchmark("bench_hierarchy").largest_part_click(scene, own_pixels)
    predictor.set_image(scene.image)
    masks = predictor.predict([[x, y]], [1], granularity="all").masks

    def iou(a, b):
        return float((a & b).sum() / max((a | b).sum(), 1))

    return max(iou(m, part.mask) for m in masks[:3]), iou(masks[-1], obj.mask)


@pytest.mark.parametrize("seed", [3, 20])  # tune seeds: a textured part clicked at its centre
def test_a_textured_part_is_the_finest_level_not_its_fragments(seed):
    # measured on the one tree (tree_starts=1): seed 3 part 0.90 (old 0.37), seed 20 0.89 (old 0.65); objects
    # 0.97 / 0.94 both ways. The consensus tree (the default since issue 18's covering work) holds these parts
    # with either rule (seed 3: 0.94 both), so the rule is compared on the tree it was made for.
    new_part, new_object = _part_and_object_iou(build_hierarchy(tree_starts=1).create_predictor(), seed)
    old_part, old_object = _part_and_object_iou(
        build_hierarchy(**OLD, tree_starts=1).create_predictor(), seed
    )
    assert new_part >= 0.85 and new_part >= old_part + 0.2
    assert new_object >= old_object - 0.01
    assert _part_and_object_iou(build_hierarchy().create_predictor(), seed)[0] >= 0.85  # the default


def _clip_regions(predictor, x: int, y: int) -> dict[float, np.ndarray]:
    """For each standard g whose chain region has a larger region with colours of its own below the top: that
    region's ``(h, w)`` bool pixels on the internal grid (the region a single click's answer must stay inside)."""
    tree = predictor.tree
    leaf = ch.points_to_leaves(tree, np.array([[x, y]], float), predictor._original_size)[0]
    nodes, levels, _ = predictor._chain(int(leaf), None)
    own = np.flatnonzero(ch.colour_distinctness(tree, nodes)[:-1] >= predictor.config.part_min_distinct)
    out = {}
    for g in np.round(np.arange(1, 11) / 10, 1):
        position = int(np.flatnonzero(nodes == ch.node_for_granularity(nodes, levels, g))[0])
        above = own[own > position]
        if len(above):
            node = nodes[above[0]]
            out[float(g)] = (predictor._leaf_index >= tree.lo[node]) & (predictor._leaf_index < tree.hi[node])
    return out


def test_a_single_click_answer_stays_inside_the_next_region_with_colours_of_its_own():
    # tune seed 18: the largest part's GrabCut answer at g <= 0.3 spills into its sibling parts (47-65 % of its
    # pixels outside the next region with colours of its own; part IoU 0.49); clip_to_next_level cuts it to that
    # region (0.77), the g = 1.0 answer unchanged
    scene = generate_scene(seed=18, config=SynthConfig(size=256))
    _, _, (x, y) = load_benchmark("bench_hierarchy").largest_part_click(scene, own_pixels=False)
    outside = []
    for clip in (True, False):
        predictor = build_hierarchy(clip_to_next_level=clip).create_predictor()
        predictor.set_image(scene.image)
        small = predictor.predict([[x, y]], [1], granularity="all").low_res_logits > 0
        regions = _clip_regions(predictor, x, y)
        assert 0.3 in regions, "the part levels have a region with colours of their own to stay inside"
        outside.append(
            {
                g: (small[round(10 * g) - 1] & ~inside).sum() / small[round(10 * g) - 1].sum()
                for g, inside in regions.items()
            }
        )
    limit = build_hierarchy().config.clip_min_outside
    assert all(v <= limit for v in outside[0].values())
    assert outside[0][0.1] == 0 and outside[1][0.1] > 0.4  # without the clip the part's answer spills
    new_part, new_object = _part_and_object_iou(build_hierarchy().create_predictor(), 18)
    old_part, old_object = _part_and_object_iou(
        build_hierarchy(clip_to_next_level=False).create_predictor(), 18
    )
    assert new_part >= 0.75 and new_part >= old_part + 0.2
    assert new_object == pytest.approx(old_object, abs=1e-9)


def test_chain_distinctness_is_computed_once_and_equals_a_fresh_computation(sample_image_path, monkeypatch):
    # the clip reuses the distinctness _chain computed; on a photo's chains (fragments and repeated areas dropped
    # by part_min_fraction / part_min_distinct) the kept regions' values equal a fresh computation over them
    predictor = build_hierarchy().create_predictor()
    predictor.set_image(load_image(sample_image_path))
    tree, dropped = predictor.tree, 0
    for leaf in range(0, tree.n_leaves, 7):
        nodes, levels, distinctness = predictor._chain(leaf, None, True)
        np.testing.assert_array_equal(distinctness, ch.colour_distinctness(tree, nodes))
        assert len(distinctness) == len(nodes) == len(levels)
        dropped += int(nodes[0] != tree.leaf_node[leaf])  # the chain's fragments below a part left out
    assert dropped > 10
    assert predictor._chain(0, None, False)[2] is None  # a correction's chain: not computed
    calls = []
    counted = ch.colour_distinctness
    monkeypatch.setattr(ch, "colour_distinctness", lambda *a, **k: calls.append(1) or counted(*a, **k))
    predictor.predict([[300, 150]], [1], granularity="all")
    assert len(calls) == 1  # one chain, one computation (the clip used to compute it again)


@pytest.mark.parametrize(
    "seed, keep_shared", [(60, 0.3), (33, 0.0)]
)  # tune seeds: the disk-seeded cut adds a touching object of another hue
def test_the_g1_union_leaves_out_a_touching_neighbour_of_another_colour(seed, keep_shared):
    # object_prior_max_chroma 60 (default since issue 18 session 16, with object_prior_keep_shared 0.3: a far piece
    # sharing >= 30 % of its outline is kept, tests/test_video.py::test_motion_gives_the_whole_moving_object_at_g1;
    # seed 33's neighbour shares more than that, so only the colour gate alone leaves it out). Measured at 60:
    # seed 60 object 0.43 with the whole union -> 0.97, seed 33 0.48 -> 0.99 (the chain answer alone: 0.97 /
    # 0.99); the part at g <= 0.3 is untouched
    gated = build_hierarchy(object_prior_keep_shared=keep_shared).create_predictor()
    new_part, new_object = _part_and_object_iou(gated, seed)
    old_part, old_object = _part_and_object_iou(
        build_hierarchy(object_prior_max_chroma=0.0).create_predictor(), seed
    )
    assert old_object <= 0.6 and new_object >= 0.9
    assert new_part == pytest.approx(old_part, abs=1e-9)


def test_colour_recurrence_tells_a_texture_dot_from_a_sub_part():
    # leaves 0-7: a dotted part (leaves 0, 2, 4, 6: dots of colour 1; the rest: its ground, colour 0), leaf 8: a
    # sub-part of a colour found nowhere else (colour 2); node 0: a dot, node 1: the dot and a patch of ground,
    # node 2: the part, node 3: the object
    dotted = [[0, 10, 0], [10, 0, 0]] * 4 + [[0, 0, 10]]
    tree = nested_tree(dotted, [(0, 1), (0, 2), (0, 8), (0, 9)])
    recurrence = ch.colour_recurrence(tree, np.arange(4))
    # three more dots of its colour in the rest of the part (node 2)
    assert recurrence[0] == pytest.approx(1.0)
    assert recurrence.tolist()[1:] == [0.0, 0.0, 0.0]  # no chain region 8x as large: too large to repeat
    assert ch.colour_recurrence(tree, np.arange(4), factor=4.0)[1] == pytest.approx(1.0)
    # its colours differ from its immediate surroundings': the dot passes the distinctness test
    assert ch.colour_distinctness(tree, np.arange(4))[0] >= 0.7
    tree.height = np.zeros(4)
    assert ch.chain_levels(tree, [0, 1, 2, 3], 3, 0.0, 0.7)[0].tolist() == [0, 1, 2, 3]
    assert ch.chain_levels(tree, [0, 1, 2, 3], 3, 0.0, 0.7, max_recurrence=0.5)[0].tolist() == [2, 3]
    # a dot below the smallest level size (min_fraction) stays a region of its own: the levels start as before
    assert ch.chain_levels(tree, [0, 1, 2, 3], 3, 0.2, 0.7, max_recurrence=0.5)[0].tolist() == [1, 2, 3]
    # the sub-part's chain: leaf 8 alone, then the object; its colour recurs nowhere, it stays the first level
    sub = nested_tree([[0, 0, 10]] + dotted[:8], [(0, 1), (0, 9)])
    sub.height = np.zeros(2)
    assert ch.colour_recurrence(sub, np.arange(2))[0] == pytest.approx(0.0)
    assert ch.chain_levels(sub, [0, 1], 1, 0.0, 0.7, max_recurrence=0.5)[0].tolist() == [0, 1]


# tune seeds: the click lands on a dot (26) or a stripe (28) of a part
@pytest.mark.parametrize("seed", [26, 28])
def test_a_texture_dot_under_the_click_is_not_the_first_level(seed):
    # measured: seed 26 part 0.06 -> 0.81, seed 28 0.19 -> 0.92 (best IoU at g <= 0.3); objects unchanged
    new_part, new_object = _part_and_object_iou(build_hierarchy().create_predictor(), seed, True)
    old_part, old_object = _part_and_object_iou(
        build_hierarchy(part_max_recurrence=1.0).create_predictor(), seed, True
    )
    assert new_part >= 0.75 and new_part >= old_part + 0.5
    assert new_object >= old_object - 0.01


def test_levels_start_above_the_last_patch_of_a_texture_with_elements():
    # leaves 0-7: a striped part (stripes of colours 0 and 1 alternating); leaves 8-9: the rest of the object,
    # one leaf of stripe colour 0 and one of colour 2. Node 0: one stripe (a texture element: its colours differ
    # from the next stripe's but recur in the part); nodes 1-2: patches of stripes (fragments: they look like the
    # rest of the part); node 3: the striped part (distinctness 0.5: the rest of the object shares a colour);
    # node 4: the object
    stripes = [[10, 0, 0], [0, 10, 0]] * 4
    tree = nested_tree(stripes + [[10, 0, 0], [0, 0, 10]], [(0, 1), (0, 2), (0, 4), (0, 8), (0, 10)])
    tree.height = np.zeros(5)
    nodes = np.arange(5)
    distinctness = ch.colour_distinctness(tree, nodes)
    assert distinctness.tolist() == pytest.approx([1.0, 0.0, 0.0, 0.5, 1.0])
    assert ch.colour_recurrence(tree, nodes)[0] == pytest.approx(1.0)
    chain = [0, 1, 2, 3, 4]
    # no region below the top has colours of its own (the stripe repeats): every region was a level
    assert ch.chain_levels(tree, chain, 4, 0.0, 0.7, 0.5)[0].tolist() == [0, 1, 2, 3, 4]
    kept, levels, _ = ch.chain_levels(tree, chain, 4, 0.0, 0.7, 0.5, fragment_distinct=0.3)
    assert kept.tolist() == [3, 4] and levels.tolist() == pytest.approx([0.1, 1.0])
    # without a texture element (max_recurrence 1: the stripe not called one) the patches stay levels
    assert ch.chain_levels(tree, chain, 4, 0.0, 0.7, 1.0, fragment_distinct=0.3)[0].tolist() == chain
    # when the last patch lies just below the top, every region below the top is a patch: the chain is kept
    assert ch.chain_levels(tree, chain[:4], 3, 0.0, 0.7, 0.5, fragment_distinct=0.3)[0].tolist() == chain[:4]


def test_a_click_on_a_stripe_answers_the_striped_part_at_small_g():
    # synthetic tune seed 4007 (issue 18 session 19): the click lands on a stripe of the largest part, whose own
    # region (85 % of the object) holds no colours of its own; measured part IoU at g <= 0.3 0.10 -> 0.96, object 1.0 both
    new_part, new_object = _part_and_object_iou(build_hierarchy().create_predictor(), 4007, True)
    old_part, old_object = _part_and_object_iou(
        build_hierarchy(part_fragment_distinct=0.0).create_predictor(), 4007, True
    )
    assert new_part >= 0.8 and old_part <= 0.3
    assert new_object == pytest.approx(old_object, abs=0.01)


def _reference_levels(tree, chain, top, min_fraction, min_distinct, max_recurrence, fragment_distinct):
    """The rules of :func:`granseg.regions.chains.chain_levels` written out region by region (its docstring)."""
    nodes = np.asarray(chain[: top + 1])
    n, area = len(nodes), tree.area[np.asarray(chain[: top + 1])]
    keep = [(k == 0 or area[k] > area[k - 1]) and area[k] >= min_fraction * area[-1] for k in range(n)]
    if min_distinct > 0 and n > 1:
        distinct = ch.colour_distinctness(tree, nodes)
        recurs = ch.colour_recurrence(tree, nodes) if max_recurrence < 1 else np.zeros(n)
        element = [
            distinct[k] >= min_distinct and recurs[k] > max_recurrence and area[k] >= min_fraction * area[-1]
            for k in range(n - 1)
        ]
        own = [k for k in range(n - 1) if distinct[k] >= min_distinct and not element[k]]
        start = own[0] if own else None
        if fragment_distinct > 0 and any(element):
            after = max(k for k in range(n - 1) if element[k]) + 1
            end = after
            while end < n - 1 and distinct[end] < fragment_distinct:  # the unbroken run of patches
                end += 1
            if after < end < n - 1:  # a run, and not up to the region just below the top
                start = end if start is None else max(start, end)
        if start is not None:
            keep[:start] = [False] * start
    keep[-1] = True
    return nodes[np.asarray(keep)]


def test_chain_levels_follow_the_rules_written_out_on_random_chains():
    # stand-in chains of 2-9 nested regions over leaves of a few colours (stripes of two colours, patches, parts
    # of a third), compared with the rules written out; the cases must exercise the texture-patch rule
    rng = np.random.default_rng(0)
    fired = 0
    for _ in range(1500):
        stripes, others = int(rng.integers(1, 20)), int(rng.integers(0, 5))  # leaves: stripes, then the rest
        n_leaves = stripes + others
        colours = np.zeros((n_leaves, 4), int)
        for leaf in range(n_leaves):
            colour = leaf % 2 if leaf < stripes else int(rng.integers(0, 4))
            colours[leaf, colour] = int(rng.integers(8, 13) if leaf < stripes else rng.integers(1, 60))
            if rng.random() < 0.15:
                colours[leaf, int(rng.integers(0, 4))] += int(rng.integers(1, 10))
        ends = rng.integers(1, n_leaves + 1, int(rng.integers(1, 8)))  # the nested regions' last leaves
        ends = np.unique(np.concatenate([ends, [n_leaves], [1] if rng.random() < 0.7 else []]).astype(int))
        tree = nested_tree(colours.tolist(), [(0, int(e)) for e in ends])
        tree.height = np.zeros(len(ends))
        chain = list(range(len(ends)))
        top = len(chain) - 1 - int(rng.integers(0, 2)) if len(chain) > 2 else len(chain) - 1
        min_fraction = float(rng.choice([0.0, 0.05, 0.2]))
        for max_recurrence, fragment_distinct in ((0.5, 0.3), (0.5, 0.0), (1.0, 0.3)):
            args = (tree, chain, top, min_fraction, 0.7, max_recurrence, fragment_distinct)
            got = ch.chain_levels(*args)[0]
            assert got.tolist() == _reference_levels(*args).tolist(), args[1:]
        with_rule = ch.chain_levels(tree, chain, top, min_fraction, 0.7, 0.5, 0.3)[0]
        fired += (
            with_rule.tolist() != ch.chain_levels(tree, chain, top, min_fraction, 0.7, 0.5, 0.0)[0].tolist()
        )
    assert fired >= 30  # the texture-patch rule changed the levels of this many chains


def test_the_patch_run_starts_after_the_last_texture_element_not_the_first():
    # colours A, B, C; chain: leaf 0 (A), +leaf 1 (B), +leaf 2 (C), +leaves 3-5 (C, A, B), + leaves 6-7 (A, C).
    # Regions 0 and 1 are texture elements (colours of their own around them, found again further out); region
    # 2 is a patch (distinctness < 0.3) right after the last element, region 3 is not: the levels start at 3.
    # Counting the run from the first element (region 0) would find region 1 (distinctness 1) and no run.
    leaves = [[5, 0, 0], [0, 6, 0], [0, 0, 15], [0, 0, 15], [4, 0, 0], [0, 19, 0], [18, 0, 0], [0, 0, 16]]
    tree = nested_tree(leaves, [(0, 1), (0, 2), (0, 3), (0, 6), (0, 8)])
    tree.height = np.zeros(5)
    nodes = np.arange(5)
    assert ch.colour_distinctness(tree, nodes).round(3).tolist() == [1.0, 1.0, 0.269, 0.391, 1.0]
    assert ch.colour_recurrence(tree, nodes).round(3).tolist() == [0.8, 1.0, 0.0, 0.0, 0.0]
    assert ch.chain_levels(tree, list(nodes), 4, 0.0, 0.7, 0.5, 0.3)[0].tolist() == [3, 4]
    assert ch.chain_levels(tree, list(nodes), 4, 0.0, 0.7, 0.5, 0.0)[0].tolist() == [
        0,
        1,
        2,
        3,
        4,
    ]  # rule off
    # a run up to the region just below the top (the same leaves, without region 3): the chain is kept as it was
    short = nested_tree(leaves, [(0, 1), (0, 2), (0, 3), (0, 8)])
    short.height = np.zeros(4)
    assert ch.colour_distinctness(short, np.arange(4)).round(3).tolist() == [1.0, 1.0, 0.146, 1.0]
    assert ch.colour_recurrence(short, np.arange(4)).round(3).tolist() == [1.0, 1.0, 0.0, 0.0]
    assert ch.chain_levels(short, [0, 1, 2, 3], 3, 0.0, 0.7, 0.5, 0.3)[0].tolist() == [0, 1, 2, 3]
