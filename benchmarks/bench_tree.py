"""Side-by-side benchmark of the region tree's variants on held-out BSDS500 val images (results/tree.md).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_tree.py [--skip 50] [--images 50]
        [--variants handcrafted,learned-slic,learned] [--only edges,covering,timing] [--write results/tree.md]
        [--set FIELD=VALUE ...]

Split: benchmarks/fit_merge.py fits the merge criterion on the first 50 sorted val ids; the default here reports
on the other 50 (``--skip 50``).

* edges: BSDS boundary P/R (``granseg.eval.edges``, 99 thresholds, thinning, the BSDS matching) of each
  variant's ultrametric contour map (:func:`granseg.eval.edge_maps.tree_contour_map`), next to Sobel + NMS on the
  same images; ``learned-peak`` (listed in ``--variants``): ``learned``'s UCM divided by each image's peak.
* covering: the ``hierarchy`` predictor's partition at each g over each variant's tree, best g per image, mean
  over annotators, two partitions at g: ``click-union`` (the maximal regions single clicks answer at g,
  benchmarks/bench_hierarchy.py ``hierarchy_partitions``) and ``partition`` (what ``HierarchyPredictor.partition``
  / ``granseg auto --partition`` answers: the tree's cut at one split height per g, granseg/regions/cuts.py);
  SLIC with the click-union's region count. ``--set`` overrides the predictor's ``HierarchyConfig`` fields (its
  chain rules and partition heights; the tree is the variant's).
* auto (``--only auto``): whole-image AR of the tree readout of ``granseg auto --model hierarchy`` over each
  variant's tree (built by the predictor: the variant's ``tree_merge`` and ``height_power``, ``--set`` others,
  e.g. ``tree_starts``; COCO sample, BSDS val 51-75; the readout's score weights were fit on BSDS val tune-half
  images).
* timing: ``build_region_tree`` on a 1024 px photograph (GrabCut 'flower.jpg' upscaled), median of 3, each
  variant in the same run (the machine is shared: compare the ratios).

Variants: ``handcrafted`` (the previous tree: SLIC leaves, hand-weighted boundary + colour + LBP distance),
``learned`` (oriented gradients and the learned criterion over the same SLIC leaves: the ``ucm`` edge map's tree),
``learned-watershed`` (the same over watershed leaves of the oriented-gradient map, its own fitted weights),
``learned-spectral`` (``learned`` + the spectral cue, ``build_region_tree(..., spectral=True)``, its own fitted
weights), ``learned-owt`` (``learned`` with the oriented watershed transform's border gradients,
``build_region_tree(..., owt=True)``, its own fitted weights; an option); ``-pow3``: heights ``(1 - p) ** 3`` (the
predictor's default). ``ensemble`` (edges only): the mean UCM of the trees of five superpixel starts
(``granseg/regions/ensemble.py``: the ``ucm`` edge map of ``granseg eval edges --model hierarchy``).
``consensus<k>-pow3``: the consensus tree of the first k of those trees (``granseg/regions/consensus.py``, the
predictor's ``tree_starts=k``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "benchmarks"))

VARIANTS = {
    "handcrafted": {"merge": "handcrafted"},
    "learned": {"merge": "learned", "leaves": "slic"},
    "learned-watershed": {"merge": "learned", "leaves": "watershed"},
}
for _power in (2, 3, 4):  # heights (1 - p) ** power: the same tree and UCM order, other persistences
    VARIANTS[f"learned-pow{_power}"] = {"merge": "learned", "power": _power}
# + gPb's spectral globalisation (granseg/regions/spectral.py) as features of the criterion (its own fit)
VARIANTS["learned-spectral"] = {"merge": "learned", "spectral": True}
VARIANTS["learned-spectral-pow3"] = {"merge": "learned", "spectral": True, "power": 3}
# + the oriented watershed transform's border gradients (granseg/regions/owt.py; its own fit)
VARIANTS["learned-owt"] = {"merge": "learned", "owt": True}
VARIANTS["learned-owt-pow3"] = {"merge": "learned", "owt": True, "power": 3}
# edge maps only: the mean UCM of several trees (granseg/regions/ensemble.py; the `ucm` edge map)
ENSEMBLES = ("ensemble",)
# the consensus tree of the first k ensemble trees (granseg/regions/consensus.py; HierarchyConfig.tree_starts)
for _k in (2, 3, 4, 5):
    VARIANTS[f"consensus{_k}-pow3"] = {"merge": "learned", "power": 3, "starts": _k}


def tree_for(image, name: str):
    """The region tree of variant ``name`` (the ``hierarchy`` predictor's tree parameters otherwise)."""
    from granseg.regions.tree import TreeParams, build_region_tree

    kwargs = dict(VARIANTS[name])
    params = TreeParams(height_power=float(kwargs.pop("power", 1.0)))
    if "starts" in kwargs:
        from granseg.regions.consensus import build_consensus_tree
        from granseg.regions.ensemble import UCM_STARTS

        return build_consensus_tree(image, params, UCM_STARTS[: kwargs["starts"]])
    return build_region_tree(image, params, **kwargs)


def bsds_ids(skip: int, images: int) -> list[str]:
    return sorted(p.stem for p in (DATA / "bsds500" / "images" / "val").glob("*.jpg"))[skip:][:images]


def load(image_id: str):
    from granseg.eval.datasets.bsds import read_bsds_ground_truth
    from granseg.io.images import load_image

    root = DATA / "bsds500"
    image = load_image(root / "images" / "val" / f"{image_id}.jpg")
    boundaries, segmentations = read_bsds_ground_truth(root / "groundTruth" / "val" / f"{image_id}.mat")
    return image, boundaries, segmentations


def run_images(
    ids: list[str], variants: list[str], sections: set[str], overrides: dict | None = None
) -> dict:
    """Per-image edge counts and best-g covering of every variant (and of Sobel and SLIC)."""
    from bench_hierarchy import LEVELS, covering, hierarchy_partitions
    from skimage.segmentation import slic

    from granseg.eval.edge_maps import ensemble_contour_map, tree_contour_map
    from granseg.eval.edges import bsds_thresholds, evaluate_boundary_image, sobel_nms
    from granseg.predict.hierarchy import HierarchyConfig, HierarchyPredictor
    from granseg.regions.cuts import partitions
    from granseg.regions.ensemble import build_region_trees

    thresholds = bsds_thresholds(99)
    peak_too = "learned-peak" in variants
    ensembles = [v for v in variants if v in ENSEMBLES]
    variants = [v for v in variants if v != "learned-peak" and v not in ENSEMBLES]
    counts: dict[str, list] = {name: [] for name in [*variants, *ensembles, "learned-peak", "sobel"]}
    cover: dict[str, list] = {key: [] for name in variants for key in (name, f"{name} partition")}
    cover |= {"slic": [], "slic (partition count)": []}
    cut_tables: dict[str, list] = {}  # variant -> per image, the partition's covering at each g
    predictor = HierarchyPredictor(HierarchyConfig.from_dict(overrides or {}))
    for index, image_id in enumerate(ids):
        image, boundaries, segmentations = load(image_id)
        size = (image.shape[1], image.shape[0])
        if "edges" in sections:
            counts["sobel"].append(
                evaluate_boundary_image(sobel_nms(image), boundaries, thresholds, image_id)
            )
        if "edges" in sections:
            for name in ensembles:
                ucm = ensemble_contour_map(build_region_trees(image), image.shape[:2])
                counts[name].append(evaluate_boundary_image(ucm, boundaries, thresholds, image_id))
        for name in variants:
            tree = tree_for(image, name)
            if "edges" in sections:
                ucm = tree_contour_map(tree, image.shape[:2])
                counts[name].append(evaluate_boundary_image(ucm, boundaries, thresholds, image_id))
                if name == "learned" and peak_too:
                    peak = ucm / max(float(ucm.max()), 1e-9)
                    counts["learned-peak"].append(
                        evaluate_boundary_image(peak, boundaries, thresholds, image_id)
                    )
            if "covering" in sections:
                predictor.tree, predictor._original_size = tree, image.shape[:2]

                def score(labels, size=size, segmentations=segmentations):
                    big = cv2.resize(labels.astype(np.float32), size, interpolation=cv2.INTER_NEAREST)
                    return float(np.mean([covering(gt, big) for gt in segmentations]))

                per_g = [(score(p), len(np.unique(p))) for p in hierarchy_partitions(predictor)]
                best, regions = max(per_g)
                cover[name].append(best)
                cfg = predictor.config
                cuts = partitions(tree, LEVELS, cfg.partition_finest, cfg.partition_coarsest)
                cut_scores = [score(p) for p in cuts]
                cover[f"{name} partition"].append(max(cut_scores))
                cut_tables.setdefault(name, []).append(cut_scores)
                if name == variants[-1]:
                    small = cv2.resize(image, tree.leaf_map.shape[::-1], interpolation=cv2.INTER_AREA)
                    cover["slic"].append(
                        score(slic(small, n_segments=max(regions, 2), compactness=10, start_label=0))
                    )
                    count = int(cuts[int(np.argmax(cut_scores))].max()) + 1
                    cover["slic (partition count)"].append(
                        score(slic(small, n_segments=max(count, 2), compactness=10, start_label=0))
                    )
        print(f"  {index + 1}/{len(ids)} {image_id}", flush=True)
    return {
        "counts": {k: v for k, v in counts.items() if v},
        "covering": {k: v for k, v in cover.items() if v},
        "partition_per_g": cut_tables,
    }


def timing(variants: list[str], repeats: int = 3) -> dict:
    from granseg.io.images import load_image

    image = load_image(DATA / "grabcut" / "data_GT" / "flower.jpg")
    scale = 1024 / max(image.shape[:2])
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    from granseg.regions.ensemble import build_region_trees

    out = {}
    for name in variants:
        build = (
            functools.partial(build_region_trees, image)
            if name in ENSEMBLES
            else functools.partial(tree_for, image, name)
        )
        build()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            build()
            times.append(time.perf_counter() - start)
        out[name] = float(np.median(times))
    return out


def auto_recall(variants: list[str], bsds_images: int = 25, overrides: dict | None = None) -> dict:
    """Whole-image AR@10/100/1000 of ``granseg auto --model hierarchy`` (the tree readout) over each variant's
    tree: the COCO sample and the first ``bsds_images`` of BSDS val's report half (benchmarks/bench_auto.py)."""
    from bench_auto import COCO, bsds_ground_truth

    from granseg.eval.whole_image import load_ground_truth
    from granseg.predict.automatic import AutomaticSegmenter, preset_config
    from granseg.predict.hierarchy import build_hierarchy

    coco = load_ground_truth(COCO / "annotations" / "instances_val2017.json")
    coco_paths = {i["file_name"]: COCO / "val2017" / i["file_name"] for i in coco["images"]}
    ids = sorted(p.stem for p in (DATA / "bsds500" / "images" / "val").glob("*.jpg"))
    sets = {
        "COCO sample": (coco, coco_paths),
        f"BSDS val {51}-{50 + bsds_images}": bsds_ground_truth(ids[50:][:bsds_images]),
    }
    out = {}
    for name in variants:
        merge, power = VARIANTS[name]["merge"], float(VARIANTS[name].get("power", 1.0))
        settings = {"tree_merge": merge, "height_power": power, **(overrides or {})}
        predictor = build_hierarchy(device="cpu", **settings).create_predictor()
        segmenter = AutomaticSegmenter(predictor, preset_config("official", source="tree"))
        with _tree_builder(VARIANTS[name].get("spectral", False)):
            out.update(_recall_sets(segmenter, sets, name))
    return out


@contextlib.contextmanager
def _tree_builder(spectral: bool):
    """The predictor builds its tree with the spectral cue inside this block when ``spectral`` (its config has no
    such field: the option lives in ``build_region_tree``)."""
    if not spectral:
        yield
        return
    import granseg.predict.hierarchy as module

    original = module.build_region_tree
    module.build_region_tree = functools.partial(original, spectral=True)
    try:
        yield
    finally:
        module.build_region_tree = original


def _recall_sets(segmenter, sets: dict, name: str) -> dict:
    from granseg.eval.whole_image import evaluate_ar, load_ground_truth
    from granseg.io.images import load_image

    out = {}
    for set_name, (gt, paths) in sets.items():
        gt = load_ground_truth(gt)
        predictions = {
            i["file_name"]: segmenter.generate(load_image(paths[i["file_name"]])) for i in gt["images"]
        }
        metrics = evaluate_ar(gt, predictions)
        out[(set_name, name)] = [metrics[f"AR@{k}"] for k in (10, 100, 1000)]
        print(set_name, name, out[(set_name, name)], flush=True)
    return out


def main(argv=None) -> int:
    from granseg.eval.edges import bsds_thresholds, summarize_edges

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip", type=int, default=50)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument(
        "--variants", default="handcrafted,learned", help=f"of {', '.join(VARIANTS)}, learned-peak"
    )
    parser.add_argument("--only", default="edges,covering,timing")
    parser.add_argument("--write", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args(argv)
    from bench_clicks import parse_overrides

    overrides = parse_overrides(args.set)
    variants, sections = args.variants.split(","), set(args.only.split(","))
    ids = bsds_ids(args.skip, args.images)
    lines = [
        "# Region tree variants, BSDS500 val held out",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs), {platform.platform()}",
        f"- command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} .venv/bin/python "
        f"benchmarks/bench_tree.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        f"- images: sorted val ids {args.skip + 1}..{args.skip + len(ids)} (the merge criterion was fit on 1..50)",
        "",
    ]
    if sections & {"edges", "covering"}:
        from bench_hierarchy import LEVELS

        results = run_images(ids, variants, sections, overrides)
        if results["counts"]:
            lines += ["| edge map | ODS F | OIS F | AP |", "|---|---|---|---|"]
            for name, per_image in results["counts"].items():
                m = summarize_edges(per_image, bsds_thresholds(99))
                lines.append(f"| {name} | {m['ODS_F']:.3f} | {m['OIS_F']:.3f} | {m['AP']:.3f} |")
            lines.append("")
        if results["covering"]:
            lines += ["| partition | covering at best g (mean) |", "|---|---|"]
            lines += [f"| {k} | {np.mean(v):.4f} |" for k, v in results["covering"].items()]
            for name, table in results["partition_per_g"].items():  # one g for every image (dataset-wide)
                means = np.mean(table, axis=0)
                best = int(np.argmax(means))
                lines.append(
                    f"| {name} partition, one g for all images (g = {LEVELS[best]}) | {means[best]:.4f} |"
                )
            lines.append("")
    if "timing" in sections:
        lines += ["| variant | build_region_tree at 1024 px, median of 3 (s) |", "|---|---|"]
        lines += [
            f"| {k} | {v:.3f} |"
            for k, v in timing([v for v in variants if v in VARIANTS or v in ENSEMBLES]).items()
        ]
        lines.append("")
    if "auto" in sections:
        lines += [
            "| whole image (`auto`, tree readout) | tree | AR@10 | AR@100 | AR@1000 |",
            "|---|---|---|---|---|",
        ]
        for (set_name, name), values in auto_recall(
            [v for v in variants if v in VARIANTS], overrides=overrides
        ).items():
            lines.append(f"| {set_name} | {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
