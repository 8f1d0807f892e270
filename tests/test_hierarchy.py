"""Tests of the weight-free ``hierarchy`` model (granseg.predict.hierarchy over granseg.regions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from granseg.predict.hierarchy import HierarchyConfig, HierarchyPredictor, build_hierarchy

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def toy_image(seed: int = 0) -> np.ndarray:
    """160 x 200 RGB: noisy beige background; a dark blue body (rows 30..130, cols 30..120) holding a violet part
    (rows 50..90, cols 45..85; closer in colour to the body than the body is to the background, as parts
    usually are); a separate green disc centred at (x=165, y=80), radius 22."""
    rng = np.random.default_rng(seed)
    image = np.full((160, 200, 3), (220, 215, 190), np.float64)
    image[30:130, 30:120] = (30, 40, 150)
    image[50:90, 45:85] = (120, 60, 190)
    yy, xx = np.mgrid[:160, :200]
    image[(yy - 80) ** 2 + (xx - 165) ** 2 <= 22**2] = (40, 190, 60)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


BODY = (slice(30, 130), slice(30, 120))
PART = (slice(50, 90), slice(45, 85))


@pytest.fixture(scope="module")
def predictor() -> HierarchyPredictor:
    model = build_hierarchy(device="cpu")
    pred = model.create_predictor()
    pred.set_image(toy_image())
    return pred


def box_mask(sl, shape=(160, 200)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[sl] = True
    return mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_registry_builds_the_model():
    from granseg.models.registry import load_model

    model = load_model("hierarchy", device="cpu")
    assert model.name == "hierarchy"
    assert isinstance(model.create_predictor(), HierarchyPredictor)


def test_config_round_trip_and_overrides(tmp_path):
    model = build_hierarchy(device="cpu", n_superpixels=300, refine=False)
    assert model.config.n_superpixels == 300 and model.config.refine is False
    path = tmp_path / "hierarchy.json"
    model.config.to_json(path)
    assert HierarchyConfig.from_json(path) == model.config


def test_all_gives_ten_original_size_bool_masks(predictor):
    prediction = predictor.predict([[65, 70]], [1], granularity="all")
    assert prediction.masks.shape == (10, 160, 200)
    assert prediction.masks.dtype == bool
    assert np.allclose(prediction.granularity, np.arange(1, 11) / 10)
    assert prediction.scores.shape == (10,)
    assert np.all((prediction.scores >= 0) & (prediction.scores <= 1))


def test_part_at_small_g_object_at_large_g_and_monotone(predictor):
    prediction = predictor.predict([[65, 70]], [1], granularity="all")
    masks = prediction.masks
    for smaller, larger in zip(masks[:-1], masks[1:]):
        assert not (smaller & ~larger).any(), "mask at larger g must contain the mask at smaller g"
    assert max(iou(m, box_mask(PART)) for m in masks[:3]) > 0.8, "the part at some g <= 0.3"
    assert iou(masks[-1], box_mask(BODY)) > 0.8


def test_unrefined_levels_walk_the_whole_chain():
    """Without the single-click GrabCut the ten g read the chain itself: more than the two salient levels."""
    pred = build_hierarchy(device="cpu", refine_single_click=False).create_predictor()
    pred.set_image(toy_image())
    masks = pred.predict([[65, 70]], [1], granularity="all").masks
    assert all(not (a & ~b).any() for a, b in zip(masks[:-1], masks[1:]))
    assert len({m.tobytes() for m in masks}) >= 3, "the ten levels must not collapse to two masks"
    assert max(iou(m, box_mask(PART)) for m in masks[:3]) > 0.8 and iou(masks[-1], box_mask(BODY)) > 0.8
    assert not masks[-1][:, 140:].any(), "g = 1 must not spill onto the separate disc"


def test_answer_at_g_does_not_depend_on_the_other_g_asked(predictor):
    every = predictor.predict([[65, 70]], [1], granularity="all").masks
    for k, g in ((0, 0.1), (4, 0.5), (9, 1.0)):
        assert np.array_equal(predictor.predict([[65, 70]], [1], granularity=g).masks[0], every[k])
    pair = predictor.predict([[65, 70]], [1], granularity=[1.0, 0.3]).masks
    assert np.array_equal(pair[0], every[9]) and np.array_equal(pair[1], every[2])


def test_answer_at_g_does_not_depend_on_the_other_g_asked_on_a_photo(shared_data):
    """BSDS 103070, a click whose smaller levels' cuts collapse: their fallback (regions.chains.keep_uncollapsed)
    reads the g = 1.0 answer, so before session 18 the answer at g 0.3 ... 0.9 asked alone (which computed the
    levels up to that g only) differed from the same g in "all" by ~1800-2100 internal pixels."""
    from granseg.io.images import load_image

    predictor = build_hierarchy().create_predictor()
    predictor.set_image(load_image(shared_data / "bsds500" / "images" / "val" / "103070.jpg"))
    every = predictor.predict([[245, 86]], [1], granularity="all").masks
    for k in range(10):
        alone = predictor.predict([[245, 86]], [1], granularity=round(0.1 * (k + 1), 1)).masks[0]
        assert np.array_equal(alone, every[k]), f"g = {0.1 * (k + 1):.1f}"
    extra = predictor.predict([[245, 86]], [1], granularity=[0.35, 0.4]).masks
    assert np.array_equal(extra[1], every[3])  # another g asked changes no standard level
    # ... and the extra g's answer lies between its neighbours'
    assert not (every[2] & ~extra[0]).any() and not (extra[0] & ~every[3]).any()
    # one extra g between two standard levels at most (two there are each their own cut, not ordered)
    mixed = predictor.predict([[245, 86]], [1], granularity=[0.15, 0.1, 0.95, 0.35, 0.3, 1.0]).masks
    order = [1, 0, 4, 3, 2, 5]  # ascending g
    assert all(not (mixed[a] & ~mixed[b]).any() for a, b in zip(order, order[1:])), (
        "nested over every g asked"
    )


def test_running_union_feeds_only_the_standard_rows():
    from granseg.regions.chains import running_union

    stack = np.zeros((4, 5), bool)
    stack[0, 0] = stack[1, 1] = stack[1, 2] = stack[2, 2] = stack[3, 3] = True
    running_union(stack, [True, False, True, True])  # row 1: another g asked between two standard levels
    assert stack[1].tolist() == [True, False, True, False, False]  # cut to row 2: its pixel 1 is in no level
    assert stack[2].tolist() == [True, False, True, False, False]  # row 1 fed nothing
    assert stack[3].tolist() == [True, False, True, True, False]
    two = np.zeros((4, 3), bool)
    two[0, 0] = two[1, 1] = two[2, 2] = True
    two[3] = True
    running_union(two, [True, False, False, True])  # two extra g between the same standard levels
    assert two[1].tolist() == [True, True, False] and two[2].tolist() == [True, False, True]  # not ordered


def test_monotone_for_clicks_on_several_real_points(predictor):
    for x, y in [(5, 5), (100, 110), (165, 80), (190, 150)]:
        masks = predictor.predict([[x, y]], [1], granularity="all").masks
        assert masks[:, y, x].all(), "the clicked pixel is in every mask"
        assert all(not (a & ~b).any() for a, b in zip(masks[:-1], masks[1:]))


def test_negative_click_removes_the_region(predictor):
    positive_only = predictor.predict([[100, 115]], [1], granularity=1.0).masks[0]
    assert positive_only[PART].mean() > 0.9
    with_negative = predictor.predict([[100, 115], [65, 70]], [1, 0], granularity=1.0).masks[0]
    assert with_negative[PART].mean() < 0.1, "the negative click's region must go"
    assert with_negative[110:125, 95:115].all(), "the rest of the body stays"


def test_two_positive_clicks_give_the_union(predictor):
    masks = predictor.predict([[100, 115], [165, 80]], [1, 1], granularity=1.0).masks[0]
    disc = np.zeros((160, 200), bool)
    yy, xx = np.mgrid[:160, :200]
    disc[(yy - 80) ** 2 + (xx - 165) ** 2 <= 18**2] = True
    assert masks[disc].mean() > 0.9 and masks[110:125, 95:115].all()


def test_box_restricts_the_mask(predictor):
    box = (30, 30, 100, 130)
    masks = predictor.predict([[65, 70]], [1], box=box, granularity="all").masks
    outside = np.ones((160, 200), bool)
    outside[30:130, 30:100] = False
    assert not masks[:, outside].any()
    box_only = predictor.predict(None, None, box=(140, 55, 190, 105), granularity=1.0).masks[0]
    assert box_only[75:86, 160:171].all() and not box_only[:, :140].any()


def test_tiny_and_grayscale_images():
    pred = HierarchyPredictor()
    tiny = np.zeros((6, 5, 3), np.uint8)
    tiny[:, 3:] = 255
    pred.set_image(tiny)
    masks = pred.predict([[4, 2]], [1], granularity="all").masks
    assert masks.shape == (10, 6, 5) and masks[:, 2, 4].all()
    gray = toy_image()[..., 0]
    pred.set_image(gray)
    mask = pred.predict([[65, 70]], [1], granularity=0.1).masks[0]
    assert mask.shape == (160, 200) and mask[70, 65]


def test_large_image_is_processed_at_reduced_resolution():
    pred = HierarchyPredictor(HierarchyConfig(internal_long_side=128))
    image = np.kron(toy_image(), np.ones((4, 4, 1), np.uint8))  # 640 x 800
    pred.set_image(image)
    assert max(pred.tree.leaf_map.shape) == 128
    mask = pred.predict([[400, 460]], [1], granularity=1.0).masks[0]
    assert mask.shape == (640, 800)
    assert iou(mask, np.kron(box_mask(BODY), np.ones((4, 4), bool))) > 0.8


def test_golden_grabcut_image():
    """One real photograph (GrabCut 'flower.jpg', one click at the object's interior-most pixel, where the RITM
    clicker puts the first click). The tree alone (no single-click cut), measured 2026-11-29: IoU 0.976 at g = 1.0
    (0.80 at g = 0.1, 0.83 at g = 0.5: smaller chain regions are the flower minus some petals). The bar 0.93 leaves
    room for small numeric drift but fails if no level is the whole flower."""
    import cv2

    image_path = DATA / "grabcut" / "data_GT" / "flower.jpg"
    gt_path = DATA / "grabcut" / "boundary_GT" / "flower.bmp"
    if not (image_path.exists() and gt_path.exists()):
        pytest.skip("shared GrabCut data not available")
    from granseg.io.images import load_image

    image = load_image(image_path)
    gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
    valid, obj = gt != 128, gt == 255
    dist = cv2.distanceTransform(np.pad(obj, 1).astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(dist), dist.shape)
    pred = build_hierarchy(device="cpu", refine_single_click=False).create_predictor()
    pred.set_image(image)
    masks = pred.predict([[x, y]], [1], granularity="all").masks
    ious = [((m & obj) & valid).sum() / ((m | obj) & valid).sum() for m in masks]
    assert max(ious) > 0.93, ious
    # The default single-click GrabCut trades this image's exact tree region for a colour-model cut: measured
    # 2026-11-29 IoU 0.881 at every g (the cut takes in some background of the petals' colour).
    default = build_hierarchy(device="cpu").create_predictor()
    default.set_image(image)
    mask = default.predict([[x, y]], [1], granularity=1.0).masks[0]
    assert ((mask & obj) & valid).sum() / ((mask | obj) & valid).sum() > 0.85


def test_texture_boundary_option_builds_a_valid_hierarchy():
    pred = build_hierarchy(device="cpu", boundary_texture_weight=1.0).create_predictor()
    pred.set_image(toy_image(1))
    tree = pred.tree
    assert tree.n_nodes == 2 * tree.n_leaves - 1
    assert np.all(tree.height[tree.parent[tree.parent >= 0]] >= tree.height[tree.parent >= 0])
    masks = pred.predict([[100, 115]], [1], granularity="all").masks
    assert all(not (a & ~b).any() for a, b in zip(masks[:-1], masks[1:]))
    assert iou(masks[-1], box_mask(BODY)) > 0.8


def test_single_click_object_level_and_pixel_outline_options():
    """The g = 1.0 disk-prior cut (object_prior_radius) and the pixel outline (pixel_band) keep the body at
    g = 1.0 on the toy image, keep the ten answers nested, and can be switched off."""
    image = toy_image()
    for overrides in ({}, {"object_prior_radius": 0.0}, {"pixel_band": 0}):
        pred = build_hierarchy(device="cpu", **overrides).create_predictor()
        pred.set_image(image)
        masks = pred.predict([[100, 115]], [1], granularity="all").masks
        assert all(not (a & ~b).any() for a, b in zip(masks[:-1], masks[1:])), overrides
        assert iou(masks[-1], box_mask(BODY)) > 0.9, overrides


def test_object_level_cut_never_takes_most_of_the_image():
    """Regression: on a small synthetic frame the disk-seeded g = 1.0 cut leaked over 96 % of the image and its
    outline contrast still passed; the union is now capped at ``max_object_fraction`` of the image."""
    from granseg.synth.motion import generate_moving_scene

    clip = generate_moving_scene(seed=1, n_frames=2, size=96)
    part = clip.objects[1].part_ids[0]
    pred = build_hierarchy(device="cpu").create_predictor()
    pred.set_image(clip.frames[0])
    mask = pred.predict([list(clip.point(part, 0))], [1], granularity=1.0).masks[0]
    assert mask.mean() <= 0.7
    assert iou(mask, clip.masks[part][0]) > 0.6


# ------------------------------------------------------------------ issue 18: one region tree for the package
def test_predictor_uses_the_shared_learned_tree_and_keeps_the_handcrafted_one_reachable():
    from granseg.predict.factory import load_predictor
    from granseg.regions.tree import build_region_tree

    assert HierarchyConfig().tree_merge == "learned"
    assert build_region_tree(toy_image()).criterion == "learned"  # the package's one default tree
    default = load_predictor("hierarchy", device="cpu")
    default.set_image(toy_image())
    assert default.tree.criterion == "learned"
    old = load_predictor("hierarchy", device="cpu", tree_merge="handcrafted")
    old.set_image(toy_image())
    assert old.tree.criterion == "handcrafted"
    from granseg.errors import InputError

    with pytest.raises(InputError, match="tree_merge"):
        HierarchyConfig(tree_merge="nope")


def test_levels_stay_distinct_on_the_coffee_photo(sample_image_path):
    """The README's example: one click on the cup rim answers more than two masks over the ten g, and g = 0.5 is
    not already the g = 1.0 answer (with the learned tree's old, non-monotone criterion g 0.5 ... 1.0 were one
    mask: the cup's outline merged 'early', the top of the tree was one flat plateau)."""
    import granseg

    predictor = granseg.load_predictor("hierarchy")
    predictor.set_image(granseg.load_image(sample_image_path))
    out = predictor.predict(point_coords=[[330, 60]], point_labels=[1], granularity="all")
    areas = [int(m.sum()) for m in out.masks]
    assert len(set(areas)) >= 3, areas
    assert areas[4] != areas[9], areas
    assert all(a <= b for a, b in zip(areas, areas[1:]))  # nested from g 0.1 to 1.0


def test_single_click_min_fraction_sets_only_a_single_clicks_smallest_level(shared_data):
    """``single_click_min_fraction`` is the smallest level of a single click's chain (as a fraction of its top);
    a correction's chain keeps ``part_min_fraction``. Out of [0, 1): a one-line InputError."""
    from granseg.errors import InputError
    from granseg.io.images import load_image
    from granseg.regions import chains as ch

    image = load_image(shared_data / "bsds500" / "images" / "val" / "103070.jpg")
    fine, coarse = (build_hierarchy(single_click_min_fraction=f).create_predictor() for f in (0.0, 0.3))
    for predictor in (fine, coarse):
        predictor.set_image(image)
    leaf = int(ch.points_to_leaves(fine.tree, np.array([[245.0, 86.0]]), image.shape[:2])[0])
    single = [p._chain(leaf, None, True)[0] for p in (fine, coarse)]
    correction = [p._chain(leaf, None, False)[0] for p in (fine, coarse)]
    top_area = fine.tree.area[single[0][-1]]
    assert fine.tree.area[single[1][0]] >= 0.3 * top_area > fine.tree.area[single[0][0]]
    assert np.array_equal(correction[0], correction[1])
    with pytest.raises(InputError, match="single_click_min_fraction"):
        build_hierarchy(single_click_min_fraction=1.0)
