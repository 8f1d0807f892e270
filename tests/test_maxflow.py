"""The exact minimum cut (granseg.regions.maxflow): both backends against brute force, the same hierarchy masks
with either backend, the band graph built from the band's pixel list against the window-wide construction, and
keep_connected over several cuts at once."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from granseg.regions import chains as ch
from granseg.regions.graphcut import HARD, st_min_cut
from granseg.regions.maxflow import default_backend, min_cut_side
from granseg.regions.pixelcut import PixelImage, _band_cut

BACKENDS = [
    "scipy",
    pytest.param("numba", marks=pytest.mark.skipif(default_backend() != "numba", reason="no numba")),
]


def _brute_force_side(n, edge_a, edge_b, caps, src, snk) -> np.ndarray:
    """The smallest source side among all minimum cuts, by trying all 2^n labellings (the intersection of the
    minimum cuts' source sides, itself a minimum cut)."""
    best, sides = None, []
    for bits in itertools.product([False, True], repeat=n):
        side = np.array(bits, bool)
        cost = src[~side].sum() + snk[side].sum() + caps[side[edge_a] != side[edge_b]].sum()
        if best is None or cost < best:
            best, sides = cost, [side]
        elif cost == best:
            sides.append(side)
    return np.logical_and.reduce(sides)


@pytest.mark.parametrize("backend", BACKENDS)
def test_min_cut_side_is_the_smallest_minimum_cut(backend):
    """Random small graphs with ties (small integer capacities, parallel edges, zero terminals): the answer is the
    brute-force smallest minimum cut's source side."""
    rng = np.random.default_rng(0)
    for _ in range(150):
        n = int(rng.integers(1, 9))
        m = int(rng.integers(0, 3 * n + 1))
        edge_a, edge_b = rng.integers(0, n, m), rng.integers(0, n, m)
        caps = rng.integers(0, 4, m)
        src = rng.integers(0, 5, n) * (rng.random(n) < 0.5)
        snk = rng.integers(0, 5, n) * (rng.random(n) < 0.5)
        expected = _brute_force_side(n, edge_a, edge_b, caps, src, snk)
        got = min_cut_side(edge_a, edge_b, caps, src, snk, backend=backend)
        np.testing.assert_array_equal(got, expected)


@pytest.mark.skipif(default_backend() != "numba", reason="no numba")
def test_backends_agree_on_large_grid_graphs():
    """Pixel-grid graphs of a few thousand nodes with large capacities (as the band cuts): same source side."""
    rng = np.random.default_rng(1)
    for size in (30, 70):
        index = np.arange(size * size).reshape(size, size)
        edge_a = np.concatenate([index[:, :-1].ravel(), index[:-1].ravel()])
        edge_b = np.concatenate([index[:, 1:].ravel(), index[1:].ravel()])
        caps = rng.integers(0, 50_000, len(edge_a))
        ratio = rng.integers(-10_000, 10_000, size * size)
        src, snk = np.maximum(ratio, 0), np.maximum(-ratio, 0)
        src[0], snk[-1] = HARD, HARD
        a = min_cut_side(edge_a, edge_b, caps, src, snk, backend="scipy")
        b = min_cut_side(edge_a, edge_b, caps, src, snk, backend="numba")
        np.testing.assert_array_equal(a, b)
        assert 0 < a.sum() < size * size


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend"):
        min_cut_side([0], [1], [1], [1, 0], [0, 1], backend="magic")


def test_environment_variable_forces_the_scipy_fallback(monkeypatch):
    monkeypatch.setenv("GRANSEG_MAXFLOW", "scipy")
    assert default_backend() == "scipy"


@pytest.mark.skipif(default_backend() != "numba", reason="no numba")
def test_hierarchy_masks_are_the_same_with_either_backend(monkeypatch):
    """One click (all g), a corrective session fed back through mask_input and a box, on two synthetic scenes:
    identical masks and scores with the compiled solver and with scipy's."""
    from tests.test_hierarchy_fast import session_outputs

    fast = session_outputs()
    monkeypatch.setenv("GRANSEG_MAXFLOW", "scipy")
    fallback = session_outputs()
    assert sorted(fast) == sorted(fallback)
    for key in fast:
        np.testing.assert_array_equal(fast[key], fallback[key], err_msg=key)


def _random_pixel_image(rng: np.random.Generator, h: int, w: int) -> PixelImage:
    """An ``h x w`` pixel image with random colour bins (16) and random right / down edge weights in [0, 1)."""
    return PixelImage(
        bins=rng.integers(0, 16, (h, w)), right=rng.random((h, w - 1)), down=rng.random((h - 1, w))
    )


def _reference_band_cut(image, crop, in_band, inside, bin_ratio, smoothness, backend) -> np.ndarray:
    """The band graph built over the whole window (the construction before the pixel-list one)."""
    count = int(in_band.sum())
    index = np.full(in_band.shape, -1, np.int64)
    index[in_band] = np.arange(count)
    ratio = np.clip(bin_ratio[image.bins[crop][in_band]], -10, 10)
    src, snk = np.maximum(ratio, 0), np.maximum(-ratio, 0)
    right = image.right[crop[0], crop[1].start : crop[1].stop - 1]
    down = image.down[crop[0].start : crop[0].stop - 1, crop[1]]
    pairs_a, pairs_b, weights = [], [], []
    for ia, ib, w, ma, mb in (
        (index[:, :-1], index[:, 1:], right, inside[:, :-1], inside[:, 1:]),
        (index[:-1], index[1:], down, inside[:-1], inside[1:]),
    ):
        w = smoothness * w
        both = (ia >= 0) & (ib >= 0)
        pairs_a.append(ia[both])
        pairs_b.append(ib[both])
        weights.append(w[both])
        for node, other, other_inside in ((ia, ib, mb), (ib, ia, ma)):
            edge = (node >= 0) & (other < 0)
            src += np.bincount(node[edge & other_inside], w[edge & other_inside], count)
            snk += np.bincount(node[edge & ~other_inside], w[edge & ~other_inside], count)
    src = np.minimum(src, HARD)
    return st_min_cut(
        np.concatenate(pairs_a), np.concatenate(pairs_b), np.concatenate(weights), src, snk, backend
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_band_cut_matches_the_window_wide_construction(backend, monkeypatch):
    """Random images, bands touching the image border or not: the same labels as the reference construction
    (numpy over the band's pixel list with scipy's solver; the compiled graph with the compiled solver)."""
    import cv2

    monkeypatch.setenv("GRANSEG_MAXFLOW", backend)
    rng = np.random.default_rng(2)
    for trial in range(12):
        h, w = rng.integers(20, 60, 2)
        image = _random_pixel_image(rng, h, w)
        mask = np.zeros((h, w), np.uint8)
        cv2.circle(mask, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(5, 25)), 1, -1)
        kernel = np.ones((5, 5), np.uint8)
        in_band = (cv2.dilate(mask, kernel) > 0) & ~(cv2.erode(mask, kernel) > 0)
        if not in_band.any():
            continue
        rows, cols = np.flatnonzero(in_band.any(1)), np.flatnonzero(in_band.any(0))
        crop = (slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(cols[0] - 1, 0), cols[-1] + 2))
        ratio = rng.normal(0, 8, 16)
        args = (image, crop, in_band[crop], mask.astype(bool)[crop], ratio, float(rng.uniform(1, 60)))
        expected = _reference_band_cut(*args, backend="scipy")
        np.testing.assert_array_equal(_band_cut(*args), expected, err_msg=str(trial))


