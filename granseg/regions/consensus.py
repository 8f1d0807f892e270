"""One region tree rebuilt from several: the consensus of an ensemble's ultrametrics (:mod:`granseg.regions.ensemble`).

Each learned tree ``t`` of an image defines an ultrametric between its leaves: ``u_t(a, b)`` = ``1 - p(same)`` of
the merge that first joins them (the height of their lowest common ancestor, its ``height_power`` undone). For
two 4-adjacent pixels ``p, q`` the mean ``d(p, q) = mean_t u_t(leaf_t(p), leaf_t(q))`` is the mean UCM of the
trees across that pixel pair (the ``ucm`` edge map). It is no ultrametric itself; the consensus tree makes it one
again (as the UCM of gPb-owt-ucm is made from a boundary map):

* leaves: one tree's leaves (``leaves="base"``, the first start's superpixels) or the overlay of all trees'
  leaves (``"overlay"``: each region lies in one leaf of every tree);
* each pair of adjacent leaves gets a distance ``d`` and the length of its border: ``weighting="region"`` (the
  default) the trees' mean of the expected ultrametric between a pixel of one leaf and a pixel of the other
  (:func:`region_ultrametric`: robust to a tree whose contour runs a few pixels off the leaves' border), or
  ``"pixel"`` the mean UCM summed over the border's pixel pairs (a contour a few pixels off is missed there);
* the pair with the smallest mean ``d`` along its border merges first, the merged region's borders are the sums
  (``linkage="average"``: the greedy loop of :mod:`granseg.regions.agglomerate`), or ``linkage="single"``: the
  smallest ``d`` (Kruskal; with ``"pixel"`` its cuts are exactly the connected components of ``{mean UCM < t}``
  on the leaf graph);
* heights: the running maximum, ``** height_power`` as in the learned tree (so the predictor's persistences mean
  the same).
"""

from __future__ import annotations

import numpy as np

from granseg.regions.agglomerate import agglomerate
from granseg.regions.tree import RegionTree, TreeParams, assemble_tree

LINKAGES = ("average", "single")
CONSENSUS_LEAVES = ("base", "overlay")
WEIGHTINGS = ("region", "pixel")


