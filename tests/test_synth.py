"""Synthetic hierarchical world: determinism, hierarchy consistency, granularity, class filters, I/O."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from granseg.errors import InputError
from granseg.io.masks import decode_rle
from granseg.regions.granularity import granularity_from_areas
from granseg.synth import (
    LEVELS,
    SHAPE_CLASSES,
    TEXTURE_CLASSES,
    SynthConfig,
    generate_scene,
    generate_scenes,
    load_scene,
    save_scene,
)

SMALL = SynthConfig(size=96)
SEEDS = range(12)


def _scenes(config=SMALL, seeds=SEEDS):
    return list(generate_scenes(seeds, config))


def test_same_seed_gives_identical_bytes_and_different_seeds_differ():
    first, again, other = generate_scene(7, SMALL), generate_scene(7, SMALL), generate_scene(8, SMALL)
    assert first.image.tobytes() == again.image.tobytes()
    assert [n.id for n in first.nodes] == [n.id for n in again.nodes]
    for a, b in zip(first.nodes, again.nodes):
        assert a.mask.tobytes() == b.mask.tobytes()
        assert (a.parent, a.level, a.granularity, a.shape, a.texture) == (
            b.parent,
            b.level,
            b.granularity,
            b.shape,
            b.texture,
        )
    assert first.image.tobytes() != other.image.tobytes()


def test_image_and_sizes():
    scene = generate_scene(0, SynthConfig(size=(64, 96)))
    assert scene.image.shape == (64, 96, 3) and scene.image.dtype == np.uint8
    assert all(n.mask.shape == (64, 96) and n.mask.dtype == bool for n in scene.nodes)


@pytest.mark.parametrize("occlusion", [True, False])
def test_hierarchy_is_consistent(occlusion):
    config = SynthConfig(size=96, occlusion=occlusion, min_node_area=4)
    for scene in _scenes(config):
        ids = [n.id for n in scene.nodes]
        assert ids == sorted(set(ids)) and ids[0] >= 1
        assert scene.objects(), "every scene keeps at least one object"
        for node in scene.nodes:
            assert node.area >= config.min_node_area
            assert node.level in LEVELS
            if node.level == "object":
                assert node.parent is None and node.object_id == node.id
            else:
                parent = scene.node(node.parent)
                assert LEVELS.index(parent.level) == LEVELS.index(node.level) - 1
                assert node.object_id == parent.object_id
                assert not (node.mask & ~parent.mask).any(), "child leaks out of its parent"
            kids = scene.children(node.id)
            for i, a in enumerate(kids):
                for b in kids[i + 1 :]:
                    assert not (a.mask & b.mask).any(), "siblings overlap"
        objects = scene.objects()
        coverage = np.sum([o.mask for o in objects], axis=0)
        assert coverage.max() <= 1, "objects overlap"
        if not occlusion:
            grown = [cv2.dilate(o.mask.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool) for o in objects]
            for i, a in enumerate(grown):
                for o in objects[i + 1 :]:
                    assert not (a & o.mask).any(), "objects touch although occlusion is off"


def test_parts_tile_their_object_when_nothing_is_dropped():
    config = SynthConfig(size=96, min_node_area=1)
    for scene in _scenes(config):
        for obj in scene.objects():
            parts = scene.children(obj.id)
            assert parts, "an object always has at least one part"
            assert np.array_equal(np.logical_or.reduce([p.mask for p in parts]), obj.mask)
            assert all(p.level == "part" for p in parts)


def test_occlusion_flag_controls_hidden_pixels():
    crowded = {"size": 96, "num_objects": (4, 4), "object_scale": (0.25, 0.3), "min_node_area": 1}
    occluded = [o.visible_fraction for s in _scenes(SynthConfig(**crowded), range(6)) for o in s.objects()]
    assert min(occluded) < 0.9, "big crowded objects should hide parts of each other"
    assert all(0 < f <= 1 for f in occluded)
    apart = [
        o.visible_fraction
        for s in _scenes(SynthConfig(**crowded, occlusion=False), range(6))
        for o in s.objects()
    ]
    assert apart and all(f == 1.0 for f in apart)


def test_label_maps_match_masks():
    for scene in _scenes(seeds=range(4)):
        for level in LEVELS:
            labels = scene.label_map(level)
            assert labels.dtype == np.int32 and labels.shape == scene.hw
            nodes = [n for n in scene.nodes if n.level == level]
            assert set(np.unique(labels)) - {0} == {n.id for n in nodes}
            for node in nodes:
                assert np.array_equal(labels == node.id, node.mask)
        x, y = scene.objects()[0].point_inside()
        assert scene.node_at(x, y, "object").id == scene.objects()[0].id
        for part in scene.level_nodes("part"):
            own = scene.own_mask(part.id)
            assert not (own & ~part.mask).any()
            assert not any((own & c.mask).any() for c in scene.children(part.id))
            assert own.sum() + sum(c.area for c in scene.children(part.id)) == part.area
    with pytest.raises(ValueError):
        scene.label_map("pixel")


def test_granularity_formula():
    assert np.allclose(granularity_from_areas([100, 25]), [1.0, 0.1])
    assert np.allclose(granularity_from_areas([25, 100, 49]), [0.1, 1.0, 0.1 + 0.9 * 2 / 5])
    assert np.allclose(granularity_from_areas([40]), [1.0])
    assert np.allclose(granularity_from_areas([9, 9]), [1.0, 1.0])
    assert granularity_from_areas([]).shape == (0,)
    with pytest.raises(ValueError):
        granularity_from_areas([-1, 4])


def test_scene_granularity_follows_sqrt_area_rule_per_object():
    for scene in _scenes():
        for obj in scene.objects():
            nodes = scene.hierarchy(obj.id)
            g = np.array([n.granularity for n in nodes])
            assert np.all((g >= 0.1 - 1e-9) & (g <= 1.0 + 1e-9))
            assert obj.granularity == pytest.approx(1.0)
            areas = np.array([n.area for n in nodes])
            assert np.allclose(g, granularity_from_areas(areas))
            if len(nodes) > 1 and areas.min() < areas.max():
                assert g[int(np.argmin(areas))] == pytest.approx(0.1)
            # a finer level never gets a larger granularity than its parent
            for node in nodes[1:]:
                assert node.granularity <= scene.node(node.parent).granularity + 1e-9


def test_object_without_parts_gets_granularity_one():
    # one part covering the whole object is the degenerate hierarchy: nothing to normalise against
    config = SynthConfig(size=64, parts_per_object=(1, 1), subparts_per_part=(0, 0), min_node_area=1)
    for scene in _scenes(config, range(4)):
        assert all(n.granularity == pytest.approx(1.0) for n in scene.nodes)


def test_class_filters_are_respected():
    config = SynthConfig(size=96, shape_classes=("star", "rectangle"), texture_classes=("stripes",))
    shapes, textures = set(), set()
    for scene in _scenes(config):
        shapes |= {n.shape for n in scene.nodes}
        textures |= {n.texture for n in scene.nodes if n.level != "object"}
    assert shapes <= {"star", "rectangle"} and textures == {"stripes"}
    assert {n.texture for s in _scenes(config, range(3)) for n in s.objects()} == {""}
    everything = {n.shape for s in _scenes(SynthConfig(size=96), range(30)) for n in s.nodes}
    assert everything == set(SHAPE_CLASSES), "the default config draws every shape family"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape_classes": ("hexagon",)},
        {"texture_classes": ()},
        {"size": 8},
        {"num_objects": (3, 1)},
        {"noise_sigma": -1.0},
        {"min_node_area": 0},
    ],
)
def test_bad_config_is_an_input_error(kwargs):
    with pytest.raises(InputError):
        SynthConfig(**kwargs)


def test_config_json_round_trip(tmp_path):
    config = SynthConfig(
        size=(80, 112),
        num_objects=(2, 3),
        occlusion=False,
        noise_sigma=1.5,
        shape_classes=("blob", "ellipse"),
        texture_classes=("checker", "dots"),
    )
    path = tmp_path / "synth.json"
    config.to_json(path)
    loaded = SynthConfig.from_json(path)
    assert loaded == config
    assert generate_scene(3, loaded).image.tobytes() == generate_scene(3, config).image.tobytes()
    assert set(TEXTURE_CLASSES) >= set(loaded.texture_classes)


def test_noise_is_additive_and_leaves_masks_alone():
    clean = generate_scene(5, SynthConfig(size=96, noise_sigma=0.0))
    noisy = generate_scene(5, SynthConfig(size=96, noise_sigma=4.0))
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(clean.nodes, noisy.nodes))
    diff = noisy.image.astype(float) - clean.image.astype(float)
    assert 0 < np.abs(diff).mean() < 6 and abs(diff.mean()) < 0.5


def test_sibling_parts_are_visually_distinct():
    # painted mean colours of sibling parts differ by >= 0.12 RGB (x255 ~ 31) before occlusion; measured on the
    # clean image over the parts' own pixels (sub-parts excluded), the bulk of adjacent pairs stays well apart
    distances = []
    for scene in _scenes(SynthConfig(size=128, noise_sigma=0.0), range(20)):
        image = scene.image.astype(float)
        for obj in scene.objects():
            parts = scene.children(obj.id)
            own = [
                p.mask & ~np.logical_or.reduce([p.mask & False, *(c.mask for c in scene.children(p.id))])
                for p in parts
            ]
            for i in range(len(parts)):
                for j in range(i + 1, len(parts)):
                    if own[i].sum() >= 16 and own[j].sum() >= 16:
                        distances.append(np.linalg.norm(image[own[i]].mean(0) - image[own[j]].mean(0)))
    assert len(distances) > 20
    assert np.median(distances) > 60 and np.percentile(distances, 10) > 25


def test_records_and_save_load_round_trip(tmp_path):
    scene = generate_scene(2, SMALL)
    records = scene.to_records()
    assert [r["id"] for r in records] == [n.id for n in scene.nodes]
    for record, node in zip(records, scene.nodes):
        assert np.array_equal(decode_rle(record["segmentation"]).astype(bool), node.mask)
        assert (
            record["area"] == node.area and record["level"] == node.level and record["parent"] == node.parent
        )
        assert record["granularity"] == pytest.approx(node.granularity, abs=1e-4)
        assert record["visible_fraction"] == pytest.approx(node.visible_fraction, abs=1e-4)
    image_path, json_path = save_scene(scene, tmp_path / "out")
    assert image_path.is_file() and json.loads(json_path.read_text())["seed"] == 2
    loaded = load_scene(json_path)
    assert np.array_equal(loaded.image, scene.image)
    assert loaded.config == scene.config
    assert [(n.id, n.parent, n.level) for n in loaded.nodes] == [
        (n.id, n.parent, n.level) for n in scene.nodes
    ]
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(loaded.nodes, scene.nodes))


def test_bad_seed_is_an_input_error():
    with pytest.raises(InputError):
        generate_scene(-1, SMALL)


def test_generate_scenes_accepts_a_count_or_seeds():
    assert [s.seed for s in generate_scenes(3, SMALL)] == [0, 1, 2]
    assert [s.seed for s in generate_scenes([5, 9], SMALL)] == [5, 9]