@pytest.mark.parametrize("backend", BACKENDS)
def test_connected_to_many_matches_a_flood_fill_per_row(backend, monkeypatch):
    """Several selections at once (as the cuts of one predict call): each row is the flood fill of its selected
    leaves from the seeds it holds; a row holding no seed comes back as it is (scipy's components, or the
    compiled search)."""
    from granseg.regions.tree import build_region_tree
    from tests.test_hierarchy import toy_image

    monkeypatch.setenv("GRANSEG_MAXFLOW", backend)

    tree = build_region_tree(toy_image())
    adjacency = {k: set() for k in range(tree.n_leaves)}
    for a, b in zip(tree.edge_a.tolist(), tree.edge_b.tolist()):
        adjacency[a].add(b)
        adjacency[b].add(a)
    rng = np.random.default_rng(3)
    selected = rng.random((6, tree.n_leaves)) < 0.5
    seeds = rng.choice(tree.n_leaves, 2, replace=False)
    selected[0, seeds] = False
    got = ch.connected_to_many(tree, selected, seeds)
    np.testing.assert_array_equal(got[0], selected[0])
    for row, sel in zip(got[1:], selected[1:]):
        expected = np.zeros_like(sel)
        stack = [s for s in seeds.tolist() if sel[s]]
        while stack:
            leaf = stack.pop()
            if not expected[leaf]:
                expected[leaf] = True
                stack.extend(n for n in adjacency[leaf] if sel[n] and not expected[n])
        np.testing.assert_array_equal(row, expected if sel[seeds].any() else sel)


