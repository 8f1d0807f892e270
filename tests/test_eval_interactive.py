"""Interactive NoC with oracle g on toy predictors, and the OpenCV GrabCut baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from eval_helpers import square

from granseg.eval.clicker import iou
from granseg.eval.datasets.base import EvalDataset, Instance, Sample
from granseg.eval.interactive import InteractiveConfig, evaluate_dataset, evaluate_instance, summarize
from granseg.predict.base import BasePredictor, Prediction

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
