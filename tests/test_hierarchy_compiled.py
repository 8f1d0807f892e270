"""The compiled steps of the `hierarchy` click path (numba only) against the numpy code they replace: the pixel
band's window cut (:func:`granseg.regions.pixelcut_compiled.refine_window`, with its band found without OpenCV),
GrabCut's rounds over the leaves (:func:`granseg.regions.graphcut_compiled.grabcut_round`, warm-started from
round to round) and the max flow's pre-push (:func:`granseg.regions.maxflow_bk.bk_min_cut`). Each would fail on
one pixel or leaf of difference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from granseg.regions.maxflow import default_backend

pytestmark = pytest.mark.skipif(default_backend() != "numba", reason="no numba")


def _random_case(rng: np.random.Generator, dtype):
    """A random pixel image (16 colour bins, ``dtype`` contrast weights), a mask of one to three disks (some past
    the image's edges), click pixels and a band width."""
    from granseg.regions.pixelcut import PixelImage

    h, w = (int(v) for v in rng.integers(12, 90, 2))
    image = PixelImage(
        bins=rng.integers(0, 16, (h, w)),
        right=rng.random((h, w - 1)).astype(dtype),
        down=rng.random((h - 1, w)).astype(dtype),
    )
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        centre = (int(rng.integers(-8, w + 8)), int(rng.integers(-8, h + 8)))
        cv2.circle(mask, centre, int(rng.integers(1, 30)), 1, -1)
    fixed = np.zeros((h, w), np.int8)
    for _ in range(int(rng.integers(0, 4))):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        fixed[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = rng.choice([-1, 1])
    return image, mask.astype(bool), fixed, int(rng.integers(1, 7))


def test_outline_band_is_opencv_dilation_minus_erosion():
    """Windows with the mask touching their edges, full, empty, one pixel: the band equals cv2's morphology."""
    from granseg.regions.pixelcut_compiled import _outline_band

    rng = np.random.default_rng(11)
    for trial in range(120):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((h, w)) < rng.choice([0.0, 0.02, 0.5, 0.98, 1.0])
        band = int(rng.integers(1, 6))
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * band + 1, 2 * band + 1))
        m8 = mask.astype(np.uint8)
        expected = (cv2.dilate(m8, kernel) > 0) & ~(cv2.erode(m8, kernel) > 0)
        np.testing.assert_array_equal(_outline_band(mask, band), expected, err_msg=str(trial))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_refine_outline_matches_the_numpy_path(dtype, monkeypatch):
    """refine_outline with the compiled window cut and with the numpy / scipy path: the same masks (random
    images, masks at and past the edges, clicks inside and outside the mask, several bands and smoothness)."""
    from granseg.regions.pixelcut import refine_outline

    rng = np.random.default_rng(12)
    for trial in range(150):
        image, mask, fixed, band = _random_case(rng, dtype)
        ratio = rng.normal(0, 8, 16)
        smoothness = float(rng.choice([2.0, 20.0, 50.0]))
        monkeypatch.setenv("GRANSEG_MAXFLOW", "scipy")
        expected = refine_outline(image, mask, ratio, fixed, band, smoothness)
        monkeypatch.setenv("GRANSEG_MAXFLOW", "numba")
        got = refine_outline(image, mask, ratio, fixed, band, smoothness)
        np.testing.assert_array_equal(got, expected, err_msg=str(trial))