def leaf_ultrametric(tree: RegionTree, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``1 - p(same)`` (heights with the tree's ``height_power`` undone) of the lowest common ancestor of leaf
    ranks ``a[i]`` and ``b[i]`` (0 where they are equal; the largest height where they are in different roots)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    heights = tree.split_heights
    out = np.zeros(a.size)
    todo = np.flatnonzero(a != b)
    node = tree.leaf_node[a[todo]]
    target = b[todo]
    while todo.size:
        inside = (tree.lo[node] <= target) & (target < tree.hi[node])
        out[todo[inside]] = heights[node[inside]]
        todo, node, target = todo[~inside], node[~inside], target[~inside]
        node = tree.parent[node]
        orphan = node < 0  # different roots (a disconnected leaf graph): the largest height
        out[todo[orphan]] = heights.max(initial=0.0)
        todo, node, target = todo[~orphan], node[~orphan], target[~orphan]
    return out


def pixel_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices ``(p, q)`` of the 4-adjacent pixel pairs of ``labels`` whose labels differ."""
    index = np.arange(labels.size).reshape(labels.shape)
    right = labels[:, 1:] != labels[:, :-1]
    down = labels[1:] != labels[:-1]
    p = np.concatenate([index[:, :-1][right], index[:-1][down]])
    q = np.concatenate([index[:, 1:][right], index[1:][down]])
    return p, q


def overlay_labels(trees: list[RegionTree]) -> np.ndarray:
    """``h x w`` int64 labels of the overlay of the trees' leaf maps (a region per distinct tuple of leaves)."""
    # one number per tuple of leaves, ordered as the tuples (mixed radix): np.unique(axis=0)'s labels
    key = np.zeros(trees[0].leaf_map.size, np.int64)
    for tree in trees:
        key = key * tree.n_leaves + tree.leaf_map.ravel()
    _, labels = np.unique(key, return_inverse=True)
    return labels.reshape(trees[0].leaf_map.shape)


def region_ultrametric(labels: np.ndarray, tree: RegionTree, a: np.ndarray, b: np.ndarray, top: int = 4):
    """For label pairs ``(a[i], b[i])`` of ``labels``, the tree's ultrametric between a random pixel of region
    ``a[i]`` and one of ``b[i]`` (expected value; each region as its ``top`` largest overlaps with the tree's
    leaves, weights renormalised): a contour that this tree puts a few pixels off the regions' border still
    separates them, where the pixel pairs across the border would miss it."""
    n = int(labels.max()) + 1
    flat_tree = tree.leaf_map.ravel().astype(np.int64)
    counts = np.bincount(labels.ravel() * tree.n_leaves + flat_tree, minlength=n * tree.n_leaves)
    keys = np.flatnonzero(counts)  # the (region, leaf) overlaps, sorted, and their pixel counts
    counts = counts[keys]
    region, leaf = keys // tree.n_leaves, keys % tree.n_leaves
    order = np.lexsort((-counts, region))  # per region, largest overlap first
    region, leaf, counts = region[order], leaf[order], counts[order].astype(np.float64)
    first = np.searchsorted(region, np.arange(n))
    slot = np.arange(region.size) - first[region]
    keep = slot < top
    ids = np.zeros((n, top), np.int64)
    weights = np.zeros((n, top))
    ids[region[keep], slot[keep]] = leaf[keep]
    weights[region[keep], slot[keep]] = counts[keep]
    weights /= weights.sum(1, keepdims=True)
    ia, ib = ids[a][:, :, None], ids[b][:, None, :]
    wab = weights[a][:, :, None] * weights[b][:, None, :]
    ia, ib = np.broadcast_to(ia, wab.shape).ravel(), np.broadcast_to(ib, wab.shape).ravel()
    live = wab.ravel() > 0
    u = np.zeros(wab.size)
    keys, inverse = np.unique(ia[live] * tree.n_leaves + ib[live], return_inverse=True)  # distinct leaf pairs
    u[live] = leaf_ultrametric(tree, keys // tree.n_leaves, keys % tree.n_leaves)[inverse]
    return (u.reshape(wab.shape) * wab).sum((1, 2))


def consensus_edges(labels: np.ndarray, trees: list[RegionTree], weighting: str = "region"):
    """Adjacent label pairs of ``labels`` (``a < b``), their border length (pixel pairs), the summed mean
    ultrametric ``d`` of the trees along the border and its smallest value: ``(a, b, length, summed, least)``.
    ``weighting="pixel"``: ``d`` of each border pixel pair (the mean UCM across it); ``"region"``: the pair's
    :func:`region_ultrametric` averaged over the trees, the same for the whole border."""
    p, q = pixel_pairs(labels)
    la, lb = labels.ravel()[p], labels.ravel()[q]
    a, b = np.minimum(la, lb), np.maximum(la, lb)
    n = int(labels.max()) + 1
    keys, inverse = np.unique(a * n + b, return_inverse=True)
    length = np.bincount(inverse, minlength=keys.size).astype(np.float64)
    ea, eb = keys // n, keys % n
    if weighting == "region":
        d = np.mean([region_ultrametric(labels, tree, ea, eb) for tree in trees], 0)
        return ea, eb, length, d * length, d
    d = np.zeros(p.size)
    for tree in trees:
        flat = tree.leaf_map.ravel()
        pairs, inv = np.unique(np.stack([flat[p], flat[q]], 1), axis=0, return_inverse=True)
        d += leaf_ultrametric(tree, pairs[:, 0], pairs[:, 1])[inv.ravel()]
    d /= max(len(trees), 1)
    summed = np.bincount(inverse, weights=d, minlength=keys.size)
    least = np.full(keys.size, np.inf)
    np.minimum.at(least, inverse, d)
    return ea, eb, length, summed, least


def _average_linkage(n: int, edges) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    a, b, length, summed, _ = edges
    neighbours: list[dict[int, np.ndarray]] = [dict() for _ in range(2 * n - 1)]
    for i, j, le, s in zip(a.tolist(), b.tolist(), length.tolist(), summed.tolist()):
        neighbours[i][j] = neighbours[j][i] = np.array([le, s])
    heap = [(s / le, i, j) for i, j, le, s in zip(a.tolist(), b.tolist(), length.tolist(), summed.tolist())]

    def score_new(c: int, others: list[int], borders: list[np.ndarray]) -> list:
        return [(float(border[1] / border[0]), c, nb) for nb, border in zip(others, borders)]

    return agglomerate(n, neighbours, heap, lambda a, b, c: None, score_new)


def _single_linkage(n: int, edges) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    a, b, _, _, least = edges
    total = 2 * n - 1
    parent = np.full(total, -1, np.int64)
    children = np.full((total, 2), -1, np.int64)
    height = np.zeros(total)
    find = list(range(total))  # union-find over the current roots

    def root(x: int) -> int:
        while find[x] != x:
            find[x] = find[find[x]]
            x = find[x]
        return x

    next_id = n
    for k in np.argsort(least, kind="stable").tolist():
        ra, rb = root(int(a[k])), root(int(b[k]))
        if ra == rb:
            continue
        parent[ra] = parent[rb] = next_id
        children[next_id] = (ra, rb)
        height[next_id] = max(float(least[k]), height[ra], height[rb])
        find[ra] = find[rb] = next_id
        next_id += 1
    return parent[:next_id], children[:next_id], height[:next_id], next_id


def consensus_merge(
    labels: np.ndarray, trees: list[RegionTree], linkage: str = "average", weighting: str = "region"
):
    """``(parent, children, height, node_area)`` of the consensus merge over the leaves ``labels`` (``h x w``
    ints ``0..n-1``) of the ``trees``' mean ultrametric (module docstring); heights are ``1 - p`` values."""
    if linkage not in LINKAGES:
        raise ValueError(f"linkage must be one of {LINKAGES}, got {linkage!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    n = int(labels.max()) + 1
    edges = consensus_edges(labels, trees, weighting)
    merge = _average_linkage if linkage == "average" else _single_linkage
    parent, children, height, made = merge(n, edges)
    area = np.zeros(made)
    area[:n] = np.bincount(labels.ravel(), minlength=n)
    for c in range(n, made):  # children are made before their parent
        area[c] = area[children[c, 0]] + area[children[c, 1]]
    return parent, children, height, area


def consensus_tree(
    small: np.ndarray,
    lab: np.ndarray,
    strength: np.ndarray,
    scale: float,
    trees: list[RegionTree],
    params: TreeParams,
    leaves: str = "base",
    linkage: str = "average",
    weighting: str = "region",
) -> RegionTree:
    """The consensus :class:`RegionTree` of ``trees`` (learned trees of the ``h x w x 3`` RGB ``small``; ``lab``
    its CIELAB, ``strength`` its boundary map, ``scale`` its factor to the original image): leaves ``"base"``
    (``trees[0]``'s) or ``"overlay"``, ``linkage`` ``"average"`` or ``"single"``, heights ``** params.height_power``."""
    if leaves not in CONSENSUS_LEAVES:
        raise ValueError(f"leaves must be one of {CONSENSUS_LEAVES}, got {leaves!r}")
    labels = trees[0].leaf_map.astype(np.int64) if leaves == "base" else overlay_labels(trees)
    parent, children, height, area = consensus_merge(labels, trees, linkage, weighting)
    tree = assemble_tree(labels, lab, strength, (parent, children, height**params.height_power, area), scale)
    tree.criterion, tree.height_power = "learned", params.height_power
    return tree


def build_consensus_tree(
    image: np.ndarray,
    params: TreeParams | None = None,
    starts=None,
    leaves: str = "base",
    linkage: str = "average",
) -> RegionTree:
    """The consensus tree of the ``H x W x 3`` uint8 RGB ``image`` over the learned trees of ``starts``
    (:data:`granseg.regions.ensemble.UCM_STARTS` when None; the first start's leaves with ``leaves="base"``)."""
    from granseg.regions.ensemble import UCM_STARTS, ensemble_inputs

    params = params or TreeParams()
    starts = UCM_STARTS if starts is None else tuple(starts)
    small, lab, strength, scale, trees = ensemble_inputs(image, params, starts)
    return consensus_tree(small, lab, strength, scale, trees, params, leaves, linkage)
