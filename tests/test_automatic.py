"""Whole-image masks: presets, filters that run, batched = naive, pruning / coarse-to-fine, the part-whole tree,
de-duplication across g, Gen2Seg colour clusters, and the logits option that the stability filter and
``eval interactive --threshold`` rely on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from granseg.errors import InputError
from granseg.predict.automatic import (
    AutomaticConfig,
    AutomaticSegmenter,
    box_nms,
    naive_generate,
    preset_config,
)
from granseg.predict.base import BasePredictor, Prediction

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LOOSE = {"pred_iou_thresh_low_g": 0.0, "pred_iou_thresh_high_g": 0.0}


class NestedPredictor(BasePredictor):
    """A label map of parts inside objects: g < 0.5 answers the part under the click, g >= 0.5 its object.
    Score 0.9, 0.3 on the background. With ``logit_scale``, it also gives logits: ``+scale`` inside the mask, ``-scale`` outside (stability 1 when
    scale > offset), except that ``unstable_part`` gets logits of 0.5 (stability 0 with offset 1)."""

    def __init__(
        self, parts: np.ndarray, objects: np.ndarray, logit_scale: float | None = None, unstable_part=-1
    ):
        super().__init__()
        self.parts, self.objects = parts, objects
        self.provides_logits = logit_scale is not None
        self.logit_scale, self.unstable_part = logit_scale, unstable_part
        self.calls = 0

    def _set_image(self, image):
        pass

    def _predict(self, points, labels, box, granularity, mask_input, return_logits=False):
        self.calls += 1
        x, y = points[0].astype(int)
        part = self.parts[y, x]
        masks = np.stack(
            [(self.parts == part) if g < 0.5 else (self.objects == self.objects[y, x]) for g in granularity]
        )
        logits = None
        if return_logits:
            logits = np.where(masks, self.logit_scale, -self.logit_scale).astype(np.float32)
            for k, g in enumerate(granularity):
                if g < 0.5 and part == self.unstable_part:
                    logits[k] = np.where(masks[k], 0.5, -self.logit_scale)
        score = 0.3 if self.objects[y, x] == 0 else 0.9  # the background is not confident
        return Prediction(masks, np.full(len(granularity), score), granularity, logits=logits)


def scene():
    """40 x 60: background 0; object 1 (parts 1, 2) on the left; object 2 (parts 3, 4: all sizes differ) on the right."""
    objects = np.zeros((40, 60), np.int32)
    parts = np.zeros((40, 60), np.int32)
    objects[4:36, 4:28] = 1
    parts[4:16, 4:28], parts[16:36, 4:28] = 1, 2
    objects[4:36, 32:58] = 2
    parts[4:36, 32:40], parts[4:36, 40:58] = 3, 4
    return parts, objects


def keys(records):
    return [(r["granularity"], r["segmentation"]["counts"], r["score"]) for r in records]


# ----------------------------------------------------------------------------------------------- settings
def test_presets_and_bad_settings():
    official = preset_config("official")
    assert (official.points_per_side, official.stability_thresh, official.box_nms_thresh) == (64, 0.7, 0.7)
    assert (official.pred_iou_thresh_low_g, official.pred_iou_thresh_high_g) == (0.65, 0.5)
    assert len(official.granularities) == 10 and official.score_threshold(0.4) == 0.65
    fast = preset_config("fast")
    assert fast.point_pruning and fast.coarse_to_fine and fast.points_per_side < 64
    assert preset_config("fast", points_per_side=8, dedup_iou=None).points_per_side == 8
    for bad in (0, 257):
        with pytest.raises(InputError, match="points_per_side"):
            preset_config("official", points_per_side=bad)
    with pytest.raises(InputError, match="unknown preset"):
        preset_config("slow")


def test_box_nms_is_exact_greedy_nms():
    def reference(boxes, scores, threshold):
        order, keep = list(np.lexsort((np.arange(len(scores)), -scores))), []
        while order:
            i = order.pop(0)
            keep.append(i)
            order = [j for j in order if _iou(boxes[i], boxes[j]) <= threshold]
        return keep

    def _iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
        return w * h / union if union > 0 else 0.0

    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 50, (300, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(1, 30, (300, 2))], 1)
    scores = rng.integers(0, 20, 300).astype(float)  # many ties
    assert list(box_nms(boxes, scores, 0.5)) == reference(boxes, scores, 0.5)
    assert len(box_nms(np.zeros((0, 4)), np.zeros(0), 0.7)) == 0


# ----------------------------------------------------------------------------------------------- filters run
def test_stability_filter_runs_on_predictors_with_logits():
    parts, objects = scene()
    image = np.zeros((40, 60, 3), np.uint8)
    config = AutomaticConfig(points_per_side=8, granularities=(0.3, 0.8))
    predictor = NestedPredictor(parts, objects, logit_scale=4.0, unstable_part=3)
    for batched in (True, False):
        found = AutomaticSegmenter(predictor, dataclasses.replace(config, batched=batched)).generate(image)
        areas = {(r["granularity"], r["area"]) for r in found}
        assert (0.3, int((parts == 3).sum())) not in areas  # unstable: dropped by the stability filter
        assert (0.3, int((parts == 4).sum())) in areas
        assert (0.8, int((objects == 2).sum())) in areas
    kept = AutomaticSegmenter(predictor, dataclasses.replace(config, stability_thresh=0.0)).generate(image)
    assert (0.3, int((parts == 3).sum())) in {(r["granularity"], r["area"]) for r in kept}
    naive = {(r["granularity"], r["area"]) for r in naive_generate(predictor, image, config)}
    assert (0.3, int((parts == 3).sum())) not in naive and (0.3, int((parts == 4).sum())) in naive


def test_unsamv2_logits_on_request_and_stability_counts(tiny_predictor):
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3)).astype(np.uint8)
    tiny_predictor.set_image(image)
    plain = tiny_predictor.predict([[10, 12]], granularity=[0.2, 0.9])
    assert plain.logits is None
    asked = tiny_predictor.predict([[10, 12]], granularity=[0.2, 0.9], return_logits=True)
    assert asked.logits.shape == (2, 48, 64) and np.array_equal(asked.masks, asked.logits > 0)
    segmenter = AutomaticSegmenter(
        tiny_predictor, AutomaticConfig(points_per_side=3, granularities=(0.5,), **LOOSE)
    )
    segmenter.generate(image)
    stats = segmenter.stats
    # random weights give small logits: the stability test (offset 1) rejects masks, so it did run
    assert stats["decoded"] == 9 and stats["passed_score"] == 9 and stats["passed_stability"] < 9


def test_binary_mask_models_refuse_return_logits():
    parts, objects = scene()
    predictor = NestedPredictor(parts, objects)
    predictor.set_image(np.zeros((40, 60, 3), np.uint8))
    with pytest.raises(InputError, match="no logits"):
        predictor.predict([[5, 5]], return_logits=True)


def test_interactive_threshold_uses_the_logits(tiny_predictor):
    from granseg.eval.datasets.base import Instance
    from granseg.eval.interactive import InteractiveConfig, evaluate_instance

    image = np.random.default_rng(1).integers(0, 255, (48, 64, 3)).astype(np.uint8)
    tiny_predictor.set_image(image)
    mask = np.zeros((48, 64), bool)
    mask[10:30, 10:40] = True
    results = [
        evaluate_instance(
            tiny_predictor,
            Instance("a", mask),
            InteractiveConfig(max_clicks=1, granularity=0.5, pred_threshold=t, early_stop=False),
        ).ious[0.5][0]
        for t in (0.05, 0.95)
    ]
    assert results[0] != results[1]  # the threshold changes the masks: it is applied


# ----------------------------------------------------------------------------------------------- batched
@pytest.mark.parametrize("which", ["tiny_predictor", "tiny_sam2_predictor"])
def test_decode_points_equals_one_click_decodes(which, request):
    image = np.random.default_rng(2).integers(0, 255, (40, 56, 3)).astype(np.uint8)
    tiny_predictor = request.getfixturevalue(which)
    tiny_predictor.set_image(image)
    points = np.array([[3.0, 4.0], [20.0, 30.0], [50.0, 10.0]])
    levels = np.array([0.1, 0.6, 1.0])
    low, scores = tiny_predictor.decode_points(np.repeat(points, 3, 0), np.tile(levels, 3))
    for p, point in enumerate(points):
        alone = tiny_predictor.predict(point[None], granularity=levels)
        assert np.allclose(low[3 * p : 3 * p + 3].numpy(), alone.low_res_logits, atol=1e-4)
        assert np.allclose(scores[3 * p : 3 * p + 3].numpy(), alone.scores, atol=1e-5)


def test_batched_path_returns_the_naive_loops_masks_tiny_unsamv2(tiny_predictor):
    image = np.random.default_rng(3).integers(0, 255, (40, 56, 3)).astype(np.uint8)
    config = AutomaticConfig(
        points_per_side=5,
        stability_offset=0.001,
        stability_thresh=0.325,
        stability_resolution="full",
        point_batch=7,
        **LOOSE,
    )
    naive = naive_generate(tiny_predictor, image, config)
    segmenter = AutomaticSegmenter(tiny_predictor, config)
    batched = segmenter.generate(image)
    assert segmenter.stats["decoded"] == 250 and len(naive) > 5
    assert [(g, c) for g, c, _ in keys(batched)] == [(g, c) for g, c, _ in keys(naive)]
    assert np.allclose([s for *_, s in keys(batched)], [s for *_, s in keys(naive)], atol=1e-5)


def test_batched_path_returns_the_naive_loops_masks_hierarchy():
    import granseg

    image = np.full((60, 80, 3), 90, np.uint8)
    image[10:50, 8:40] = (200, 40, 40)
    image[20:40, 50:75] = (40, 40, 200)
    predictor = granseg.load_predictor("hierarchy", device="cpu")
    config = AutomaticConfig(points_per_side=6, point_batch=5, source="grid")
    naive = naive_generate(predictor, image, config)
    batched = AutomaticSegmenter(predictor, config).generate(image)
    assert naive and [(r | {"id": 0, "parent_id": 0}) for r in batched] == [
        (r | {"id": 0, "parent_id": 0}) for r in naive
    ]


# ----------------------------------------------------------------------------------------------- less work
def test_pruning_and_coarse_to_fine_decode_less_and_find_the_same_regions():
    parts, objects = scene()
    image = np.zeros((40, 60, 3), np.uint8)
    config = AutomaticConfig(points_per_side=10, granularities=(0.3, 0.8))
    full = AutomaticSegmenter(NestedPredictor(parts, objects), config)
    expected = {(r["granularity"], r["area"]) for r in full.generate(image)}
    for changes in (
        {"point_pruning": True},
        {"coarse_to_fine": True},
        {"point_pruning": True, "coarse_to_fine": True},
    ):
        segmenter = AutomaticSegmenter(
            NestedPredictor(parts, objects), dataclasses.replace(config, **changes)
        )
        found = {(r["granularity"], r["area"]) for r in segmenter.generate(image)}
        assert segmenter.stats["decoded"] < full.stats["decoded"]
        if changes.get("point_pruning"):
            assert found == expected
    assert full.stats["decoded"] == 200


# ----------------------------------------------------------------------------------------------- tree
def test_part_whole_tree_and_dedup_across_g():
    parts, objects = scene()
    parts[objects == 2] = 3  # object 2 has one part: itself (identical masks at every g)
    image = np.zeros((40, 60, 3), np.uint8)
    config = AutomaticConfig(points_per_side=10, granularities=(0.2, 0.4, 0.6, 1.0), box_nms_thresh=1.0)
    records = AutomaticSegmenter(NestedPredictor(parts, objects), config).generate(image)
    by_id = {r["id"]: r for r in records}
    assert [r["id"] for r in records] == list(range(len(records)))
    for record in records:
        if record["granularity"] == 1.0:
            assert record["parent_id"] is None
            continue
        parent = by_id[record["parent_id"]]
        coarser = [0.2, 0.4, 0.6, 1.0][[0.2, 0.4, 0.6, 1.0].index(record["granularity"]) + 1]
        assert parent["granularity"] == coarser and parent["area"] >= record["area"]
    merged = AutomaticSegmenter(NestedPredictor(parts, objects), dataclasses.replace(config, dedup_iou=0.95))
    dedup = merged.generate(image)
    whole2 = [r for r in dedup if r["area"] == int((objects == 2).sum())]
    assert len(whole2) == 1 and whole2[0]["granularity"] == 0.2
    assert whole2[0]["granularity_range"] == [0.2, 1.0] and whole2[0]["granularity_levels"] == [
        0.2,
        0.4,
        0.6,
        1.0,
    ]
    part1 = [r for r in dedup if r["area"] == int((parts == 1).sum())]
    assert len(part1) == 1 and part1[0]["granularity_range"] == [0.2, 0.4]
    parent = dedup[part1[0]["parent_id"]]
    assert parent["area"] == int((objects == 1).sum()) and parent["granularity_range"] == [0.6, 1.0]
    assert whole2[0]["parent_id"] is None and parent["parent_id"] is None
    assert len(dedup) == 4  # parts 1 and 2, object 1, object 2 (the background's score is too low)


def test_empty_result_is_an_empty_list():
    parts, objects = scene()
    config = AutomaticConfig(points_per_side=4, pred_iou_thresh_low_g=0.95, pred_iou_thresh_high_g=0.95)
    assert (
        AutomaticSegmenter(NestedPredictor(parts, objects), config).generate(np.zeros((40, 60, 3), np.uint8))
        == []
    )


# ----------------------------------------------------------------------------------------------- Gen2Seg
def test_gen2seg_colour_clusters_score_ar_one():
    from granseg.eval.whole_image import evaluate_ar
    from granseg.io.masks import encode_rle
    from granseg.predict.gen2seg import Gen2SegPredictor

    features = np.zeros((48, 64, 3), np.float32)
    features[5:25, 5:30] = (1.0, 0.1, 0.1)
    features[28:45, 35:60] = (0.1, 0.9, 0.2)

    class ColourModel:  # stands in for a Gen2Seg network: its instance-colour image of any input
        def feature_image(self, image):
            return features

    predictor = Gen2SegPredictor(ColourModel())
    records = AutomaticSegmenter(predictor, AutomaticConfig(granularities=(0.1, 1.0))).generate(
        np.zeros((48, 64, 3), np.uint8)
    )
    assert {r["area"] for r in records} >= {500, 425}
    gt = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 48, "width": 64}],
        "annotations": [
            {"id": k, "image_id": 1, "segmentation": encode_rle(m), "area": float(m.sum())}
            for k, m in enumerate([features[..., 0] == 1.0, features[..., 1] == 0.9], start=1)
        ],
    }
    assert evaluate_ar(gt, {"a": records})["AR@1000"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny_predictor():
    import granseg

    return granseg.load_predictor("unsamv2-tiny-random", device="cpu")


@pytest.fixture(scope="module")
def tiny_sam2_predictor():
    """Plain SAM-2 (no granularity input): g picks one of its three multimask outputs."""
    import granseg
    from granseg.models.unsamv2 import build_unsamv2, tiny_config

    model = build_unsamv2(tiny_config("sam2-tiny-random", granularity=False, lora=None), seed=1)
    return granseg.UnSAMv2Predictor(model)
