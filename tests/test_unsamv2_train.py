"""UnSAMv2 training parts: losses against hand-computed values, clicks, data sources (bad data skipped and
counted, mixing, flips), strict configs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from granseg.errors import InputError
from granseg.train.trainer import load_train_config
from granseg.train.unsamv2_data import (
    BadSample,
    DataSource,
    MixedMaskDataset,
    UnSAMv2DataConfig,
    granularity_by_containment,
)
from granseg.train.unsamv2_losses import (
    LossWeights,
    actual_iou,
    best_of_outputs,
    dice_loss,
    object_score_loss,
    sigmoid_focal_loss,
    unsamv2_loss,
    unsamv2_loss_per_mask,
)
from granseg.train.unsamv2_prompts import (
    correction_clicks,
    first_clicks,
    masks_to_input_frame,
    nearest_level_granularity,
)

LN2 = math.log(2)
# one mask of 1 x 2 pixels: probabilities 0.5 and 0.75, target 1 and 0
LOGITS = torch.tensor([[[0.0, math.log(3.0)]]])
TARGETS = torch.tensor([[[1.0, 0.0]]])


def test_focal_loss_by_hand():
    # pixel 1: ce ln2, (1 - 0.5)^2, alpha 0.25; pixel 2: ce ln4, 0.75^2, 1 - alpha = 0.75; mean over 2 pixels
    expected = (0.25 * 0.25 * LN2 + 0.75 * 0.5625 * 2 * LN2) / 2
    assert sigmoid_focal_loss(LOGITS, TARGETS).item() == pytest.approx(expected, rel=1e-6)
    assert sigmoid_focal_loss(LOGITS, TARGETS, alpha=-1, gamma=0).item() == pytest.approx(1.5 * LN2, rel=1e-6)


def test_dice_iou_object_losses_by_hand():
    # dice: 1 - (2 * 0.5 + 1) / (1.25 + 1 + 1) = 5 / 13
    assert dice_loss(LOGITS, TARGETS).item() == pytest.approx(5 / 13, rel=1e-6)
    assert actual_iou(LOGITS, TARGETS).item() == 0.0  # prediction [0, 1] vs target [1, 0]
    assert actual_iou(torch.tensor([[[1.0, -1.0]]]), TARGETS).item() == 1.0
    assert object_score_loss(torch.tensor([0.0]), torch.tensor([True])).item() == pytest.approx(LN2)


def test_weighted_total_by_hand_and_absent_targets_only_score_the_object():
    total, terms = unsamv2_loss(LOGITS, TARGETS, torch.tensor([0.4]), torch.tensor([0.0]), LossWeights())
    focal = (0.25 * 0.25 * LN2 + 0.75 * 0.5625 * 2 * LN2) / 2
    assert terms["iou"].item() == pytest.approx(0.4)
    assert total.item() == pytest.approx(20 * focal + 5 / 13 + 0.4 + LN2, rel=1e-6)
    empty = torch.zeros(1, 1, 2)
    total, terms = unsamv2_loss(LOGITS, empty, torch.tensor([0.4]), torch.tensor([0.0]), LossWeights())
    assert terms["focal"].item() == 0.0 and terms["dice"].item() == 0.0
    assert total.item() == pytest.approx(LN2)  # BCE(0, target 0)


def test_per_mask_shares_sum_to_the_total_and_the_best_output_is_picked_per_prompt():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 4, generator=generator)
    targets = (torch.rand(3, 4, 4, generator=generator) > 0.5).float()
    targets[2] = 0  # an absent target only scores the object term
    iou, objects = torch.rand(3, generator=generator), torch.randn(3, generator=generator)
    shares = unsamv2_loss_per_mask(logits, targets, iou, objects, LossWeights())
    total, _ = unsamv2_loss(logits, targets, iou, objects, LossWeights())
    assert shares.shape == (3,) and shares.sum().item() == pytest.approx(total.item(), rel=1e-6)
    # two outputs, prompt 0 best with output 1, prompt 1 with output 0: SAM's rule picks per prompt, so the loss
    # is below what either output alone scores (one output for the whole image was the earlier, wrong rule)
    per_mask = torch.tensor([[5.0, 1.0], [2.0, 4.0]])
    best, loss = best_of_outputs(per_mask)
    assert best.tolist() == [1, 0] and loss.item() == pytest.approx(3.0)
    assert loss.item() < per_mask.sum(1).min().item()


def test_clicks_first_inside_then_on_errors_with_the_right_label():
    rng = np.random.default_rng(0)
    targets = np.zeros((2, 20, 20), dtype=bool)
    targets[0, 2:6, 3:9] = True
    targets[1, 10:18, 10:18] = True
    points = first_clicks(targets, rng)
    for (x, y), target in zip(points.astype(int), targets):
        assert target[y, x]
    predictions = np.zeros_like(targets)
    predictions[0] = targets[0]
    predictions[0, 0, 0] = True  # only error: one false-positive pixel -> negative click there
    predictions[1, 10:18, 10:14] = True  # missed the right half -> positive clicks there
    for _ in range(10):
        points, labels = correction_clicks(predictions, targets, rng)
        assert tuple(points[0]) == (0, 0) and labels[0] == 0
        x, y = points[1].astype(int)
        assert labels[1] == 1 and targets[1, y, x] and not predictions[1, y, x]
    again = first_clicks(targets, np.random.default_rng(0))
    np.testing.assert_array_equal(again, first_clicks(targets, np.random.default_rng(0)))


def test_nearest_level_g_covers_exactly_the_range_where_the_target_is_the_nearest_level():
    """object (g 1) > part (g 0.5) > sub-part (g 0.2) in one corner: the requested g of each prompt stays in its
    target's Voronoi interval of the levels AT ITS CLICK, and spreads over it."""
    targets = np.zeros((3, 20, 20), dtype=bool)
    targets[0] = True  # object
    targets[1, :10, :10] = True  # part
    targets[2, :4, :4] = True  # sub-part
    labels = np.asarray([1.0, 0.5, 0.2], dtype=np.float32)
    rng = np.random.default_rng(0)
    draws = {name: [] for name in ("object", "part at sub-part", "part elsewhere", "sub-part")}
    for _ in range(300):
        in_sub = nearest_level_granularity(
            targets, labels, np.asarray([[15, 15], [2, 2], [2, 2]]), labels, rng
        )
        elsewhere = nearest_level_granularity(targets[:2], labels[:2], np.asarray([[8, 8]]), labels[1:2], rng)
        draws["object"].append(in_sub[0])
        draws["part at sub-part"].append(in_sub[1])
        draws["sub-part"].append(in_sub[2])
        draws["part elsewhere"].append(elsewhere[0])
    bounds = {"object": (0.1, 1.0), "part at sub-part": (0.35, 0.75), "part elsewhere": (0.1, 0.75),
              "sub-part": (0.1, 0.35)}  # fmt: skip
    for name, (low, high) in bounds.items():
        values = np.asarray(draws[name])
        assert values.min() >= low - 1e-6 and values.max() <= high + 1e-6, name
        assert values.min() < low + 0.05 and values.max() > high - 0.05, name  # the whole interval is drawn
    # the object alone at its click (no smaller level there) may be asked at any g
    assert draws["object"] and np.ptp(draws["object"]) > 0.8