def test_compiled_grabcut_rounds_match_the_numpy_rounds():
    """Four rounds of the same jobs (reference regions of a real tree, clicks, two prior weights) fed the same
    colour ratios: the compiled rounds (warm-started, one graph per job) cut what the numpy rounds (cold, one
    union graph, scipy's max flow) cut, and flag the same jobs as finished."""
    from granseg.regions.graphcut import CutJob, _CompiledRounds, _NumpyRounds
    from granseg.regions.tree import TreeParams, build_region_tree
    from granseg.synth import SynthConfig, generate_scene

    tree = build_region_tree(generate_scene(seed=5, config=SynthConfig(size=192)).image, TreeParams())
    rng = np.random.default_rng(13)
    jobs = []
    for node in rng.choice(np.arange(tree.n_leaves, tree.n_nodes), 6, replace=False):
        reference = np.zeros(tree.n_leaves, bool)
        reference[tree.lo[node] : tree.hi[node]] = True
        positives = rng.integers(tree.lo[node], tree.hi[node], 1)
        negatives = rng.integers(0, tree.n_leaves, int(rng.integers(0, 3)))
        jobs.append(CutJob(reference, positives, negatives, float(rng.choice([0.1, 0.5])), 4))
    compiled = _CompiledRounds(tree, jobs, 2.0, 1.0)
    running = list(range(len(jobs)))
    for round_ in range(4):
        ratio = rng.normal(0, 3 + round_, (len(running), tree.n_leaves))
        current = rng.random((len(running), tree.n_leaves)) < 0.5
        whole = slice(0, len(running))
        numpy_cuts, numpy_done = _NumpyRounds(tree, jobs, 2.0, 1.0).cut(running, ratio, current, whole)
        current[0] = numpy_cuts[0]  # one job's cut unchanged: finished
        numpy_done[0] = True
        cuts, done = compiled.cut(running, ratio, current, whole)
        np.testing.assert_array_equal(cuts, np.stack(numpy_cuts), err_msg=str(round_))
        np.testing.assert_array_equal(done, numpy_done, err_msg=str(round_))
        running = running[1:] if round_ % 2 else running  # jobs drop out as they finish


def test_hierarchy_session_masks_match_the_numpy_backend(monkeypatch):
    """A photo (the GrabCut set's flower, or a synthetic scene without the data): one click at
    every g and a corrective session, masks and scores identical with the compiled path and with numpy / scipy."""
    from pathlib import Path

    from granseg.predict.hierarchy import build_hierarchy
    from granseg.synth import SynthConfig, generate_scene

    flower = Path(__file__).resolve().parents[2] / "shared/data/grabcut/data_GT/flower.jpg"
    if flower.exists():
        from granseg.io.images import load_image

        image = load_image(flower)
    else:
        image = generate_scene(seed=9, config=SynthConfig(size=384)).image
    h, w = image.shape[:2]
    clicks = np.array([[w * 0.5, h * 0.5], [w * 0.2, h * 0.3], [w * 0.7, h * 0.8]])

    def session():
        predictor = build_hierarchy().create_predictor()
        predictor.set_image(image)
        out = []
        for k in range(3):
            out.append(predictor.predict(clicks[k : k + 1], [1], granularity="all"))
        previous = out[0]
        for n in (2, 3):
            previous = predictor.predict(
                clicks[:n], [1, 0, 1][:n], granularity="all", mask_input=previous.low_res_logits
            )
            out.append(previous)
        return out

    fast = session()
    monkeypatch.setenv("GRANSEG_MAXFLOW", "scipy")
    slow = session()
    for k, (a, b) in enumerate(zip(fast, slow)):
        np.testing.assert_array_equal(a.masks, b.masks, err_msg=str(k))
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-9, err_msg=str(k))


def test_compiled_paint_matches_fancy_indexing():
    """Selections painted into chosen rows of a stack (others untouched) equal ``selection[leaf_map]``."""
    from granseg.regions.leafgraph_compiled import paint

    rng = np.random.default_rng(14)
    leaf_map = rng.integers(0, 50, (23, 31)).astype(np.intp)
    selections = rng.random((3, 50)) < 0.5
    out = np.zeros((5, 23, 31), bool)
    out[1] = True
    paint(selections, leaf_map, np.array([4, 0, 2], np.int64), out)
    for k, row in enumerate([4, 0, 2]):
        np.testing.assert_array_equal(out[row], selections[k][leaf_map])
    assert out[1].all() and not out[3].any()
