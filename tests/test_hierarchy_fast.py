"""The fast `hierarchy` predict path (batched GrabCut over the leaves, per-image colour tables, cached colour
models, cropped pixel-band cuts) answers what the reference code answered.

``tests/data/hierarchy_expected.npz`` holds the masks and scores of the code before the speed work (main at
ef03f5b, handcrafted tree; ``PINNED`` keeps that setting where defaults changed since) on two synthetic scenes: one click with all ten g, three clicks fed back through ``mask_input`` as a
user session does, and a box with a click. Regenerate it only with the reference code on the path::

    PYTHONPATH=OLD_CHECKOUT python tests/test_hierarchy_fast.py --write tests/data/hierarchy_expected.npz
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

import numpy as np

EXPECTED = Path(__file__).resolve().parent / "data" / "hierarchy_expected.npz"
SEEDS = (3, 7)
# the settings the expectations were computed with, where later defaults differ (fields added since then)
PINNED = {
    "tree_merge": "handcrafted",
    "top_size_power": 0.0,
    "object_prior_contrast": 1.0,
    "correction_max_change": 0.0,
    "correction_reach": 0.0,
    "correction_keep_size": 0.0,
    "correction_sign": False,
    "correction_split_guard": False,
    "correction_colour_vote": 0.0,
    "keep_connected": False,
    "part_min_distinct": 0.0,
    "clip_to_next_level": False,
    "cap_single_answers": False,
}


def session_outputs() -> dict[str, np.ndarray]:
    """Masks (packed bits) and scores of the cases above, keyed ``{seed}_{case}_{masks|scores}``."""
    from granseg.predict.hierarchy import HierarchyConfig, build_hierarchy
    from granseg.synth import SynthConfig, generate_scene

    known = {f.name for f in fields(HierarchyConfig)}  # the reference code lacks the newer ones
    predictor = build_hierarchy(**{k: v for k, v in PINNED.items() if k in known}).create_predictor()
    out: dict[str, np.ndarray] = {}
    for seed in SEEDS:
        scene = generate_scene(seed=seed, config=SynthConfig(size=256))
        predictor.set_image(scene.image)
        h, w = scene.image.shape[:2]
        rng = np.random.default_rng(seed)
        points = rng.uniform([0, 0], [w - 1, h - 1], size=(3, 2))
        answers = {"one": predictor.predict(points[:1], [1], granularity="all")}
        previous = answers["one"]
        for n in (2, 3):
            labels = [1, 0, 1][:n]
            previous = predictor.predict(
                points[:n], labels, granularity="all", mask_input=previous.low_res_logits
            )
            answers[f"seq{n}"] = previous
        box = np.array([w * 0.2, h * 0.2, w * 0.8, h * 0.8])
        answers["box"] = predictor.predict(points[:1], [1], box=box, granularity=[0.3, 1.0])
        for case, pred in answers.items():
            out[f"{seed}_{case}_masks"] = np.packbits(pred.masks)
            out[f"{seed}_{case}_scores"] = np.asarray(pred.scores, np.float64)
    return out


def test_fast_path_matches_the_reference_outputs():
    expected = np.load(EXPECTED)
    got = session_outputs()
    assert sorted(got) == sorted(expected.files)
    for key in expected.files:
        if key.endswith("_masks"):
            assert np.array_equal(got[key], expected[key]), key
        else:
            np.testing.assert_allclose(got[key], expected[key], atol=1e-9, err_msg=key)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--write":
        sys.exit("usage: test_hierarchy_fast.py --write OUT.npz")
    np.savez_compressed(sys.argv[2], **session_outputs())


def test_answers_are_cached_per_request():
    from granseg.predict.hierarchy import build_hierarchy
    from tests.test_hierarchy import toy_image

    predictor = build_hierarchy().create_predictor()
    predictor.set_image(toy_image())
    computed = []
    compute = predictor._selections
    predictor._selections = lambda *args: computed.append(1) or compute(*args)
    first = predictor.predict([[65.0, 70.0]], [1], granularity="all")
    again = predictor.predict([[65.0, 70.0]], [1], granularity="all")
    assert len(computed) == 1 and np.array_equal(first.masks, again.masks)
    predictor.predict([[66.0, 70.0]], [1], granularity="all")  # another click
    predictor.config.pixel_band = 0  # another config is another request
    predictor.predict([[65.0, 70.0]], [1], granularity="all")
    assert len(computed) == 3
    predictor.set_image(toy_image(seed=1))
    predictor.predict([[65.0, 70.0]], [1], granularity="all")
    assert len(computed) == 4


def _reference_grabcut(tree, job, smoothness, components=5):
    """The GrabCut over the leaves as written before the speed work: one job, single-model fits, no cache."""
    from granseg.regions.colour import fit_gmm, log_density
    from granseg.regions.graphcut import min_cut, pairwise_weights

    selected = job.reference.copy()
    selected[job.positives] = True
    selected[job.negatives] = False
    if selected.all() or not selected.any():
        return selected
    counts = tree.leaf_colours
    weight = np.sqrt(tree.leaf_area / tree.leaf_area.mean())
    pair = pairwise_weights(tree, smoothness)
    model_of = selected
    for _ in range(max(1, job.iterations)):
        fg = np.asarray(counts.T @ model_of.astype(np.float32)).ravel()
        bg = np.maximum(np.asarray(counts.sum(0)).ravel() - fg, 0)
        centres = tree.colour_centres
        bins = log_density(centres, fit_gmm(centres, fg, components)) - log_density(
            centres, fit_gmm(centres, bg, components)
        )
        ratio = np.clip(np.asarray(counts @ bins).ravel() / np.maximum(tree.leaf_area, 1.0), -10, 10)
        cost_object = (np.maximum(-ratio, 0) + job.prior_weight * ~job.reference) * weight
        cost_background = (np.maximum(ratio, 0) + job.prior_weight * job.reference) * weight
        cut = min_cut(tree, cost_object, cost_background, pair, job.positives, job.negatives)
        if not cut.any() or cut.all() or np.array_equal(cut, model_of):
            return cut
        model_of = cut
    return cut


def test_grabcut_many_equals_one_reference_grabcut_per_job():
    """All cuts side by side (batched EM, cached colour models, one union graph) = each cut alone."""
    from granseg.regions.colour import LeafColours
    from granseg.regions.graphcut import CutJob, grabcut_many
    from granseg.regions.tree import TreeParams, build_region_tree
    from granseg.synth import SynthConfig, generate_scene

    for seed in SEEDS:
        tree = build_region_tree(generate_scene(seed=seed, config=SynthConfig(size=256)).image, TreeParams())
        rng = np.random.default_rng(seed)
        jobs = []
        for node in rng.choice(np.arange(tree.n_leaves, tree.n_nodes), 8, replace=False):
            reference = np.zeros(tree.n_leaves, bool)
            reference[tree.lo[node] : tree.hi[node]] = True
            inside = rng.integers(tree.lo[node], tree.hi[node], 1)
            outside = np.setdiff1d(rng.integers(0, tree.n_leaves, 2), np.arange(tree.lo[node], tree.hi[node]))
            jobs.append(
                CutJob(reference, inside, outside, float(rng.choice([0.1, 0.5])), int(rng.integers(1, 6)))
            )
        got = grabcut_many(tree, jobs, 2.0, 1.0, LeafColours(tree))
        for job, cut in zip(jobs, got):
            assert np.array_equal(cut, _reference_grabcut(tree, job, 2.0))


def test_compiled_colour_fits_match_the_numpy_em():
    """The compiled EM (granseg.regions.colour_compiled) against fit_gmms + log-density: rows with many bins, a
    few bins (fewer than the components: the single-fit path) and one bin; the same densities up to the order
    of the sums."""
    import pytest

    from granseg.regions.colour import REGULARISER, _log_densities, fit_gmms
    from granseg.regions.maxflow import default_backend

    if default_backend() != "numba":
        pytest.skip("no numba")
    from granseg.regions.colour_compiled import fit_log_densities

    rng = np.random.default_rng(4)
    points = rng.uniform([0, -60, -60], [100, 60, 60], (150, 3))
    weights = rng.integers(0, 40, (6, 150)).astype(np.float64) * (rng.random((6, 150)) < 0.6)
    weights[1] = 0
    weights[1, [3, 7, 9]] = [5, 1, 2]  # three bins
    weights[2] = 0
    weights[2, 11] = 4  # one bin
    points[20] = points[21]  # a duplicated colour
    weights[3, [20, 21]] = [30, 30]
    expected = _log_densities(points, fit_gmms(points, weights, 5))
    got = fit_log_densities(points, weights, 5, 6, REGULARISER)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_per_image_tables_are_rebuilt_by_set_image():
    """The per-image tables of the fast path (colour table, intp leaf map, the tree's leaf adjacency) belong to
    the image: a predictor moved to a second image answers what a fresh predictor answers there, and the cached
    adjacency lists exactly the tree's leaf edges."""
    from granseg.predict.hierarchy import build_hierarchy
    from tests.test_hierarchy import toy_image

    first, second = toy_image(), toy_image(seed=1)
    used = build_hierarchy().create_predictor()
    used.set_image(first)
    used.predict([[65.0, 70.0]], [1], granularity="all")
    used.set_image(second)
    fresh = build_hierarchy().create_predictor()
    fresh.set_image(second)
    for predictor in (used, fresh):
        assert predictor._leaf_index.shape == predictor.tree.leaf_map.shape
    for args in ([[[65.0, 70.0]], [1]], [[[65.0, 70.0], [20.0, 20.0]], [1, 0]]):
        a, b = used.predict(*args, granularity="all"), fresh.predict(*args, granularity="all")
        np.testing.assert_array_equal(a.masks, b.masks)
        np.testing.assert_array_equal(a.scores, b.scores)
    tree = used.tree
    start, neighbours = tree.leaf_neighbours
    pairs = {(int(a), int(b)) for a, b in zip(tree.edge_a, tree.edge_b)}
    listed = {(i, int(j)) for i in range(tree.n_leaves) for j in neighbours[start[i] : start[i + 1]]}
    assert listed == pairs | {(b, a) for a, b in pairs}
