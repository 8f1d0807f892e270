"""Evaluation harness: RITM clicker, NoC with oracle g, loaders, GrabCut baseline, AR, BSDS edges, DAVIS J&F."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from granseg.eval.clicker import Click, Clicker, iou, next_click, number_of_clicks
from granseg.eval.datasets import load_dataset
from granseg.eval.datasets.base import EvalDataset, Instance, Sample
from granseg.eval.interactive import InteractiveConfig, evaluate_dataset, evaluate_instance, summarize
from granseg.predict.base import BasePredictor, Prediction

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared(name: str) -> Path:
    path = DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} not available")
    return path


def square(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


# ----------------------------------------------------------------------------------------------- clicker


def test_first_click_is_the_interior_maximum():
    gt = square(20, 20, 2, 9, 2, 9)  # 7 x 7, centre (5, 5) at distance 4
    assert next_click(gt, np.zeros_like(gt)) == Click(True, 5, 5)


def test_negative_click_goes_to_the_first_row_major_maximum_of_the_false_positives():
    gt = square(20, 20, 2, 9, 2, 9)
    pred = gt | square(
        20, 20, 12, 17, 12, 19
    )  # 5 x 7 false-positive block: distance 3 on row 14, cols 14..16
    assert next_click(gt, pred) == Click(False, 14, 14)


def test_tie_between_errors_gives_a_negative_click():
    gt = square(20, 20, 0, 20, 0, 10)
    pred = square(20, 20, 0, 20, 0, 10)
    pred[2:7, 2:7] = False  # 5 x 5 false negative
    pred[12:17, 12:17] = True  # 5 x 5 false positive
    click = next_click(gt, pred)
    assert not click.is_positive and (click.y, click.x) == (14, 14)


def test_image_border_counts_as_outside_the_error_region():
    gt = square(
        10, 10, 0, 10, 0, 5
    )  # touches three borders; with 1-px padding the max distance is 3 at (2, 2)
    assert next_click(gt, np.zeros_like(gt)) == Click(True, 2, 2)


def test_clicked_pixels_are_excluded():
    gt = square(20, 20, 2, 9, 2, 9)
    not_clicked = np.ones_like(gt)
    not_clicked[5, 5] = False
    assert next_click(gt, np.zeros_like(gt), not_clicked) == Click(True, 4, 4)


def test_known_click_sequence_on_two_blobs():
    gt = square(30, 30, 2, 9, 2, 9) | square(30, 30, 18, 27, 18, 27)  # 7x7 and 9x9 blobs
    clicker = Clicker(gt)
    first = clicker.make_next_click(np.zeros_like(gt))
    assert first == Click(True, 22, 22)  # the bigger blob first (distance 5)
    second = clicker.make_next_click(square(30, 30, 18, 27, 18, 27))
    assert second == Click(True, 5, 5)
    third = clicker.make_next_click(gt | square(30, 30, 0, 1, 20, 30))  # a thin strip of false positive
    assert third.is_positive is False and third.y == 0
    np.testing.assert_array_equal(clicker.points_xy(), [[22, 22], [5, 5], [third.x, 0]])
    np.testing.assert_array_equal(clicker.labels(), [1, 1, 0])


def test_ignore_region_is_excluded_from_errors_and_iou():
    gt = square(20, 20, 5, 15, 5, 15)
    ignore = square(20, 20, 3, 17, 3, 17) & ~square(20, 20, 7, 13, 7, 13)  # a band around the boundary
    pred = square(20, 20, 4, 16, 4, 16)  # wrong only inside the band
    assert iou(gt, pred, ignore) == 1.0
    assert iou(gt, pred) < 1.0
    # the only error would be in the band, so with ignore the "click" lands where both maps are 0
    free = next_click(gt, pred | square(20, 20, 0, 2, 0, 2), ignore_mask=ignore)
    assert not free.is_positive and (free.y, free.x) == (0, 0)


def test_number_of_clicks():
    assert number_of_clicks([0.5, 0.86, 0.91], 0.85) == 2
    assert number_of_clicks([0.5, 0.86, 0.91], 0.9) == 3
    assert number_of_clicks([0.5, 0.6], 0.9, max_clicks=20) == 20


# ----------------------------------------------------------------------------------------------- interactive


class MaskPredictor(BasePredictor):
    """Returns a fixed mask per granularity (``masks[g]``), records its calls."""

    def __init__(self, masks_by_g, logits=False, shape=(32, 32)):
        super().__init__()
        self.masks_by_g = masks_by_g
        self.calls = []
        self.logits = logits
        self.set_image(np.zeros((*shape, 3), np.uint8))

    def _set_image(self, image):
        pass

    def _predict(self, points, labels, box, granularity, mask_input):
        self.calls.append((len(points), tuple(granularity), None if mask_input is None else mask_input.shape))
        masks = np.stack([self.masks_by_g(round(float(g), 1), points, labels) for g in granularity])
        low = np.zeros((len(granularity), 4, 4), np.float32) + len(points) if self.logits else None
        return Prediction(masks, np.ones(len(granularity)), np.asarray(granularity), low)


class ListDataset(EvalDataset):
    name = "synthetic"

    def __init__(self, samples):
        self.root = Path(".")
        self.items = list(range(len(samples)))
        self._samples = samples

    def load_item(self, index):
        return self._samples[index]


def _toy_samples(n=3):
    rng = np.random.default_rng(0)
    samples = []
    for k in range(n):
        y, x = rng.integers(2, 10, 2)
        gt = square(32, 32, y, y + 14, x, x + 16)
        samples.append(Sample(f"s{k}", np.full((32, 32, 3), k, np.uint8), [Instance("0", gt)]))
    return samples


def test_perfect_model_needs_one_click_and_empty_model_needs_max_clicks():
    samples = _toy_samples()
    for sample in samples:
        gt = sample.instances[0].mask
        perfect = MaskPredictor(lambda g, p, lab, gt=gt: gt)
        empty = MaskPredictor(lambda g, p, lab, gt=gt: np.zeros_like(gt))
        cfg = InteractiveConfig(max_clicks=7, granularity=1.0)
        good = evaluate_instance(perfect, sample.instances[0], cfg)
        bad = evaluate_instance(empty, sample.instances[0], cfg)
        assert all(good.oracle_noc(t) == 1 for t in cfg.iou_targets)
        assert all(bad.oracle_noc(t) == 7 for t in cfg.iou_targets)
        assert len(bad.ious[1.0]) == 7 and len(perfect.calls) == 1


def test_oracle_granularity_picks_the_fewest_clicks_and_breaks_ties_by_first_iou():
    gt = square(32, 32, 4, 28, 4, 28)
    partial = square(32, 32, 4, 28, 4, 20)  # IoU 2/3

    def answer(g, points, labels):
        if g == 0.3:
            return gt
        if g in (0.6, 0.7):
            return partial if len(points) == 1 else gt  # reaches the target at click 2
        return np.zeros_like(gt)

    predictor = MaskPredictor(answer)
    cfg = InteractiveConfig(max_clicks=5)
    result = evaluate_instance(predictor, Instance("0", gt), cfg)
    assert result.oracle_g(0.9) == 0.3 and result.oracle_noc(0.9) == 1
    assert result.noc(0.9, 0.6) == 2 and result.noc(0.9, 1.0) == 5
    # the first click is shared by all g: one call with the ten levels
    assert predictor.calls[0] == (1, tuple(round(0.1 * k, 1) for k in range(1, 11)), None)
    # tie at NoC: between g=0.6 and 0.7 (same clicks and IoUs) the smaller g wins
    without_03 = InteractiveConfig(max_clicks=5, levels=(0.7, 0.6, 1.0))
    assert evaluate_instance(MaskPredictor(answer), Instance("0", gt), without_03).oracle_g(0.9) == 0.6


def test_g_invariant_predictor_makes_one_call_per_click_and_logits_are_fed_back():
    gt = square(32, 32, 4, 28, 4, 28)
    predictor = MaskPredictor(lambda g, p, lab: np.zeros_like(gt), logits=True)
    evaluate_instance(predictor, Instance("0", gt), InteractiveConfig(max_clicks=4))
    assert len(predictor.calls) == 4
    assert predictor.calls[0][2] is None and predictor.calls[1][2] == (10, 4, 4)


def test_dataset_evaluation_summary_and_outputs(tmp_path):
    from granseg.eval.interactive import write_outputs

    samples = _toy_samples(4)
    dataset = ListDataset(samples)
    gts = [s.instances[0].mask for s in samples]

    class Grow(BasePredictor):
        """Mask = GT restricted to a disk that grows with the number of clicks (image value = sample index)."""

        def _set_image(self, image):
            self.gt = gts[int(image[0, 0, 0])]

        def _predict(self, points, labels, box, granularity, mask_input):
            gt = self.gt
            yy, xx = np.mgrid[:32, :32]
            disk = (yy - points[0, 1]) ** 2 + (xx - points[0, 0]) ** 2 <= (4 * len(points)) ** 2
            return Prediction(
                np.repeat((gt & disk)[None], len(granularity), 0), np.ones(len(granularity)), granularity
            )

    cfg = InteractiveConfig(max_clicks=6, granularity=0.5)
    results = evaluate_dataset(dataset, Grow, cfg, max_instances=3, quiet=True)
    assert [r.sample_id for r in results] == ["s0", "s1", "s2"]
    metrics = summarize(results, cfg)
    assert metrics["instances"] == 3
    assert 1 < metrics["NoC@85"] <= metrics["NoC@90"] <= metrics["NoC@95"] <= 6
    curve = metrics["mIoU_per_click"]
    assert len(curve) == 6 and all(b >= a - 1e-9 for a, b in zip(curve, curve[1:]))
    write_outputs(tmp_path, results, metrics, cfg, {"model": "grow", "dataset": "toy"})
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["metrics"]["NoC@90"] == metrics["NoC@90"]
    rows = (tmp_path / "per_instance.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("sample,instance")
    assert "NoC@90" in (tmp_path / "report.md").read_text()


def test_logits_are_thresholded_with_the_flag():
    from granseg.eval.interactive import binarize

    logits = np.full((1, 2, 2), np.log(0.495 / 0.505))  # probability 0.495
    pred = Prediction(np.zeros((1, 2, 2), bool), np.ones(1), np.ones(1), logits=logits)
    assert binarize(pred, 0.49).all() and not binarize(pred, 0.5).any()


# ----------------------------------------------------------------------------------------------- baseline


def test_grabcut_baseline_segments_a_clear_object_and_is_deterministic():
    from granseg.predict.factory import load_predictor

    rng = np.random.default_rng(1)
    image = rng.integers(0, 60, (120, 160, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:120, :160]
    obj = (yy - 60) ** 2 + (xx - 80) ** 2 <= 35**2
    image[obj] = rng.integers(190, 255, (obj.sum(), 3)).astype(np.uint8)
    predictor = load_predictor("grabcut-baseline", device="cpu")
    predictor.set_image(image)
    first = predictor.predict([[80, 60]], [1], granularity="all")
    assert first.masks.shape == (10, 120, 160)
    assert iou(obj, first.masks[0]) > 0.9
    again = predictor.predict([[80, 60]], [1], granularity=0.3)
    np.testing.assert_array_equal(first.masks[0], again.masks[0])


# ----------------------------------------------------------------------------------------------- datasets (real)


def test_grabcut_loader_on_real_data():
    ds = load_dataset("grabcut", shared("grabcut"))
    assert len(ds) == 50
    ds.restrict(["124080"])
    sample = ds.load(0)
    inst = sample.instances[0]
    assert sample.image.shape[:2] == inst.mask.shape and inst.ignore is not None
    assert inst.ignore.sum() > 0 and not (inst.ignore & inst.mask).any()


def test_davis_raw_layout_and_coco_loaders_on_real_data():
    davis = load_dataset("davis", shared("davis2016_val_subset"))
    assert len(davis) == 282 and davis.item_id(0) == "blackswan/00000"
    assert davis.load(0).instances[0].mask.any()
    coco = load_dataset("coco", shared("coco_val2017_sample"))
    sample = coco.load(0)
    assert sample.image.shape == (427, 640, 3) and len(sample.instances) == 19


def test_bsds_loader_on_real_data():
    from granseg.eval.datasets.bsds import BSDS500

    ds = BSDS500(shared("bsds500"))
    assert len(ds) == 100
    image, boundaries = ds.load(ds.ids[0])
    assert 4 <= len(boundaries) <= 8 and boundaries[0].shape == image.shape[:2]


# ----------------------------------------------------------------------------------------------- datasets (synthetic)


def _write_png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_berkeley_and_coco_mval_layouts(tmp_path):
    mask = np.zeros((8, 10), np.uint8)
    mask[2:6, 2:8] = 255
    mask[2, 2:8] = 128
    _write_png(tmp_path / "b" / "images" / "x.png", np.zeros((8, 10, 3), np.uint8))
    _write_png(tmp_path / "b" / "masks" / "x.png", mask)
    inst = load_dataset("berkeley", tmp_path / "b").load(0).instances[0]
    assert inst.mask.sum() == 18 and inst.ignore.sum() == 6
    _write_png(tmp_path / "c" / "img" / "y.jpg", np.zeros((8, 10, 3), np.uint8))
    _write_png(tmp_path / "c" / "gt" / "y.png", mask)
    inst = load_dataset("coco-mval", tmp_path / "c").load(0).instances[0]
    assert inst.mask.sum() == 24 and inst.ignore is None


def test_sbd_loader(tmp_path):
    from scipy.io import savemat

    seg = np.zeros((6, 7), np.uint8)
    seg[1:3, 1:3] = 1
    seg[4:6, 2:7] = 2
    (tmp_path / "inst").mkdir()
    savemat(
        tmp_path / "inst" / "a.mat",
        {
            "GTinst": {
                "Segmentation": seg,
                "Boundaries": np.zeros((1, 1)),
                "Categories": np.array([[15], [7]]),
            }
        },
    )
    _write_png(tmp_path / "img" / "a.jpg", np.zeros((6, 7, 3), np.uint8))
    (tmp_path / "val.txt").write_text("a\n")
    sample = load_dataset("sbd", tmp_path).load(0)
    assert [i.id for i in sample.instances] == ["1", "2"]
    assert [int(i.mask.sum()) for i in sample.instances] == [4, 10]


def test_pascalpart_loader(tmp_path):
    from scipy.io import savemat

    head, body = np.zeros((6, 6), np.uint8), np.zeros((6, 6), np.uint8)
    head[0:2, 0:2] = 1
    body[2:6, 0:4] = 1
    parts = np.zeros((1, 2), dtype=[("part_name", "O"), ("mask", "O")])
    parts[0, 0] = ("head", head)
    parts[0, 1] = ("body", body)
    objects = np.zeros((1, 1), dtype=[("class", "O"), ("mask", "O"), ("parts", "O")])
    objects[0, 0] = ("cat", head | body, parts)
    (tmp_path / "Annotations_Part").mkdir()
    savemat(tmp_path / "Annotations_Part" / "p.mat", {"anno": {"imname": "p", "objects": objects}})
    _write_png(tmp_path / "JPEGImages" / "p.jpg", np.zeros((6, 6, 3), np.uint8))
    sample = load_dataset("pascalpart", tmp_path).load(0)
    assert [i.id for i in sample.instances] == ["0-cat-0-head", "0-cat-1-body"]
    assert [int(i.mask.sum()) for i in sample.instances] == [4, 16]
    objects_only = load_dataset("pascalpart", tmp_path, level="object").load(0)
    assert len(objects_only.instances) == 1 and objects_only.instances[0].mask.sum() == 20


def test_partimagenet_loader(tmp_path):
    labels = np.full((5, 5), 40, np.uint8)
    labels[0:2, :] = 3
    labels[3:5, 1:3] = 0
    _write_png(tmp_path / "annotations" / "test" / "n01_1.png", labels)
    _write_png(tmp_path / "images" / "test" / "n01_1.jpg", np.zeros((5, 5, 3), np.uint8))
    sample = load_dataset("partimagenet", tmp_path).load(0)
    assert sorted((i.id, int(i.mask.sum())) for i in sample.instances) == [("0", 4), ("3", 10)]


def test_sa1b_loader(tmp_path):
    from granseg.io.masks import encode_rle

    mask = square(9, 11, 2, 5, 3, 9)
    _write_png(tmp_path / "sa_1.jpg", np.zeros((9, 11, 3), np.uint8))
    doc = {
        "image": {"file_name": "sa_1.jpg", "height": 9, "width": 11},
        "annotations": [{"id": 7, "segmentation": encode_rle(mask)}],
    }
    (tmp_path / "sa_1.json").write_text(json.dumps(doc))
    sample = load_dataset("sa1b", tmp_path).load(0)
    assert sample.instances[0].id == "7"
    np.testing.assert_array_equal(sample.instances[0].mask, mask)


# ----------------------------------------------------------------------------------------------- AR


def _toy_coco(n_images=2, per_image=6, seed=0):
    from granseg.io.masks import encode_rle

    rng = np.random.default_rng(seed)
    images, anns, masks = [], [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "file_name": f"im{i}.jpg", "height": 48, "width": 64})
        for _ in range(per_image):
            y, x = rng.integers(0, 30, 2)
            h, w = rng.integers(6, 18, 2)
            m = square(48, 64, y, y + h, x, x + w)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "segmentation": encode_rle(m),
                    "area": float(m.sum()),
                    "iscrowd": 0,
                    "category_id": 1,
                }
            )
            masks.append((i, m))
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}, masks


def test_ar_of_the_ground_truth_is_one():
    from granseg.eval.whole_image import evaluate_ar

    gt, _ = _toy_coco()
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

    gt, masks = _toy_coco(seed=3)
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

    gt, _ = _toy_coco()
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


# ----------------------------------------------------------------------------------------------- CLI


def test_cli_interactive_on_a_synthetic_berkeley_folder(tmp_path):
    from granseg.cli import main

    rng = np.random.default_rng(2)
    for k in range(2):
        image = rng.integers(0, 50, (60, 80, 3)).astype(np.uint8)
        mask = np.zeros((60, 80), np.uint8)
        mask[15:45, 20:60] = 255
        image[mask > 0] += 180
        _write_png(tmp_path / "data" / "images" / f"{k}.png", image)
        _write_png(tmp_path / "data" / "masks" / f"{k}.png", mask)
    out = tmp_path / "out"
    code = main(
        [
            "eval",
            "interactive",
            "--dataset",
            "berkeley",
            "--data-root",
            str(tmp_path / "data"),
            "--model",
            "grabcut-baseline",
            "--granularity",
            "1.0",
            "--max-clicks",
            "3",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["instances"] == 2 and metrics["NoC@85"] <= 3
    assert (out / "report.md").is_file() and (out / "per_instance.csv").is_file()


def test_cli_reports_bad_input_with_exit_2(tmp_path, capsys):
    from granseg.cli import main

    assert (
        main(
            [
                "eval",
                "interactive",
                "--dataset",
                "nope",
                "--data-root",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.startswith("error: unknown dataset")


# ----------------------------------------------------------------------------------------------- automatic + CLI


class ComponentPredictor(BasePredictor):
    """The region of a label map under the first click, whatever g."""

    def __init__(self, labels):
        super().__init__()
        self.labels = labels

    def _set_image(self, image):
        pass

    def _predict(self, points, labels, box, granularity, mask_input):
        x, y = points[0].astype(int)
        mask = self.labels == self.labels[y, x]
        k = len(granularity)
        return Prediction(np.repeat(mask[None], k, 0), np.full(k, 0.9), granularity)


def test_automatic_segmenter_finds_every_region_once_per_g_and_scores_ar_one():
    from granseg.eval.whole_image import evaluate_ar
    from granseg.io.masks import encode_rle
    from granseg.predict.automatic import AutomaticConfig, AutomaticSegmenter, box_nms

    labels = np.zeros((40, 60), np.int32)
    labels[5:20, 5:25] = 1
    labels[22:38, 30:58] = 2
    segmenter = AutomaticSegmenter(
        ComponentPredictor(labels), AutomaticConfig(points_per_side=6, granularities=(0.3, 1.0))
    )
    records = segmenter.generate(np.zeros((40, 60, 3), np.uint8))
    assert sorted((r["granularity"], r["area"]) for r in records) == sorted(
        (g, int((labels == k).sum())) for g in (0.3, 1.0) for k in (0, 1, 2)
    )
    gt = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 40, "width": 60}],
        "annotations": [
            {
                "id": k,
                "image_id": 1,
                "segmentation": encode_rle(labels == k),
                "area": float((labels == k).sum()),
            }
            for k in (1, 2)
        ],
    }
    assert evaluate_ar(gt, {"a": records})["AR@100"] == pytest.approx(1.0)
    assert list(
        box_nms(np.array([[0, 0, 10, 10], [0, 0, 10, 9], [20, 20, 30, 30]]), np.array([0.5, 0.9, 0.1]), 0.7)
    ) == [1, 2]


def test_cli_auto_edges_and_video(tmp_path):
    from granseg.cli import main

    gt, _ = _toy_coco()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    preds = [
        {"image_id": a["image_id"], "segmentation": a["segmentation"], "score": 1.0}
        for a in gt["annotations"]
    ]
    (tmp_path / "preds.json").write_text(json.dumps(preds))
    out = tmp_path / "auto"
    assert (
        main(
            [
                "eval",
                "auto",
                "--gt",
                str(tmp_path / "gt.json"),
                "--predictions",
                str(tmp_path / "preds.json"),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert json.loads((out / "metrics.json").read_text())["metrics"]["AR@1000"] == pytest.approx(1.0)

    # DAVIS-style folder, predictions = ground truth -> J&F = 1
    for seq in ("a", "b"):
        for k in range(4):
            mask = (square(24, 32, 4 + k, 16 + k, 6, 20) * 255).astype(np.uint8)
            _write_png(
                tmp_path / "davis" / "JPEGImages" / "480p" / seq / f"{k:05d}.jpg",
                np.zeros((24, 32, 3), np.uint8),
            )
            _write_png(tmp_path / "davis" / "Annotations" / "480p" / seq / f"{k:05d}.png", mask)
            _write_png(tmp_path / "pred" / seq / f"{k:05d}.png", mask)
    out = tmp_path / "video"
    assert (
        main(
            [
                "eval",
                "video",
                "--data-root",
                str(tmp_path / "davis"),
                "--predictions",
                str(tmp_path / "pred"),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert json.loads((out / "metrics.json").read_text())["metrics"]["J&F"] == 1.0


def test_cli_edges_on_one_real_bsds_image(tmp_path):
    from granseg.cli import main

    root = shared("bsds500")
    out = tmp_path / "edges"
    code = main(
        [
            "eval",
            "edges",
            "--data-root",
            str(root),
            "--max-images",
            "1",
            "--thresholds",
            "5",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert 0.2 < metrics["ODS_F"] < 0.9 and (out / "report.md").is_file()


def _berkeley_folder(root: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(2)
    for k in range(n):
        image = rng.integers(0, 50, (60, 80, 3)).astype(np.uint8)
        mask = np.zeros((60, 80), np.uint8)
        mask[10 + 3 * k : 45, 20 : 60 - 2 * k] = 255
        image[mask > 0] += 150
        _write_png(root / "images" / f"{k}.png", image)
        _write_png(root / "masks" / f"{k}.png", mask)
    return root


def test_parallel_workers_give_the_same_results_in_the_same_order(tmp_path):
    import functools

    from granseg.predict.factory import load_predictor

    dataset = load_dataset("berkeley", _berkeley_folder(tmp_path))
    factory = functools.partial(load_predictor, "grabcut-baseline", device="cpu")
    cfg = InteractiveConfig(max_clicks=3, granularity=1.0)
    serial = evaluate_dataset(dataset, factory, cfg, quiet=True)
    parallel = evaluate_dataset(dataset, factory, cfg, workers=2, quiet=True)
    assert [r.sample_id for r in parallel] == ["0", "1", "2"]
    assert [(r.ious, r.clicks) for r in serial] == [(r.ious, r.clicks) for r in parallel]


def test_ultrametric_contour_map_of_a_real_hierarchy_marks_the_strong_boundary():
    from granseg.eval.edges import ultrametric_contour_map
    from granseg.predict.factory import load_predictor

    image = np.full((64, 96, 3), 30, np.uint8)
    image[:, 48:] = 220
    predictor = load_predictor("hierarchy", device="cpu", n_superpixels=40, internal_long_side=96)
    predictor.set_image(image)
    ucm = ultrametric_contour_map(predictor.tree, image.shape[:2])
    assert ucm.shape == (64, 96) and ucm.max() == pytest.approx(1.0)
    assert ucm[:, 46:50].max(axis=1).mean() > 0.9  # the step edge is the top of the hierarchy
    assert ucm[:, 10:38].max() < ucm[:, 46:50].max()


# ---------------------------------------------------------------------------------- the model recorded in reports
def test_cli_eval_auto_records_the_model_actually_used(tmp_path, monkeypatch):
    """--model auto used to be written as "auto" into metrics.json; it must be the resolved model."""
    from granseg.cli import main

    monkeypatch.setenv("GRANSEG_HOME", str(tmp_path / "home"))  # no local checkpoint: auto = hierarchy
    gt, _ = _toy_coco(n_images=1, per_image=2)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    image = np.full((48, 64, 3), 40, np.uint8)
    image[10:30, 12:40] = 210
    _write_png(tmp_path / "images" / "im1.jpg", image)
    out = tmp_path / "auto"
    argv = ["eval", "auto", "--gt", str(tmp_path / "gt.json"), "--images", str(tmp_path / "images")]
    assert main([*argv, "--points-per-side", "2", "--out", str(out), "--quiet"]) == 0
    document = json.loads((out / "metrics.json").read_text())
    assert document["meta"]["model"] == "hierarchy"
    assert "hierarchy" in (out / "report.md").read_text().splitlines()[0]
    assert json.loads((out / "predictions.json").read_text())


def test_cli_eval_video_records_the_model_actually_used(tmp_path, monkeypatch):
    from granseg.cli import main

    monkeypatch.setenv("GRANSEG_HOME", str(tmp_path / "home"))
    for k in range(3):
        frame = np.full((48, 64, 3), 30, np.uint8)
        frame[10 + k : 34 + k, 16:44] = 220
        _write_png(tmp_path / "davis" / "JPEGImages" / "480p" / "s" / f"{k:05d}.jpg", frame)
        mask = (square(48, 64, 10 + k, 34 + k, 16, 44) * 255).astype(np.uint8)
        _write_png(tmp_path / "davis" / "Annotations" / "480p" / "s" / f"{k:05d}.png", mask)
    out = tmp_path / "video"
    assert main(["eval", "video", "--data-root", str(tmp_path / "davis"), "--out", str(out), "--quiet"]) == 0
    document = json.loads((out / "metrics.json").read_text())
    assert document["meta"]["model"] == "hierarchy"
    assert 0.0 <= document["metrics"]["J&F"] <= 1.0


def test_cli_edges_refuses_an_edge_map_the_model_does_not_give(tmp_path, capsys):
    from granseg.cli import main

    root = tmp_path / "bsds"
    _write_png(root / "images" / "val" / "1.jpg", np.zeros((40, 40, 3), np.uint8))
    code = main(
        ["eval", "edges", "--data-root", str(root), "--edge-map", "ucm", "--out", str(tmp_path / "o")]
    )
    assert code == 2
    assert capsys.readouterr().err.startswith("error: edge map 'ucm' needs a model")
    assert not (tmp_path / "o").exists()


def test_edge_map_kinds_follow_the_model():
    from granseg.errors import InputError
    from granseg.eval.edge_maps import default_edge_map, edge_map_function
    from granseg.eval.edges import sobel_nms
    from granseg.models.registry import load_model

    assert edge_map_function("sobel") is sobel_nms
    assert default_edge_map(load_model("hierarchy", device="cpu")) == "ucm"
    with pytest.raises(InputError, match="gives no 'features' edge map"):
        edge_map_function("hierarchy", kind="features")
    with pytest.raises(InputError, match="gives no edge map"):
        default_edge_map(load_model("grabcut-baseline", device="cpu"))
    image = np.full((40, 60, 3), 20, np.uint8)
    image[:, 30:] = 230
    ucm = edge_map_function("hierarchy", kind="ucm")(image)
    assert ucm.shape == (40, 60) and ucm[:, 28:32].max() > ucm[:, 5:20].max()


# ---------------------------------------------------------------------------------- plots leave matplotlib alone
def test_plots_keep_the_callers_matplotlib_backend(tmp_path):
    """Report plots used to call matplotlib.use("Agg"), switching a caller's backend for the whole process."""
    import subprocess
    import sys

    script = f"""
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
from pathlib import Path
from granseg.eval.edges import plot_pr
from granseg.eval.interactive import plot_curves
from granseg.eval.whole_image import plot_ar
out = Path({str(tmp_path)!r})
assert plot_pr(out / "pr.png", {{"m": ([0.1, 0.5], [0.9, 0.6])}}, "t")
assert plot_curves(out / "c.png", {{"m": [0.5, 0.7, 0.8]}}, "t")
assert plot_ar(out / "ar.png", {{"AR@1": 0.2, "AR@10": 0.5, "AR@100": 0.7}})
print(matplotlib.get_backend(), len(plt.get_fignums()))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "0"]
    for name in ("pr.png", "c.png", "ar.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
