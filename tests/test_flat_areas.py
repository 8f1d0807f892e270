"""Featureless areas (granseg.regions.flat): a click on a blank backdrop answers the backdrop at every g."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from granseg.predict.hierarchy import build_hierarchy
from granseg.regions.flat import area_start, featureless_areas
from granseg.regions.tree import build_region_tree


def backdrop_scene() -> tuple[np.ndarray, np.ndarray]:
    """A 200 x 300 uniform grey backdrop with a red disk of radius 40 at its centre (the backdrop covers 92 % of
    the picture, over the predictor's ``max_object_fraction``), and the disk as a bool mask."""
    image = np.full((200, 300, 3), 128, np.uint8)
    cv2.circle(image, (150, 100), 40, (220, 30, 30), -1)
    disk = np.zeros((200, 300), np.uint8)
    cv2.circle(disk, (150, 100), 40, 1, -1)
    return image, disk.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_featureless_areas_join_the_backdrop_only():
    image, disk = backdrop_scene()
    rng = np.random.default_rng(0)
    noisy = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
    tree = build_region_tree(image)
    areas = featureless_areas(tree, 0.5)
    leaf_in_disk = np.bincount(
        tree.leaf_map.ravel(),
        weights=cv2.resize(
            disk.astype(np.float32), tree.leaf_map.shape[::-1], interpolation=cv2.INTER_NEAREST
        ).ravel(),
        minlength=tree.n_leaves,
    ) / np.bincount(tree.leaf_map.ravel(), minlength=tree.n_leaves)
    backdrop = leaf_in_disk == 0
    assert len(np.unique(areas[backdrop])) == 1 and areas[backdrop][0] >= 0  # one area: the whole backdrop
    assert (
        areas[~backdrop & (leaf_in_disk < 1)] == -1
    ).all()  # leaves along the disk's rim are not featureless
    # noise of sigma 6 grey levels: no leaf is featureless, nothing joins
    assert (featureless_areas(build_region_tree(noisy), 0.5) == -1).all()
    assert (featureless_areas(tree, 0.0) == -1).all()  # off


def test_area_start_is_the_smallest_region_holding_the_area():
    image, _ = backdrop_scene()
    tree = build_region_tree(image)
    areas = featureless_areas(tree, 0.5)
    leaf = int(tree.leaf_map[5, 5])
    chain = tree.chain(int(tree.leaf_node[leaf]))
    area = areas == areas[leaf]
    start = area_start(tree, chain, area)
    held = [area[tree.lo[n] : tree.hi[n]].sum() for n in chain]  # leaves of the area under each chain region
    leaf_area = tree.area[tree.leaf_node]
    pixels = [(leaf_area[tree.lo[n] : tree.hi[n]] * area[tree.lo[n] : tree.hi[n]]).sum() for n in chain]
    assert pixels[start] >= 0.95 * (leaf_area * area).sum()
    assert start == 0 or pixels[start - 1] < 0.95 * (leaf_area * area).sum()
    assert held[start] > 1


def test_click_on_a_blank_backdrop_answers_the_backdrop_at_every_g():
    image, disk = backdrop_scene()
    predictor = build_hierarchy().create_predictor()
    predictor.set_image(image)
    masks = predictor.predict([[20, 20]], [1], granularity="all").masks
    assert all(iou(mask, ~disk) > 0.97 for mask in masks)
    # before (flat_area_spread 0): arbitrary unions of backdrop cells, the largest under max_object_fraction
    old = build_hierarchy(flat_area_spread=0.0).create_predictor()
    old.set_image(image)
    assert iou(old.predict([[20, 20]], [1], granularity=1.0).masks[0], ~disk) < 0.8


def test_click_on_the_object_is_unchanged_by_the_rule():
    image, disk = backdrop_scene()
    answers = []
    for spread in (0.5, 0.0):
        predictor = build_hierarchy(flat_area_spread=spread).create_predictor()
        predictor.set_image(image)
        answers.append(predictor.predict([[150, 100]], [1], granularity="all").masks)
    np.testing.assert_array_equal(answers[0], answers[1])
    assert iou(answers[0][-1], disk) > 0.95


def test_blank_picture_is_one_region():
    predictor = build_hierarchy().create_predictor()
    predictor.set_image(np.full((120, 160, 3), 200, np.uint8))
    masks = predictor.predict([[80, 60]], [1], granularity="all").masks
    assert masks.all()


def test_negative_flat_area_spread_is_refused():
    from granseg.errors import InputError

    with pytest.raises(InputError, match="flat_area_spread"):
        build_hierarchy(flat_area_spread=-1.0)
