"""Answer point/box/granularity prompts from a :class:`~granseg.models.hierarchy_build.RegionTree`.

All selection happens on superpixels ("leaves", indexed by their depth-first rank, so a tree node is the leaf
interval ``[lo, hi)``); the final masks are upsampled to the original image size. See
:mod:`granseg.models.hierarchy` for the rules.
"""

from __future__ import annotations

import cv2
import numpy as np

from granseg.hierarchy_math import granularity_from_areas
from granseg.models.hierarchy_build import RegionTree


def points_to_leaves(tree: RegionTree, points: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """Leaf ranks under ``(N, 2)`` (x, y) points given in pixels of the original ``(H, W)`` image."""
    height, width = tree.leaf_map.shape
    sx, sy = width / original_size[1], height / original_size[0]
    cols = np.clip(np.floor(points[:, 0] * sx), 0, width - 1).astype(np.int64)
    rows = np.clip(np.floor(points[:, 1] * sy), 0, height - 1).astype(np.int64)
    return tree.leaf_map[rows, cols].astype(np.int64)


def leaf_box_fraction(tree: RegionTree, box: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """``(n_leaves + 1,)`` cumulative inside-box pixel counts over leaf ranks (prefix sums: node n has
    ``c[hi] - c[lo]`` pixels inside the box)."""
    height, width = tree.leaf_map.shape
    sx, sy = width / original_size[1], height / original_size[0]
    x0, x1 = int(np.floor(box[0] * sx)), int(np.ceil(box[2] * sx))
    y0, y1 = int(np.floor(box[1] * sy)), int(np.ceil(box[3] * sy))
    inside = np.bincount(tree.leaf_map[y0:y1, x0:x1].ravel(), minlength=tree.n_leaves).astype(np.float64)
    return np.concatenate([[0.0], np.cumsum(inside)])


def chain_top(tree: RegionTree, chain: list[int], image_area: float, cfg, allowed: np.ndarray | None) -> int:
    """Index in ``chain`` of the object region: among chain regions whose area lies in [min_object_fraction,
    max_object_fraction] of the image (and that are allowed, e.g. inside the box), the most persistent one
    (largest ``height(parent) - height(node)``): the region just before a strong-boundary merge. Falls back to
    the largest allowed region under the cap."""
    nodes = np.asarray(chain)
    area = tree.area[nodes] / image_area
    ok = area <= cfg.max_object_fraction
    if allowed is not None:
        ok &= allowed
    ok[0] = True  # the leaf is always a possible answer
    big_enough = ok & (area >= cfg.min_object_fraction)
    if not big_enough.any():
        return int(np.nonzero(ok)[0].max())
    # The root (the whole image) is above max_object_fraction, so its sentinel persistence never competes.
    return int(np.argmax(np.where(big_enough, persistence(tree, nodes), -np.inf)))


def persistence(tree: RegionTree, nodes: np.ndarray) -> np.ndarray:
    """``height(parent) - height(node)`` for each node (roots: twice the largest height plus one)."""
    parents = tree.parent[nodes]
    top = tree.height.max() * 2 + 1
    parent_height = np.where(parents >= 0, tree.height[np.maximum(parents, 0)], top)
    return parent_height - tree.height[nodes]


def granularity_chain(tree: RegionTree, chain: list[int], top: int, cfg) -> tuple[np.ndarray, np.ndarray]:
    """The regions g can pick for one click, and their g: the *salient* chain regions up to ``top`` (the parent's
    merge height >= ``salient_ratio`` x their own, i.e. a boundary clearly stronger than anything inside them, and
    area >= ``part_min_fraction`` x the top's), always including the top.
    g is the UnSAMv2 sqrt-area formula over them, so the smallest salient region gets 0.1 and the top 1.0 (a top
    without salient sub-regions is an instance without parts: it answers every g)."""
    nodes = np.asarray(chain[: top + 1])
    areas = tree.area[nodes]
    parent_height = tree.height[nodes] + persistence(tree, nodes)
    salient = (parent_height >= cfg.salient_ratio * tree.height[nodes]) & (
        areas >= cfg.part_min_fraction * areas[-1]
    )
    salient[-1] = True
    picked = nodes[salient]
    return picked, granularity_from_areas(tree.area[picked])


def node_for_granularity(nodes: np.ndarray, levels: np.ndarray, g: float) -> int:
    """The largest region of a granularity chain whose g is <= ``g`` (the smallest one if none)."""
    return int(nodes[max(int(np.searchsorted(levels, g + 1e-9, side="right")) - 1, 0)])


def ultrametric_distance(tree: RegionTree, seeds: np.ndarray) -> np.ndarray:
    """``(n_leaves,)`` min over seed leaves of the merge height of the lowest common ancestor (0 at a seed)."""
    dist = np.full(tree.n_leaves, np.inf)
    for seed in np.unique(seeds):
        # walk down from the root: a leaf's LCA with the seed is the lowest chain node containing it
        for node in reversed(tree.chain(int(tree.leaf_node[seed]))):
            segment = dist[tree.lo[node] : tree.hi[node]]
            np.minimum(segment, tree.height[node], out=segment)
    return dist


def mask_contrast(tree: RegionTree, selected: np.ndarray) -> float:
    """``B_out / (B_out + B_in)``: mean boundary strength along the outline vs inside (see module docs)."""
    sa, sb = selected[tree.edge_a], selected[tree.edge_b]
    outline = sa != sb
    inner = sa & sb
    b_out = tree.edge_strength[outline].sum() / max(tree.edge_len[outline].sum(), 1.0)
    b_in = tree.edge_strength[inner].sum() / max(tree.edge_len[inner].sum(), 1.0)
    return float(b_out / (b_out + b_in + 1e-9))


def upsample_leaves(tree: RegionTree, selected: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """Leaf selection ``(n_leaves,)`` bool -> ``H x W`` bool mask (bilinear upsampling of the internal mask)."""
    small = selected[tree.leaf_map].astype(np.float32)
    if small.shape == tuple(original_size):
        return small > 0.5
    big = cv2.resize(small, (original_size[1], original_size[0]), interpolation=cv2.INTER_LINEAR)
    return big > 0.5


def select_masks(tree, cfg, original_size, points, labels, box, granularity):
    """Masks ``K x H x W`` bool and scores ``(K,)`` for the validated prompts (see module docs)."""
    image_area = float(tree.leaf_map.size)
    if len(points) == 0 or not (labels == 1).any():
        centre = np.array([[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]])
        points = np.concatenate([points, centre])
        labels = np.concatenate([labels, [1]])
    leaves = points_to_leaves(tree, points, original_size)
    positives, negatives = leaves[labels == 1], leaves[labels == 0]
    box_cum = leaf_box_fraction(tree, box, original_size) if box is not None else None

    chains = []
    for leaf in positives:
        chain = tree.chain(int(tree.leaf_node[leaf]))
        allowed = None
        if box_cum is not None:
            nodes = np.asarray(chain)
            inside = box_cum[tree.hi[nodes]] - box_cum[tree.lo[nodes]]
            allowed = inside >= 0.8 * tree.area[nodes]
        top = chain_top(tree, chain, image_area, cfg, allowed)
        chains.append(granularity_chain(tree, chain, top, cfg))

    d_pos = ultrametric_distance(tree, positives)
    keep = np.ones(tree.n_leaves, bool)
    if len(negatives):
        d_neg = ultrametric_distance(tree, negatives)
        keep = d_pos < d_neg
        keep[positives] = True

    masks = np.zeros((len(granularity), *original_size), bool)
    scores = np.zeros(len(granularity))
    for k, g in enumerate(granularity):
        selected = np.zeros(tree.n_leaves, bool)
        for nodes, levels in chains:
            node = node_for_granularity(nodes, levels, float(g))
            selected[tree.lo[node] : tree.hi[node]] = True
        selected &= keep
        if cfg.refine and (len(points) > 1 or cfg.refine_single_click):
            from granseg.models.hierarchy_refine import refine_selection

            selected = refine_selection(tree, selected, positives, negatives, cfg)
        scores[k] = mask_contrast(tree, selected)
        mask = upsample_leaves(tree, selected, original_size)
        if box is not None:
            x0, y0, x1, y1 = np.floor(box[:2]).astype(int).tolist() + np.ceil(box[2:]).astype(int).tolist()
            clipped = np.zeros_like(mask)
            clipped[y0:y1, x0:x1] = mask[y0:y1, x0:x1]
            mask = clipped
        masks[k] = mask
    return masks, scores
