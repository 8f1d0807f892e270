"""Whole-image masks read straight from the region tree of the weight-free ``hierarchy`` predictor.

The ``hierarchy`` predictor answers a click with a region of its merge tree (:mod:`granseg.predict.hierarchy`), so
clicking a 64 x 64 grid at ten g levels (40,960 ``predict`` calls) only rediscovers tree nodes. Here every node of
the tree built by ``set_image`` is a candidate, once:

* **Which nodes**: every node of at most ``max_object_fraction`` of the image (the predictor's cap on an object;
  the whole image and near-whole merges are never objects) and at least ``min_area`` original pixels.
* **g of a node** (the UnSAMv2 sqrt-area formula over its chain, as the click path reads it): the node's *top* is
  its most persistent ancestor-or-self covering ``[min_object_fraction, max_object_fraction]`` of the image (what a
  click inside it answers at g = 1, :func:`granseg.regions.chains.chain_top`); with ``A_min = part_min_fraction x
  A(top)`` (the smallest part g = 0.1 answers), ``g = 0.1 + 0.9 (sqrt A - sqrt A_min) / (sqrt A(top) - sqrt
  A_min)`` clipped to [0.1, 1] (so parts finer than ``A_min`` get 0.1 and the top 1.0). A node's levels are the
  standard level nearest its g, plus the levels at which a click inside it answers it (g in ``[g(node),
  g(parent))``, from the smallest level for the chain's first region above ``A_min``); a node is kept when one of
  its levels is asked. One record per node: ``granularity`` its smallest asked level, ``granularity_levels`` and
  ``granularity_range`` all of them.
* **Score** (:func:`node_scores`, weights in :data:`SCORE_WEIGHTS`, fitted on BSDS500 val images, see
  benchmarks/results/auto.md): ``sigmoid(w . features + bias)`` over the node's persistence in the ultrametric
  (merge height of its parent minus its own: how long it lives as a region, relative to the tree's largest
  height), the mean boundary strength along its outline against its interior (``B_out / (B_out + B_in)``), its
  log area fraction and its compactness (``4 pi A / perimeter^2`` in internal pixels). Whole objects, with a strong
  outline and a long life, rank above fragments of a uniform area.
* **Nested NMS**: tree nodes are nested or disjoint, so the IoU of two nodes is ``A(small) / A(large)`` when one
  contains the other and 0 otherwise; a node whose IoU with a better-scoring kept node exceeds ``nms_iou`` is
  dropped (a parent that only adds a sliver to its child), then the best ``max_masks`` are kept.
* **Masks**: the leaf-rank map upsampled once to the original size (nearest neighbour; the click path upsamples each
  selection bilinearly, so borders can differ by one internal pixel) and read as runs in column-major order; a
  node's mask is the runs whose rank lies in the node's ``[lo, hi)`` interval, written straight as a COCO RLE
  (no ``H x W`` mask is built per node).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from granseg.predict.base import GRANULARITY_LEVELS
from granseg.regions import chains as ch
from granseg.regions.tree import RegionTree

SCORE_FEATURES = ("persistence", "contrast", "log_area", "compactness")
SCORE_WEIGHTS = {"persistence": 2.0, "contrast": 0.0, "log_area": 0.5, "compactness": 2.0, "bias": 0.0}
"""Linear weights of :func:`node_scores`: a grid search (persistence, contrast in {0, 2, 4, 8}, log area in {0, 0.25,
0.5, 1}, compactness in {0, 1, 2}) for the best AR@10 + AR@100 on 25 BSDS500 val images (every other one of the
first half of the sorted ids; all human segments of 0.1 % to 70 % of the image as objects); the boundary contrast
did not add to persistence there (weight 0). Reported on COCO (benchmarks/results/auto.md)."""


@dataclass
class TreeReadout:
    """Settings of the region-tree readout (a subset of the ``hierarchy`` and automatic configs)."""

    min_object_fraction: float = 0.01
    max_object_fraction: float = 0.7
    part_min_fraction: float = 0.05
    min_area: int = 1
    nms_iou: float = 0.9
    max_masks: int = 1000


def node_tops(tree: RegionTree, min_fraction: float, max_fraction: float) -> np.ndarray:
    """``(M,)`` node id of each node's top (its most persistent ancestor-or-self covering ``[min_fraction,
    max_fraction]`` of the image; ties go to the lower node, as :func:`~granseg.regions.chains.chain_top`), -1 when
    no ancestor-or-self is in that range. Parents have larger ids than their children (merge order)."""
    count = tree.n_nodes
    fraction = tree.area / float(tree.leaf_map.size)
    life = ch.persistence(tree, np.arange(count))
    in_range = (fraction >= min_fraction) & (fraction <= max_fraction)
    top = np.full(count, -1, dtype=np.int64)
    parent = tree.parent
    for node in range(count - 1, -1, -1):
        above = top[parent[node]] if parent[node] >= 0 else -1
        if in_range[node] and (above < 0 or life[node] >= life[above]):
            top[node] = node
        else:
            top[node] = above
    return top


def node_granularity(tree: RegionTree, top: np.ndarray, part_min_fraction: float) -> np.ndarray:
    """``(M,)`` g in [0.1, 1] of every node (module docstring); nodes without a top get 1.0."""
    safe = np.maximum(top, 0)
    top_area = tree.area[safe]
    low = np.sqrt(part_min_fraction * top_area)
    span = np.maximum(np.sqrt(top_area) - low, 1e-9)
    g = np.clip(0.1 + 0.9 * (np.sqrt(tree.area) - low) / span, 0.1, 1.0)
    g[(top < 0) | (top == np.arange(tree.n_nodes))] = 1.0
    return g


def node_levels(
    tree: RegionTree, top: np.ndarray, g: np.ndarray, part_min_fraction: float, levels: tuple[float, ...]
) -> np.ndarray:
    """``(M, len(levels))`` bool: the asked ``levels`` each node stands for (module docstring)."""
    levels_arr = np.asarray(levels, dtype=np.float64)
    standard = np.asarray(GRANULARITY_LEVELS, dtype=np.float64)
    nearest = standard[np.abs(g[:, None] - standard[None, :]).argmin(1)]
    out = np.isclose(nearest[:, None], levels_arr[None, :])
    nodes = np.arange(tree.n_nodes)
    has_top = top >= 0
    threshold = part_min_fraction * tree.area[np.maximum(top, 0)]
    above = tree.area >= threshold
    children = tree.children
    is_leaf = children[:, 0] < 0
    small_child = ~is_leaf & (
        (tree.area[np.maximum(children[:, 0], 0)] < threshold)
        | (tree.area[np.maximum(children[:, 1], 0)] < threshold)
    )
    start = np.where(is_leaf | small_child, 0.0, g)  # the chain's first region above A_min answers from 0.1
    is_top = top == nodes
    parent_g = np.where(is_top | (tree.parent < 0), np.inf, g[np.maximum(tree.parent, 0)])
    answered = (start[:, None] <= levels_arr[None, :] + 1e-9) & (
        levels_arr[None, :] + 1e-9 < parent_g[:, None]
    )
    out |= answered & (has_top & above)[:, None]
    return out & has_top[:, None]


def node_features(tree: RegionTree) -> dict[str, np.ndarray]:
    """``(M,)`` float arrays named in :data:`SCORE_FEATURES` (module docstring)."""
    count = tree.n_nodes
    nodes = np.arange(count)
    scale = max(float(tree.height.max()), 1e-9)
    life = np.minimum(ch.persistence(tree, nodes), scale) / scale
    # edges crossing / inside each node: leaf ranks a < b; a node holds the ranks [lo, hi)
    a, b = tree.edge_a[None, :], tree.edge_b[None, :]
    lo, hi = tree.lo[:, None], tree.hi[:, None]
    in_a = (lo <= a) & (a < hi)
    in_b = (lo <= b) & (b < hi)
    outline, inner = in_a != in_b, in_a & in_b
    length, strength = tree.edge_len, tree.edge_strength
    out_len, in_len = outline @ length, inner @ length
    b_out = (outline @ strength) / np.maximum(out_len, 1.0)
    b_in = (inner @ strength) / np.maximum(in_len, 1.0)
    # a leaf has no inner edge: its interior counts as the image's mean edge strength
    mean_strength = float(strength.sum() / max(float(length.sum()), 1.0))
    b_in = np.where(in_len > 0, b_in, mean_strength)
    contrast = b_out / (b_out + b_in + 1e-9)
    # perimeter: outline edges plus the image border the node touches
    leaf_map = tree.leaf_map
    border = np.concatenate([leaf_map[0], leaf_map[-1], leaf_map[:, 0], leaf_map[:, -1]])
    border_counts = np.concatenate([[0], np.cumsum(np.bincount(border, minlength=tree.n_leaves))])
    perimeter = out_len + border_counts[tree.hi] - border_counts[tree.lo]
    compactness = np.clip(4 * np.pi * tree.area / np.maximum(perimeter, 1.0) ** 2, 0.0, 1.0)
    log_area = np.log(np.maximum(tree.area, 1.0) / float(leaf_map.size))
    return {"persistence": life, "contrast": contrast, "log_area": log_area, "compactness": compactness}


def node_scores(features: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
    """``(M,)`` scores in (0, 1): ``sigmoid(sum_k w_k feature_k + bias)``."""
    weights = weights or SCORE_WEIGHTS
    z = np.full(len(features[SCORE_FEATURES[0]]), float(weights.get("bias", 0.0)))
    for name in SCORE_FEATURES:
        z += float(weights.get(name, 0.0)) * features[name]
    return 1.0 / (1.0 + np.exp(-z))


def nested_nms(tree: RegionTree, order: np.ndarray, threshold: float, limit: int) -> np.ndarray:
    """Greedy NMS over tree nodes in ``order`` (best first) with the exact nested-region IoU (module
    docstring); at most ``limit`` nodes kept, in order."""
    kept: list[int] = []
    kept_mask = np.zeros(tree.n_nodes, bool)
    lo, hi, area, parent = tree.lo, tree.hi, tree.area, tree.parent
    for node in order.tolist():
        if len(kept) >= limit:
            break
        if threshold < 1.0:
            up, clash = parent[node], False
            while up >= 0 and area[node] > threshold * area[up]:
                if kept_mask[up]:
                    clash = True
                    break
                up = parent[up]
            if clash:
                continue
            if kept:
                ids = np.asarray(kept)
                inside = (lo[ids] >= lo[node]) & (hi[ids] <= hi[node]) & (area[ids] > threshold * area[node])
                if inside.any():
                    continue
        kept.append(node)
        kept_mask[node] = True
    return np.asarray(kept, dtype=np.int64)


class RankRuns:
    """The leaf-rank map at the original size as column-major runs, to write node masks as COCO RLEs."""

    def __init__(self, tree: RegionTree, original_size: tuple[int, int]) -> None:
        height, width = original_size
        ranks = tree.leaf_map
        if ranks.shape != (height, width):
            ranks = cv2.resize(ranks, (width, height), interpolation=cv2.INTER_NEAREST)
        flat = np.asarray(ranks, dtype=np.int64).ravel(order="F")
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        self.start = np.concatenate([[0], change, [flat.size]])  # (R + 1,) run boundaries
        self.rank = flat[self.start[:-1]]  # (R,)
        self.size = (height, width)
        self.leaf_pixels = np.bincount(flat, minlength=tree.n_leaves)
        rows = np.arange(flat.size) % height
        cols = np.arange(flat.size) // height
        self.leaf_box = np.stack(
            [
                _reduce(np.minimum, cols, flat, tree.n_leaves, width),
                _reduce(np.minimum, rows, flat, tree.n_leaves, height),
                _reduce(np.maximum, cols, flat, tree.n_leaves, -1),
                _reduce(np.maximum, rows, flat, tree.n_leaves, -1),
            ],
            1,
        )

    def rle(self, lo: int, hi: int) -> dict:
        """COCO compressed RLE (``counts`` str) of the leaf ranks ``[lo, hi)``."""
        from pycocotools import mask as mask_utils

        selected = np.concatenate([[False], (self.rank >= lo) & (self.rank < hi), [False]])
        flips = np.flatnonzero(selected[1:] != selected[:-1])  # run indices where the value changes
        bounds = np.concatenate([[0], self.start[flips], [self.start[-1]]])
        counts = np.diff(bounds)
        if counts.size > 1 and counts[-1] == 0:
            counts = counts[:-1]
        height, width = self.size
        rle = mask_utils.frPyObjects({"counts": counts.tolist(), "size": [height, width]}, height, width)
        return {"size": [height, width], "counts": rle["counts"].decode("ascii")}

    def area_and_box(self, lo: int, hi: int) -> tuple[int, list[float]]:
        """Pixel count and COCO ``[x, y, w, h]`` box of the leaf ranks ``[lo, hi)``."""
        box = self.leaf_box[lo:hi]
        x0, y0 = int(box[:, 0].min()), int(box[:, 1].min())
        x1, y1 = int(box[:, 2].max()), int(box[:, 3].max())
        area = int(self.leaf_pixels[lo:hi].sum())
        if area == 0:
            return 0, [0.0, 0.0, 0.0, 0.0]
        return area, [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]


def _reduce(op, values: np.ndarray, labels: np.ndarray, count: int, fill: int) -> np.ndarray:
    out = np.full(count, fill, dtype=np.int64)
    op.at(out, labels, values)
    return out


def tree_records(
    tree: RegionTree,
    original_size: tuple[int, int],
    levels: tuple[float, ...],
    readout: TreeReadout,
    weights: dict[str, float] | None = None,
) -> tuple[list[dict], dict[str, int]]:
    """Mask records (module docstring) of ``tree`` for an image of ``original_size`` (H, W), best score first,
    and counts of the work done (``nodes``, ``candidates``, ``kept``)."""
    top = node_tops(tree, readout.min_object_fraction, readout.max_object_fraction)
    g = node_granularity(tree, top, readout.part_min_fraction)
    member = node_levels(tree, top, g, readout.part_min_fraction, tuple(levels))
    scale = float(original_size[0] * original_size[1]) / float(tree.leaf_map.size)
    fraction = tree.area / float(tree.leaf_map.size)
    candidate = (
        member.any(1) & (fraction <= readout.max_object_fraction) & (tree.area * scale >= readout.min_area)
    )
    scores = node_scores(node_features(tree), weights)
    nodes = np.flatnonzero(candidate)
    order = nodes[np.lexsort((nodes, -scores[nodes]))]
    kept = nested_nms(tree, order, readout.nms_iou, readout.max_masks)
    runs = RankRuns(tree, original_size)
    level_values = np.asarray(levels, dtype=np.float64)
    records = []
    for node in kept.tolist():
        lo, hi = int(tree.lo[node]), int(tree.hi[node])
        area, box = runs.area_and_box(lo, hi)
        if area < max(1, readout.min_area):
            continue
        own = sorted(float(v) for v in level_values[member[node]])
        records.append(
            {
                "segmentation": runs.rle(lo, hi),
                "area": area,
                "bbox": box,
                "score": float(scores[node]),
                "granularity": own[0],
                "granularity_levels": own,
                "granularity_range": [own[0], own[-1]],
                "point_coords": [_inner_point(runs, tree, lo, hi)],
                "node_g": round(float(g[node]), 4),
            }
        )
    return records, {"nodes": tree.n_nodes, "candidates": int(candidate.sum()), "kept": len(records)}


def _inner_point(runs: RankRuns, tree: RegionTree, lo: int, hi: int) -> list[float]:
    """``[x, y]`` (original pixels): the centre of the middle run of the node's largest leaf (inside the mask)."""
    leaf = lo + int(np.argmax(runs.leaf_pixels[lo:hi]))
    index = np.flatnonzero(runs.rank == leaf)
    middle = index[len(index) // 2]
    position = (runs.start[middle] + runs.start[middle + 1] - 1) // 2
    height = runs.size[0]
    return [float(position // height), float(position % height)]
