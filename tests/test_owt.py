"""Oriented watershed transform (granseg/regions/owt.py): border normals, gradients across borders, its tree."""

from __future__ import annotations

import json

import numpy as np
import pytest


def step_image() -> np.ndarray:
    """``96 x 128 x 3`` uint8: grey on the left, blue from column 64 on (one vertical colour edge)."""
    image = np.full((96, 128, 3), 128, np.uint8)
    image[:, 64:] = (40, 90, 200)
    return image


def test_border_normals_point_across_the_borders():
    from granseg.regions.owt import border_normals

    labels = np.zeros((60, 80), np.int64)
    labels[:, 40:] = 1  # a vertical border: normal along x
    labels[30:, :20] = 2  # a horizontal border at row 30 (columns 0-19): normal along y
    cos, sin = border_normals(labels)
    assert abs(cos[10, 39]) > 0.99 and abs(cos[50, 39]) > 0.99
    assert abs(sin[29, 8]) > 0.99


def test_owt_keeps_a_border_along_the_edge_and_drops_one_across_it():
    """A leaf border that runs along the colour edge keeps its gradient; one that crosses the edge at a right
    angle (through both colours) has nothing across it, although the largest-orientation gradient is high there."""
    from granseg.regions.cues import to_lab
    from granseg.regions.gradients import gradient_cues
    from granseg.regions.owt import owt_gradients

    cues = gradient_cues(to_lab(step_image()), tensors=True)
    assert cues.tensors.shape == (12, 3, 96, 128)
    labels = np.zeros((96, 128), np.int64)
    labels[:, 64:] = 1  # border along the edge (between columns 63 and 64)
    labels[48:] += 2  # border across the edge (between rows 47 and 48)
    owt = owt_gradients(cues.tensors, labels)[3:9].mean(0)  # a and b, every scale
    largest = cues.gradients[3:9].mean(0)
    along = (slice(10, 38), slice(63, 64))
    across = (slice(47, 48), slice(58, 70))  # the crossing border near the edge
    assert owt[along].mean() > 0.8 * largest[along].mean() > 0.05
    assert largest[across].mean() > 0.05  # the plain border feature sees the edge on the crossing border
    assert owt[across].mean() < 0.3 * largest[across].mean()


def test_tensors_do_not_change_the_gradients():
    from granseg.regions.cues import to_lab
    from granseg.regions.gradients import N_ORIENTATIONS, gradient_cues

    lab = to_lab(step_image())
    plain, with_tensors = gradient_cues(lab), gradient_cues(lab, tensors=True)
    assert plain.tensors is None
    assert np.array_equal(plain.gradients, with_tensors.gradients)
    # at the finest scale (full resolution) the tensor's largest orientation is the gradient itself
    jxx, jxy, jyy = with_tensors.tensors[0]
    angles = np.arange(N_ORIENTATIONS) * np.pi / N_ORIENTATIONS
    largest = np.max(
        [c * c * jxx + 2 * c * s * jxy + s * s * jyy for c, s in zip(np.cos(angles), np.sin(angles))], 0
    )
    assert np.allclose(np.minimum(largest, 4.0), plain.gradients[0], atol=1e-5)


def test_owt_tree_reads_its_own_weights(tmp_path, monkeypatch):
    import dataclasses

    from granseg.regions import learned
    from granseg.regions.tree import build_region_tree

    image = step_image()
    model = dataclasses.replace(learned.default_model("slic"), owt=True)
    assert list(model.to_dict()["features"][:12]) == list(learned.OWT_FEATURES)
    with pytest.raises(ValueError):  # a model fit without OWT features cannot build an OWT tree
        build_region_tree(image, owt=True, model=learned.default_model("slic"))
    with pytest.raises(ValueError):
        build_region_tree(image, leaves="watershed", owt=True)
    path = tmp_path / "owt.json"
    path.write_text(json.dumps(model.to_dict()))
    monkeypatch.setitem(learned.WEIGHTS_FILES, "slic-owt", path)
    learned.default_model.cache_clear()
    try:
        loaded = learned.default_model("slic-owt")
        assert loaded.owt and not loaded.spectral and np.allclose(loaded.weights, model.weights)
        tree = build_region_tree(image, owt=True)
        assert tree.criterion == "learned" and tree.parent.size == 2 * tree.n_leaves - 1
        assert 0.0 <= tree.height.min() and tree.height.max() <= 1.0
        # the two colours are the last merge: the root splits the image at the edge
        left, right = tree.children[int(np.argmax(tree.height))]
        halves = [tree.leaf_map[:, :64], tree.leaf_map[:, 64:]]
        for node in (left, right):
            inside = (tree.lo[node] <= tree.leaf_map) & (tree.leaf_map < tree.hi[node])
            assert inside[:, :60].all() or inside[:, 68:].all()
        assert halves[0].size == halves[1].size
    finally:
        learned.default_model.cache_clear()


def test_shipped_owt_weights_load():
    from granseg.regions import learned

    model = learned.default_model("slic-owt")
    assert model.owt and model.weights.shape == (len(learned.feature_names(owt=True)),)
    assert (model.weights * learned.FEATURE_SIGNS >= 0).all()  # the sign constraints held in the fit