def test_cut_threads_change_no_answer():
    """The pixel-band cuts of one call on 1, 3 or the automatic number of threads: the same masks and scores (one
    click, all g, and a corrective click fed back through mask_input); a negative cut_threads is refused."""
    from granseg.errors import InputError
    from granseg.predict.hierarchy import build_hierarchy
    from granseg.synth import SynthConfig, generate_scene

    scene = generate_scene(seed=5, config=SynthConfig(size=256))
    answers = []
    for threads in (1, 3, 0):
        predictor = build_hierarchy(cut_threads=threads).create_predictor()
        predictor.set_image(scene.image)
        one = predictor.predict([[100.0, 120.0]], [1], granularity="all")
        two = predictor.predict(
            [[100.0, 120.0], [60.0, 40.0]], [1, 0], granularity="all", mask_input=one.low_res_logits
        )
        answers.append((one, two))
    for other in answers[1:]:
        for a, b in zip(answers[0], other):
            np.testing.assert_array_equal(a.masks, b.masks)
            np.testing.assert_array_equal(a.scores, b.scores)
    assert len({m.tobytes() for m in answers[0][0].masks}) > 1  # several distinct outlines were cut
    with pytest.raises(InputError, match="cut_threads"):
        build_hierarchy(cut_threads=-1)


