"""Whole-image masks at any granularity: :class:`AutomaticSegmenter` (the pipeline; settings in
:mod:`granseg.predict.automatic.config`).

Per image: embed once; a ``points_per_side x points_per_side`` grid of single positive clicks (cell centres, pixels
of the original image); every (point, g) pair decoded in batches of ``point_batch`` points (x all levels) by the
predictor's source (:mod:`granseg.predict.automatic.sources`). Per batch, in this order:

1. score filter (predicted IoU >= 0.65 for g < 0.5, >= 0.5 otherwise);
2. stability filter on the logits (low-res logits over the image content before any upsampling, or full-res
   logits with ``stability_resolution="full"``); predictors without logits (binary masks) skip it;
3. only the survivors are upsampled to the original size (in chunks), thresholded and checked against
   ``min_area``; identical masks of one g (same hash) keep the highest score, and only masks not seen before at
   that g are RLE-encoded (pycocotools).

Then greedy box NMS per g (:func:`~granseg.predict.automatic.filters.box_nms`), the union over g sorted by score,
optional cross-level de-duplication and the part-whole tree (:mod:`granseg.predict.automatic.mask_tree`).
``point_pruning`` / ``coarse_to_fine`` change which pairs are decoded (see :class:`AutomaticConfig`).

The ``hierarchy`` model (``source="auto"`` or ``"tree"``) skips the grid: every region of the tree its ``set_image``
builds is a candidate once (:mod:`granseg.predict.automatic.region_tree`), then the same tail (de-duplication, the
part-whole tree).

Output records: ``segmentation`` (COCO RLE), ``area``, ``bbox`` ``[x, y, w, h]``, ``score``, ``granularity``,
``point_coords``; with several levels also ``id`` and ``parent_id`` (and ``granularity_range`` /
``granularity_levels`` with de-duplication). :attr:`AutomaticSegmenter.stats` counts the work done.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from granseg.errors import InputError
from granseg.io.masks import encode_rle, mask_bbox
from granseg.predict.automatic.config import AutomaticConfig
from granseg.predict.automatic.filters import box_nms, point_grid, stability_scores
from granseg.predict.automatic.gen2seg import ColourClusterSource
from granseg.predict.automatic.mask_tree import link_parents, merge_across_levels
from granseg.predict.automatic.region_tree import TreeReadout, tree_records
from granseg.predict.automatic.sources import Decoded, grid_source
from granseg.predict.base import BasePredictor

UPSAMPLE_CHUNK = 16  # survivors upsampled and encoded per step


class _Level:
    """Accepted masks of one g, keyed by a hash of the mask (identical masks keep the highest score, ties the
    first seen; only a mask not seen before is RLE-encoded), and the coverage used by point pruning."""

    def __init__(self, g: float, shape: tuple[int, int], track_coverage: bool) -> None:
        self.g = g
        self.records: dict[bytes, dict] = {}
        self.coverage = np.zeros(shape, dtype=bool) if track_coverage else None

    def add(self, mask: np.ndarray, score: float, point: np.ndarray) -> bool:
        """Adds an ``H x W`` bool mask (C-contiguous); True when it was not known."""
        key = hashlib.blake2b(mask.data, digest_size=16).digest()
        known = self.records.get(key)
        if self.coverage is not None:
            self.coverage |= mask
        if known is not None:
            if score > known["score"]:
                known.update(score=score, point_coords=[[float(point[0]), float(point[1])]])
            return False
        self.records[key] = {
            "segmentation": encode_rle(mask),
            "area": int(np.count_nonzero(mask)),
            "bbox": mask_bbox(mask),
            "score": score,
            "granularity": round(self.g, 4),
            "point_coords": [[float(point[0]), float(point[1])]],
        }
        return True

    def covers(self, points: np.ndarray) -> np.ndarray:
        if self.coverage is None:
            return np.zeros(len(points), dtype=bool)
        cols = np.clip(points[:, 0].astype(np.int64), 0, self.coverage.shape[1] - 1)
        rows = np.clip(points[:, 1].astype(np.int64), 0, self.coverage.shape[0] - 1)
        return self.coverage[rows, cols]


class AutomaticSegmenter:
    """Grid-of-points automatic masks at every g (see the module docstring)."""

    def __init__(self, predictor: BasePredictor, config: AutomaticConfig | None = None) -> None:
        self.predictor = predictor
        self.config = config or AutomaticConfig()
        self.stats: dict[str, int] = {}

    def generate(self, image: np.ndarray, quiet: bool = True, points: np.ndarray | None = None) -> list[dict]:
        """Records for ``image`` (``H x W x 3`` uint8); an empty list when nothing passes the filters.
        ``points`` (``(N, 2)`` x, y pixels) replaces the grid (e.g. a measured fraction of it, for timing)."""
        cfg = self.config
        levels = [float(g) for g in cfg.granularities]
        if points is None and self.reads_tree():
            return self._generate_from_tree(image, levels)
        source = grid_source(self.predictor, cfg.batched)
        source.set_image(image)
        height, width = source.image_size
        track = cfg.point_pruning or cfg.coarse_to_fine
        store = {g: _Level(g, (height, width), track) for g in levels}
        self.stats = {
            "source": "grid",
            "decoded": 0,
            "passed_score": 0,
            "passed_stability": 0,
            "upsampled": 0,
            "accepted": 0,
        }
        if isinstance(source, ColourClusterSource):
            for g in levels:
                self._run_regions(source, g, store)
            return self._finish(store, levels)
        grid = point_grid(height, width, cfg.points_per_side) if points is None else np.asarray(points, float)
        if cfg.coarse_to_fine:
            previous = None
            for g in sorted(levels, reverse=True):
                points = grid if previous is None else grid[store[previous].covers(grid)]
                self._run(source, points, [g], store, quiet)
                previous = g
        else:
            self._run(source, grid, levels, store, quiet)
        return self._finish(store, levels)

    # ------------------------------------------------------------------------------------------- region tree
    def reads_tree(self) -> bool:
        """Whether candidates come from the predictor's region tree (``source``; see :class:`AutomaticConfig`)."""
        from granseg.predict.hierarchy import HierarchyPredictor

        has_tree = isinstance(self.predictor, HierarchyPredictor)
        if self.config.source == "tree" and not has_tree:
            raise InputError(
                "source 'tree' needs a model with a region tree (hierarchy); use 'grid' or 'auto'"
            )
        return has_tree and self.config.source != "grid"

    def _generate_from_tree(self, image: np.ndarray, levels: list[float]) -> list[dict]:
        """Every region of the tree built by ``set_image`` as a candidate (:mod:`.region_tree`), then the same
        tail as the grid (de-duplication across levels, the part-whole tree)."""
        cfg, predictor = self.config, self.predictor
        predictor.set_image(image)
        pc = predictor.config
        readout = TreeReadout(
            min_object_fraction=pc.min_object_fraction,
            max_object_fraction=pc.max_object_fraction,
            part_min_fraction=pc.single_click_min_fraction,  # a click's smallest level (default 0.05)
            min_area=cfg.min_area,
            nms_iou=cfg.tree_nms_iou,
            max_masks=cfg.max_masks,
        )
        records, counts = tree_records(predictor.tree, predictor.image_size, tuple(levels), readout)
        self.stats = {"source": "tree", "decoded": 0, **counts}
        return self._across_levels(records, levels)

    def _across_levels(self, records: list[dict], levels: list[float]) -> list[dict]:
        """With several g levels: de-duplicate across them (``dedup_iou``) and link each mask to its parent."""
        cfg = self.config
        if len(levels) > 1:
            if cfg.dedup_iou > 0:
                records = merge_across_levels(records, cfg.dedup_iou)
                records.sort(key=lambda r: -r["score"])
            link_parents(records, cfg.parent_containment)
        self.stats["kept"] = len(records)
        return records

    # ------------------------------------------------------------------------------------------- decoding
    def _run(self, source, points: np.ndarray, levels: list[float], store, quiet: bool) -> None:
        from granseg.utils.progress import progress

        cfg = self.config
        per_call = max(1, min(cfg.point_batch, source.max_pairs(len(levels)) // len(levels)))
        starts = range(0, len(points), per_call)
        for start in progress(starts, desc=f"points x {len(levels)} g", quiet=quiet):
            batch = points[start : start + per_call]
            pair_points = np.repeat(batch, len(levels), axis=0)
            pair_levels = np.tile(np.asarray(levels, dtype=np.float64), len(batch))
            if cfg.point_pruning:
                covered = np.zeros(len(pair_points), dtype=bool)
                for g in levels:
                    at = pair_levels == g
                    covered[at] = store[g].covers(pair_points[at])
                pair_points, pair_levels = pair_points[~covered], pair_levels[~covered]
            if len(pair_points) == 0:
                continue
            decoded = source.decode(pair_points, pair_levels)
            self.stats["decoded"] += len(pair_points)
            self._accept(source, decoded, pair_points, pair_levels, store)

    def _run_regions(self, source: ColourClusterSource, g: float, store) -> None:
        """Every region of the source at ``g`` is a candidate (no score or stability filter: the scores are
        colour coherences, not predicted IoUs)."""
        labels, scores = source.regions(g)
        count = len(scores)
        flat = labels.ravel()
        first = np.full(count, -1, dtype=np.int64)
        first[flat[::-1]] = np.arange(flat.size - 1, -1, -1)  # first pixel of each region, row-major
        points = np.stack([first % labels.shape[1], first // labels.shape[1]], 1).astype(np.float64)
        self.stats["decoded"] += count
        for start in range(0, count, UPSAMPLE_CHUNK):
            ids = np.arange(start, min(start + UPSAMPLE_CHUNK, count))
            self._encode(labels[None] == ids[:, None, None], ids, scores, points, np.full(count, g), store)

    def _accept(self, source, decoded: Decoded, points: np.ndarray, levels: np.ndarray, store) -> None:
        """Filters 1-3 of the module docstring for one decoded batch; accepted masks go to ``store``."""
        cfg = self.config
        thresholds = torch.as_tensor([cfg.score_threshold(g) for g in levels], dtype=torch.float64)
        keep = decoded.scores.cpu().double() >= thresholds
        self.stats["passed_score"] += int(keep.sum())
        logits = decoded.logits
        if logits is not None and (not decoded.low_res or cfg.stability_resolution == "low"):
            view = source.content(logits[keep]) if decoded.low_res else logits[keep]
            stable = (
                stability_scores(view, cfg.stability_offset, source.mask_threshold) >= cfg.stability_thresh
            )
            keep[keep.clone()] = stable.cpu()
        self.stats["passed_stability"] += int(keep.sum())
        survivors = np.nonzero(keep.numpy())[0]
        for start in range(0, len(survivors), UPSAMPLE_CHUNK):
            chunk = survivors[start : start + UPSAMPLE_CHUNK]
            masks = self._full_masks(source, decoded, chunk)
            self.stats["upsampled"] += len(chunk)
            self._encode(masks, chunk, decoded.scores, points, levels, store)

    def _full_masks(self, source, decoded: Decoded, chunk: np.ndarray) -> np.ndarray:
        """``(n, H, W)`` bool masks of the ``chunk`` pairs; with ``stability_resolution="full"`` the unstable
        ones are emptied (then dropped by ``min_area``)."""
        cfg = self.config
        if decoded.logits is None:
            return decoded.masks[chunk]
        rows = torch.as_tensor(chunk)
        full = source.full_logits(decoded.logits[rows]) if decoded.low_res else decoded.logits[rows]
        masks = full > source.mask_threshold
        if decoded.low_res and cfg.stability_resolution == "full":
            stable = (
                stability_scores(full, cfg.stability_offset, source.mask_threshold) >= cfg.stability_thresh
            )
            masks &= stable[:, None, None]
        return masks.cpu().numpy()

    def _encode(self, masks: np.ndarray, pairs: np.ndarray, scores, points, levels, store) -> None:
        """Masks of at least ``min_area`` pixels go to their level's store (new ones RLE-encoded there)."""
        areas = masks.reshape(len(masks), -1).sum(1)
        for index in np.nonzero(areas >= max(1, self.config.min_area))[0]:
            pair = int(pairs[index])
            store[float(levels[pair])].add(
                np.ascontiguousarray(masks[index]), float(scores[pair]), points[pair]
            )
            self.stats["accepted"] += 1

    # ------------------------------------------------------------------------------------------- output
    def _finish(self, store, levels: list[float]) -> list[dict]:
        cfg = self.config
        records: list[dict] = []
        for g in levels:
            found = list(store[g].records.values())
            if not found:
                continue
            boxes = np.asarray(
                [
                    [r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2], r["bbox"][1] + r["bbox"][3]]
                    for r in found
                ]
            )
            keep = box_nms(boxes, np.asarray([r["score"] for r in found]), cfg.box_nms_thresh)
            records.extend(found[i] for i in keep)
        records.sort(key=lambda r: -r["score"])
        return self._across_levels(records, levels)
