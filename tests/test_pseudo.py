"""Pseudo-label engine: normalised cut, keep rules, merging hierarchy, features, config checks (the pipeline's
JSON, resume, kill, bad images and Dask tests are in tests/test_pseudo_pipeline.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pseudo_helpers import FAST

from granseg.pseudo.conquer import conquer, merge_graph, merge_hierarchy, nms_with_protected, superpixel_graph
from granseg.pseudo.divide import (
    DivideMask,
    load_external_masks,
    maskcut,
    merge_regions,
    ncut_bipartition,
    second_eigenvector,
    select_instances,
    stuff_regions,
)
from granseg.pseudo.features import ClassicalFeatures, DinoFeatures, load_dino
from granseg.pseudo.pipeline import PseudoLabelConfig


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


# ----------------------------------------------------------------------------------------------- divide
def test_second_eigenvector_splits_a_two_block_affinity():
    rng = np.random.default_rng(0)
    n = 40
    affinity = np.full((n, n), 0.02) + 0.01 * rng.random((n, n))
    affinity[:15, :15] = 1.0
    affinity[15:, 15:] = 1.0
    affinity = (affinity + affinity.T) / 2
    vector, value = second_eigenvector(affinity)
    side = vector > vector.mean()
    assert len(set(side[:15].tolist())) == 1 and len(set(side[15:].tolist())) == 1
    assert side[0] != side[-1]
    assert 0 <= value < 0.2  # a near-perfect cut has a small normalised-cut value


def test_ncut_finds_the_object_not_the_background_and_maskcut_finds_both():
    h, w = 16, 16
    rng = np.random.default_rng(1)
    grid = np.tile(_unit([1, 0, 0, 0]), (h, w, 1))
    grid[3:8, 3:9] = _unit([0, 1, 0, 0])  # object 1 (30 patches)
    grid[10:14, 9:14] = _unit([0, 0, 1, 0])  # object 2 (20 patches)
    grid = grid + 0.05 * rng.standard_normal(grid.shape)
    grid /= np.linalg.norm(grid, axis=-1, keepdims=True)
    foreground, confidence = ncut_bipartition(grid, tau=0.5)
    truth1 = np.zeros((h, w), bool)
    truth1[3:8, 3:9] = True
    truth2 = np.zeros((h, w), bool)
    truth2[10:14, 9:14] = True
    assert (foreground == truth1).all() or (foreground == truth2).all()  # an object, never the background
    assert confidence > 0.3
    found = [m for m, _ in maskcut(grid, num_masks=3, tau=0.5, split_depth=0)]
    assert any((m == truth1).all() for m in found) and any((m == truth2).all() for m in found)


def test_keep_rules_instances_parts_and_drops():
    size = 100
    big = np.zeros((size, size), bool)
    big[10:70, 10:70] = True  # 36%
    part = np.zeros((size, size), bool)
    part[20:40, 20:40] = True  # inside big
    mostly_inside = np.zeros((size, size), bool)
    mostly_inside[50:76, 30:50] = True  # 77% inside big (20 of 26 rows), 5.2% of the image: an instance
    tiny = np.zeros((size, size), bool)
    tiny[85:90, 5:10] = True  # 0.25%, outside: dropped
    other = np.zeros((size, size), bool)
    other[75:100, 75:100] = True  # 6.25%: instance
    unsure = np.zeros((size, size), bool)
    unsure[0:50, 80:100] = True  # confident enough? no -> dropped
    candidates = [
        DivideMask(part, 0.9),
        DivideMask(big, 0.8),
        DivideMask(tiny, 0.9),
        DivideMask(other, 0.5),
        DivideMask(unsure, 0.2),
        DivideMask(mostly_inside, 0.7),
    ]
    instances = select_instances(candidates, min_confidence=0.3, min_area_frac=0.05, containment=0.8)
    assert [int(i.mask.sum()) for i in instances] == [3600, 625, 520]
    assert len(instances[0].parts) == 1 and (instances[0].parts[0].mask == part).all()
    assert all(not i.parts for i in instances[1:])


def test_external_masks_from_coco_json(tmp_path):
    from granseg.io import encode_rle

    mask = np.zeros((40, 60), bool)
    mask[5:30, 10:50] = True
    coco = {
        "images": [{"id": 7, "file_name": "a.jpg", "height": 40, "width": 60}],
        "annotations": [
            {"image_id": 7, "segmentation": encode_rle(mask)},
            {"image_id": 7, "segmentation": [[0, 0, 9, 0, 9, 9, 0, 9]]},
            {"image_id": 8, "segmentation": encode_rle(~mask)},
        ],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(coco))
    masks = load_external_masks(path, "a.jpg", 80, 120)  # resized to the working size
    assert len(masks) == 2 and masks[0].mask.shape == (80, 120)
    assert masks[0].mask.sum() == 4 * mask.sum() and masks[0].source == "external"


# ----------------------------------------------------------------------------------------------- conquer
def _four_quadrant_grid():
    """8 x 8 grid: quadrants A, B (top) with cos(A, B) = 0.85, C, D (bottom) likewise; top vs bottom sums have
    cosine 0.55. Expected: theta 0.9 -> the 4 quadrants; 0.8 -> the 2 halves; 0.5 -> one cluster (no neighbour,
    not emitted)."""
    a = np.sqrt(0.15 / 1.85)
    g1 = np.array([1.0, 0, 0, 0])
    g2 = np.array([0.55, np.sqrt(1 - 0.55**2), 0, 0])
    e5, e6 = np.eye(6)[4], np.eye(6)[5]
    pad = np.zeros(2)
    quads = {
        "A": _unit(np.concatenate([g1, pad]) + a * e5),
        "B": _unit(np.concatenate([g1, pad]) - a * e5),
        "C": _unit(np.concatenate([g2, pad]) + a * e6),
        "D": _unit(np.concatenate([g2, pad]) - a * e6),
    }
    grid = np.zeros((8, 8, 6))
    grid[:4, :4], grid[:4, 4:], grid[4:, :4], grid[4:, 4:] = quads["A"], quads["B"], quads["C"], quads["D"]
    return grid


def _masks(level):
    return sorted([tuple(np.flatnonzero(level.labels.reshape(-1) == c)) for c in level.emitted])


def test_merging_builds_the_expected_hierarchy():
    grid = _four_quadrant_grid()
    levels = merge_hierarchy(grid, thetas=(0.9, 0.8, 0.7, 0.6, 0.5), min_patches=4)
    assert [lv.theta for lv in levels] == [0.9, 0.8, 0.7, 0.6, 0.5]
    index = np.arange(64).reshape(8, 8)
    quadrants = sorted(
        tuple(np.sort(index[r, c].ravel()))
        for r, c in [
            (slice(0, 4), slice(0, 4)),
            (slice(0, 4), slice(4, 8)),
            (slice(4, 8), slice(0, 4)),
            (slice(4, 8), slice(4, 8)),
        ]
    )
    halves = sorted([tuple(index[:4].ravel()), tuple(index[4:].ravel())])
    assert _masks(levels[0]) == quadrants
    assert len(np.unique(levels[0].labels)) == 4
    assert _masks(levels[1]) == halves
    assert _masks(levels[2]) == [] and _masks(levels[3]) == []  # unchanged clusters are emitted once
    assert len(np.unique(levels[4].labels)) == 1 and _masks(levels[4]) == []  # no neighbour left


def test_merging_respects_min_patches_and_adjacency():
    grid = np.tile(_unit([1, 0, 0]), (6, 6, 1))
    grid[0, 0] = _unit([0, 1, 0])  # a 1-patch island: never emitted (< 4 patches)
    grid[5, 5] = _unit([0, 1, 0])  # same feature, not adjacent: must not merge with the other island
    levels = merge_hierarchy(grid, thetas=(0.9,), min_patches=4)
    labels = levels[0].labels
    assert labels[0, 0] != labels[5, 5]
    assert len(np.unique(labels)) == 3
    assert [int((labels == c).sum()) for c in levels[0].emitted] == [34]


def test_nms_protects_the_instance():
    inst = np.zeros((1, 20, 20), bool)
    inst[0, 2:18, 2:18] = True
    near_copy = inst[0].copy()
    near_copy[2, 2] = False
    small = np.zeros((20, 20), bool)
    small[4:8, 4:8] = True
    small2 = small.copy()
    small2[8, 4] = True
    kept = nms_with_protected(np.stack([near_copy, small, small2]), inst, iou_threshold=0.8)
    assert kept.tolist() == [1]


def test_conquer_finds_parts_inside_the_instance():
    image = np.full((96, 96, 3), 40, np.uint8)
    image[16:80, 16:80] = (200, 30, 30)  # instance
    image[24:48, 24:72] = (30, 30, 200)  # a part
    instance = np.zeros((96, 96), bool)
    instance[16:80, 16:80] = True
    part = np.zeros((96, 96), bool)
    part[24:48, 24:72] = True
    found = conquer(image, instance, ClassicalFeatures(patch_size=4), long_side=64)
    assert found, "no part found"
    ious = [(m.mask & part).sum() / (m.mask | part).sum() for m in found]
    assert max(ious) > 0.7
    assert all((m.mask & ~instance).sum() == 0 for m in found)  # clipped to the instance


def test_superpixel_graph_units_sums_and_edges():
    superpixels = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    inside = np.ones((4, 4), bool)
    inside[3, 3] = False  # superpixel 3 keeps 3 pixels
    inside[:, 0] = inside[0, :] = False  # superpixel 0 keeps 1 pixel, 1 and 2 keep 2
    patch_of_pixel = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]])
    patch_features = np.array([[1.0, 0.0], [0.0, 1.0]])
    unit_map, sums, sizes, edges = superpixel_graph(superpixels, inside, patch_of_pixel, patch_features)
    assert (unit_map == -1).sum() == 8 and unit_map[1, 1] == 0 and unit_map[3, 2] == 3
    assert sizes.tolist() == [1, 2, 2, 3]
    np.testing.assert_allclose(sums, [[1, 0], [0, 2], [2, 0], [0, 3]])
    assert sorted(map(tuple, edges.tolist())) == [(0, 1), (0, 2), (1, 3), (2, 3)]
    levels = merge_graph(sums, edges, sizes, thetas=(0.9,), min_size=2)
    labels = levels[0].labels
    assert labels[0] == labels[2] != labels[1] == labels[3]  # same feature, adjacent: merged
    assert levels[0].emitted == sorted({int(labels[0]), int(labels[1])})


def test_conquer_from_superpixels_follows_edges_off_the_patch_grid():
    image = np.full((96, 96, 3), 40, np.uint8)
    image[16:80, 16:80] = (200, 30, 30)  # instance
    image[27:45, 23:69] = (30, 30, 200)  # a part whose edges are off the 4 px patch grid
    instance = np.zeros((96, 96), bool)
    instance[16:80, 16:80] = True
    part = np.zeros((96, 96), bool)
    part[27:45, 23:69] = True
    region = np.zeros((96, 96), np.int64)  # superpixels: 6 x 6 px blocks, split along the part's edges
    region += (np.arange(96)[:, None] // 6) * 100 + np.arange(96)[None, :] // 6
    region = region * 2 + part
    features = ClassicalFeatures(patch_size=4)
    found = conquer(image, instance, features, long_side=64, superpixel_labels=region)
    best = max((m.mask & part).sum() / (m.mask | part).sum() for m in found)
    assert best > 0.97, best  # exact up to the superpixels; the patch version is blocky
    assert all((m.mask & ~instance).sum() == 0 for m in found)
    patch_best = max(
        (m.mask & part).sum() / (m.mask | part).sum()
        for m in conquer(image, instance, features, long_side=64)
    )
    assert best > patch_best


def test_stuff_regions_cover_what_instances_leave():
    h = w = 12
    features = np.zeros((h, w, 3))
    features[:, :6] = _unit([1, 0, 0])  # left background
    features[:, 6:] = _unit([0, 1, 0])  # right background
    features[4:8, 4:8] = _unit([0, 0, 1])  # the instance
    covered = np.zeros((48, 48), bool)
    covered[16:32, 16:32] = True
    regions = stuff_regions(features, covered, theta=0.5, min_area_frac=0.05)
    assert len(regions) == 2 and all(r.source == "stuff" and 0 <= r.score <= 1 for r in regions)
    union = np.zeros_like(covered)
    for region in regions:
        assert not (region.mask & covered).any()
        union |= region.mask
    assert (union == ~covered).all()
    left = next(r for r in regions if r.mask[0, 0])
    assert left.mask[:, :24].sum() == left.mask.sum() and left.score > 0.3
    tiny = covered.copy()
    tiny[:] = True
    tiny[0, 0] = False  # one uncovered pixel: below min_area_frac, no stuff
    assert stuff_regions(features, tiny, 0.5, 0.05) == []
    with_superpixels = stuff_regions(
        features, covered, 0.5, 0.05, superpixel_labels=np.arange(48)[None, :] // 3 + 0 * covered
    )
    assert len(with_superpixels) == 2


def test_pipeline_stuff_pass_marks_and_covers_the_background():
    from granseg.pseudo.pipeline import pseudo_label_image

    image = np.zeros((96, 96, 3), np.uint8)
    image[:48] = (120, 160, 220)  # sky
    image[48:] = (90, 140, 60)  # grass
    image[30:66, 36:60] = (200, 40, 40)  # an object across both
    base = dict(FAST, refine_segments=0, conquer_superpixels=0, region_thetas=())  # no region proposals
    masks, fields = pseudo_label_image(image, PseudoLabelConfig(**base, stuff_theta=0.0))
    assert not any(f["is_stuff"] for f in fields)
    masks, fields = pseudo_label_image(image, PseudoLabelConfig(**base, stuff_theta=0.5))
    stuff_roots = [i for i, f in enumerate(fields) if f["is_stuff"] and not f["is_part"]]
    assert stuff_roots, "no stuff instance"
    assert all(fields[i]["is_divide"] and fields[i]["granularity"] == 1.0 for i in stuff_roots)
    ids = {fields[i]["instance_id"] for i in stuff_roots}
    assert all(f["is_stuff"] == (f["instance_id"] in ids) for f in fields)  # their parts are stuff too
    roots = [i for i, f in enumerate(fields) if not f["is_part"]]
    union = np.any(masks[roots], axis=0)
    assert union.mean() > 0.95  # instances + stuff cover (nearly) the whole image


def test_merge_regions_propose_the_hierarchy_top_levels_once():
    h = w = 12
    features = np.zeros((h, w, 3))
    features[:, :6] = _unit([1, 0, 0])
    features[:, 6:] = _unit([0.8, 0.6, 0])  # cosine 0.8 with the left half
    features[4:8, 2:5] = _unit([0, 0, 1])  # an object inside the left half
    regions = merge_regions(features, (48, 48), thetas=(0.9, 0.7, 0.5), min_area_frac=0.05)
    assert all(r.source == "merge" and 0 <= r.score <= 1 for r in regions)
    keys = [r.mask.tobytes() for r in regions]
    assert len(set(keys)) == len(keys)  # a region unchanged between thetas is proposed once
    object_mask = np.zeros((48, 48), bool)
    object_mask[16:32, 8:20] = True
    left = np.zeros((48, 48), bool)
    left[:, :24] = True
    assert any((r.mask == object_mask).all() for r in regions)  # at every theta: its own cluster
    assert any((r.mask == left & ~object_mask).all() for r in regions)  # theta 0.9: the halves apart
    assert any(r.mask.all() for r in regions) is False  # the object never merges (cosine 0 < 0.5)
    assert any((r.mask == ~object_mask).all() for r in regions)  # theta 0.7: the two halves together


def test_pipeline_region_proposals_recover_an_instance_that_cuts_miss(monkeypatch):
    import granseg.pseudo.divide as divide_module
    from granseg.pseudo.pipeline import pseudo_label_image

    monkeypatch.setattr(divide_module, "divide", lambda *args, **kwargs: [])  # MaskCut finds nothing
    image = np.zeros((96, 96, 3), np.uint8)
    image[:] = (120, 160, 220)
    image[24:56, 24:56] = (200, 40, 40)
    square = np.zeros((96, 96), bool)
    square[24:56, 24:56] = True
    base = dict(FAST, refine_segments=0, stuff_theta=0.0)
    masks, fields = pseudo_label_image(image, PseudoLabelConfig(**base, region_thetas=()))
    assert len(fields) == 0
    masks, fields = pseudo_label_image(image, PseudoLabelConfig(**base, region_thetas=(0.3,)))
    roots = masks[[i for i, f in enumerate(fields) if not f["is_part"]]]
    iou = (roots & square).sum(axis=(1, 2)) / (roots | square).sum(axis=(1, 2))
    assert iou.max() > 0.9 and not any(f["is_stuff"] for f in fields)


@pytest.mark.parametrize("kind", ["flat", "noise"])
def test_featureless_image_gets_one_stuff_mask_and_no_parts(kind):
    from granseg.pseudo.pipeline import pseudo_label_image

    rng = np.random.default_rng(0)
    image = np.full((120, 160, 3), 90, np.uint8)
    if kind == "noise":  # sensor noise only: standardising it would turn noise into "texture"
        image = np.clip(rng.normal(90, 3, image.shape), 0, 255).astype(np.uint8)
    config = dict(FAST, refine_segments=0)
    masks, fields = pseudo_label_image(image, PseudoLabelConfig(**config))
    assert len(fields) == 1 and masks[0].all()
    assert fields[0]["is_stuff"] and not fields[0]["is_part"] and fields[0]["score"] == 0.0
    masks, fields = pseudo_label_image(image, PseudoLabelConfig(**config, stuff_theta=0.0))
    assert len(fields) == 0 and masks.shape == (0, 120, 160)
    masks, fields = pseudo_label_image(image, PseudoLabelConfig(**config, featureless_spread=0.0))
    assert len(fields) > 1  # the rule off: the position prior alone cuts the image into parts


def test_classical_features_report_appearance_spread_and_conquer_skips_featureless_crops():
    extractor = ClassicalFeatures(patch_size=8, position_weight=0.25)
    flat = np.full((64, 64, 3), 200, np.uint8)
    assert extractor.extract(flat).appearance_spread < 0.1
    two = flat.copy()
    two[:, 32:] = (20, 90, 30)
    assert extractor.extract(two).appearance_spread > 10
    whole = np.ones((64, 64), bool)
    assert conquer(flat, whole, extractor, long_side=64, featureless_spread=1.0) == []
    assert conquer(flat, whole, extractor, long_side=64, featureless_spread=0.0)  # position-only parts
    assert conquer(two, whole, extractor, long_side=64, featureless_spread=1.0)


# ----------------------------------------------------------------------------------------------- features
def test_classical_features_shape_and_norm():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (70, 53, 3), dtype=np.uint8)
    out = ClassicalFeatures(patch_size=8).extract(image)
    assert out.features.shape[:2] == (8, 6) and out.patch_size == 8
    np.testing.assert_allclose(np.linalg.norm(out.features, axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("family", ["dinov2", "dinov2_reg", "dinov3"])
def test_dino_features_tiny_random_configs(family, tmp_path):
    import torch
    from transformers import (
        Dinov2Config,
        Dinov2Model,
        Dinov2WithRegistersConfig,
        Dinov2WithRegistersModel,
        DINOv3ViTConfig,
        DINOv3ViTModel,
    )

    torch.manual_seed(0)
    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    if family == "dinov2":
        model, patch, registers = Dinov2Model(Dinov2Config(patch_size=14, image_size=56, **small)), 14, 0
    elif family == "dinov2_reg":
        config = Dinov2WithRegistersConfig(patch_size=14, image_size=56, num_register_tokens=4, **small)
        model, patch, registers = Dinov2WithRegistersModel(config), 14, 4
    else:
        config = DINOv3ViTConfig(patch_size=16, image_size=64, num_register_tokens=4, **small)
        model, patch, registers = DINOv3ViTModel(config), 16, 4
    extractor = DinoFeatures(model)
    assert extractor.patch_size == patch and extractor.num_registers == registers
    image = np.random.default_rng(0).integers(0, 255, (5 * patch + 3, 3 * patch, 3), dtype=np.uint8)
    out = extractor.extract(image)
    assert out.features.shape == (5, 3, 32)
    np.testing.assert_allclose(np.linalg.norm(out.features, axis=-1), 1.0, atol=1e-5)
    # the patch tokens are the model's own, CLS/registers dropped
    pixels = torch.from_numpy(image[: 5 * patch]).permute(2, 0, 1)[None].float() / 255
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    pixels = (pixels - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    with torch.inference_mode():
        tokens = model(pixel_values=pixels).last_hidden_state[0, 1 + registers :]
    expected = torch.nn.functional.normalize(tokens, dim=-1).reshape(5, 3, -1).numpy()
    np.testing.assert_allclose(out.features, expected, atol=1e-5)
    # a saved local directory loads offline
    model.save_pretrained(tmp_path / "dino")
    loaded = load_dino(str(tmp_path / "dino"))
    np.testing.assert_allclose(loaded.extract(image).features, out.features, atol=1e-5)


def test_missing_dino_weights_give_a_clear_error(monkeypatch, tmp_path):
    from granseg.errors import CheckpointError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(CheckpointError, match="not available locally"):
        load_dino("dinov3-vitb16")


@pytest.mark.parametrize(
    "field, value",
    [
        ("conquer_superpixels", -1),
        ("refine_segments", -5),
        ("superpixel_long_side", 0),
        ("stuff_theta", 1.5),
        ("region_thetas", (0.3, 1.5)),
        ("featureless_spread", -1.0),
    ],
)
def test_new_engine_fields_are_validated(field, value):
    from granseg.errors import InputError

    with pytest.raises(InputError, match=field):
        PseudoLabelConfig(**{field: value}).validate()


def test_parts_are_clipped_to_their_instance_after_refinement():
    from granseg.pseudo.pipeline import _clip_parts_to_instances

    stack = np.zeros((3, 8, 8), bool)
    stack[0, :4] = True  # the instance
    stack[1, 2:6] = True  # a divide part that leaks past it
    stack[2, 6:] = True  # a part outside it entirely: kept as it was (never emptied)
    fields = [{"instance_id": 1, "is_part": p} for p in (False, True, True)]
    clipped = _clip_parts_to_instances(stack.copy(), fields)
    assert (clipped[1] == (stack[1] & stack[0])).all() and (clipped[0] == stack[0]).all()
    assert (clipped[2] == stack[2]).all()
