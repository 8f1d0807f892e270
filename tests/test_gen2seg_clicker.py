"""The Gen2Seg paper's iterative protocol as a clicker of the interactive evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from granseg.errors import InputError
from granseg.eval.clicker import CentreClicker, centre_click, make_clicker
from granseg.eval.datasets.base import Instance
from granseg.eval.interactive import InteractiveConfig, evaluate_instance, summarize
from granseg.predict.base import BasePredictor, Prediction


def test_first_click_is_the_distance_transform_centre():
    gt = np.zeros((7, 11), bool)
    gt[1:6, 1:10] = True  # 5 x 9: distance 3 on row 3, columns 3..7; first in row-major order is (3, 3)
    click = centre_click(gt, np.zeros_like(gt))
    assert (click.is_positive, click.y, click.x) == (True, 3, 3)


def test_next_click_goes_to_the_largest_missed_region():
    gt = np.zeros((20, 30), bool)
    gt[2:6, 2:6] = True  # 16 px
    gt[10:18, 10:20] = True  # 80 px
    gt[2:5, 20:29] = True  # 27 px
    first = centre_click(gt, np.zeros_like(gt))
    assert 10 <= first.y < 18 and 10 <= first.x < 20  # the largest part first
    pred = np.zeros_like(gt)
    pred[10:18, 10:20] = True
    second = centre_click(gt, pred)
    assert (second.y, second.x) == (3, 21)  # centre (distance 2) of the 27 px strip, first in row-major order
    assert centre_click(gt, gt) is None
    ignore = np.zeros_like(gt)
    ignore[2:5, 20:29] = True
    assert 2 <= centre_click(gt, pred, ignore_mask=ignore).y < 6  # ignored pixels are never "missed"


def test_centre_clicker_adds_no_click_when_nothing_is_missed():
    gt = np.zeros((6, 6), bool)
    gt[1:4, 1:4] = True
    clicker = make_clicker("gen2seg", gt)
    assert isinstance(clicker, CentreClicker)
    assert clicker.make_next_click(np.zeros_like(gt)).label == 1
    assert clicker.make_next_click(gt) is None and len(clicker.clicks) == 1
    with pytest.raises(InputError):
        make_clicker("human", gt)
    with pytest.raises(InputError):
        InteractiveConfig(clicker="human")


class ComponentUnion(BasePredictor):
    """Union of the label-map regions under the positive clicks (what a good Gen2Seg prompt answers)."""

    def __init__(self, labels):
        super().__init__()
        self.labels = labels

    def _set_image(self, image):
        pass

    def _predict(self, points, labels, box, granularity, mask_input):
        mask = np.zeros(self.labels.shape, bool)
        for (x, y), label in zip(points.astype(int), labels):
            if label == 1:
                mask |= self.labels == self.labels[y, x]
        k = len(granularity)
        return Prediction(np.repeat(mask[None], k, 0), np.full(k, 0.9), granularity)


def test_paper_protocol_in_the_interactive_evaluation():
    regions = np.zeros((20, 30), np.int32)
    regions[10:18, 10:20] = 1  # 80 px
    regions[2:5, 20:29] = 2  # 27 px
    regions[2:6, 2:6] = 3  # 16 px
    instance = Instance("obj", regions > 0)
    predictor = ComponentUnion(regions)
    predictor.set_image(np.zeros((20, 30, 3), np.uint8))
    config = InteractiveConfig(max_clicks=9, granularity=1.0, early_stop=False, clicker="gen2seg")
    result = evaluate_instance(predictor, instance, config)
    assert result.ious[1.0] == pytest.approx([80 / 123, 107 / 123, 1.0])  # then nothing is missed: stop
    assert [label for _, _, label in result.clicks[1.0]] == [1, 1, 1]
    metrics = summarize([result], config)
    assert metrics["mIoU_per_click"] == pytest.approx([80 / 123, 107 / 123] + [1.0] * 7)
    assert (metrics["NoC@85"], metrics["NoC@90"]) == (2, 3)
    ritm = evaluate_instance(predictor, instance, InteractiveConfig(max_clicks=9, granularity=1.0))
    assert ritm.ious[1.0][0] == pytest.approx(80 / 123)


def test_cli_clicker_option(tmp_path, capsys):
    from granseg.cli import main

    for folder in ("images", "masks"):
        (tmp_path / "GrabCut" / folder).mkdir(parents=True)
    image = np.zeros((24, 32, 3), np.uint8)
    mask = np.zeros((24, 32), np.uint8)
    mask[4:20, 6:26] = 255
    Image.fromarray(image).save(tmp_path / "GrabCut" / "images" / "a.jpg")
    Image.fromarray(mask).save(tmp_path / "GrabCut" / "masks" / "a.png")
    args = ["eval", "interactive", "--dataset", "berkeley", "--data-root", str(tmp_path / "GrabCut")]
    args += ["--model", "hierarchy", "--max-clicks", "3", "--quiet", "--clicker"]
    assert main([*args, "gen2seg", "--out", str(tmp_path / "out")]) == 0
    assert "Gen2Seg centre clicker" in (tmp_path / "out" / "report.md").read_text()
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "nobody", "--out", str(tmp_path / "bad")])
    assert exit_info.value.code == 2 and "invalid choice: 'nobody'" in capsys.readouterr().err