def test_auto_cut_threads_follows_the_cores_and_the_environment(monkeypatch):
    """cut_threads 0 (auto): GRANSEG_CUT_THREADS where set (a non-number is an InputError), else 2 on a process
    allowed >= 2 cores, else 1."""
    import os

    from granseg.regions import maxflow

    monkeypatch.delenv(maxflow.CUT_THREADS_ENV, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert maxflow.auto_cut_threads() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert maxflow.auto_cut_threads() == 2
    monkeypatch.setenv(maxflow.CUT_THREADS_ENV, "1")
    assert maxflow.auto_cut_threads() == 1
    monkeypatch.setenv(maxflow.CUT_THREADS_ENV, "3")
    assert maxflow.auto_cut_threads() == 3
    from granseg.errors import InputError

    monkeypatch.setenv(maxflow.CUT_THREADS_ENV, "two")
    with pytest.raises(InputError, match="GRANSEG_CUT_THREADS"):
        maxflow.auto_cut_threads()


def _reference_refine_outline(image, mask, bin_ratio, fixed, band, smoothness) -> np.ndarray:
    """refine_outline over the whole image (the construction before the windowed one)."""
    import cv2

    m8 = mask.astype(np.uint8)
    if m8.all() or not m8.any():
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * band + 1, 2 * band + 1))
    in_band = (cv2.dilate(m8, kernel) > 0) & ~(cv2.erode(m8, kernel) > 0) & (fixed == 0)
    if not in_band.any():
        return mask
    inside = (mask | (fixed > 0)) & (fixed >= 0)
    rows, cols = np.flatnonzero(in_band.any(1)), np.flatnonzero(in_band.any(0))
    crop = (slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(cols[0] - 1, 0), cols[-1] + 2))
    out = inside.copy()
    out[crop][in_band[crop]] = _band_cut(image, crop, in_band[crop], inside[crop], bin_ratio, smoothness)
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_refine_outline_in_a_window_matches_the_whole_image(backend, monkeypatch):
    """Masks in the middle, at the image's edges, empty, full, and clicks outside the mask (fixed pixels far from
    it): the window around the mask and the clicks gives the whole-image answer."""
    import cv2

    from granseg.regions.pixelcut import refine_outline

    monkeypatch.setenv("GRANSEG_MAXFLOW", backend)
    rng = np.random.default_rng(6)
    for trial in range(16):
        h, w = rng.integers(30, 80, 2)
        image = _random_pixel_image(rng, h, w)
        mask = np.zeros((h, w), np.uint8)
        centre = (int(rng.integers(-5, w + 5)), int(rng.integers(-5, h + 5)))
        cv2.circle(mask, centre, int(rng.integers(3, 20)), 1, -1)
        mask = mask.astype(bool)
        if trial == 0:
            mask[:] = True
        elif trial == 1:
            mask[:] = False
        fixed = np.zeros((h, w), np.int8)
        for _ in range(int(rng.integers(0, 4))):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            fixed[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = rng.choice([-1, 1])
        band = int(rng.integers(1, 6))
        ratio = rng.normal(0, 8, 16)
        expected = _reference_refine_outline(image, mask, ratio, fixed, band, 20.0)
        got = refine_outline(image, mask, ratio, fixed, band, 20.0)
        np.testing.assert_array_equal(got, expected, err_msg=str(trial))


@pytest.mark.skipif(default_backend() != "numba", reason="no numba")
def test_warm_started_flow_gives_the_cut_from_scratch():
    """bk_flow restarted from the residuals of a previous flow with new terminal capacities (GrabCut's next
    round): the same minimal minimum cut as solving the new graph from scratch (scipy; brute force on the small
    graphs with ties), on grid graphs and on small random graphs."""
    from granseg.regions.maxflow_bk import bk_flow

    rng = np.random.default_rng(7)
    for trial in range(60):
        if trial % 2:
            size = int(rng.integers(3, 25))
            index = np.arange(size * size).reshape(size, size)
            edge_a = np.concatenate([index[:, :-1].ravel(), index[:-1].ravel()])
            edge_b = np.concatenate([index[:, 1:].ravel(), index[1:].ravel()])
            n, high = size * size, 5000
        else:
            n = int(rng.integers(1, 9))
            m = int(rng.integers(0, 3 * n + 1))
            edge_a, edge_b, high = rng.integers(0, n, m), rng.integers(0, n, m), 4
        edge_a, edge_b = edge_a.astype(np.int64), edge_b.astype(np.int64)
        caps = rng.integers(0, high, len(edge_a))
        src, snk = (rng.integers(0, high, (2, n)) * (rng.random((2, n)) < 0.6)).astype(np.int64)
        rcap, tr = np.repeat(caps, 2).astype(np.int64), src - snk
        bk_flow(n, edge_a, edge_b, rcap, tr)  # the first round's flow, residuals in place
        new_src, new_snk = (rng.integers(0, high, (2, n)) * (rng.random((2, n)) < 0.6)).astype(np.int64)
        warm = bk_flow(n, edge_a, edge_b, rcap, tr + (new_src - new_snk) - (src - snk))
        expected = min_cut_side(edge_a, edge_b, caps, new_src, new_snk, backend="scipy")
        np.testing.assert_array_equal(warm, expected, err_msg=str(trial))
        if n <= 8:
            np.testing.assert_array_equal(warm, _brute_force_side(n, edge_a, edge_b, caps, new_src, new_snk))
