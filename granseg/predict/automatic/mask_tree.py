"""The part-whole tree over whole-image masks found at several g levels, and cross-level de-duplication.

Records are granseg mask records (``segmentation`` COCO RLE, ``granularity``, ...). Overlaps are computed on the RLEs
with pycocotools (``mask.iou`` with ``iscrowd=1`` on the second argument gives ``|a & b| / |a|``, the fraction of a
mask covered by another), in C, without decoding the masks.

* :func:`merge_across_levels` (``dedup_iou > 0``): masks of different g with IoU >= ``dedup_iou`` are one mask;
  the smallest g that produced it is kept (its record), ``granularity_range`` is ``[smallest g, largest g]`` and
  ``granularity_levels`` lists every level that produced it.
* :func:`link_parents`: every record gets an ``id`` (its index) and ``parent_id``: the mask of the next coarser
  level (the nearest level above the record's largest g that has masks) covering at least ``containment`` of it,
  the one covering most of it (then the smallest); None at the coarsest level or when nothing covers it.
"""

from __future__ import annotations

import numpy as np


def _rles(records: list[dict]) -> list[dict]:
    out = []
    for record in records:
        rle = dict(record["segmentation"])
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
        out.append(rle)
    return out


def covered_fraction(children: list[dict], parents: list[dict]) -> np.ndarray:
    """``(len(children), len(parents))`` float: ``|child & parent| / |child|`` (RLE records)."""
    from pycocotools import mask as mask_utils

    if not children or not parents:
        return np.zeros((len(children), len(parents)))
    return np.asarray(mask_utils.iou(_rles(children), _rles(parents), [1] * len(parents)), dtype=np.float64)


def mask_iou(a: list[dict], b: list[dict]) -> np.ndarray:
    """``(len(a), len(b))`` IoU of RLE records."""
    from pycocotools import mask as mask_utils

    if not a or not b:
        return np.zeros((len(a), len(b)))
    return np.asarray(mask_utils.iou(_rles(a), _rles(b), [0] * len(b)), dtype=np.float64)


def _levels(record: dict) -> list[float]:
    return record.get("granularity_levels") or [record["granularity"]]


def merge_across_levels(records: list[dict], dedup_iou: float) -> list[dict]:
    """Records with near-duplicates of other levels merged (see the module docstring); finest levels first."""
    by_level: dict[float, list[dict]] = {}
    for record in records:
        by_level.setdefault(float(record["granularity"]), []).append(record)
    kept: list[dict] = []
    for g in sorted(by_level):
        current = by_level[g]
        if kept:
            iou = mask_iou(current, kept)
            best = iou.argmax(1)
            for index, record in enumerate(current):
                if iou[index, best[index]] >= dedup_iou:
                    target = kept[best[index]]
                    merged = sorted({*_levels(target), *_levels(record)})
                    target["granularity_levels"] = merged
                    target["granularity_range"] = [merged[0], merged[-1]]
                    continue
                kept.append(_fresh(record))
        else:
            kept.extend(_fresh(r) for r in current)
    return kept


def _fresh(record: dict) -> dict:
    out = dict(record)
    levels = sorted(
        float(g) for g in _levels(record)
    )  # the tree path's records already stand for several levels
    out["granularity_levels"] = levels
    out["granularity_range"] = [levels[0], levels[-1]]
    return out


def link_parents(records: list[dict], containment: float = 0.8) -> list[dict]:
    """Sets ``id`` (index in ``records``) and ``parent_id`` on every record (in place; also returned)."""
    top = [max(_levels(r)) for r in records]
    levels = sorted({g for r in records for g in _levels(r)})
    for index, record in enumerate(records):
        record["id"] = index
        record["parent_id"] = None
    for level_index, level in enumerate(levels):
        children = [i for i, t in enumerate(top) if t == level]
        for coarser in levels[level_index + 1 :]:
            if not children:
                break
            parents = [i for i, r in enumerate(records) if coarser in _levels(r)]
            if not parents:
                continue
            cover = covered_fraction([records[i] for i in children], [records[i] for i in parents])
            areas = np.asarray([records[i]["area"] for i in parents], dtype=np.float64)
            for row, child in enumerate(children):
                ok = cover[row] >= containment
                if ok.any():
                    rank = np.lexsort((areas, -cover[row]))
                    best = next(int(j) for j in rank if ok[j])
                    records[child]["parent_id"] = parents[best]
            break  # the next coarser level with masks decides (its masks may cover none: then no parent)
    return records
