"""Pseudo-label engine on small images (issue 16): the conquer stage's minimum part size follows the instance's
own pixel area, and an object found inside a larger instance (a group, or the object plus its surroundings) is
the top of its own hierarchy (granularity 1), not a part of the group."""

from __future__ import annotations

import numpy as np
import pytest

from granseg.pseudo.conquer import ConquerMask, conquer
from granseg.pseudo.divide import DivideMask, select_instances
from granseg.pseudo.features import ClassicalFeatures
from granseg.pseudo.pipeline import PseudoLabelConfig, pseudo_label_image


def _checkerboard_instance(size: int = 64, block: int = 2):
    """A small image whose instance (a 40 x 40 square) is a mosaic of ``block`` px cells of random colours,
    and superpixels that are exactly those cells: nothing merges at theta 0.9, every cell is a candidate."""
    rng = np.random.default_rng(0)
    cells = size // block
    colours = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
    image = np.repeat(np.repeat(colours, block, 0), block, 1)
    labels = (np.arange(size)[:, None] // block) * cells + np.arange(size)[None, :] // block
    instance = np.zeros((size, size), bool)
    instance[12:52, 12:52] = True
    return image, instance, labels


def test_min_part_frac_is_counted_in_the_instances_own_pixels():
    image, instance, labels = _checkerboard_instance()
    features = ClassicalFeatures(patch_size=4)
    options = dict(long_side=768, thetas=(0.9,), superpixel_labels=labels)
    # the old rule: 4 patches of the crop upsampled to 768 px are < 1 px here, so single 4 px cells are parts
    old = conquer(image, instance, features, **options)
    assert min(int(m.mask.sum()) for m in old) <= 4
    min_part_frac = 0.01  # 16 px of the 1600 px instance
    new = conquer(image, instance, features, min_part_frac=min_part_frac, **options)
    assert all(m.mask.sum() >= min_part_frac * instance.sum() for m in new)
    assert len(new) < len(old)
    # the patch path (no superpixels) follows the same rule
    patches = conquer(image, instance, features, long_side=768, thetas=(0.9,), min_part_frac=min_part_frac)
    assert all(m.mask.sum() >= min_part_frac * instance.sum() for m in patches)


def test_an_object_inside_a_group_is_a_nested_instance_and_its_parts_go_to_it():
    size = 100
    group = np.zeros((size, size), bool)
    group[10:80, 10:80] = True  # 49 %: the object plus its surroundings (or two touching objects)
    obj = np.zeros((size, size), bool)
    obj[20:50, 20:50] = True  # 9 %, all inside the group
    part = np.zeros((size, size), bool)
    part[25:35, 25:35] = True  # 1 %, inside both: a part of the tightest instance, the object
    candidates = [DivideMask(group, 0.8), DivideMask(obj, 0.9), DivideMask(part, 0.9)]
    flat = select_instances(candidates, min_area_frac=0.02)  # the paper's rule: the object is a group part
    assert len(flat) == 1 and len(flat[0].parts) == 2
    nested = select_instances(candidates, min_area_frac=0.02, nest_min_frac=0.05)
    assert [int(i.mask.sum()) for i in nested] == [4900, 900]
    assert nested[0].parts == [] and nested[0].parent is None
    assert nested[1].parent == 0 and len(nested[1].parts) == 1 and (nested[1].parts[0].mask == part).all()
    # small masks stay parts even when nesting is on
    small = select_instances(candidates, min_area_frac=0.02, nest_min_frac=0.2)
    assert len(small) == 1


def test_outside_of_drops_parts_inside_a_nested_instance():
    from granseg.pseudo.conquer import outside_of

    a = np.zeros((10, 10), bool)
    a[:5] = True
    inner, across = a.copy(), np.zeros((10, 10), bool)
    inner[:2] = False
    across[3:7] = True
    parts = [ConquerMask(inner, 0.9), ConquerMask(across, 0.8)]
    assert outside_of(parts, [a], 0.8) == [parts[1]]
    assert outside_of(parts, [], 0.8) == parts


def test_pipeline_labels_a_nested_object_granularity_one(monkeypatch):
    import granseg.pseudo.divide as divide_module

    image = np.full((96, 96, 3), (120, 160, 220), np.uint8)
    image[8:88, 8:88] = (90, 200, 90)  # a green region around the object
    image[24:64, 24:64] = (200, 40, 40)  # the object
    image[28:40, 28:60] = (40, 40, 200)  # its part
    group = np.zeros((96, 96), bool)
    group[8:88, 8:88] = True
    obj = np.zeros((96, 96), bool)
    obj[24:64, 24:64] = True
    cuts = [DivideMask(group, 0.9), DivideMask(obj, 0.9)]
    monkeypatch.setattr(divide_module, "divide", lambda *args, **kwargs: list(cuts))
    base = dict(
        divide_long_side=96, conquer_long_side=64, refine_segments=0, stuff_theta=0.0, region_thetas=(),
        extra_taus=(),
    )  # fmt: skip

    def label_of_object(config):
        masks, fields = pseudo_label_image(image, config)
        iou = (masks & obj).sum(axis=(1, 2)) / (masks | obj).sum(axis=(1, 2))
        best = int(np.argmax(iou))
        assert iou[best] > 0.95
        return fields[best], masks, fields

    old, _, _ = label_of_object(PseudoLabelConfig(**base))  # the default: no nesting (DESIGN.md)
    assert old["is_part"] and old["granularity"] < 0.9  # the object as a part of the group
    new, masks, fields = label_of_object(PseudoLabelConfig(**base, nest_min_frac=0.05))
    assert not new["is_part"] and new["granularity"] == 1.0  # the top of its own hierarchy
    own = [i for i, f in enumerate(fields) if f["instance_id"] == new["instance_id"] and f["is_part"]]
    assert own, "the nested object got no parts"
    assert all((masks[i] & ~obj).sum() == 0 for i in own)
    # no part of the group's hierarchy duplicates a region inside the object
    group_id = next(f["instance_id"] for f in fields if f["instance_id"] != new["instance_id"])
    group_parts = [i for i, f in enumerate(fields) if f["instance_id"] == group_id and f["is_part"]]
    assert all((masks[i] & obj).sum() <= 0.8 * masks[i].sum() for i in group_parts)


@pytest.mark.parametrize("field, value", [("min_part_frac", -0.1), ("nest_min_frac", 1.5)])
def test_new_fields_are_validated(field, value):
    from granseg.errors import InputError

    with pytest.raises(InputError, match=field):
        PseudoLabelConfig(**{field: value}).validate()
