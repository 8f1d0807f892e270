"""Build a region hierarchy (merge tree / ultrametric contour map) of one image from classical cues.

Pipeline (all at a reduced internal resolution, see :class:`HierarchyParams`):

1. SLIC superpixels (scikit-image) are the leaves.
2. Cues: a boundary map (multi-scale Sobel gradient magnitude of the CIELAB image, OpenCV), mean CIELAB colour and a
   uniform-LBP texture histogram (scikit-image) per region.
3. Greedy agglomerative merging on the region adjacency graph: at each step the adjacent pair with the smallest
   dissimilarity merges, where

       d(a, b) = size_factor(a, b) * (w_boundary * mean boundary strength along the shared border
                                     + w_colour * ||mean Lab(a) - mean Lab(b)|| / 100
                                     + w_texture * chi2(LBP hist(a), LBP hist(b)))

   ``size_factor`` = min(1, sqrt(min(|a|, |b|) / small_region_area)) makes tiny regions merge first (as in
   Felzenszwalb-Huttenlocher and selective search). The merge height of a node is the running maximum of ``d`` over
   its merges, so heights increase towards the root and the tree defines an ultrametric (UCM).

scikit-image's ``graph.merge_hierarchical`` does the same greedy loop but returns only a flat labelling at one
threshold, not the tree, and runs on networkx; the loop here is a plain heap with lazy invalidation.

Leaves are renumbered in depth-first order, so every node is a contiguous interval ``[lo, hi)`` of leaf ranks:
testing "does node n contain leaf l" is ``lo[n] <= rank[l] < hi[n]``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import cv2
import numpy as np

LBP_POINTS = 8
LBP_BINS = LBP_POINTS + 2  # "uniform" LBP codes 0..P+1
HIST_BINS = 16  # per CIELAB channel


@dataclass
class HierarchyParams:
    """Parameters of :func:`build_hierarchy_tree` (mirrored in ``HierarchyConfig``)."""

    internal_long_side: int = 448
    n_superpixels: int = 700
    slic_compactness: float = 12.0
    boundary_weight: float = 1.0
    colour_weight: float = 1.0
    texture_weight: float = 0.3
    small_region_fraction: float = 0.004  # regions below this fraction of the image merge preferentially
    histogram_weight: float = 0.0  # weight of the CIELAB histogram distance (selective-search colour cue)


@dataclass
class RegionTree:
    """Merge tree over ``n_leaves`` superpixels; nodes ``0..n_leaves-1`` are leaves, the rest merges.

    leaf_map:  ``h x w`` int32 leaf *rank* (depth-first order) per pixel of the internal image.
    parent:    ``(M,)`` int32 parent node id, -1 for roots (several roots only if the image has no single
               connected region graph, which cannot happen for a connected pixel grid, but is handled).
    children:  ``(M, 2)`` int32 children of merge nodes, -1 for leaves.
    height:    ``(M,)`` float64 merge height (0 for leaves), non-decreasing towards the root.
    area:      ``(M,)`` float64 area in internal pixels.
    lo, hi:    ``(M,)`` int32 leaf-rank interval of each node.
    leaf_node: ``(n_leaves,)`` int32 node id of the leaf with each rank.
    edge_a, edge_b: ``(E,)`` int32 leaf ranks of adjacent leaf pairs (a < b); edge_len, edge_strength ``(E,)``
               float64 border length (pixel pairs) and summed boundary strength along it.
    scale:     internal size / original size.
    """

    leaf_map: np.ndarray
    parent: np.ndarray
    children: np.ndarray
    height: np.ndarray
    area: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    leaf_node: np.ndarray
    edge_a: np.ndarray
    edge_b: np.ndarray
    edge_len: np.ndarray
    edge_strength: np.ndarray
    leaf_lab: np.ndarray
    scale: float
    colour_kernel: np.ndarray | None = None  # (n_leaves, n_leaves), filled lazily by the refinement

    @property
    def n_leaves(self) -> int:
        return int(self.leaf_node.size)

    @property
    def n_nodes(self) -> int:
        return int(self.parent.size)

    def chain(self, node: int) -> list[int]:
        """Node ids from ``node`` up to its root."""
        out = [int(node)]
        while self.parent[out[-1]] >= 0:
            out.append(int(self.parent[out[-1]]))
        return out


def resize_long_side(image: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """Downscale ``image`` (H x W x C) so its long side is at most ``long_side`` (area interpolation)."""
    height, width = image.shape[:2]
    scale = min(1.0, long_side / max(height, width))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def boundary_map(lab: np.ndarray) -> np.ndarray:
    """``h x w`` float32 boundary strength in about [0, 1]: mean over two Gaussian scales of the CIELAB gradient
    magnitude, divided by its 99th percentile (so the scale does not depend on image contrast)."""
    lab = lab.astype(np.float32)
    total = np.zeros(lab.shape[:2], np.float32)
    for sigma in (1.0, 2.5):
        blurred = cv2.GaussianBlur(lab, (0, 0), sigma)
        gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)
        total += np.sqrt((gx * gx + gy * gy).sum(axis=2))
    scale = float(np.percentile(total, 99)) + 1e-6
    return np.minimum(total / scale, 1.5)


def _leaf_adjacency(labels: np.ndarray, edges: np.ndarray, n: int):
    """Pairs of 4-adjacent leaves: ``(a, b, border_length, summed_strength)`` with a < b."""
    a_parts, b_parts, s_parts = [], [], []
    for la, lb, ea, eb in (
        (labels[:, :-1], labels[:, 1:], edges[:, :-1], edges[:, 1:]),
        (labels[:-1, :], labels[1:, :], edges[:-1, :], edges[1:, :]),
    ):
        diff = la != lb
        a_parts.append(la[diff])
        b_parts.append(lb[diff])
        s_parts.append(np.maximum(ea[diff], eb[diff]))
    a = np.concatenate(a_parts).astype(np.int64)
    b = np.concatenate(b_parts).astype(np.int64)
    strength = np.concatenate(s_parts).astype(np.float64)
    lo_id, hi_id = np.minimum(a, b), np.maximum(a, b)
    key = lo_id * n + hi_id
    uniq, inverse = np.unique(key, return_inverse=True)
    length = np.bincount(inverse).astype(np.float64)
    summed = np.bincount(inverse, weights=strength)
    return (uniq // n).astype(np.int64), (uniq % n).astype(np.int64), length, summed


def _chi2(p: np.ndarray, q: np.ndarray) -> float:
    return float(0.5 * np.sum((p - q) ** 2 / (p + q + 1e-9)))


def build_hierarchy_tree(image: np.ndarray, params: HierarchyParams) -> RegionTree:
    """Region tree of an ``H x W x 3`` uint8 RGB image. See the module docstring."""
    from skimage.feature import local_binary_pattern
    from skimage.segmentation import slic

    small, scale = resize_long_side(image, params.internal_long_side)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= (
        100.0 / 255.0
    )  # OpenCV 8-bit Lab -> L in [0, 100]; a, b offset by 128 (differences unaffected)
    edges = boundary_map(lab)
    height_px, width_px = small.shape[:2]
    n_segments = max(1, min(params.n_superpixels, height_px * width_px // 16))
    labels = slic(
        small,
        n_segments=n_segments,
        compactness=params.slic_compactness,
        start_label=0,
        enforce_connectivity=True,
    ).astype(np.int64)
    _, labels = np.unique(labels, return_inverse=True)
    labels = labels.reshape(small.shape[:2])
    n = int(labels.max()) + 1

    flat = labels.ravel()
    area = np.bincount(flat, minlength=n).astype(np.float64)
    lab_sum = np.stack([np.bincount(flat, weights=lab[..., c].ravel(), minlength=n) for c in range(3)], 1)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    codes = local_binary_pattern(gray, LBP_POINTS, 1, "uniform").astype(np.int64).ravel()
    texture = (
        np.bincount(flat * LBP_BINS + codes, minlength=n * LBP_BINS).reshape(n, LBP_BINS).astype(np.float64)
    )
    edge_a, edge_b, edge_len, edge_sum = _leaf_adjacency(labels, edges, n)
    bins = np.clip(lab / np.array([100.0, 256.0, 256.0]) * HIST_BINS, 0, HIST_BINS - 1).astype(np.int64)
    hist = np.concatenate(
        [
            np.bincount(flat * HIST_BINS + bins[..., c].ravel(), minlength=n * HIST_BINS).reshape(
                n, HIST_BINS
            )
            for c in range(3)
        ],
        axis=1,
    ).astype(np.float64)

    total_nodes = 2 * n - 1
    node_area = np.zeros(total_nodes)
    node_area[:n] = area
    node_lab = np.zeros((total_nodes, 3))
    node_lab[:n] = lab_sum
    node_tex = np.zeros((total_nodes, LBP_BINS))
    node_tex[:n] = texture
    node_hist = np.zeros((total_nodes, 3 * HIST_BINS))
    node_hist[:n] = hist
    parent = np.full(total_nodes, -1, np.int64)
    children = np.full((total_nodes, 2), -1, np.int64)
    height = np.zeros(total_nodes)
    small_area = params.small_region_fraction * height_px * width_px
    neighbours: list[dict[int, list[float]]] = [dict() for _ in range(total_nodes)]
    for a, b, length, summed in zip(edge_a.tolist(), edge_b.tolist(), edge_len.tolist(), edge_sum.tolist()):
        neighbours[a][b] = [length, summed]
        neighbours[b][a] = [length, summed]

    def dissimilarity(a: int, b: int, border: list[float]) -> float:
        boundary = border[1] / border[0]
        colour = float(np.linalg.norm(node_lab[a] / node_area[a] - node_lab[b] / node_area[b])) / 100.0
        tex = _chi2(node_tex[a] / node_area[a], node_tex[b] / node_area[b])
        colour_hist = (
            1.0 - np.minimum(node_hist[a] / node_area[a], node_hist[b] / node_area[b]).sum() / 3.0
            if params.histogram_weight
            else 0.0
        )
        size_factor = min(1.0, np.sqrt(min(node_area[a], node_area[b]) / small_area))
        return size_factor * (
            params.boundary_weight * boundary
            + params.colour_weight * colour
            + params.texture_weight * tex
            + params.histogram_weight * colour_hist
        )

    heap = [(dissimilarity(a, b, neighbours[a][b]), a, b) for a in range(n) for b in neighbours[a] if a < b]
    heapq.heapify(heap)
    alive = np.zeros(total_nodes, bool)
    alive[:n] = True
    next_id = n
    while heap:
        d, a, b = heapq.heappop(heap)
        if not (alive[a] and alive[b]):
            continue
        c = next_id
        next_id += 1
        alive[a] = alive[b] = False
        alive[c] = True
        parent[a] = parent[b] = c
        children[c] = (a, b)
        height[c] = max(d, height[a], height[b])
        node_area[c] = node_area[a] + node_area[b]
        node_lab[c] = node_lab[a] + node_lab[b]
        node_tex[c] = node_tex[a] + node_tex[b]
        node_hist[c] = node_hist[a] + node_hist[b]
        merged: dict[int, list[float]] = {}
        for src in (a, b):
            for nb, border in neighbours[src].items():
                if nb in (a, b):
                    continue
                entry = merged.setdefault(nb, [0.0, 0.0])
                entry[0] += border[0]
                entry[1] += border[1]
                del neighbours[nb][src]
            neighbours[src] = {}
        neighbours[c] = merged
        for nb, border in merged.items():
            neighbours[nb][c] = border
            heapq.heappush(heap, (dissimilarity(c, nb, border), c, nb))
    used = next_id
    parent, children, height, node_area = parent[:used], children[:used], height[:used], node_area[:used]

    # depth-first leaf order -> each node is an interval of leaf ranks
    rank = np.zeros(n, np.int64)
    lo = np.zeros(used, np.int64)
    hi = np.zeros(used, np.int64)
    counter = 0
    roots = [i for i in range(used) if parent[i] < 0]
    for root in roots:
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if node < n:
                rank[node] = counter
                lo[node], hi[node] = counter, counter + 1
                counter += 1
            elif done:
                lo[node] = lo[children[node, 0]]
                hi[node] = hi[children[node, 1]]
            else:
                stack.append((node, True))
                stack.append((int(children[node, 1]), False))
                stack.append((int(children[node, 0]), False))
    # children intervals must be adjacent: child 0 is visited first, so [lo0, hi0) + [lo1, hi1) = [lo0, hi1)
    leaf_node = np.empty(n, np.int64)
    leaf_node[rank] = np.arange(n)
    ranked_a, ranked_b = rank[edge_a], rank[edge_b]
    return RegionTree(
        leaf_map=rank[labels].astype(np.int32),
        parent=parent,
        children=children,
        height=height,
        area=node_area,
        lo=lo,
        hi=hi,
        leaf_node=leaf_node,
        edge_a=np.minimum(ranked_a, ranked_b),
        edge_b=np.maximum(ranked_a, ranked_b),
        edge_len=edge_len,
        edge_strength=edge_sum,
        leaf_lab=(lab_sum / area[:, None])[leaf_node],
        scale=scale,
    )
