"""The Gen2Seg paper's evaluation sets on fixtures in their published layouts: COCO-unseen (per size), DRAM,
EgoHOS, iShape, PIDRay."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from granseg.errors import InputError
from granseg.eval.datasets import load_dataset
from granseg.eval.datasets.coco_unseen import seen_categories
from granseg.io.masks import encode_rle


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _rle(mask):
    return encode_rle(mask)


def _coco_val(root):
    """val2017/ + annotations/instances_val2017.json with a seen (chair) and unseen (giraffe, dog) category."""
    _save(root / "val2017" / "000000000001.jpg", np.zeros((200, 200, 3), np.uint8))
    _save(root / "val2017" / "000000000002.jpg", np.zeros((200, 200, 3), np.uint8))
    masks = {}
    for name, (y0, y1, x0, x1) in {
        "small": (0, 5, 0, 5),
        "medium": (10, 50, 10, 50),
        "large": (60, 180, 60, 180),
    }.items():
        masks[name] = np.zeros((200, 200), bool)
        masks[name][y0:y1, x0:x1] = True
    anns = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 25,
            "segmentation": _rle(masks["small"]),
            "area": 25.0,
            "iscrowd": 0,
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 18,
            "segmentation": _rle(masks["medium"]),
            "area": 1600.0,
            "iscrowd": 0,
        },
        {
            "id": 3,
            "image_id": 1,
            "category_id": 62,
            "segmentation": _rle(masks["large"]),
            "area": 14400.0,
            "iscrowd": 0,
        },
        {
            "id": 4,
            "image_id": 2,
            "category_id": 62,
            "segmentation": _rle(masks["large"]),
            "area": 14400.0,
            "iscrowd": 0,
        },
    ]
    data = {
        "images": [{"id": k, "file_name": f"{k:012d}.jpg", "height": 200, "width": 200} for k in (1, 2)],
        "annotations": anns,
        "categories": [{"id": 18, "name": "dog"}, {"id": 25, "name": "giraffe"}, {"id": 62, "name": "chair"}],
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return root / "val2017", root / "annotations" / "instances_val2017.json"


def test_coco_unseen_drops_seen_categories_and_buckets_sizes(tmp_path):
    images, annotation = _coco_val(tmp_path)
    assert "chair" in seen_categories() and "giraffe" not in seen_categories()
    every = load_dataset("coco-unseen", images, annotation=annotation)
    assert len(every) == 1  # image 2 holds only a chair
    sample = every.load(0)
    assert sorted(i.id for i in sample.instances) == ["1", "2"]
    small = load_dataset("coco-unseen-small", images, annotation=annotation).load(0)
    assert [i.id for i in small.instances] == ["1"] and small.instances[0].mask.sum() == 25
    assert [
        i.id for i in load_dataset("coco-unseen-medium", images, annotation=annotation).load(0).instances
    ] == ["2"]
    with pytest.raises(InputError, match="no image keeps"):
        load_dataset("coco-unseen-large", images, annotation=annotation)


def test_dram_instances_are_connected_regions_per_class(tmp_path):
    labels = np.zeros((20, 30), np.uint8)
    labels[2:6, 2:6] = 15  # person
    labels[10:14, 20:25] = 15  # another person
    labels[10:18, 2:8] = 8  # cat
    labels[0, :] = 255
    _save(tmp_path / "test" / "images" / "Impressionism" / "monet_1.jpg", np.zeros((20, 30, 3), np.uint8))
    _save(tmp_path / "test" / "labels" / "Impressionism" / "monet_1.png", labels)
    data = load_dataset("dram", tmp_path)
    sample = data.load(0)
    assert sorted(i.id for i in sample.instances) == ["15_1", "15_2", "8_1"]
    assert all(i.ignore is not None and i.ignore[0].all() for i in sample.instances)
    with pytest.raises(InputError, match="expected test/images"):
        load_dataset("dram", tmp_path / "test")


def test_egohos_one_instance_per_label_value(tmp_path):
    labels = np.zeros((16, 16), np.uint8)
    labels[:4, :4], labels[8:, 8:], labels[:4, 8:] = 1, 2, 5
    _save(tmp_path / "test_indomain" / "image" / "ego_0001.jpg", np.zeros((16, 16, 3), np.uint8))
    _save(tmp_path / "test_indomain" / "label" / "ego_0001.png", labels)
    sample = load_dataset("egohos", tmp_path).load(0)
    assert [(i.id, int(i.mask.sum())) for i in sample.instances] == [("1", 16), ("2", 64), ("5", 32)]
    with pytest.raises(InputError, match="test_outdomain/image"):
        load_dataset("egohos", tmp_path, split="test_outdomain")


def test_ishape_16_bit_instance_maps(tmp_path):
    ids = np.zeros((12, 12), np.uint16)
    ids[:3, :], ids[6:, 6:] = 300, 7  # ids beyond 255 need the 16-bit map
    for sub in ("wire", "log"):
        _save(tmp_path / sub / "val" / "image" / "a.jpg", np.zeros((12, 12, 3), np.uint8))
        _save(tmp_path / sub / "val" / "instance_map" / "a.png", ids)
    everything = load_dataset("ishape", tmp_path)
    assert [everything.item_id(i) for i in range(len(everything))] == ["log_a", "wire_a"]
    wire = load_dataset("ishape", tmp_path, split="wire")
    assert sorted(i.id for i in wire.load(0).instances) == ["300", "7"]
    with pytest.raises(InputError, match="sub-dataset"):
        load_dataset("ishape", tmp_path, split="rope")


def test_pidray_easy_subset(tmp_path):
    _save(tmp_path / "easy" / "xray_easy00001.png", np.zeros((20, 20, 3), np.uint8))
    mask = np.zeros((20, 20), bool)
    mask[5:10, 5:15] = True
    data = {
        "images": [{"id": 1, "file_name": "xray_easy00001.png", "height": 20, "width": 20}],
        "annotations": [
            {"id": 9, "image_id": 1, "category_id": 3, "segmentation": _rle(mask), "area": 50.0, "iscrowd": 0}
        ],
        "categories": [{"id": 3, "name": "knife"}],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "xray_test_easy.json").write_text(json.dumps(data))
    sample = load_dataset("pidray", tmp_path).load(0)
    assert sample.instances[0].mask.sum() == 50
    with pytest.raises(InputError, match="xray_test_hard.json"):
        load_dataset("pidray", tmp_path, split="hard")
