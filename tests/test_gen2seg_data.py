"""Gen2Seg training sources on fixtures written in each data set's published layout: Hypersim (HDF5), Virtual
KITTI 2 (indexed instance PNGs), ClevrTex, COCO; cleaning, class filtering, skipping, mixing, geometry, freezing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from granseg.errors import InputError
from granseg.models.gen2seg import TINY_ARCHITECTURES
from granseg.train.gen2seg_data import (
    CleaningRules,
    CleanSource,
    ClevrTexSource,
    Geometry,
    HypersimSource,
    RawSample,
    SkipSample,
    VirtualKitti2Source,
)
from granseg.train.gen2seg_data.base import apply_class_filter, to_tensors
from granseg.train.gen2seg_data.hypersim import tonemap
from granseg.train.gen2seg_task import Gen2SegTask, Gen2SegTrainConfig, freeze_all_but_last
from granseg.train.instance_data import InstanceDataConfig, build_instance_dataset
from granseg.train.trainer import Trainer

h5py = pytest.importorskip("h5py")
torch.set_num_threads(1)
H, W = 24, 32


def _h5(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("dataset", data=array)


def _hypersim_frame(root, scene, cam, frame, instances, shape=(H, W), write_instance=True):
    images = root / scene / "images"
    rng = np.random.default_rng(frame)
    _h5(
        images / f"scene_{cam}_final_hdf5" / f"frame.{frame:04d}.color.hdf5",
        rng.random((H, W, 3)).astype(np.float16),
    )
    ids = np.full(shape, -1, dtype=np.int16)
    for k in range(instances):  # vertical stripes: instance k (Hypersim id 10 + k)
        ids[:, 2 * k : 2 * k + 2] = 10 + k
    semantic = np.where(ids >= 0, 5, -1).astype(np.int16)  # NYU40 5 = chair
    semantic[:, :2] = np.where(ids[:, :2] >= 0, 35, -1)  # the first instance is a lamp
    geometry = images / f"scene_{cam}_geometry_hdf5"
    if write_instance:
        _h5(geometry / f"frame.{frame:04d}.semantic_instance.hdf5", ids)
    _h5(
        geometry / f"frame.{frame:04d}.semantic.hdf5",
        semantic if semantic.shape == (H, W) else semantic[:H, :W],
    )


@pytest.fixture
def hypersim_root(tmp_path):
    root = tmp_path / "hypersim"
    _hypersim_frame(root, "ai_001_001", "cam_00", 0, instances=12)
    _hypersim_frame(root, "ai_001_001", "cam_00", 1, instances=3)  # fewer than 10 objects
    _hypersim_frame(root, "ai_001_002", "cam_01", 0, instances=12, write_instance=False)  # missing map
    _hypersim_frame(root, "ai_001_002", "cam_01", 1, instances=12, shape=(H - 4, W))  # mis-sized map
    _hypersim_frame(root, "ai_001_002", "cam_01", 2, instances=11)
    return root


def _vkitti_root(tmp_path, frames=2, size=(375, 1242)):
    root = tmp_path / "vkitti2"
    for frame in range(frames):
        rgb = root / "vkitti_2.0.3_rgb/Scene01/clone/frames/rgb/Camera_0" / f"rgb_{frame:05d}.jpg"
        rgb.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((*size, 3), 90, np.uint8)).save(rgb)
        ids = np.zeros(size, np.uint8)
        h, w = size
        ids[h // 4 : h // 2, w // 4 : w // 2] = 1 + frame  # trackID 0 or 1 -> value trackID + 1
        ids[h // 2 : 3 * h // 4, 5 * w // 8 : 3 * w // 4] = 7
        png = Image.fromarray(ids, mode="L").convert("P")
        mask = root / "vkitti_2.0.3_instanceSegmentation/Scene01/clone/frames/instanceSegmentation/Camera_0"
        mask.mkdir(parents=True, exist_ok=True)
        png.save(mask / f"instancegt_{frame:05d}.png")
    return root


def test_hypersim_layout_labels_categories_and_cleaning(hypersim_root):
    source = HypersimSource(hypersim_root)
    assert len(source) == 5
    raw = source.raw(0)
    assert raw.image.shape == (H, W, 3) and raw.image.dtype == np.uint8
    assert raw.labels[0, 0] == 11 and raw.labels[0, 2] == 12 and raw.labels[0, W - 1] == 0  # id + 1, -1 -> 0
    assert raw.categories[11] == "lamp" and raw.categories[12] == "chair"
    clean = CleanSource(source, CleaningRules(min_objects=10), Geometry("square", size=16), "hypersim")
    # frame 1 has 3 objects, 2 and 3 have bad instance maps: the next usable image is index 4
    image, labels = clean.sample(1)
    assert image.shape == (3, 16, 16) and labels.shape == (16, 16)
    assert clean.skipped == {
        "fewer than 10 objects": 1,
        "missing instance map": 1,
        "instance map size differs from the image": 1,
    }
    assert torch.equal(clean.sample(4)[1], labels)
    clean.sample(2)  # counted once per image
    assert sum(clean.skipped.values()) == 3


def test_hypersim_split_csv_and_wrong_layout(hypersim_root, tmp_path):
    csv = tmp_path / "metadata_images_split_scene_v1.csv"
    csv.write_text(
        "scene_name,camera_name,frame_id,included_in_public_release,exclude_reason,split_partition_name\n"
        "ai_001_001,cam_00,0,True,,train\nai_001_001,cam_00,1,True,,val\nai_001_002,cam_01,2,True,,train\n"
    )
    assert HypersimSource(hypersim_root, csv).frames == [
        ("ai_001_001", "cam_00", 0),
        ("ai_001_002", "cam_01", 2),
    ]
    wrong = tmp_path / "flat"
    wrong.mkdir()
    (wrong / "frame.0000.color.hdf5").write_bytes(b"")
    with pytest.raises(InputError, match=r"expected ai_VVV_NNN/images/.*found frame\.0000\.color\.hdf5"):
        HypersimSource(wrong)
    with pytest.raises(InputError, match="no such folder"):
        HypersimSource(tmp_path / "absent")


def test_hypersim_tonemap_puts_the_90th_percentile_at_0_8():
    color = np.full((4, 4, 3), 3.7, dtype=np.float32)
    assert np.all(tonemap(color) == round(0.8 * 255))
    assert tonemap(np.zeros((2, 2, 3), np.float32)).max() == 0


def test_vkitti2_cars_only_background_unlabelled_and_sd_size(tmp_path):
    root = _vkitti_root(tmp_path)
    source = VirtualKitti2Source(root)
    raw = source.raw(1)
    assert raw.labels.shape == (375, 1242)
    assert raw.labels[0, 0] == -2 and raw.labels[120, 350] == 2 and raw.labels[200, 850] == 7
    assert raw.categories == {2: "car", 7: "car"}
    config = InstanceDataConfig(source="vkitti2", vkitti2_root=str(root))
    sd = build_instance_dataset(config, 32, backbone="sd")
    images, labels = sd.batch([0, 1])
    assert images.shape == (2, 3, 368, 1024) and labels.shape == (2, 368, 1024)
    assert set(torch.unique(labels).tolist()) == {-2, 1, 2, 7}
    crops = build_instance_dataset(config, 32, backbone="mae")
    images, labels = crops.batch([0])
    assert images.shape == (1, 3, 32, 32)
    again = build_instance_dataset(config, 32, backbone="mae").batch([0])[1]
    assert torch.equal(labels, again)  # the crop is a function of (seed, index)
    with pytest.raises(InputError, match="expected SceneSS/VARIATION/frames/rgb"):
        VirtualKitti2Source(tmp_path / "vkitti2" / "vkitti_2.0.3_instanceSegmentation")


def test_vkitti2_missing_or_missized_instance_png_is_skipped(tmp_path):
    root = _vkitti_root(tmp_path, frames=3, size=(40, 60))
    mask_dir = root / "vkitti_2.0.3_instanceSegmentation/Scene01/clone/frames/instanceSegmentation/Camera_0"
    (mask_dir / "instancegt_00000.png").unlink()
    Image.fromarray(np.zeros((10, 10), np.uint8)).convert("P").save(mask_dir / "instancegt_00001.png")
    clean = CleanSource(VirtualKitti2Source(root), CleaningRules(), Geometry("square", size=8), "vkitti2")
    clean.sample(0)
    assert clean.skipped == {"missing instance map": 1, "instance map size differs from the image": 1}


def test_clevrtex_layout(tmp_path):
    bucket = tmp_path / "clevrtex_full" / "0"
    bucket.mkdir(parents=True)
    Image.fromarray(np.full((24, 32, 4), 200, np.uint8)).save(bucket / "CLEVRTEX_full_000000.png")
    mask = np.zeros((24, 32), np.uint8)
    mask[2:8, 2:8], mask[10:20, 10:20] = 1, 3
    Image.fromarray(mask).convert("P").save(bucket / "CLEVRTEX_full_000000_flat.png")
    source = ClevrTexSource(tmp_path)
    assert len(source) == 1  # the _flat mask is not an image
    raw = source.raw(0)
    assert raw.image.shape == (24, 32, 3) and set(np.unique(raw.labels)) == {0, 1, 3}
    with pytest.raises(InputError, match="expected B/CLEVRTEX_VARIANT_NNNNNN.png"):
        ClevrTexSource(bucket.parent.parent / "nothing")


def _raw(categories):
    labels = np.zeros((10, 10), np.int64)
    labels[0:2, 0:2] = 1  # chair, box 4 px
    labels[5:7, 5:9] = 2  # lamp, box 8 px
    return RawSample(np.zeros((10, 10, 3), np.uint8), labels, categories)


def test_class_filter_ignores_boxes_of_other_categories_and_prunes():
    raw = _raw({1: "chair", 2: "lamp"})
    raw.labels[6, 6] = 0  # a hole inside the lamp's box is ignored too
    filtered = apply_class_filter(raw, CleaningRules(allowed=("Chair",)))
    assert np.all(filtered.labels[5:7, 5:9] == -1) and np.all(filtered.labels[0:2, 0:2] == 1)
    assert (filtered.labels == -1).sum() == 8 and raw.labels[5, 5] == 2  # the input is not modified
    with pytest.raises(SkipSample, match="no instance of an allowed"):
        apply_class_filter(raw, CleaningRules(allowed=("sofa",)))
    with pytest.raises(SkipSample, match="cover more than 5%"):
        apply_class_filter(raw, CleaningRules(allowed=("chair",), max_disallowed_fraction=0.05))
    assert apply_class_filter(raw, CleaningRules()) is raw


def test_coco_missing_image_is_skipped_and_class_filter_applies(tmp_path):
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "a.png")
    ann = {"segmentation": [[0, 0, 9, 0, 9, 9, 0, 9]], "area": 81.0, "bbox": [0, 0, 9, 9], "iscrowd": 0}
    coco = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": 20, "width": 20},
            {"id": 2, "file_name": "gone.png", "height": 20, "width": 20},
        ],
        "annotations": [
            dict(ann, id=1, image_id=1, category_id=1),
            dict(ann, id=2, image_id=2, category_id=1),
        ],
        "categories": [{"id": 1, "name": "dog"}],
    }
    (tmp_path / "c.json").write_text(json.dumps(coco))
    config = InstanceDataConfig(source="coco", coco_json=str(tmp_path / "c.json"), coco_images=str(tmp_path))
    data = build_instance_dataset(config, 16)
    images, labels = data.batch([1])
    assert images.shape == (1, 3, 16, 16) and data.skipped == {"missing or unreadable image": 1}
    filtered = build_instance_dataset(
        InstanceDataConfig(**{**config.to_dict(), "allowed_categories": ["cat"]}), 16
    )
    with pytest.raises(InputError, match="no usable image"):
        filtered.batch([0])


def test_geometry_modes():
    image, labels = np.zeros((30, 40, 3), np.uint8), np.arange(1200).reshape(30, 40)
    assert to_tensors(image, labels, Geometry("resize", height=12, width=20), 0)[1].shape == (12, 20)
    crop = to_tensors(image, labels, Geometry("crop", size=16, seed=3), 5)[1]
    assert crop.shape == (16, 16) and torch.all(crop[:, 1:] - crop[:, :-1] == 1)  # an unscaled window
    assert to_tensors(image, labels, Geometry("crop", size=64), 0)[0].shape == (3, 64, 64)  # scaled up first


def test_mix_draws_hypersim_90_percent_per_batch(hypersim_root, tmp_path):
    config = InstanceDataConfig(
        source="mix", hypersim_root=str(hypersim_root), vkitti2_root=str(_vkitti_root(tmp_path, 1, (40, 60)))
    )
    mixed = build_instance_dataset(config, 16, backbone="mae")
    draws = [mixed.choose([i]) for i in range(2000)]
    assert 0.87 < draws.count(0) / 2000 < 0.93
    with pytest.raises(InputError, match="needs vkitti2_root"):
        InstanceDataConfig(source="mix", hypersim_root="x")


def _train_config(tmp_path, data, **overrides):
    mae = dict(TINY_ARCHITECTURES["mae"]["mae"], num_hidden_layers=2)
    values = {
        "model": {"backbone": "mae", "image_size": 16, "architecture": {"mae": mae}},
        "data": data,
        "output_dir": str(tmp_path / "run"),
        "steps": 2,
        "batch_size": 2,
        "grad_accumulation": 1,
        "warmup_steps": 1,
        "save_every": 100,
    }
    return Gen2SegTrainConfig.from_dict({**values, **overrides})


def test_training_on_a_mix_reports_skips(hypersim_root, tmp_path):
    data = {
        "source": "mix",
        "hypersim_root": str(hypersim_root),
        "vkitti2_root": str(_vkitti_root(tmp_path, 1, (40, 60))),
        "mix_weights": [0.5, 0.5],
    }
    folder = Trainer(Gen2SegTask(_train_config(tmp_path, data)), cpu=True).fit()
    report = json.loads((folder / "data_report.json").read_text())
    assert set(report["skipped"]) == {"hypersim", "vkitti2"}


def test_trainable_layers_freezes_all_but_the_last_blocks(tmp_path):
    config = _train_config(tmp_path, {"source": "synth", "num_scenes": 2}, trainable_layers=1)
    network = Gen2SegTask(config).build_module().network
    decoder = network.mae.decoder
    trainable = {name for name, p in network.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("mae.decoder.") for n in trainable)
    last = len(decoder.decoder_layers) - 1
    assert all(p.requires_grad for p in decoder.decoder_layers[last].parameters())
    assert not any(p.requires_grad for p in network.mae.vit.parameters())
    with pytest.raises(InputError, match="blocks"):
        freeze_all_but_last(network, 99)


def _pseudo_fixture(tmp_path):
    from granseg.io.masks import encode_rle

    images, labels = tmp_path / "imgs", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(images / "a.png")
    big, small, part = (np.zeros((10, 12), bool) for _ in range(3))
    big[:6, :8], small[2:4, 2:4], part[:2, :2] = True, True, True
    anns = [
        {"id": 1, "segmentation": encode_rle(small), "area": 4, "is_part": False, "is_stuff": False},
        {"id": 2, "segmentation": encode_rle(big), "area": 48, "is_part": False, "is_stuff": True},
        {"id": 3, "segmentation": encode_rle(part), "area": 4, "is_part": True, "is_stuff": False},
    ]
    record = {"image": {"file_name": "a.png", "height": 10, "width": 12}, "annotations": anns}
    (labels / "a.json").write_text(json.dumps(record))
    (labels / "config.json").write_text("{}")
    return images, labels


def test_pseudo_label_source(tmp_path):
    from granseg.train.gen2seg_data.pseudo import PseudoLabelSource

    images, labels = _pseudo_fixture(tmp_path)
    raw = PseudoLabelSource(images, labels).raw(0)
    assert raw.labels[0, 0] == 1 and raw.labels[3, 3] == 2  # big painted first, the small one on top, no part
    assert raw.labels[9, 11] == -2 and raw.categories == {1: "stuff", 2: "object"}
    assert PseudoLabelSource(images, labels, background="labelled").raw(0).labels[9, 11] == 0
    no_stuff = PseudoLabelSource(images, labels, include_stuff=False).raw(0).labels
    assert no_stuff[0, 0] == -2 and no_stuff[3, 3] == 1
    with pytest.raises(InputError, match="expected <stem>.json files written by `granseg pseudo-label`"):
        PseudoLabelSource(images, images)
    config = InstanceDataConfig(source="pseudo", pseudo_images=str(images), pseudo_labels=str(labels))
    images_t, labels_t = build_instance_dataset(config, 8).batch([0])
    assert labels_t.shape == (1, 8, 8) and -2 in labels_t
    (images / "a.png").unlink()
    with pytest.raises(InputError, match="no usable image"):
        build_instance_dataset(config, 8).batch([0])


def test_sd_timestep_is_a_config_value_saved_with_the_model(tmp_path):
    import dataclasses

    from diffusers import DDPMScheduler

    from granseg.models.gen2seg import SD2_SCHEDULER, Gen2SegModel, build_network, load_gen2seg, tiny_config

    config = dataclasses.replace(tiny_config("sd", 32), sd_timestep=500)
    torch.manual_seed(0)
    network = build_network(config)
    assert network.timestep == 500
    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type")
    expected = DDPMScheduler(**{k: SD2_SCHEDULER[k] for k in keys}).alphas_cumprod[500]
    assert network.alpha_bar == pytest.approx(float(expected))
    default = build_network(tiny_config("sd", 32))
    assert default.timestep == 999 and default.alpha_bar < network.alpha_bar
    Gen2SegModel(config, network).save_pretrained(tmp_path / "m")
    loaded = load_gen2seg(tmp_path / "m")
    assert loaded.config.sd_timestep == 500 and loaded.network.timestep == 500
    with pytest.raises(InputError, match="sd_timestep"):
        dataclasses.replace(config, sd_timestep=1000)


def test_cli_train_on_a_wrong_layout_fails_at_start(tmp_path, capsys):
    from granseg.cli import main

    (tmp_path / "frames").mkdir()
    config = {
        "task": "gen2seg",
        "output_dir": str(tmp_path / "out"),
        "data": {"source": "vkitti2", "vkitti2_root": str(tmp_path)},
    }
    (tmp_path / "cfg.json").write_text(json.dumps(config))
    assert main(["train", "--config", str(tmp_path / "cfg.json"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: Virtual KITTI 2 root")
        and "expected SceneSS/" in err
        and "found cfg.json, frames/" in err
    )
    assert not (tmp_path / "out").exists()


def test_hypersim_category_is_the_majority_nyu40_class():
    from granseg.train.gen2seg_data.hypersim import _categories

    labels = np.array([[1, 1, 1, 4, 4, 0], [1, 7, 7, 4, 4, 0]])
    semantic = np.array([[5, 5, 35, -1, -1, 1], [5, -1, 0, -1, -1, 1]])
    assert _categories(labels, semantic) == {1: "chair", 4: "", 7: ""}
