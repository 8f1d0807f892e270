"""Metrics: AR through pycocotools, BSDS edge matching and AP, DAVIS J&F."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_helpers import square, toy_coco

# ----------------------------------------------------------------------------------------------- AR


def test_ar_of_the_ground_truth_is_one():
    from granseg.eval.whole_image import evaluate_ar

    gt, _ = toy_coco()
    preds = [
        {"image_id": a["image_id"], "segmentation": a["segmentation"], "score": 0.9}
        for a in gt["annotations"]
    ]
    metrics = evaluate_ar(gt, preds)
    assert metrics["AR@10"] == pytest.approx(1.0) and metrics["AR@1000"] == pytest.approx(1.0)
    assert metrics["AR@1"] < 1.0  # one detection cannot cover six objects


def test_ar_of_shuffled_masks_matches_pycocotools_directly():
    import contextlib
    import copy
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from granseg.eval.whole_image import evaluate_ar
    from granseg.io.masks import encode_rle

    gt, masks = toy_coco(seed=3)
    rng = np.random.default_rng(5)
    preds = []
    for image_id, m in masks:
        shifted = np.roll(m, tuple(rng.integers(-3, 4, 2)), axis=(0, 1))
        preds.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "segmentation": encode_rle(shifted),
                "score": float(rng.random()),
            }
        )
    rng.shuffle(preds)
    ours = evaluate_ar(gt, preds)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(preds))
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.params.useCats = 0
        ev.params.maxDets = [1, 10, 100, 1000]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # summarize(): stats[6..8] = AR at maxDets[0..2] over all areas
    assert ours["AR@1"] == pytest.approx(ev.stats[6])
    assert ours["AR@10"] == pytest.approx(ev.stats[7])
    assert ours["AR@100"] == pytest.approx(ev.stats[8])
    assert 0.0 < ours["AR@100"] < 1.0


def test_predictions_keyed_by_file_stem(tmp_path):
    from granseg.eval.whole_image import evaluate_ar

    gt, _ = toy_coco()
    by_stem = {}
    for a in gt["annotations"]:
        by_stem.setdefault(f"im{a['image_id']}", []).append({"segmentation": a["segmentation"], "score": 1.0})
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(by_stem))
    assert evaluate_ar(gt, path)["AR@100"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------- edges


def test_matching_is_one_to_one_and_within_tolerance():
    from granseg.eval.edges import match_counts

    gt = np.zeros((20, 20), bool)
    gt[10, 2:18] = True
    near = np.roll(gt, 2, axis=0)
    matched, n = match_counts(near, gt, 3.0)
    assert n == 16 and matched.sum() == 16
    _, n_far = match_counts(np.roll(gt, 5, axis=0), gt, 3.0)
    assert n_far == 0
    double = gt | near  # 32 predicted pixels for 16 GT pixels: only 16 can match
    matched, n = match_counts(double, gt, 3.0)
    assert n == 16 and matched.sum() == 16


def test_gt_boundary_as_prediction_gives_ap_near_one():
    from granseg.eval.edges import bsds_thresholds, evaluate_boundary_image, summarize_edges

    rng = np.random.default_rng(0)
    thresholds = bsds_thresholds(9)
    soft_counts, binary_counts = [], []
    for k in range(2):
        gt = np.zeros((160, 240), bool)  # tolerance 0.0075 x 288 = 2.2 px
        gt[20 + k, 10:230] = True
        gt[20:150, 120] = True
        other = np.roll(gt, 2, axis=1)  # a second annotator, two pixels off
        soft = gt * rng.uniform(0.3, 1.0, gt.shape)
        soft_counts.append(evaluate_boundary_image(soft, [gt, other], thresholds, str(k)))
        binary_counts.append(evaluate_boundary_image(gt.astype(float), [gt, other], thresholds, str(k)))
    soft_metrics = summarize_edges(soft_counts, thresholds)
    binary_metrics = summarize_edges(binary_counts, thresholds)
    assert binary_metrics["AP_interp"] > 0.99 and binary_metrics["ODS_F"] > 0.99
    assert soft_metrics["AP"] > 0.8 and soft_metrics["AP_interp"] > 0.99
    assert soft_metrics["p_at_r20"] > 0.99 and soft_metrics["ap_r20_area"] > 0.99
    noisy = np.where(rng.random((160, 240)) < 0.05, rng.random((160, 240)), 0.0)
    noise_metrics = summarize_edges([evaluate_boundary_image(noisy, [gt], thresholds)], thresholds)
    assert noise_metrics["AP_interp"] < 0.3


def test_sobel_nms_thin_edges_on_a_step():
    from granseg.eval.edges import sobel_nms

    image = np.zeros((20, 30, 3), np.uint8)
    image[:, 15:] = 200
    edges = sobel_nms(image)
    assert edges.max() == pytest.approx(1.0)
    assert set(np.nonzero(edges[10])[0]) <= {14, 15}


# ----------------------------------------------------------------------------------------------- video


def test_j_and_f_of_the_ground_truth_is_one():
    from granseg.eval.video import boundary_f, jaccard, score_sequence

    gts = [square(30, 40, 5 + k, 20 + k, 8, 30) for k in range(5)]
    assert score_sequence(gts, gts) == {"J": 1.0, "F": 1.0, "J&F": 1.0, "frames": 3}
    shifted = [np.roll(g, 6, axis=1) for g in gts]
    scores = score_sequence(gts, shifted)
    assert scores["J"] < 1.0 and scores["F"] < 1.0
    assert jaccard(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0
    assert boundary_f(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0
