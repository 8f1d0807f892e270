"""Dataset loaders: the real subsets in ../shared/data and synthetic copies of every layout."""

from __future__ import annotations

import json

import numpy as np
from eval_helpers import shared, square, write_png

from granseg.eval.datasets import load_dataset

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


def test_berkeley_and_coco_mval_layouts(tmp_path):
    mask = np.zeros((8, 10), np.uint8)
    mask[2:6, 2:8] = 255
    mask[2, 2:8] = 128
    write_png(tmp_path / "b" / "images" / "x.png", np.zeros((8, 10, 3), np.uint8))
    write_png(tmp_path / "b" / "masks" / "x.png", mask)
    inst = load_dataset("berkeley", tmp_path / "b").load(0).instances[0]
    assert inst.mask.sum() == 18 and inst.ignore.sum() == 6
    write_png(tmp_path / "c" / "img" / "y.jpg", np.zeros((8, 10, 3), np.uint8))
    write_png(tmp_path / "c" / "gt" / "y.png", mask)
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
    write_png(tmp_path / "img" / "a.jpg", np.zeros((6, 7, 3), np.uint8))
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
    write_png(tmp_path / "JPEGImages" / "p.jpg", np.zeros((6, 6, 3), np.uint8))
    sample = load_dataset("pascalpart", tmp_path).load(0)
    assert [i.id for i in sample.instances] == ["0-cat-0-head", "0-cat-1-body"]
    assert [int(i.mask.sum()) for i in sample.instances] == [4, 16]
    objects_only = load_dataset("pascalpart", tmp_path, level="object").load(0)
    assert len(objects_only.instances) == 1 and objects_only.instances[0].mask.sum() == 20


def test_partimagenet_loader(tmp_path):
    labels = np.full((5, 5), 40, np.uint8)
    labels[0:2, :] = 3
    labels[3:5, 1:3] = 0
    write_png(tmp_path / "annotations" / "test" / "n01_1.png", labels)
    write_png(tmp_path / "images" / "test" / "n01_1.jpg", np.zeros((5, 5, 3), np.uint8))
    sample = load_dataset("partimagenet", tmp_path).load(0)
    assert sorted((i.id, int(i.mask.sum())) for i in sample.instances) == [("0", 4), ("3", 10)]


def test_sa1b_loader(tmp_path):
    from granseg.io.masks import encode_rle

    mask = square(9, 11, 2, 5, 3, 9)
    write_png(tmp_path / "sa_1.jpg", np.zeros((9, 11, 3), np.uint8))
    doc = {
        "image": {"file_name": "sa_1.jpg", "height": 9, "width": 11},
        "annotations": [{"id": 7, "segmentation": encode_rle(mask)}],
    }
    (tmp_path / "sa_1.json").write_text(json.dumps(doc))
    sample = load_dataset("sa1b", tmp_path).load(0)
    assert sample.instances[0].id == "7"
    np.testing.assert_array_equal(sample.instances[0].mask, mask)
