"""How far a correction click may change the answer: its *reach*.

A user clicks inside the part of the answer that is wrong, about in its middle (the RITM robot user clicks at the
point of the error farthest from the error's outline). The click's distance ``r`` to the previous answer's outline
(to the nearest answer pixel for a positive click outside it, to the nearest background pixel for a negative
click inside it) is then about the size of the mistake it points at: a click one superpixel off the outline asks
for a small edit there, not for a flood over the background that happens to share the object's colours. A
correction may relabel only the leaves with a pixel within ``factor x r`` of the click (at least ``min_radius``);
every other leaf keeps its previous label. The rule is applied after the correction's graph cut
(:func:`limit_to_reach`: a cut that stays within bounds is kept whole), not as a constraint inside it (hard
constraints in the cut were measured worse on the tune sets, docs/hierarchy.md).
"""

from __future__ import annotations

import heapq

import numpy as np

from granseg.regions.chains import leaf_pieces
from granseg.regions.consensus import leaf_ultrametric
from granseg.regions.tree import RegionTree


def outline_distance(mask: np.ndarray, x: int, y: int, positive: bool) -> float:
    """Distance (internal pixels) from pixel ``(x, y)`` to the nearest pixel of ``mask`` (``positive``) or of its
    complement (negative): how far a click is from the answer's outline on the side it corrects. 0 when the pixel
    is already on the click's side; ``inf`` when there is no such pixel (an empty or full answer)."""
    target = mask if positive else ~mask
    if target[y, x]:
        return 0.0
    height, width = mask.shape
    half = 8
    while True:  # windows growing around the click: a hit within ``half`` is the nearest one overall
        y0, y1, x0, x1 = (
            max(y - half, 0),
            min(y + half + 1, height),
            max(x - half, 0),
            min(x + half + 1, width),
        )
        ys, xs = np.nonzero(target[y0:y1, x0:x1])
        if len(ys):
            nearest = float(np.sqrt(((ys + y0 - y) ** 2 + (xs + x0 - x) ** 2).min()))
            if nearest <= half or (y0 == 0 and x0 == 0 and y1 == height and x1 == width):
                return nearest
        elif y0 == 0 and x0 == 0 and y1 == height and x1 == width:
            return float("inf")
        half *= 4


def leaves_within(tree: RegionTree, x: int, y: int, radius: float) -> np.ndarray:
    """``(n_leaves,)`` bool: the leaves with at least one pixel within ``radius`` (internal pixels) of ``(x, y)``
    (all of them for an infinite radius)."""
    if not np.isfinite(radius):
        return np.ones(tree.n_leaves, bool)
    height, width = tree.leaf_map.shape
    r = int(np.ceil(radius))
    y0, y1, x0, x1 = max(y - r, 0), min(y + r + 1, height), max(x - r, 0), min(x + r + 1, width)
    yy, xx = np.ogrid[y0 - y : y1 - y, x0 - x : x1 - x]
    disk = yy**2 + xx**2 <= radius**2
    near = np.zeros(tree.n_leaves, bool)
    near[tree.leaf_map[y0:y1, x0:x1][disk]] = True
    return near


def correction_reach(
    tree: RegionTree,
    previous_mask: np.ndarray,
    x: int,
    y: int,
    positive: bool,
    factor: float,
    min_radius: float,
) -> np.ndarray:
    """``(n_leaves,)`` bool: the leaves a correction click at internal pixel ``(x, y)`` may relabel (module
    docstring), given the previous answer's ``(h, w)`` bool internal mask."""
    distance = outline_distance(previous_mask, x, y, positive)
    return leaves_within(tree, x, y, max(factor * distance, min_radius))