def test_masks_follow_the_image_into_the_padded_input_frame():
    masks = np.zeros((1, 50, 100), dtype=bool)
    masks[0, :, 50:] = True
    framed = masks_to_input_frame(masks, 64, "longest_side_pad")
    assert framed.shape == (1, 64, 64)
    assert framed[0, :32, 32:].all() and not framed[0, :32, :32].any() and not framed[0, 32:].any()


def test_granularity_from_containment_matches_the_area_formula():
    masks = np.zeros((3, 40, 40), dtype=bool)
    masks[0, :, :] = True  # 1600 px, root
    masks[1, :10, :10] = True  # 100 px, inside 0
    masks[2, :20, :20] = True  # 400 px, inside 0
    g = granularity_by_containment(masks)
    # sqrt areas 40, 10, 20: (20 - 10) / 30 * 0.9 + 0.1 = 0.4
    np.testing.assert_allclose(g, [1.0, 0.1, 0.4], rtol=1e-6)


def _rle(mask):
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode()}


def _pseudo_folder(tmp_path):
    """4 label files: 1 good (2 masks, one annotation malformed), 1 with a missing image, 1 with a corrupt image,
    1 that is not JSON."""
    folder, images = tmp_path / "labels", tmp_path / "images"
    folder.mkdir()
    images.mkdir()
    mask = np.zeros((32, 48), dtype=bool)
    mask[4:20, 4:30] = True
    part = np.zeros_like(mask)
    part[4:10, 4:10] = True
    Image.fromarray(np.full((32, 48, 3), 100, np.uint8)).save(images / "good.png")
    (images / "corrupt.png").write_bytes(b"not a png")
    annotations = [
        {"segmentation": _rle(mask), "granularity": 1.0},
        {"segmentation": _rle(part)},  # no granularity: computed from containment
        {"segmentation": {"size": [32, 48]}},  # malformed: no counts
    ]
    for stem, file_name in (("a_good", "good.png"), ("b_missing", "gone.png"), ("c_corrupt", "corrupt.png")):
        doc = {"image": {"file_name": file_name, "height": 32, "width": 48}, "annotations": annotations}
        (folder / f"{stem}.json").write_text(json.dumps(doc))
    (folder / "d_broken.json").write_text("{not json")
    return folder, images


