"""Whole-image masks read from the ``hierarchy`` model's region tree (granseg.predict.automatic.region_tree): source
selection, exact RLEs, nested NMS, g in [0.1, 1], the part-whole tree, scores that rank objects above fragments,
and the CLI end to end (``granseg auto`` and ``granseg eval auto``)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from granseg.errors import InputError
from granseg.io.masks import decode_rle, encode_rle
from granseg.predict.automatic import AutomaticConfig, AutomaticSegmenter
from granseg.predict.automatic import region_tree as rt
from granseg.predict.hierarchy import build_hierarchy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def synth_scene(seed: int = 0):
    """``(image 180 x 240 x 3 uint8, [object masks])``: three objects with a strong outline, each of two parts of
    close shades, on a noisy grey background."""
    rng = np.random.default_rng(seed)
    height, width = 180, 240
    image = np.clip(rng.normal(120, 12, (height, width, 3)), 0, 255)
    yy, xx = np.mgrid[:height, :width]
    objects = [
        ((yy - 60) / 40) ** 2 + ((xx - 60) / 45) ** 2 <= 1,
        (yy >= 95) & (yy < 165) & (xx >= 20) & (xx < 110),
        ((yy - 90) / 60) ** 2 + ((xx - 180) / 40) ** 2 <= 1,
    ]
    colours = [((220, 40, 40), (190, 60, 40)), ((40, 60, 210), (60, 90, 220)), ((40, 180, 60), (70, 200, 60))]
    for mask, (top, bottom) in zip(objects, colours):
        rows = np.flatnonzero(mask.any(1))
        middle = (rows[0] + rows[-1]) // 2
        for part, colour in ((mask & (yy < middle), top), (mask & (yy >= middle), bottom)):
            image[part] = np.asarray(colour) + rng.normal(0, 6, (int(part.sum()), 3))
    return np.clip(image, 0, 255).astype(np.uint8), objects


@pytest.fixture(scope="module")
def scene_records():
    image, objects = synth_scene()
    predictor = build_hierarchy().create_predictor()
    segmenter = AutomaticSegmenter(predictor, AutomaticConfig())
    return image, objects, predictor, segmenter, segmenter.generate(image)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_hierarchy_reads_its_tree_by_default_and_the_grid_stays_reachable(scene_records):
    image, _, predictor, segmenter, records = scene_records
    assert segmenter.stats["source"] == "tree" and segmenter.stats["decoded"] == 0
    assert 0 < len(records) <= segmenter.stats["candidates"] <= segmenter.stats["nodes"]
    grid = AutomaticSegmenter(
        predictor, AutomaticConfig(points_per_side=3, granularities=(0.5,), source="grid")
    )
    grid.generate(image)
    assert grid.stats["source"] == "grid" and grid.stats["decoded"] == 9


def test_tree_source_needs_a_region_tree():
    from tests.test_automatic import NestedPredictor, scene

    parts, objects = scene()
    segmenter = AutomaticSegmenter(NestedPredictor(parts, objects), AutomaticConfig(source="tree"))
    with pytest.raises(InputError, match="region tree"):
        segmenter.generate(np.zeros((40, 60, 3), np.uint8))
    with pytest.raises(InputError, match="source"):
        AutomaticConfig(source="points")


def test_records_are_tree_nodes_with_g_in_range_and_a_nested_part_whole_tree(scene_records):
    _, _, predictor, _, records = scene_records
    assert [r["id"] for r in records] == list(range(len(records)))
    scores = [r["score"] for r in records]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    with_parent = 0
    for record in records:
        assert 0.1 <= record["node_g"] <= 1.0
        levels = record["granularity_levels"]
        assert levels == sorted(levels) and record["granularity"] == levels[0]
        assert record["granularity_range"] == [levels[0], levels[-1]]
        mask = decode_rle(record["segmentation"])
        assert mask.sum() == record["area"]
        x, y = record["point_coords"][0]
        assert mask[int(y), int(x)]
        if record["parent_id"] is None:
            continue
        with_parent += 1
        parent = records[record["parent_id"]]
        assert max(parent["granularity_levels"]) > max(levels)
        assert (mask & decode_rle(parent["segmentation"])).sum() >= 0.8 * mask.sum()
    assert with_parent >= len(records) // 2


def test_rles_from_rank_runs_equal_the_upsampled_node_masks():
    image, _ = synth_scene(1)
    predictor = build_hierarchy().create_predictor()
    predictor.set_image(image)
    tree = predictor.tree
    size = (
        int(image.shape[0] * 1.7),
        int(image.shape[1] * 1.3),
    )  # an original size the tree was not built at
    runs = rt.RankRuns(tree, size)
    ranks = cv2.resize(tree.leaf_map, size[::-1], interpolation=cv2.INTER_NEAREST)
    for node in np.random.default_rng(0).choice(tree.n_nodes, 25, replace=False).tolist():
        lo, hi = int(tree.lo[node]), int(tree.hi[node])
        mask = (ranks >= lo) & (ranks < hi)
        assert runs.rle(lo, hi)["counts"] == encode_rle(mask)["counts"]
        area, box = runs.area_and_box(lo, hi)
        ys, xs = np.nonzero(mask)
        assert area == mask.sum() and box == [
            xs.min(),
            ys.min(),
            xs.max() - xs.min() + 1,
            ys.max() - ys.min() + 1,
        ]


def test_nested_nms_is_greedy_nms_with_mask_iou():
    image, _ = synth_scene(2)
    predictor = build_hierarchy().create_predictor()
    predictor.set_image(image)
    tree = predictor.tree
    order = np.random.default_rng(1).permutation(tree.n_nodes)[:300]
    kept = rt.nested_nms(tree, order, 0.7, 10**6)
    masks = np.stack(
        [(tree.lo[n] <= np.arange(tree.n_leaves)) & (np.arange(tree.n_leaves) < tree.hi[n]) for n in order]
    )
    weights = tree.leaf_area
    expected = []
    for index in range(len(order)):
        overlaps = [
            (weights[masks[index] & masks[j]].sum() / weights[masks[index] | masks[j]].sum())
            for j in expected
        ]
        if not overlaps or max(overlaps) <= 0.7:
            expected.append(index)
    assert kept.tolist() == order[expected].tolist()
    assert rt.nested_nms(tree, order, 0.7, 5).tolist() == order[expected][:5].tolist()


def test_scores_rank_whole_objects_above_their_fragments(scene_records):
    _, objects, _, _, records = scene_records
    masks = [decode_rle(r["segmentation"]) for r in records]
    for obj in objects:
        matches = [k for k, m in enumerate(masks) if iou(m, obj) >= 0.85]
        assert matches, "every object is one region of the tree"
        best = min(matches)  # records are sorted by score: the best-ranked match
        fragments = [
            k for k, m in enumerate(masks) if (m & obj).sum() >= 0.9 * m.sum() and m.sum() <= 0.5 * obj.sum()
        ]
        assert fragments and all(best < k for k in fragments)
        assert best < 10


def test_single_level_is_one_cut_of_nested_regions(scene_records):
    image, _, predictor, _, _ = scene_records
    records = AutomaticSegmenter(predictor, AutomaticConfig(granularities=(1.0,))).generate(image)
    assert records and all(r["granularity"] == 1.0 and r["granularity_levels"] == [1.0] for r in records)
    assert "parent_id" not in records[0]


# ----------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    image, objects = synth_scene()
    folder = tmp_path_factory.mktemp("tree_scene")
    (folder / "img").mkdir()
    Image.fromarray(image).save(folder / "img" / "scene.png")
    gt = {
        "images": [{"id": 1, "file_name": "scene.png", "height": image.shape[0], "width": image.shape[1]}],
        "annotations": [
            {"id": k + 1, "image_id": 1, "segmentation": encode_rle(m), "iscrowd": 0, "category_id": 1}
            for k, m in enumerate(objects)
        ],
        "categories": [{"id": 1, "name": "object"}],
    }
    (folder / "gt.json").write_text(json.dumps(gt))
    return folder


def test_cli_auto_reads_the_tree_and_dedups(capsys, tmp_path, scene_files):
    from tests.test_automatic_cli import run_cli

    out = tmp_path / "masks.json"
    image = str(scene_files / "img" / "scene.png")
    code, _, err = run_cli(capsys, "auto", image, "--model", "hierarchy", "--dedup", "0.8", "--out", str(out))
    assert code == 0, err
    assert "regions of the region tree" in err
    records = json.loads(out.read_text())
    ids = {r["id"] for r in records}
    assert records and all(r["parent_id"] is None or r["parent_id"] in ids for r in records)
    plain = tmp_path / "plain.json"
    assert run_cli(capsys, "auto", image, "--model", "hierarchy", "--out", str(plain))[0] == 0
    assert len(records) < len(json.loads(plain.read_text()))  # near-identical nested regions merged
    grid = tmp_path / "grid.json"
    code, _, err = run_cli(
        capsys, "auto", image, "--model", "hierarchy", "--source", "grid", "--points-per-side", "3",
        "--granularity", "0.5", "--out", str(grid),
    )  # fmt: skip
    assert code == 0 and "9 (point, g) pairs decoded" in err
    code, _, err = run_cli(
        capsys,
        "auto",
        image,
        "--model",
        "unsamv2-tiny-random",
        "--source",
        "tree",
        "--out",
        str(tmp_path / "x.json"),
    )
    assert (
        code == 2
        and err.startswith("error: ")
        and "region tree" in err
        and not (tmp_path / "x.json").exists()
    )


def test_cli_eval_auto_tree_finds_the_objects(capsys, tmp_path, scene_files):
    from tests.test_automatic_cli import run_cli

    out = tmp_path / "eval"
    code, _, err = run_cli(
        capsys, "eval", "auto", "--model", "hierarchy", "--gt", str(scene_files / "gt.json"),
        "--images", str(scene_files / "img"), "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    metrics = metrics.get("metrics", metrics)
    assert metrics["AR@10"] >= 0.6
