"""Gen2Seg point prompting: bilateral filter vs a brute-force reference, query, clicks, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from granseg.errors import InputError
from granseg.predict.bilateral import joint_bilateral_filter
from granseg.predict.gen2seg import (
    Gen2SegPredictor,
    PromptConfig,
    gaussian_query,
    similarity_map,
    soft_assignment,
)


def _brute_force_filter(source, guide, diameter, sigma_colour, sigma_space):
    height, width = source.shape
    radius = diameter // 2

    def reflect(i, n):  # OpenCV BORDER_REFLECT_101
        if i < 0:
            return -i
        if i >= n:
            return 2 * n - 2 - i
        return i

    out = np.zeros_like(source, dtype=np.float64)
    for y in range(height):
        for x in range(width):
            num = den = 0.0
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    if dx * dx + dy * dy > radius * radius:
                        continue
                    yy, xx = reflect(y + dy, height), reflect(x + dx, width)
                    colour = np.abs(guide[yy, xx] - guide[y, x]).sum()
                    w = math.exp(
                        -(dx * dx + dy * dy) / (2 * sigma_space**2) - colour**2 / (2 * sigma_colour**2)
                    )
                    num += w * source[yy, xx]
                    den += w
            out[y, x] = num / den
    return out


@pytest.mark.parametrize(
    "diameter,sigma_colour,sigma_space", [(9, 75.0, 75.0), (5, 10.0, 2.0), (3, 30.0, 1.0)]
)
def test_bilateral_matches_brute_force(diameter, sigma_colour, sigma_space):
    rng = np.random.default_rng(diameter)
    source = rng.random((7, 8))
    guide = rng.random((7, 8, 3)) * 255
    ours = joint_bilateral_filter(source, guide, diameter, sigma_colour, sigma_space)
    reference = _brute_force_filter(source, guide, diameter, sigma_colour, sigma_space)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)


def test_bilateral_respects_guide_edges():
    guide = np.zeros((10, 10, 3))
    guide[:, 5:] = 255
    source = np.zeros((10, 10))
    source[:, 5:] = 1.0
    filtered = joint_bilateral_filter(source, guide, 9, 20.0, 75.0)
    assert filtered[:, :5].max() < 1e-6 and filtered[:, 5:].min() > 1 - 1e-6
    # a flat guide makes it a plain (circular, Gaussian) blur that smears the edge
    blurred = joint_bilateral_filter(source, np.zeros((10, 10, 3)), 9, 20.0, 75.0)
    assert blurred[:, 4].min() > 0.2


def test_gaussian_query_and_similarity():
    features = np.zeros((21, 21, 3))
    features[10, 10] = [90.0, 0, 0]
    sigma = 1.0
    query = gaussian_query(features, 10, 10, sigma)
    weights = np.exp(-((np.arange(21)[None] - 10) ** 2 + (np.arange(21)[:, None] - 10) ** 2) / 2.0)
    assert query[0] == pytest.approx(90.0 / weights.sum())
    sim = similarity_map(np.array([[0.0, 1.0], [3.0, 1.0]]))
    expected = (1 / (np.array([[0.0, 1.0], [3.0, 1.0]]) + 1e-6) - 1 / 3.000001) / (1e6 - 1 / 3.000001)
    np.testing.assert_allclose(sim, expected)


def _scene():
    """Feature image of three flat regions: left (red), right-top (green), right-bottom (blue)."""
    features = np.zeros((30, 40, 3))
    features[:, :20] = [1.0, 0.1, 0.1]
    features[:15, 20:] = [0.1, 1.0, 0.1]
    features[15:, 20:] = [0.1, 0.1, 1.0]
    predictor = Gen2SegPredictor(model=None)
    predictor.set_feature_image(features + np.random.default_rng(0).normal(0, 0.002, features.shape))
    return predictor


def test_single_click_selects_its_region_and_ignores_granularity():
    predictor = _scene()
    prediction = predictor.predict([[5, 5]], granularity=[0.2, 1.0])
    expected = np.zeros((30, 40), bool)
    expected[:, :20] = True
    assert prediction.masks.shape == (2, 30, 40)
    assert np.array_equal(prediction.masks[0], expected) and np.array_equal(prediction.masks[1], expected)


def test_several_positive_clicks_take_the_union():
    predictor = _scene()
    mask = predictor.predict([[5, 5], [30, 5]]).best()
    assert mask[:, :20].all() and mask[:15, 20:].all() and not mask[15:, 20:].any()


def test_negative_click_removes_pixels_closer_to_it():
    # two similar regions that one positive click merges when nothing is thresholded away
    features = np.zeros((20, 20, 3))
    features[:, :10] = [0.50, 0.5, 0.5]
    features[:, 10:] = [0.52, 0.5, 0.5]
    predictor = Gen2SegPredictor(model=None, config=PromptConfig(threshold=-1.0, use_filter=False))
    predictor.set_feature_image(features)
    assert predictor.predict([[2, 2]]).best().all()
    mask = predictor.predict([[2, 2], [15, 2]], [1, 0]).best()
    assert mask[:, :10].all() and not mask[:, 10:].any()


def test_box_becomes_a_centre_click():
    predictor = _scene()
    mask = predictor.predict(box=[22, 16, 38, 28]).best()
    assert mask[15:, 20:].all() and not mask[:, :20].any()


def test_bad_clicks_are_input_errors():
    predictor = _scene()
    with pytest.raises(InputError, match="outside"):
        predictor.predict([[40, 3]])
    with pytest.raises(InputError):
        predictor.predict([[3, 3]], [0])


# ---- several clicks: the multi-click rules (granseg/predict/gen2seg.py) -----------------------------------------
def _misaligned_scene():
    """20 x 20: the image's edge is at x = 10, the (coarse) feature image's edge at x = 11."""
    image = np.zeros((20, 20, 3), np.uint8)
    image[:, :10] = [220, 30, 30]
    image[:, 10:] = [30, 30, 220]
    features = np.zeros((20, 20, 3))
    features[:, :11] = [0.6, 0.2, 0.2]
    features[:, 11:] = [0.2, 0.2, 0.6]
    return image, features


def _predictor(config, image, features):
    predictor = Gen2SegPredictor(model=None, config=config)
    predictor.set_feature_image(features, image)
    return predictor


def test_one_positive_click_is_the_paper_rule_whatever_the_image():
    image, features = _misaligned_scene()
    features = features + np.random.default_rng(1).normal(0, 0.01, features.shape)
    ours = _predictor(PromptConfig(), image, features).predict([[3, 5]])
    paper = _predictor(PromptConfig.paper(), image, features).predict([[3, 5]])
    assert np.array_equal(ours.masks, paper.masks)
    np.testing.assert_array_equal(ours.extra["similarity"], paper.extra["similarity"])
    # ... while with two clicks the image guide is used, so the maps differ
    two = [[3, 5], [3, 15]]
    ours2 = _predictor(PromptConfig(), image, features).predict(two).extra["similarity"]
    paper2 = _predictor(PromptConfig.paper(), image, features).predict(two).extra["similarity"]
    assert not np.allclose(ours2, paper2)


def test_smoothed_negative_rule_follows_the_guide_edge():
    image, features = _misaligned_scene()
    clicks, labels = [[3, 10], [17, 10]], [1, 0]
    expected_image_edge = np.zeros((20, 20), bool)
    expected_image_edge[:, :10] = True
    expected_feature_edge = np.zeros((20, 20), bool)
    expected_feature_edge[:, :11] = True
    loose = {"threshold": -1.0}  # keep every pixel the positive map allows: test the negative rule alone
    smoothed = _predictor(PromptConfig(**loose), image, features).predict(clicks, labels)
    assert np.array_equal(smoothed.best(), expected_image_edge)
    assert smoothed.extra["assignment"].shape == (20, 20)
    nearest = _predictor(PromptConfig(negative_rule="nearest", **loose), image, features)
    assert np.array_equal(nearest.predict(clicks, labels).best(), expected_feature_edge)
    by_features = _predictor(PromptConfig(multi_click_guide="features", **loose), image, features)
    assert np.array_equal(by_features.predict(clicks, labels).best(), expected_feature_edge)
    # without an image the feature image guides
    no_image = Gen2SegPredictor(model=None, config=PromptConfig(**loose))
    no_image.set_feature_image(features)
    assert np.array_equal(no_image.predict(clicks, labels).best(), expected_feature_edge)


def test_several_clicks_keep_only_components_with_a_positive_click():
    features = np.full((20, 30, 3), 0.05)
    features[3:9, 3:9] = [0.9, 0.5, 0.1]
    features[3:9, 20:26] = [0.9, 0.5, 0.1]  # same colour, not connected to the first square
    image = (features * 255).astype(np.uint8)
    both = np.zeros((20, 30), bool)
    both[3:9, 3:9] = both[3:9, 20:26] = True
    config = PromptConfig(threshold=0.5, use_filter=False)
    predictor = _predictor(config, image, features)
    assert np.array_equal(predictor.predict([[5, 5]]).best(), both)  # one click: the paper, no connectivity
    mask = predictor.predict([[5, 5], [15, 15]], [1, 0]).best()
    assert np.array_equal(mask, both & (np.arange(30) < 10)[None, :])
    assert np.array_equal(predictor.predict([[5, 5], [22, 5]]).best(), both)  # a positive in each square
    unconnected = _predictor(
        PromptConfig(threshold=0.5, use_filter=False, connected_components="none"), image, features
    )
    assert np.array_equal(unconnected.predict([[5, 5], [15, 15]], [1, 0]).best(), both)
    always = _predictor(
        PromptConfig(threshold=0.5, use_filter=False, connected_components="always"), image, features
    )
    assert np.array_equal(always.predict([[5, 5]]).best(), both & (np.arange(30) < 10)[None, :])


def test_soft_assignment():
    positive = np.array([0.0, 1.0, 3.0, 0.0])
    negative = np.array([2.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(soft_assignment(positive, negative), [1.0, 0.5, 0.25, 0.5])


def test_prompt_config_and_feature_image_errors():
    with pytest.raises(InputError, match="negative_rule"):
        PromptConfig(negative_rule="max")
    with pytest.raises(InputError, match="multi_click_guide"):
        PromptConfig(multi_click_guide="edges")
    with pytest.raises(InputError, match="connected_components"):
        PromptConfig(connected_components="sometimes")
    with pytest.raises(InputError, match="differ in size"):
        Gen2SegPredictor(model=None).set_feature_image(np.zeros((4, 5, 3)), np.zeros((5, 4, 3), np.uint8))


def test_a_click_just_outside_its_mask_keeps_the_nearest_component():
    from granseg.predict.gen2seg import components_at

    mask = np.zeros((40, 60), bool)
    mask[5:15, 5:15] = True  # object A
    mask[25:35, 40:55] = True  # object B
    # a click 2 px left of A (its own pixel filtered away) keeps A; a click far from both keeps nothing
    kept = components_at(mask, np.array([[3.0, 10.0]]))
    assert kept[5:15, 5:15].all() and not kept[25:35, 40:55].any()
    far = components_at(mask, np.array([[30.0, 30.0]]))
    assert not far.any()
    both = components_at(mask, np.array([[10.0, 10.0], [47.0, 30.0]]))
    assert both.sum() == mask.sum()