def click_neighbourhoods(
    tree: RegionTree, xs: np.ndarray, ys: np.ndarray, labels: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(n_leaves,)`` bool each: the leaves within ``radius`` of a positive click and of a negative click at
    internal pixels ``(xs[k], ys[k])`` (the earlier clicks: what a correction must keep on their side)."""
    positive, negative = np.zeros(tree.n_leaves, bool), np.zeros(tree.n_leaves, bool)
    for x, y, label in zip(np.asarray(xs).tolist(), np.asarray(ys).tolist(), np.asarray(labels).tolist()):
        (positive if label == 1 else negative)[leaves_within(tree, x, y, radius)] = True
    return positive, negative


def limit_to_reach(
    tree: RegionTree,
    cut: np.ndarray,
    previous: np.ndarray,
    near: np.ndarray,
    keep_in: np.ndarray,
    keep_out: np.ndarray,
) -> np.ndarray:
    """A correction's answer (``(n_leaves,)`` bool selections throughout): the ``cut`` itself when it changes no
    more area than its reach ``near`` covers and keeps every earlier click's neighbourhood (``keep_in`` /
    ``keep_out``, :func:`click_neighbourhoods`) on that click's side wherever ``previous`` had it there;
    otherwise the ``previous`` answer edited by the cut only within the reach and outside those neighbourhoods
    (a new array; the ``cut`` object itself when it is kept)."""
    held_in, held_out = keep_in & previous, keep_out & ~previous
    broken = (held_in & ~cut).any() or (held_out & cut).any()
    if not broken and tree.leaf_area[cut != previous].sum() <= tree.leaf_area[near].sum():
        return cut
    limited = np.where(near, cut, previous)
    limited[held_in] = True
    limited[held_out] = False
    return limited


def splits_clicks(tree: RegionTree, previous: np.ndarray, answer: np.ndarray, positives: np.ndarray) -> bool:
    """Whether ``answer`` (``(n_leaves,)`` bool) separates two earlier positive clicks (``(P,)`` leaf ranks) that
    one connected piece of ``previous`` held together: a negative click on a slit between two legs that takes a
    leg away with it. Pieces: 4-adjacency of the selected leaves."""
    positives = np.unique(np.asarray(positives, dtype=np.int64))
    if len(positives) < 2:
        return False
    with_clicks = np.zeros(tree.n_leaves, bool)
    with_clicks[positives] = True  # a click's leaf can be mostly outside the answer's pixels
    before, after = leaf_pieces(tree, previous | with_clicks), leaf_pieces(tree, answer | with_clicks)
    for a in range(len(positives)):
        for b in range(a + 1, len(positives)):
            p, q = positives[a], positives[b]
            together = before[p] >= 0 and before[p] == before[q]
            if together and after[p] != after[q]:
                return True
    return False


def guard_split(
    tree: RegionTree,
    cut: np.ndarray,
    previous: np.ndarray,
    positives: np.ndarray,
    x: int,
    y: int,
    radius: float,
) -> np.ndarray:
    """A negative correction's answer (``(n_leaves,)`` bool selections): the ``cut`` itself unless it separates
    earlier positive clicks (:func:`splits_clicks`, ``positives`` their leaf ranks), else the ``previous``
    answer edited by the cut only within ``radius`` internal pixels of the click at ``(x, y)``, or where that
    still separates them the ``previous`` answer itself."""
    if not splits_clicks(tree, previous, cut, positives):
        return cut
    limited = np.where(leaves_within(tree, x, y, radius), cut, previous)
    return previous.copy() if splits_clicks(tree, previous, limited, positives) else limited


def colour_vote(
    tree: RegionTree,
    cut: np.ndarray,
    previous: np.ndarray,
    leaf: int,
    others: np.ndarray,
    ratio: float = 1.0,
) -> np.ndarray:
    """A correction's answer (``(n_leaves,)`` bool selections) in which a leaf the ``cut`` flips against the
    ``previous`` answer stays flipped only where its mean CIELAB colour is nearer the correcting click's leaf
    ``leaf`` than ``ratio`` x its distance to the nearest earlier click of the other label (``others``, their leaf
    ranks): a negative click on the dark slit between two legs speaks for the slit, not for the legs that look
    like the positive clicks."""
    others = np.asarray(others, dtype=np.int64)
    if len(others) == 0:
        return cut
    lab = tree.leaf_lab
    own = np.linalg.norm(lab - lab[leaf], axis=1)
    other = np.linalg.norm(lab[:, None] - lab[others][None], axis=2).min(1)
    flipped = (cut != previous) & (own >= ratio * other)
    flipped[leaf] = False
    return np.where(flipped, previous, cut)


def bottleneck(n: int, a: np.ndarray, b: np.ndarray, strength: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """``(n,)`` minimax path cost from the ``seeds`` (``(n,)`` bool; 0 there) over the undirected edges
    ``(a[k], b[k])`` of cost ``strength[k]``: the weakest strongest-boundary on a path (``inf``: no path)."""
    start = np.concatenate([[0], np.cumsum(np.bincount(np.concatenate([a, b]), minlength=n))])
    order = np.argsort(np.concatenate([a, b]), kind="stable")
    other, cost = np.concatenate([b, a])[order].tolist(), np.concatenate([strength, strength])[order].tolist()
    dist = np.where(seeds, 0.0, np.inf)
    heap = [(0.0, int(i)) for i in np.flatnonzero(seeds)]
    while heap:
        d, i = heapq.heappop(heap)
        if d > dist[i]:
            continue
        for k in range(int(start[i]), int(start[i + 1])):
            j, c = other[k], max(d, cost[k])
            if c < dist[j]:
                dist[j] = c
                heapq.heappush(heap, (c, j))
    return dist


def boundary_watershed(
    tree: RegionTree,
    cut: np.ndarray,
    previous: np.ndarray,
    leaf: int,
    margin: float = 1.0,
    by_tree: bool = True,
) -> np.ndarray:
    """A negative correction's answer (``(n_leaves,)`` bool selections) in which a leaf the ``cut`` removes from
    the ``previous`` answer goes back when the kept answer reaches it over weaker boundaries than the click's
    leaf ``leaf`` does: its :func:`bottleneck` over paths through the removed leaves (inside ``previous``) from
    the leaves the cut keeps, times ``margin``, is below that from the click's leaf (a removal the cut carried
    across a strong boundary from the click, away from a weak one to the rest of the answer). A boundary's cost:
    the tree's ultrametric of its two leaves (``by_tree``), else their mean boundary strength
    (``edge_strength / edge_len``)."""
    removed = previous & ~cut
    if not removed.any():
        return cut
    a, b = tree.edge_a.astype(np.int64), tree.edge_b.astype(np.int64)
    click = np.arange(tree.n_leaves) == leaf
    inside = previous | click
    use = inside[a] & inside[b] & (removed[a] | removed[b] | click[a] | click[b])
    if by_tree:  # the tree's ultrametric between the two leaves instead of the boundary strength
        strength = leaf_ultrametric(tree, a[use], b[use])
    else:
        strength = tree.edge_strength[use] / np.maximum(tree.edge_len[use], 1.0)
    kept = previous & cut & ~click
    keep_cost = bottleneck(tree.n_leaves, a[use], b[use], strength, kept)
    click_cost = bottleneck(tree.n_leaves, a[use], b[use], strength, click & ~kept)
    back = removed & (margin * keep_cost < click_cost)
    back[leaf] = False
    return cut | back


def guard_correction(
    tree: RegionTree,
    cut: np.ndarray,
    previous: np.ndarray,
    leaves: np.ndarray,
    labels: np.ndarray,
    xy: tuple[int, int],
    config,
) -> np.ndarray:
    """A correction's answer after the guards ``config`` (a HierarchyConfig) turns on, in this order
    (``(n_leaves,)`` bool selections; ``leaves``, ``labels``: ``(N,)`` leaf ranks and labels of every click, the
    correction last, at internal pixel ``xy``):

    * ``correction_split_guard``: a negative click's :func:`guard_split`;
    * ``correction_sign``: a positive click only adds leaves to ``previous``, a negative one only removes leaves
      (the user said "this is missing" or "this is too much" there, nothing about the rest of the answer);
    * ``correction_colour_vote``: :func:`colour_vote` against the earlier clicks of the other label;
    * ``correction_watershed``: a negative click's :func:`boundary_watershed` (the leaves it removed across a
      stronger boundary from the click than from the kept answer go back)."""
    positive = bool(labels[-1] == 1)
    if config.correction_split_guard and not positive:
        cut = guard_split(tree, cut, previous, leaves[labels == 1], *xy, config.correction_min_reach)
    if config.correction_sign:
        cut = cut | previous if positive else cut & previous
    vote = config.correction_colour_vote
    if vote > 0 and (positive or not config.correction_vote_positive_only):
        others = leaves[:-1][labels[:-1] != labels[-1]]
        cut = colour_vote(tree, cut, previous, int(leaves[-1]), others, vote)
    if config.correction_watershed and not positive:
        margin, by_tree = config.correction_watershed_margin, config.correction_watershed_tree
        cut = boundary_watershed(tree, cut, previous, int(leaves[-1]), margin, by_tree)
    return cut
