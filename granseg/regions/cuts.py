"""Whole-image partitions of a region tree at a granularity g: one cut of the tree per g, shared by every region.

A single click's g is relative to the click's own chain (leaf to its top; :mod:`granseg.regions.chains`), so the
regions single clicks answer at one g come from different cuts of the tree in different places. The whole-image
partition at g is instead **the tree's cut at one split height** ``t(g)``: every region is the largest tree node
whose merge height is at most ``t(g)``. The split height of a learned tree is ``1 - p(same)`` of its merge (the
learned probability that the two sides are one segment, comparable across images: ``RegionTree.split_heights``);
``t`` goes linearly from ``finest`` at g = 0.1 to ``coarsest`` at g = 1.0::

    t(g) = finest + (coarsest - finest) * (g - 0.1) / 0.9

so larger g merges every pair the criterion is less sure of, and the partitions of increasing g are nested (each
region at g is a union of regions at any smaller g). The whole image is one region only when even the finest
cut merges it (the criterion is at least 1 - ``finest`` sure that the image is one segment: a uniform picture);
otherwise ``coarsest`` is lowered to the largest height below the tree's last merge when it is above it
(:func:`top_height_below_root`), so g = 1.0 is the coarsest cut that still splits the image. For a tree on an
image-dependent height scale (the ``handcrafted`` criterion) the heights are first divided by the tree's largest
height.

Labels are ``h x w`` int32 at the tree's internal resolution, numbered 0..K-1 in the order of the regions' first
leaf rank.
"""

from __future__ import annotations

import numpy as np

from granseg.regions.tree import RegionTree

G_MIN, G_MAX = 0.1, 1.0


def cut_height(g: float, finest: float, coarsest: float) -> float:
    """The split height of the cut at granularity ``g`` in [0.1, 1] (module docstring)."""
    if not G_MIN - 1e-9 <= g <= G_MAX + 1e-9:
        raise ValueError(f"granularity must lie in [0.1, 1], got {g}")
    return float(finest + (coarsest - finest) * (g - G_MIN) / (G_MAX - G_MIN))


def cut_scale_heights(tree: RegionTree) -> np.ndarray:
    """``(n_nodes,)`` heights the cut thresholds apply to: ``split_heights`` (``1 - p(same)``) of a learned tree,
    else the heights over their maximum (so in [0, 1] as well)."""
    heights = tree.split_heights
    if tree.criterion != "learned":
        heights = heights / max(float(heights.max()), 1e-12)
    return heights


def top_height_below_root(heights: np.ndarray) -> float:
    """The largest height below the tree's highest one (its last merge; the whole image); the highest itself
    when every node is that high (a tree of one leaf)."""
    top = float(heights.max())
    below = heights[heights < top]
    return float(below.max()) if below.size else top


def cut_regions(tree: RegionTree, threshold: float, heights: np.ndarray | None = None) -> np.ndarray:
    """``(n_leaves,)`` node id of each leaf rank's region in the cut at ``threshold``: its highest ancestor-or-self
    whose height (``heights``, default :func:`cut_scale_heights`) is at most ``threshold`` (the leaf itself when
    even its parent is higher). Heights never decrease towards the root, so one top-down pass finds it."""
    heights = cut_scale_heights(tree) if heights is None else heights
    region = np.arange(tree.n_nodes)
    parent = tree.parent
    for node in range(tree.n_nodes - 1, -1, -1):  # parents have larger ids than their children
        up = parent[node]
        if up >= 0 and heights[up] <= threshold:
            region[node] = region[up]
    return region[tree.leaf_node]


def partition_labels(
    tree: RegionTree,
    g: float,
    finest: float,
    coarsest: float,
    heights: np.ndarray | None = None,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """``h x w`` int32 labels 0..K-1 of the tree's cut at granularity ``g`` (module docstring), at the tree's
    internal resolution (``tree.leaf_map``'s shape), or resized to ``size`` = (H, W) (nearest neighbour: a
    region label per original pixel)."""
    heights = cut_scale_heights(tree) if heights is None else heights
    if float(heights.max()) > finest:  # the finest cut splits the image: no cut may merge it whole
        coarsest = max(finest, min(coarsest, top_height_below_root(heights)))
    regions = cut_regions(tree, cut_height(g, finest, coarsest), heights)
    # a region is an interval of leaf ranks: number the intervals in rank order
    numbers = np.concatenate([[0], np.cumsum(regions[1:] != regions[:-1])]).astype(np.int32)
    labels = numbers[tree.leaf_map]
    if size is not None and tuple(size) != labels.shape:
        import cv2

        # cv2 resizes int32 with nearest neighbour; labels stay exact integers
        labels = cv2.resize(labels, (int(size[1]), int(size[0])), interpolation=cv2.INTER_NEAREST)
    return labels


def partitions(
    tree: RegionTree, levels, finest: float, coarsest: float, size: tuple[int, int] | None = None
) -> np.ndarray:
    """``(G, h, w)`` int32: :func:`partition_labels` at each g of ``levels`` (resized to ``size`` = (H, W) when
    given), the heights computed once."""
    heights = cut_scale_heights(tree)
    return np.stack([partition_labels(tree, float(g), finest, coarsest, heights, size) for g in levels])