def test_bad_data_is_skipped_and_counted_never_raised_past_the_task(tmp_path):
    folder, images = _pseudo_folder(tmp_path)
    source = DataSource(kind="pseudo", folder=str(folder), images=str(images))
    dataset = MixedMaskDataset(UnSAMv2DataConfig(sources=[source], flip=False), seed=0)
    assert len(dataset) == 4
    good = dataset.load(0, np.random.default_rng(0))
    assert good.masks.shape == (2, 32, 48)
    np.testing.assert_allclose(good.granularity, [1.0, 0.1])
    for index in (1, 2, 3):
        with pytest.raises(BadSample):
            dataset.load(index, np.random.default_rng(0))
    assert dataset.counts["skipped_samples"] == 3
    assert dataset.counts["bad_annotations"] == 1


def test_coco_source_and_seeded_mixing_by_weight(tmp_path):
    folder, images = _pseudo_folder(tmp_path)
    mask = np.zeros((32, 48), dtype=bool)
    mask[2:30, 2:40] = True
    coco = {
        "images": [{"id": 7, "file_name": "good.png", "height": 32, "width": 48}],
        "annotations": [{"id": 1, "image_id": 7, "segmentation": _rle(mask), "area": 1, "iscrowd": 0}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    sources = [
        DataSource(kind="coco", annotations=str(tmp_path / "coco.json"), images=str(images), weight=3.0),
        DataSource.from_dict({"kind": "synth", "num_scenes": 5, "synth": {"size": 64}, "weight": 1.0}),
    ]
    config = UnSAMv2DataConfig(sources=sources, size=400)
    dataset = MixedMaskDataset(config, seed=3)
    picks = [dataset.locate(i)[0] for i in range(400)]
    assert 0.65 < picks.count(0) / 400 < 0.85  # weight 3 : 1
    assert picks == [MixedMaskDataset(config, seed=3).locate(i)[0] for i in range(400)]
    coco_index = picks.index(0)
    sample = dataset.load(coco_index, np.random.default_rng(1))
    assert sample.masks.shape[0] == 1 and sample.granularity[0] == 1.0


def test_max_masks_and_flips_are_seeded(tmp_path):
    source = DataSource.from_dict(
        {"kind": "synth", "num_scenes": 3, "synth": {"size": 64, "num_objects": [4, 4]}}
    )
    dataset = MixedMaskDataset(UnSAMv2DataConfig(sources=[source], max_masks=3, min_area=1), seed=0)
    flips = set()
    for seed in range(8):
        a = dataset.load(0, np.random.default_rng(seed))
        b = dataset.load(0, np.random.default_rng(seed))
        assert len(a.masks) == 3
        np.testing.assert_array_equal(a.masks, b.masks)
        np.testing.assert_array_equal(a.image, b.image)
        flips.add(a.image.tobytes())
    assert len(flips) >= 2


def _tiny_dict(**changes):
    from granseg.models.unsamv2 import tiny_config

    data = {"task": "unsamv2", "model": tiny_config().to_dict(), "init_from": None, "steps": 2}
    data.update(changes)
    return data


def test_config_rejects_unknown_keys_and_wrong_types_by_name():
    assert load_train_config(json.dumps(_tiny_dict())).correction_clicks == 3
    with pytest.raises(InputError, match="corection_clicks"):
        load_train_config(json.dumps(_tiny_dict(corection_clicks=3)))
    with pytest.raises(InputError, match="'correction_clicks'"):
        load_train_config(json.dumps(_tiny_dict(correction_clicks="three")))
    with pytest.raises(InputError, match="'data.max_masks'"):
        load_train_config(json.dumps(_tiny_dict(data={"max_masks": 2.5})))
    with pytest.raises(InputError, match=r"'data.sources\[0\].num_scenes'"):
        load_train_config(json.dumps(_tiny_dict(data={"sources": [{"num_scenes": "many"}]})))
    with pytest.raises(InputError, match="'model.sam2.hidden_size'"):
        bad = _tiny_dict()
        bad["model"]["sam2"]["hidden_size"] = "32"
        load_train_config(json.dumps(bad))
