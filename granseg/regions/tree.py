"""The region hierarchy of one image: a binary merge tree (ultrametric contour map) over superpixels.

Pipeline (at a reduced internal resolution, see :class:`TreeParams`):

1. SLIC superpixels (:func:`granseg.regions.superpixels.superpixels`, the same leaves as the pseudo-label
   engine's merging) are the leaves (or, with ``leaves="watershed"``, a watershed of the gradient map).
2. Cues: Pb-like oriented histogram gradients of L, a, b and textons (:mod:`granseg.regions.gradients`), region
   histograms and mean CIELAB; a Di Zenzo boundary map (:mod:`granseg.regions.cues`) for the leaf borders'
   ``edge_strength`` (GrabCut smoothness) and a quantised colour histogram per leaf (click colour models).
3. Greedy agglomerative merging on the region adjacency graph, by one of two criteria (``merge``):

   * ``"learned"`` (default, :mod:`granseg.regions.learned`; the package's one tree: the ``hierarchy`` predictor's,
     the ``ucm`` edge map's): the pair with the largest ``p(same)`` of a logistic regression fit on human
     segmentations merges first; heights ``(1 - p(same)) ** height_power`` (3 by default), in [0, 1];
   * ``"handcrafted"`` (the previous tree, kept as an option: ``HierarchyConfig.tree_merge``): the pair with the smallest

       d(a, b) = size_factor(a, b) * (w_boundary * mean boundary strength along the shared border
                                     + w_colour * ||mean Lab(a) - mean Lab(b)|| / 100
                                     + w_texture * chi2(LBP hist(a), LBP hist(b)))

     with ``size_factor`` = min(1, sqrt(min(|a|, |b|) / small_region_area)) (tiny regions merge first, as in
     Felzenszwalb-Huttenlocher and selective search).

   The merge height of a node is the running maximum of the criterion over its merges, so heights increase
   towards the root and the tree defines an ultrametric (UCM).

scikit-image's ``graph.merge_hierarchical`` does the same greedy loop but returns only a flat labelling at one
threshold, not the tree; the loop here is a plain heap with lazy invalidation.

Leaves are renumbered in depth-first order, so every node is a contiguous interval ``[lo, hi)`` of leaf ranks:
"does node n contain leaf l" is ``lo[n] <= rank[l] < hi[n]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from granseg.regions.agglomerate import agglomerate
from granseg.regions.cues import LBP_BINS, boundary_map, colour_bins, lbp_codes, to_lab, used_bins
from granseg.regions.gradients import CHANNEL_BINS, CHANNELS, GradientCues, gradient_cues
from granseg.regions.learned import WEIGHTS_FILES, MergeModel, NodeStats, default_model, learned_merge
from granseg.regions.owt import owt_gradients
from granseg.regions.spectral import spectral_cues
from granseg.regions.superpixels import internal_image, superpixels, watershed_superpixels


@dataclass
class TreeParams:
    """Parameters of :func:`build_region_tree`."""

    internal_long_side: int = 448
    n_superpixels: int = 700
    slic_compactness: float = 12.0
    boundary_weight: float = 1.0
    colour_weight: float = 1.0
    texture_weight: float = 0.3
    small_region_fraction: float = 0.004  # regions below this fraction of the image merge preferentially
    boundary_texture_weight: float = 0.0  # weight of the texture gradient in the boundary map
    # learned tree: heights are (1 - p(same)) ** height_power. A monotone map (the same tree, the same UCM order)
    # that spreads the last merges of a photo (1 - p bunches near 0.85-0.88 there), so the persistence the
    # predictor's chain top reads ranks the top regions differently (covering at best g, BSDS val 26-50: power
    # 1 / 2 / 3: 0.554 / 0.571 / 0.576; held out 0.573 -> 0.580; the coffee click's ten g give five masks
    # instead of three, g = 1.0 the rim ring: benchmarks/results/tree.md). The ``ucm`` edge map undoes it
    # (granseg.eval.edge_maps.tree_contour_map), so its scores are those of 1 - p.
    height_power: float = 3.0
    # learned tree over SLIC leaves (without the spectral cue): read each border gradient across the border (the
    # oriented watershed transform, granseg.regions.owt; merge_weights_owt.json) instead of at its largest
    # orientation. An option, off: BSDS val 26-50 (tune) UCM ODS 0.625 -> 0.633 and covering at best g 0.571 ->
    # 0.593, but held out (val 51-75) covering 0.580 -> 0.554 (ODS 0.654 -> 0.657); +0.02 s CPU of set_image at
    # 1024 px (benchmarks/results/tree.md). The `ucm` edge map's ensemble uses it (granseg.regions.ensemble).
    owt: bool = False


@dataclass
class RegionTree:
    """Merge tree over ``n_leaves`` superpixels; nodes ``0..n_leaves-1`` are leaves, the rest merges.

    leaf_map:  ``h x w`` int32 leaf *rank* (depth-first order) per pixel of the internal image.
    parent:    ``(M,)`` parent node id, -1 for roots.
    children:  ``(M, 2)`` children of merge nodes, -1 for leaves.
    height:    ``(M,)`` float64 merge height (0 for leaves), non-decreasing towards the root.
    area:      ``(M,)`` float64 area in internal pixels.
    lo, hi:    ``(M,)`` leaf-rank interval of each node.
    leaf_node: ``(n_leaves,)`` node id of the leaf with each rank.
    edge_a, edge_b: ``(E,)`` leaf ranks of adjacent leaf pairs (a < b); edge_len, edge_strength ``(E,)``
               float64 border length (pixel pairs) and summed boundary strength along it.
    leaf_lab:  ``(n_leaves, 3)`` mean CIELAB colour per leaf rank.
    leaf_spread: ``(n_leaves,)`` RMS CIELAB distance of each leaf's pixels to its mean (0: one colour; None in a
               tree built without it).
    leaf_colours: ``(n_leaves, B)`` scipy CSR pixel counts of each leaf over the used colour bins;
    colour_centres: ``(B, 3)`` Lab centre of each used bin.
    scale:     internal size / original size.
    criterion: the merge criterion that built it (``"learned"``: heights are ``(1 - p(same)) ** height_power``, in [0, 1] and
               comparable across images; ``"handcrafted"``: heights on an image-dependent scale).
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
    leaf_colours: object
    colour_centres: np.ndarray
    scale: float
    criterion: str = "handcrafted"
    height_power: float = 1.0  # learned trees: heights are (1 - p(same)) ** this
    leaf_spread: np.ndarray | None = None

    @property
    def n_leaves(self) -> int:
        return int(self.leaf_node.size)

    @property
    def n_nodes(self) -> int:
        return int(self.parent.size)

    @property
    def split_heights(self) -> np.ndarray:
        """``(n_nodes,)`` heights with ``height_power`` undone: ``1 - p(same)`` of each merge for a learned tree
        (the same in every image), the heights themselves otherwise (power 1)."""
        power = float(self.height_power) or 1.0
        return np.power(np.maximum(self.height, 0.0), 1.0 / power)

    @property
    def leaf_area(self) -> np.ndarray:
        """``(n_leaves,)`` pixel count of each leaf rank."""
        return self.area[self.leaf_node]

    @cached_property
    def leaf_neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        """The leaf graph as ``(start, neighbours)`` int64 arrays (computed once per tree): the leaves adjacent to
        rank i are ``neighbours[start[i]:start[i + 1]]``."""
        ends = np.concatenate([self.edge_a, self.edge_b]).astype(np.int64)
        others = np.concatenate([self.edge_b, self.edge_a]).astype(np.int64)
        order = np.argsort(ends, kind="stable")
        start = np.concatenate([[0], np.cumsum(np.bincount(ends, minlength=self.n_leaves))]).astype(np.int64)
        return start, others[order]

    def chain(self, node: int) -> list[int]:
        """Node ids from ``node`` up to its root."""
        out = [int(node)]
        while self.parent[out[-1]] >= 0:
            out.append(int(self.parent[out[-1]]))
        return out


