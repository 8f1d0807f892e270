"""Spectral globalisation (granseg/regions/spectral.py): affinity, eigenvectors, sPb, and its use in the tree."""

from __future__ import annotations

import numpy as np
import pytest

from granseg.regions import spectral as sp


def two_region_image(seed: int = 0) -> np.ndarray:
    """``96 x 128 x 3`` uint8: noisy grey on the left, noisy blue from column 72 on (a vertical border)."""
    rng = np.random.default_rng(seed)
    image = np.empty((96, 128, 3), np.float64)
    image[:, :72] = (120, 120, 120)
    image[:, 72:] = (40, 90, 200)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def combined_gradient(image: np.ndarray) -> np.ndarray:
    from granseg.regions.cues import to_lab
    from granseg.regions.gradients import gradient_cues

    return gradient_cues(to_lab(image)).combined()


def test_offsets_cover_the_half_disc_once():
    half = sp.offsets(3)
    assert (0, 0) not in half and len(set(half)) == len(half)
    full = {(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4) if 0 < dy * dy + dx * dx <= 9}
    assert set(half) | {(-dy, -dx) for dy, dx in half} == full and len(half) * 2 == len(full)


def test_intervening_contour_cuts_the_affinity_across_a_ridge():
    pb = np.zeros((20, 20), np.float32)
    pb[:, 10] = 1.0  # a boundary ridge at column 10
    affinity = sp.intervening_affinity(pb, radius=3, rho=0.1)
    assert (affinity != affinity.T).nnz == 0
    index = np.arange(400).reshape(20, 20)
    same_side = affinity[index[5, 6], index[5, 8]]
    across = affinity[index[5, 8], index[5, 11]]  # the segment crosses column 10
    assert same_side == pytest.approx(1.0) and across == pytest.approx(np.exp(-10.0))
    assert affinity[index[5, 0], index[5, 4]] == 0  # farther than the radius


def test_eigenvector_gradient_peaks_on_the_border_of_two_regions():
    cues = sp.spectral_cues(combined_gradient(two_region_image()))
    assert cues.boundary.shape == (96, 128) and cues.embedding.shape == (sp.N_VECTORS, 96, 128)
    assert np.all(np.diff(cues.eigenvalues) >= 0) and cues.eigenvalues[0] > 0
    profile = cues.boundary[8:-8].mean(0)
    assert abs(int(np.argmax(profile)) - 72) <= 2
    assert profile[68:77].mean() > 5 * max(profile[10:50].mean(), profile[95:120].mean())
    # the first eigenvector splits the two regions: constant-ish on each side, different across
    first = cues.embedding[0]
    left, right = first[:, 5:60], first[:, 85:123]
    assert abs(left.mean() - right.mean()) > 4 * max(left.std(), right.std())


def test_spectral_cues_are_deterministic():
    combined = combined_gradient(two_region_image(1))
    a, b = sp.spectral_cues(combined), sp.spectral_cues(combined)
    assert np.array_equal(a.boundary, b.boundary) and np.array_equal(a.eigenvalues, b.eigenvalues)
    assert np.array_equal(a.embedding, b.embedding)


def test_dense_and_sparse_solvers_agree_on_the_eigenvalues():
    rng = np.random.default_rng(2)
    pb = np.clip(rng.random((24, 30)) - 0.6, 0, 1).astype(np.float32)
    pb[:, 14] = 0.9
    affinity = sp.intervening_affinity(pb, radius=2)
    sparse_values, vectors = sp.generalised_eigenvectors(affinity, 4)  # 720 pixels: ARPACK
    limit, sp.DENSE_LIMIT = sp.DENSE_LIMIT, 10_000
    try:
        dense_values, _ = sp.generalised_eigenvectors(affinity, 4)
    finally:
        sp.DENSE_LIMIT = limit
    assert np.allclose(sparse_values, dense_values, rtol=1e-2, atol=1e-6)
    assert vectors.shape == (720, 4) and np.allclose(np.mean(vectors**2, axis=0), 1.0)


