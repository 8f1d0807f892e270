"""Whole-image (automatic) segmentation: average recall with pycocotools, the UnSAM convention.

``evaluate_ar(gt, predictions)`` runs ``COCOeval(iouType="segm")`` with ``useCats = 0`` (class-agnostic) and
``maxDets = [1, 10, 100, 1000]`` on the images that have predictions ("the predicted images"), and reads AR@k as
COCOeval's ``summarize`` does: the mean over IoU 0.50:0.05:0.95 of recall (all areas), plus AR small/medium/large
at 1000 detections.

Ground truth: a COCO-style instances JSON (COCO, LVIS, ADE20K/EntitySeg exports; missing ``iscrowd``/``area``
fields are filled in) or a folder of SA-1B per-image JSONs (:func:`sa1b_folder_to_coco`).
Predictions: a COCO results list (records with ``image_id``, ``segmentation`` RLE, ``score``); a dict mapping an
image id or file stem to a list of granseg mask records (``granseg auto`` output); or a folder of
``<stem>.json`` files, each a list of records or a ``records_to_coco`` document.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

from granseg.errors import InputError

MAX_DETS = (1, 10, 100, 1000)


def load_ground_truth(source: str | Path | dict) -> dict:
    """A COCO-style dict with every field COCOeval needs."""
    if isinstance(source, dict):
        data = copy.deepcopy(source)
    else:
        path = Path(source)
        if path.is_dir():
            data = sa1b_folder_to_coco(path)
        else:
            data = json.loads(path.read_text())
    if "images" not in data or "annotations" not in data:
        raise InputError("ground truth must be a COCO-style JSON with 'images' and 'annotations'")
    from pycocotools import mask as mask_utils

    heights = {img["id"]: (img["height"], img["width"]) for img in data["images"]}
    for index, ann in enumerate(data["annotations"], start=1):
        ann.setdefault("id", index)
        ann.setdefault("iscrowd", 0)
        ann.setdefault("category_id", 1)
        if "area" not in ann:
            h, w = heights[ann["image_id"]]
            ann["area"] = float(mask_utils.area(_to_rle(ann["segmentation"], h, w)))
    data.setdefault("categories", [{"id": 1, "name": "object"}])
    if not data["categories"]:
        data["categories"] = [{"id": 1, "name": "object"}]
    return data


def _to_rle(segmentation, height: int, width: int) -> dict:
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation.get("counts"), list):
        return mask_utils.frPyObjects(segmentation, height, width)
    rle = dict(segmentation)
    if isinstance(rle["counts"], str):
        rle["counts"] = rle["counts"].encode("ascii")
    return rle


def sa1b_folder_to_coco(folder: Path) -> dict:
    """SA-1B per-image JSONs (``{"image": {...}, "annotations": [...]}``) -> one COCO dict."""
    images, annotations = [], []
    for image_id, path in enumerate(sorted(folder.glob("*.json")), start=1):
        doc = json.loads(path.read_text())
        info = doc["image"]
        images.append(
            {
                "id": image_id,
                "file_name": info.get("file_name", f"{path.stem}.jpg"),
                "height": info["height"],
                "width": info["width"],
            }
        )
        for ann in doc["annotations"]:
            annotations.append(
                {"image_id": image_id, "segmentation": ann["segmentation"], "iscrowd": 0, "category_id": 1}
            )
    if not images:
        raise InputError(f"no SA-1B JSON files in {folder}")
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}


def load_predictions(source: str | Path | list | dict, gt: dict) -> list[dict]:
    """Normalise predictions (see the module docstring) to a COCO results list with integer ``image_id``."""
    by_stem = {Path(img["file_name"]).stem: img["id"] for img in gt["images"]}
    by_name = {img["file_name"]: img["id"] for img in gt["images"]}
    valid_ids = {img["id"] for img in gt["images"]}

    def resolve(key) -> int:
        if isinstance(key, int) and key in valid_ids:
            return key
        text = str(key)
        if text in by_name:
            return by_name[text]
        if Path(text).stem in by_stem:
            return by_stem[Path(text).stem]
        if text.isdigit() and int(text) in valid_ids:
            return int(text)
        raise InputError(f"predictions refer to image {key!r}, which is not in the ground truth")

    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            source = {p.stem: json.loads(p.read_text()) for p in sorted(path.glob("*.json"))}
        else:
            source = json.loads(path.read_text())
    results: list[dict] = []
    if isinstance(source, list):
        for record in source:
            if "image_id" not in record:
                raise InputError("a predictions list needs 'image_id' in every record")
            results.append(_result(record, resolve(record["image_id"])))
    elif isinstance(source, dict):
        for key, records in source.items():
            if isinstance(records, dict) and "annotations" in records:  # a records_to_coco document
                records = records["annotations"]
            image_id = resolve(key)
            results.extend(_result(r, image_id) for r in records)
    else:
        raise InputError("predictions must be a list of records or a mapping image -> records")
    return results


def _result(record: dict, image_id: int) -> dict:
    return {
        "image_id": image_id,
        "category_id": 1,
        "segmentation": record["segmentation"],
        "score": float(record.get("score", 1.0)),
    }


def evaluate_ar(
    gt_source, predictions, max_dets: tuple[int, ...] = MAX_DETS, all_images: bool = False
) -> dict:
    """AR@k for k in ``max_dets`` (class-agnostic segm COCOeval). ``all_images``: score every GT image instead of
    only those with predictions."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = load_ground_truth(gt_source)
    results = load_predictions(predictions, gt)
    if not results:
        raise InputError("no predictions to evaluate")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        evaluator = COCOeval(coco_gt, coco_dt, iouType="segm")
        evaluator.params.useCats = 0
        evaluator.params.maxDets = list(max_dets)
        image_ids = (
            sorted({r["image_id"] for r in results}) if not all_images else sorted(coco_gt.getImgIds())
        )
        evaluator.params.imgIds = image_ids
        evaluator.evaluate()
        evaluator.accumulate()
    recall = evaluator.eval["recall"]  # [T, K, A, M]
    area_labels = evaluator.params.areaRngLbl  # all, small, medium, large

    def mean_recall(area: str, m: int) -> float:
        values = recall[:, :, area_labels.index(area), m]
        values = values[values > -1]
        return float(values.mean()) if values.size else -1.0

    metrics: dict[str, Any] = {
        "images": len(image_ids),
        "predictions": len(results),
        "gt_instances": int(
            sum(1 for a in gt["annotations"] if a["image_id"] in set(image_ids) and not a.get("iscrowd", 0))
        ),
    }
    for m, k in enumerate(max_dets):
        metrics[f"AR@{k}"] = mean_recall("all", m)
    last = len(max_dets) - 1
    for area in ("small", "medium", "large"):
        metrics[f"AR_{area}@{max_dets[-1]}"] = mean_recall(area, last)
    precision = evaluator.eval["precision"]
    values = precision[:, :, :, 0, last]
    values = values[values > -1]
    metrics[f"AP@{max_dets[-1]}"] = float(values.mean()) if values.size else -1.0
    return metrics


def render_report(metrics: dict, meta: dict) -> str:
    lines = [
        f"# Whole-image evaluation: {meta.get('model', 'predictions')}",
        "",
        f"- ground truth: {meta.get('gt', '?')}; command: `{meta.get('command', '')}`",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    return "\n".join(lines) + "\n"


def plot_ar(path, metrics: dict) -> bool:
    """AR against the number of detections as a PNG; False (and nothing written) when matplotlib is missing."""
    from granseg.eval.plots import new_figure, save_figure

    made = new_figure(4, 3)
    if made is None:
        return False
    fig, ax = made
    ks = [k for k in MAX_DETS if f"AR@{k}" in metrics]
    ax.plot(ks, [metrics[f"AR@{k}"] for k in ks], marker="o")
    ax.set_xscale("log")
    ax.set_xlabel("max detections")
    ax.set_ylabel("AR")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
    return True


__all__ = ["MAX_DETS", "evaluate_ar", "load_ground_truth", "load_predictions"]