def leaf_adjacency(labels: np.ndarray, strength: np.ndarray, n: int):
    """Pairs of 4-adjacent labels of an ``h x w`` int map: ``(a, b, border_length, summed_strength)``, a < b,
    with the strength of a pixel pair the larger of the two pixels' values in the ``h x w`` ``strength`` map."""
    a_parts, b_parts, s_parts = [], [], []
    for la, lb, ea, eb in (
        (labels[:, :-1], labels[:, 1:], strength[:, :-1], strength[:, 1:]),
        (labels[:-1, :], labels[1:, :], strength[:-1, :], strength[1:, :]),
    ):
        diff = la != lb
        a_parts.append(la[diff])
        b_parts.append(lb[diff])
        s_parts.append(np.maximum(ea[diff], eb[diff]))
    a = np.concatenate(a_parts).astype(np.int64)
    b = np.concatenate(b_parts).astype(np.int64)
    pair_strength = np.concatenate(s_parts).astype(np.float64)
    key = np.minimum(a, b) * n + np.maximum(a, b)
    uniq, inverse = np.unique(key, return_inverse=True)
    length = np.bincount(inverse).astype(np.float64)
    summed = np.bincount(inverse, weights=pair_strength)
    return (uniq // n).astype(np.int64), (uniq % n).astype(np.int64), length, summed


def _chi2(p: np.ndarray, q: np.ndarray) -> float:
    return float(0.5 * np.sum((p - q) ** 2 / (p + q + 1e-9)))


def _greedy_merge(area, lab_sum, texture, edges, params: TreeParams, image_area: float):
    """The merge loop: returns ``parent``, ``children``, ``height``, ``node_area`` over ``2n - 1`` nodes at most."""
    n = len(area)
    total = 2 * n - 1
    node_area = np.zeros(total)
    node_area[:n] = area
    node_lab = np.zeros((total, 3))
    node_lab[:n] = lab_sum
    node_tex = np.zeros((total, LBP_BINS))
    node_tex[:n] = texture
    small_area = params.small_region_fraction * image_area
    neighbours: list[dict[int, np.ndarray]] = [dict() for _ in range(total)]
    for a, b, length, summed in zip(*(e.tolist() for e in edges)):
        neighbours[a][b] = neighbours[b][a] = np.array([length, summed])

    def dissimilarity(a: int, b: int, border: np.ndarray) -> float:
        colour = float(np.linalg.norm(node_lab[a] / node_area[a] - node_lab[b] / node_area[b])) / 100.0
        tex = _chi2(node_tex[a] / node_area[a], node_tex[b] / node_area[b])
        size_factor = min(1.0, np.sqrt(min(node_area[a], node_area[b]) / small_area))
        return size_factor * (
            params.boundary_weight * border[1] / border[0]
            + params.colour_weight * colour
            + params.texture_weight * tex
        )

    heap = [(dissimilarity(a, b, neighbours[a][b]), a, b) for a in range(n) for b in neighbours[a] if a < b]

    def merge(a: int, b: int, c: int) -> None:
        node_area[c] = node_area[a] + node_area[b]
        node_lab[c] = node_lab[a] + node_lab[b]
        node_tex[c] = node_tex[a] + node_tex[b]

    def score_new(c: int, others: list[int], borders: list[np.ndarray]) -> list:
        return [(dissimilarity(c, nb, border), c, nb) for nb, border in zip(others, borders)]

    parent, children, height, made = agglomerate(n, neighbours, heap, merge, score_new)
    return parent, children, height, node_area[:made]


def _depth_first_ranks(parent: np.ndarray, children: np.ndarray, n: int):
    """Leaf rank of every leaf (depth-first order) and the ``[lo, hi)`` rank interval of every node."""
    used = parent.size
    rank = np.zeros(n, np.int64)
    lo = np.zeros(used, np.int64)
    hi = np.zeros(used, np.int64)
    counter = 0
    for root in np.flatnonzero(parent < 0).tolist():
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if node < n:
                rank[node] = counter
                lo[node], hi[node] = counter, counter + 1
                counter += 1
            elif done:  # child 0 is visited first, so its interval ends where child 1's starts
                lo[node] = lo[children[node, 0]]
                hi[node] = hi[children[node, 1]]
            else:
                stack.append((node, True))
                stack.append((int(children[node, 1]), False))
                stack.append((int(children[node, 0]), False))
    return rank, lo, hi


MERGE_CRITERIA = ("learned", "handcrafted")
LEAVES = ("slic", "watershed")
WATERSHED_COMPACTNESS = 0.0  # of the learned leaves (skimage compact watershed; 0: plain watershed)


def border_sums(labels: np.ndarray, maps: np.ndarray, n: int):
    """Pairs of 4-adjacent labels of an ``h x w`` int map: ``(a, b, border_length, sums)``, a < b, with
    ``sums`` ``(E, G)`` the summed values of each of the ``(G, h, w)`` ``maps`` along the border (a pixel pair
    counts the larger of its two pixels' values)."""
    a_parts, b_parts, v_parts = [], [], []
    for la, lb, ma, mb in (
        (labels[:, :-1], labels[:, 1:], maps[:, :, :-1], maps[:, :, 1:]),
        (labels[:-1, :], labels[1:, :], maps[:, :-1, :], maps[:, 1:, :]),
    ):
        diff = la != lb
        a_parts.append(la[diff])
        b_parts.append(lb[diff])
        v_parts.append(np.maximum(ma[:, diff], mb[:, diff]))
    a = np.concatenate(a_parts).astype(np.int64)
    b = np.concatenate(b_parts).astype(np.int64)
    values = np.concatenate(v_parts, axis=1).astype(np.float64)
    key = np.minimum(a, b) * n + np.maximum(a, b)
    uniq, inverse = np.unique(key, return_inverse=True)
    length = np.bincount(inverse, minlength=uniq.size).astype(np.float64)
    sums = np.stack([np.bincount(inverse, weights=v, minlength=uniq.size) for v in values], axis=1)
    return (uniq // n).astype(np.int64), (uniq % n).astype(np.int64), length, sums


def _handcrafted_merge(small: np.ndarray, lab: np.ndarray, strength: np.ndarray, params: TreeParams):
    """The previous criterion: SLIC leaves, hand-weighted boundary + colour + LBP distance (module docstring).
    Returns ``labels`` and ``parent, children, height, node_area``."""
    height_px, width_px = small.shape[:2]
    n_segments = max(1, min(params.n_superpixels, height_px * width_px // 16))
    labels = superpixels(
        small, n_segments, params.slic_compactness, max_side=max(small.shape[:2]), iterations=10
    )
    _, labels = np.unique(labels, return_inverse=True)
    labels = labels.reshape(small.shape[:2])
    n = int(labels.max()) + 1
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n).astype(np.float64)
    lab_sum = np.stack([np.bincount(flat, weights=lab[..., c].ravel(), minlength=n) for c in range(3)], 1)
    codes = lbp_codes(small).ravel()
    texture = np.bincount(flat * LBP_BINS + codes, minlength=n * LBP_BINS).reshape(n, LBP_BINS).astype(float)
    edges = leaf_adjacency(labels, strength, n)
    merged = _greedy_merge(area, lab_sum, texture, edges, params, float(height_px * width_px))
    return labels, merged


def learned_leaves(
    small: np.ndarray,
    lab: np.ndarray,
    params: TreeParams,
    leaves: str = "slic",
    owt: bool = False,
    cues: GradientCues | None = None,
):
    """Leaves and cues of the learned criterion: ``(labels, cues)`` with ``labels`` ``h x w`` int64 leaf ids
    (a watershed of the oriented-gradient map, or SLIC with ``leaves="slic"``; about ``params.n_superpixels``)
    and the :class:`~granseg.regions.gradients.GradientCues` of ``lab``, the CIELAB of the ``h x w x 3`` RGB
    ``small`` (with their structure tensors when ``owt``; ``cues``: already computed, reused)."""
    cues = cues if cues is not None else gradient_cues(lab, tensors=owt)
    height_px, width_px = lab.shape[:2]
    n_segments = max(1, min(params.n_superpixels, height_px * width_px // 16))
    if leaves == "slic":
        labels = superpixels(
            small, n_segments, params.slic_compactness, max_side=max(small.shape[:2]), iterations=10
        )
        _, labels = np.unique(labels, return_inverse=True)
        return labels.reshape(lab.shape[:2]), cues
    return watershed_superpixels(cues.combined(), n_segments, WATERSHED_COMPACTNESS), cues


def learned_statistics(labels: np.ndarray, lab: np.ndarray, cues, spectral=None, owt: bool = False):
    """``(NodeStats, edges)`` for :func:`granseg.regions.learned.learned_merge` over the ``h x w`` leaves;
    ``spectral``: the :class:`~granseg.regions.spectral.SpectralCues` of the image (None: without that cue);
    ``owt``: the border sums read each gradient across the leaf border (:mod:`granseg.regions.owt`; ``cues``
    must hold the tensors) instead of at its largest orientation."""
    n = int(labels.max()) + 1
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n).astype(np.float64)
    lab_sum = np.stack([np.bincount(flat, weights=lab[..., c].ravel(), minlength=n) for c in range(3)], 1)
    histograms = []
    for channel, codes in zip(CHANNELS, cues.codes):
        bins = CHANNEL_BINS[channel]
        histograms.append(np.bincount(flat * bins + codes.ravel(), minlength=n * bins).reshape(n, bins))
    maps = owt_gradients(cues.tensors, labels) if owt else cues.gradients
    embedding = None
    if spectral is not None:
        maps = np.concatenate([maps, spectral.boundary[None]])
        embedding = np.stack(
            [np.bincount(flat, weights=e.ravel(), minlength=n) for e in spectral.embedding], 1
        )
    edge_a, edge_b, length, sums = border_sums(labels, maps, n)
    perimeter = np.bincount(edge_a, weights=length, minlength=n) + np.bincount(
        edge_b, weights=length, minlength=n
    )
    histograms = np.concatenate(histograms, 1).astype(np.float64)
    stats = NodeStats(area, perimeter, lab_sum, histograms, flat.size, embedding)
    return stats, (edge_a, edge_b, np.column_stack([length, sums]))


def build_region_tree(
    image: np.ndarray,
    params: TreeParams | None = None,
    merge: str = "learned",
    model: MergeModel | None = None,
    leaves: str = "slic",
    spectral: bool = False,
    owt: bool | None = None,
) -> RegionTree:
    """Region tree of an ``H x W x 3`` uint8 RGB image (module docstring).

    ``merge``: ``"learned"`` (default; the ``hierarchy`` predictor's and the ``ucm`` edge map's tree: Pb-like
    oriented gradients and the logistic merge criterion ``model``, the one shipped for ``leaves`` when None) or
    ``"handcrafted"`` (the previous tree: SLIC leaves and the hand-weighted distance of :class:`TreeParams`). ``leaves`` (learned only): ``"slic"`` (default) or
    ``"watershed"`` (a watershed of the oriented-gradient map: leaf borders on its ridges). ``spectral`` (learned,
    SLIC leaves): add gPb's spectral globalisation (:mod:`granseg.regions.spectral`) to the criterion's features,
    with its own fit (``model``, or ``merge_weights_spectral.json`` from ``benchmarks/fit_merge.py --spectral``: not
    shipped, the cue did not improve the tree); about 0.35 s more per image. ``owt`` (learned, SLIC leaves): the
    oriented watershed transform's border gradients (:mod:`granseg.regions.owt`) with their own fit
    (``merge_weights_owt.json``, ``benchmarks/fit_merge.py --owt``); None (default): ``params.owt`` where it
    applies (a learned tree over SLIC leaves without the spectral cue; the other trees have no OWT fit)."""
    if merge not in MERGE_CRITERIA:
        raise ValueError(f"merge must be one of {MERGE_CRITERIA}, got {merge!r}")
    if leaves not in LEAVES:
        raise ValueError(f"leaves must be one of {LEAVES}, got {leaves!r}")
    params = params or TreeParams()
    if owt is None:
        owt = params.owt and merge == "learned" and leaves == "slic" and not spectral
    weights_key = leaves + ("-spectral" if spectral else "") + ("-owt" if owt else "")
    if (spectral or owt) and (merge != "learned" or weights_key not in WEIGHTS_FILES):
        raise ValueError("spectral=True or owt=True needs merge='learned' and leaves='slic' (one of them)")
    small, scale = internal_image(image, params.internal_long_side)
    lab = to_lab(small)
    strength = boundary_map(lab, texture_weight=params.boundary_texture_weight)
    if merge == "learned":
        model = model or default_model(weights_key)
        return learned_tree(small, lab, strength, scale, params, leaves, owt, model, spectral)
    labels, merged = _handcrafted_merge(small, lab, strength, params)
    tree = assemble_tree(labels, lab, strength, merged, scale)
    tree.criterion, tree.height_power = merge, 1.0
    return tree


def learned_tree(
    small: np.ndarray,
    lab: np.ndarray,
    strength: np.ndarray,
    scale: float,
    params: TreeParams,
    leaves: str,
    owt: bool,
    model: MergeModel,
    spectral: bool = False,
    cues: GradientCues | None = None,
) -> RegionTree:
    """The learned criterion's :class:`RegionTree` of the ``h x w x 3`` RGB ``small`` (``lab`` its CIELAB,
    ``strength`` its boundary map, ``scale`` its factor to the original image): ``leaves`` (about
    ``params.n_superpixels``), their statistics (``owt``: border gradients across the borders; ``spectral``: with
    the spectral cue), ``model``'s merge, heights ``** params.height_power``. ``cues``: the image's
    :class:`~granseg.regions.gradients.GradientCues` when already computed (with tensors for ``owt``)."""
    if (model.spectral, model.owt) != (spectral, owt):
        raise ValueError(
            f"the merge model was fit with spectral={model.spectral}, owt={model.owt}: "
            f"not spectral={spectral}, owt={owt}"
        )
    labels, cues = learned_leaves(small, lab, params, leaves, owt, cues)
    extra = spectral_cues(cues.combined()) if spectral else None
    stats, edges = learned_statistics(labels, lab, cues, extra, owt)
    parent, children, height, node_area = learned_merge(stats, edges, model)
    merged = (parent, children, height**params.height_power, node_area)
    tree = assemble_tree(labels, lab, strength, merged, scale)
    tree.criterion, tree.height_power = "learned", params.height_power
    return tree


def assemble_tree(
    labels: np.ndarray, lab: np.ndarray, strength: np.ndarray, merged, scale: float
) -> RegionTree:
    """The :class:`RegionTree` of ``h x w`` leaf ``labels`` and their merge tree ``merged``: depth-first leaf
    ranks, leaf adjacency with the summed ``strength`` map, mean colours and colour histograms."""
    from scipy import sparse

    parent, children, height, node_area = merged
    n = int(labels.max()) + 1
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n).astype(np.float64)
    lab_sum = np.stack([np.bincount(flat, weights=lab[..., c].ravel(), minlength=n) for c in range(3)], 1)
    squares = np.stack(
        [
            np.bincount(flat, weights=np.square(lab[..., c].ravel(), dtype=np.float64), minlength=n)
            for c in range(3)
        ],
        1,
    )
    mean = lab_sum / area[:, None]
    spread = np.sqrt(np.maximum(squares / area[:, None] - mean**2, 0.0).sum(1))
    edge_a, edge_b, edge_len, edge_sum = leaf_adjacency(labels, strength, n)
    rank, lo, hi = _depth_first_ranks(parent, children, n)
    leaf_node = np.empty(n, np.int64)
    leaf_node[rank] = np.arange(n)
    bins, centres = colour_bins(lab)
    used, bin_index = used_bins(bins)
    leaf_colours = sparse.csr_matrix(
        (np.ones(flat.size, np.float32), (rank[flat], bin_index.ravel())), shape=(n, used.size)
    )
    leaf_colours.sum_duplicates()
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
        leaf_lab=mean[leaf_node],
        leaf_colours=leaf_colours,
        colour_centres=centres[used],
        scale=scale,
        leaf_spread=spread[leaf_node],
    )