# ------------------------------------------------------------------ the spectral cue in the learned tree
def test_spectral_pair_features_are_exact_for_merged_nodes():
    from granseg.regions.cues import to_lab
    from granseg.regions.learned import feature_names
    from granseg.regions.superpixels import resize_long_side
    from granseg.regions.tree import TreeParams, learned_leaves, learned_statistics
    from tests.test_hierarchy import toy_image

    small, _ = resize_long_side(toy_image(), 448)
    lab = to_lab(small)
    labels, cues = learned_leaves(small, lab, TreeParams(n_superpixels=60), "slic")
    extra = sp.spectral_cues(cues.combined())
    stats, (ea, eb, borders) = learned_statistics(labels, lab, cues, extra)
    assert borders.shape[1] == 1 + cues.gradients.shape[0] + 1  # length, gradients, sPb
    a, b = int(ea[0]), int(eb[0])
    n = int(labels.max()) + 1
    stats.merge(a, b, n, float(borders[0, 0]))
    merged = np.where(labels == b, a, labels)
    fresh, (fa, fb, fborders) = learned_statistics(merged, lab, cues, extra)  # ids kept: a is the union
    assert np.allclose(fresh.embedding[a], stats.embedding[n])
    row = int(np.flatnonzero((fa == a) | (fb == a))[0])
    other = int(fb[row] if fa[row] == a else fa[row])
    incremental = stats.pair_features(np.array([n]), np.array([other]), fborders[row][None])
    scratch = fresh.pair_features(np.array([a]), np.array([other]), fborders[row][None])
    assert incremental.shape == (1, len(feature_names(True))) and np.allclose(incremental, scratch)


def spectral_model(spectral_weights=(0.0, 0.0)):
    """The shipped SLIC criterion plus the two spectral features with ``spectral_weights`` (standardised)."""
    from granseg.regions.learned import MergeModel, default_model

    base = default_model("slic")
    extra = np.asarray(spectral_weights, np.float64)
    return MergeModel(
        np.r_[base.weights, extra], base.bias, np.r_[base.mean, 0.5, 2.0], np.r_[base.scale, 1.0, 1.0], True
    )


def test_spectral_tree_with_zero_spectral_weights_is_the_plain_tree():
    """The spectral plumbing (extra border map, embedding sums) leaves the other features untouched."""
    from granseg.regions.tree import build_region_tree
    from tests.test_hierarchy import toy_image

    plain = build_region_tree(toy_image(), owt=False)  # the spectral fit has no OWT
    zero = build_region_tree(toy_image(), spectral=True, model=spectral_model())
    assert np.array_equal(plain.parent, zero.parent) and np.allclose(plain.height, zero.height)
    strong = build_region_tree(toy_image(), spectral=True, model=spectral_model((-1.0, -1.0)))
    n = strong.n_leaves
    assert strong.n_nodes == 2 * n - 1 and strong.criterion == "learned"
    assert np.all(strong.height[n:] >= strong.height[strong.children[n:]].max(1))
    assert not np.allclose(strong.height, plain.height)  # the cue is used


def test_spectral_tree_needs_a_spectral_model(tmp_path, monkeypatch):
    from granseg.regions import learned
    from granseg.regions.tree import build_region_tree
    from tests.test_hierarchy import toy_image

    with pytest.raises(ValueError):
        build_region_tree(toy_image(), spectral=True, model=learned.default_model("slic"))
    with pytest.raises(ValueError):
        build_region_tree(toy_image(), model=spectral_model())
    with pytest.raises(ValueError):
        build_region_tree(toy_image(), merge="handcrafted", spectral=True)
    with pytest.raises(ValueError):
        build_region_tree(toy_image(), leaves="watershed", spectral=True)
    monkeypatch.setitem(learned.WEIGHTS_FILES, "slic-spectral", tmp_path / "absent.json")
    learned.default_model.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="fit_merge.py --spectral"):
            build_region_tree(toy_image(), spectral=True)
        path = tmp_path / "spectral.json"
        path.write_text(__import__("json").dumps(spectral_model((-0.5, -0.5)).to_dict()))
        monkeypatch.setitem(learned.WEIGHTS_FILES, "slic-spectral", path)
        learned.default_model.cache_clear()
        assert learned.default_model("slic-spectral").spectral  # round trip of a spectral weights file
    finally:
        learned.default_model.cache_clear()
