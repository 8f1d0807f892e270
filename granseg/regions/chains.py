"""Reading a :class:`~granseg.regions.tree.RegionTree` for prompts: the chain of regions under a click, its
granularity levels, the ultrametric between leaves, region scores, and leaf selections as pixel masks.

Conventions: points are ``(N, 2)`` (x, y) in pixels of the original ``(H, W)`` image; a *selection* is an
``(n_leaves,)`` bool over leaf ranks; a tree node ``n`` is the leaf-rank interval ``[lo[n], hi[n])``.

Granularity over a chain (DESIGN.md sec. 5): the regions containing a click, from the smallest one of at least
``min_fraction`` of the top's area up to the chain's *top* (the object, see :func:`chain_top`), each get the
UnSAMv2 sqrt-area granularity relative to the others (:func:`granseg.regions.granularity.granularity_from_areas`:
smallest 0.1, top 1.0); g answers the largest chain region whose granularity is <= g. Every region of the chain
in that range is reachable, so ten g give up to ten nested masks from the smallest part to the whole object;
with ``min_distinct`` > 0 (the predictor's ``part_min_distinct``) the chain starts at the smallest region whose
colours differ from its surroundings' (:func:`colour_distinctness`), so the texture fragments below a part are
not levels of their own.
"""

from __future__ import annotations

import cv2
import numpy as np

from granseg.regions.granularity import granularity_from_areas
from granseg.regions.maxflow import default_backend
from granseg.regions.tree import RegionTree


def points_to_pixels(
    tree: RegionTree, points: np.ndarray, original_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``(columns, rows)`` ``(N,)`` int64 internal pixels under ``(N, 2)`` (x, y) points given in pixels of the
    original ``(H, W)`` image (clipped to the internal image)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    height, width = tree.leaf_map.shape
    sx, sy = width / original_size[1], height / original_size[0]
    cols = np.clip(np.floor(points[:, 0] * sx), 0, width - 1).astype(np.int64)
    rows = np.clip(np.floor(points[:, 1] * sy), 0, height - 1).astype(np.int64)
    return cols, rows


def points_to_leaves(tree: RegionTree, points: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """Leaf ranks under ``(N, 2)`` (x, y) points given in pixels of the original ``(H, W)`` image."""
    cols, rows = points_to_pixels(tree, points, original_size)
    return tree.leaf_map[rows, cols].astype(np.int64)


def leaf_box_counts(tree: RegionTree, box: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """``(n_leaves + 1,)`` prefix sums over leaf ranks of the pixels inside an (x0, y0, x1, y1) box (original
    pixels): node n has ``c[hi[n]] - c[lo[n]]`` pixels inside it."""
    height, width = tree.leaf_map.shape
    sx, sy = width / original_size[1], height / original_size[0]
    x0, x1 = int(np.floor(box[0] * sx)), int(np.ceil(box[2] * sx))
    y0, y1 = int(np.floor(box[1] * sy)), int(np.ceil(box[3] * sy))
    inside = np.bincount(tree.leaf_map[y0:y1, x0:x1].ravel(), minlength=tree.n_leaves).astype(np.float64)
    return np.concatenate([[0.0], np.cumsum(inside)])


def disk_selection(
    tree: RegionTree, point: np.ndarray, original_size: tuple[int, int], radius: float
) -> np.ndarray:
    """``(n_leaves,)`` bool: leaves more than half inside the disk of ``radius`` x the long side around the
    ``(2,)`` (x, y) point (original pixels)."""
    height, width = tree.leaf_map.shape
    cx, cy = point[0] * width / original_size[1], point[1] * height / original_size[0]
    r = radius * max(height, width)
    y0, y1 = max(int(cy - r), 0), min(int(np.ceil(cy + r)) + 1, height)
    x0, x1 = max(int(cx - r), 0), min(int(np.ceil(cx + r)) + 1, width)
    yy, xx = np.ogrid[y0:y1, x0:x1]  # (rows, 1) and (1, columns): the same sums as on the full grid
    inside = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r
    counts = np.bincount(tree.leaf_map[y0:y1, x0:x1][inside], minlength=tree.n_leaves)
    return counts > 0.5 * tree.leaf_area


def persistence(tree: RegionTree, nodes: np.ndarray) -> np.ndarray:
    """``height(parent) - height(node)`` per node (roots: twice the largest height plus one, minus their own)."""
    parents = tree.parent[nodes]
    top = tree.height.max() * 2 + 1
    parent_height = np.where(parents >= 0, tree.height[np.maximum(parents, 0)], top)
    return parent_height - tree.height[nodes]


def chain_top(
    tree: RegionTree,
    chain: list[int],
    min_fraction: float,
    max_fraction: float,
    allowed: np.ndarray | None = None,
    size_power: float = 0.0,
) -> int:
    """Index in ``chain`` of the object region: among chain regions covering ``[min_fraction, max_fraction]`` of
    the image (and ``allowed``, e.g. inside a box), the one with the largest persistence x (area fraction) **
    ``size_power`` (0: the most persistent one, the region just before the strongest merge; > 0 favours larger
    regions among similarly persistent ones). Falls back to the largest allowed region under the cap (the leaf at
    least)."""
    nodes = np.asarray(chain)
    area = tree.area[nodes] / float(tree.leaf_map.size)
    ok = area <= max_fraction
    if allowed is not None:
        ok &= allowed
    ok[0] = True
    big_enough = ok & (area >= min_fraction)
    if not big_enough.any():
        return int(np.nonzero(ok)[0].max())
    score = persistence(tree, nodes) * area**size_power
    return int(np.argmax(np.where(big_enough, score, -np.inf)))


def chain_levels(
    tree: RegionTree,
    chain: list[int],
    top: int,
    min_fraction: float = 0.0,
    min_distinct: float = 0.0,
    max_recurrence: float = 1.0,
    fragment_distinct: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The N chain regions up to index ``top`` with distinct areas of at least ``min_fraction`` x the top's area
    (the smallest part g = 0.1 can answer; 0: the leaf superpixel), their ``(N,)`` granularity (see the module)
    and, when ``min_distinct`` > 0, their ``(N,)`` :func:`colour_distinctness` (None otherwise: not computed),
    computed once here for the callers that read it again (the predictor's clip to the next level).

    With ``min_distinct`` > 0 the levels start at the smallest region whose colours differ from those of the
    rest of its surroundings by at least that (:func:`colour_distinctness`, in [0, 1]); the regions below it
    are dropped: a patch of a textured or uniform part (a few stripes, a dot and its background) is no part of
    its own, so the smallest level is the part itself rather than one of its fragments. Every region above it
    stays a level. When no region below the top qualifies, every region is kept (as with 0; except for the
    texture-patch run below). The kept regions'
    distinctness over the whole chain is theirs over the kept regions alone: a region's surroundings is a later
    region, and the regions dropped are earlier ones or repeat a kept region's leaves (same area).

    With ``max_recurrence`` < 1 a region of at least ``min_fraction`` x the top whose colours recur more than
    that in its wider surroundings (:func:`colour_recurrence`: a dot or a stripe of a textured part, whose
    colours differ from its immediate surroundings') does not count as having colours of its own.

    With ``fragment_distinct`` > 0 as well, when such a texture element (a region of at least ``min_fraction`` x
    the top, distinctness >= ``min_distinct``, recurrence > ``max_recurrence``) lies in the chain, the levels
    start no lower than just above the unbroken run of regions right after its last element whose distinctness
    is under ``fragment_distinct``: the patches the texture grows into (a few stripes look like a sample of the
    striped part around them) before the part is whole. Not when the run reaches the region just below the top
    (the chain is then kept as it was: the top is the part), and not when the run is empty (the region right
    after the last element is no patch): the element itself stays a level then; dropping it too was tried and cost
    part IoU on every set (issue 18 session 19: synthetic every-part -0.002 to -0.007, BSDS objects first click
    0.570 -> 0.550). Photographs seldom hold such an element followed by such a run, so their levels do not
    change (session 19: every photo set click for click)."""
    nodes = np.asarray(chain[: top + 1])
    areas = tree.area[nodes]
    distinct = np.concatenate([[True], areas[1:] > areas[:-1]]) & (areas >= min_fraction * areas[-1])
    distinctness = None
    if min_distinct > 0:
        hists = chain_histograms(tree, nodes)
        distinctness = colour_distinctness(tree, nodes, hists=hists) if len(nodes) > 1 else np.ones(1)
        own_colours = distinctness[:-1] >= min_distinct
        elements = np.zeros(len(nodes) - 1, bool)
        if max_recurrence < 1:  # ... and, among the regions large enough to be levels, colours found nowhere
            # else around it (not one of a texture's dots or stripes; :func:`colour_recurrence`)
            repeated = colour_recurrence(tree, nodes, hists=hists)[:-1] > max_recurrence
            repeated &= areas[:-1] >= min_fraction * areas[-1]
            elements = repeated & own_colours
            own_colours &= ~repeated
        starts = list(np.flatnonzero(own_colours)[:1])  # the smallest region with colours of its own
        if fragment_distinct > 0 and elements.any():  # ... and above the patches the texture grows into
            after = np.flatnonzero(elements)[-1] + 1  # the regions after its last element, while patches
            patches = np.flatnonzero(np.cumprod(distinctness[after:-1] < fragment_distinct))
            if 0 < len(patches) and after + patches[-1] < len(nodes) - 2:
                starts.append(after + patches[-1] + 1)
        if starts:  # the chain starts there (else: as before)
            distinct[: max(starts)] = False
    distinct[-1] = True
    nodes = nodes[distinct]
    if distinctness is not None:
        distinctness = distinctness[distinct]
    return nodes, granularity_from_areas(tree.area[nodes]), distinctness


def chain_histograms(tree: RegionTree, nodes: np.ndarray) -> np.ndarray:
    """``(N, B)`` float64 colour histograms (the tree's quantised CIELAB bins, pixel counts) of the ``(N,)``
    regions ``nodes``."""
    from scipy.sparse import csr_matrix

    nodes = np.asarray(nodes)
    lo, hi = tree.lo[nodes], tree.hi[nodes]
    ranks = np.concatenate([np.arange(a, b) for a, b in zip(lo.tolist(), hi.tolist())])
    rows = np.repeat(np.arange(len(nodes)), hi - lo)
    members = csr_matrix((np.ones(len(ranks)), (rows, ranks)), shape=(len(nodes), tree.n_leaves))
    return np.asarray((members @ tree.leaf_colours).todense(), dtype=np.float64)


def colour_distinctness(
    tree: RegionTree, nodes: np.ndarray, factor: float = 2.0, hists: np.ndarray | None = None
) -> np.ndarray:
    """``(N,)`` in [0, 1] for the nested ``(N,)`` chain ``nodes`` (smallest first): for each region, the total
    variation distance between its colour histogram (the tree's quantised CIELAB bins) and that of the rest of
    its *surroundings*, the smallest later chain region of at least ``factor`` x its area (the last one when none
    is that large; 1.0 for the last region, or when the rest is empty). Near 0: the region looks like a sample of
    what surrounds it (a texture fragment); near 1: its colours are its own (a part, a sub-part). ``hists``:
    the regions' :func:`chain_histograms` when the caller has them."""
    nodes = np.asarray(nodes)
    hists = chain_histograms(tree, nodes) if hists is None else hists
    areas = tree.area[nodes]
    # areas grow along a chain: the first region of at least factor x each area (the last one if none)
    surroundings = np.minimum(np.searchsorted(areas, factor * areas), len(nodes) - 1)
    surroundings = np.maximum(surroundings, np.arange(len(nodes)))
    rest = hists[surroundings] - hists
    own_total, rest_total = hists.sum(axis=1), rest.sum(axis=1)
    out = np.ones(len(nodes))
    ok = (own_total > 0) & (rest_total > 0)
    out[ok] = 0.5 * np.abs(hists[ok] / own_total[ok, None] - rest[ok] / rest_total[ok, None]).sum(axis=1)
    return out


def colour_recurrence(
    tree: RegionTree, nodes: np.ndarray, factor: float = 8.0, hists: np.ndarray | None = None
) -> np.ndarray:
    """``(N,)`` in [0, 1] for the nested ``(N,)`` chain ``nodes``: how much of each region's colour histogram
    (the tree's quantised CIELAB bins) recurs in the rest of its wider surroundings, the smallest later chain
    region of at least ``factor`` x its area: ``sum_b min(own_b, rest_b) / own total``. Near 1: more of the same
    colours lie around it (a dot or a stripe of a textured part); near 0: its colours are found nowhere else
    around it (a sub-part, a part). 0 where no chain region is that large (a region over 1 / ``factor`` of the
    chain's last one is too large to be one element of a repeated pattern). ``factor`` must be > 1; ``hists``:
    the regions' :func:`chain_histograms` when the caller has them."""
    nodes = np.asarray(nodes)
    hists = chain_histograms(tree, nodes) if hists is None else hists
    areas = tree.area[nodes]
    wider = np.maximum(np.searchsorted(areas, factor * areas), np.arange(len(nodes)) + 1)
    room = wider < len(nodes)
    rest = hists[np.minimum(wider, len(nodes) - 1)] - hists
    total = np.maximum(hists.sum(axis=1), 1e-9)
    return np.where(room, np.minimum(hists, rest).sum(axis=1) / total, 0.0)


def node_for_granularity(nodes: np.ndarray, levels: np.ndarray, g: float) -> int:
    """The largest region of a chain whose granularity is <= ``g`` (the smallest one if none)."""
    return int(nodes[max(int(np.searchsorted(levels, g + 1e-9, side="right")) - 1, 0)])


def node_for_click(
    tree: RegionTree,
    nodes: np.ndarray,
    levels: np.ndarray,
    g: float,
    exclude: np.ndarray,
    max_area: float = np.inf,
) -> int | None:
    """The largest region of a chain whose granularity is <= ``g``, whose area is <= ``max_area`` (internal
    pixels) and that holds none of the ``exclude`` leaf ranks (the other label's clicks); the chain's first
    region when only it qualifies on area and granularity; None when it holds an excluded click."""
    exclude = np.asarray(exclude, dtype=np.int64)
    best = None
    for node, level in zip(nodes.tolist(), levels.tolist()):
        if (level > g + 1e-9 or tree.area[node] > max_area) and best is not None:
            break
        if exclude.size and ((tree.lo[node] <= exclude) & (exclude < tree.hi[node])).any():
            break
        best = node
    return best


def ultrametric_distance(tree: RegionTree, seeds: np.ndarray) -> np.ndarray:
    """``(n_leaves,)`` min over seed leaves of the merge height of their lowest common ancestor (0 at a seed)."""
    dist = np.full(tree.n_leaves, np.inf)
    for seed in np.unique(seeds):
        for node in reversed(tree.chain(int(tree.leaf_node[seed]))):  # root first: lower nodes overwrite
            segment = dist[tree.lo[node] : tree.hi[node]]
            np.minimum(segment, tree.height[node], out=segment)
    return dist


def node_score(tree: RegionTree, node: int, full_area_fraction: float = 0.02) -> float:
    """Confidence that a region is a whole segment, in [0, 1): its persistence relative to the tree's largest
    merge height, ``1 - exp(-persistence / (0.1 * max height))``, times ``min(1, sqrt(area fraction /
    full_area_fraction))``. Fragments inside a uniform area merge low into their parent (persistence near
    0); regions with a strong outline persist long; regions below ``full_area_fraction`` of the image (2 %) are
    discounted, so a small dark blob does not outrank a whole object with the same contrast."""
    scale = 0.1 * max(float(tree.height.max()), 1e-9)
    value = float(persistence(tree, np.asarray([node]))[0])
    size = min(1.0, float(np.sqrt(tree.area[node] / tree.leaf_map.size / full_area_fraction)))
    return float((1.0 - np.exp(-min(value, 20 * scale) / scale)) * size)


def selection_contrast(tree: RegionTree, selected: np.ndarray) -> float:
    """``B_out / (B_out + B_in)``: mean boundary strength along a selection's outline vs inside it."""
    sa, sb = selected[tree.edge_a], selected[tree.edge_b]
    outline, inner = sa != sb, sa & sb
    b_out = tree.edge_strength[outline].sum() / max(tree.edge_len[outline].sum(), 1.0)
    b_in = tree.edge_strength[inner].sum() / max(tree.edge_len[inner].sum(), 1.0)
    return float(b_out / (b_out + b_in + 1e-9))


def upsample_selection(tree: RegionTree, selected: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """Leaf selection ``(n_leaves,)`` bool -> ``H x W`` bool mask (bilinear upsampling of the internal mask)."""
    return upsample_mask(selected[tree.leaf_map], original_size)


def upsample_mask(small: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """``h x w`` bool internal mask -> ``H x W`` bool (bilinear, threshold 0.5; a copy when the sizes agree)."""
    if small.shape == tuple(original_size):
        return small.astype(bool, copy=True)
    big = cv2.resize(
        small.astype(np.float32), (original_size[1], original_size[0]), interpolation=cv2.INTER_LINEAR
    )
    return big > 0.5


def paint_selections(
    selections: np.ndarray, leaf_index: np.ndarray, rows: list[int], out: np.ndarray
) -> None:
    """In place: ``out[rows[k]] = selections[k][leaf_index]`` for ``(D, n_leaves)`` bool selections and the
    tree's ``h x w`` intp leaf map ``leaf_index`` (compiled where numba runs: one pass over the leaf map for all
    D selections)."""
    if default_backend() == "numba":
        from granseg.regions.leafgraph_compiled import paint

        paint(selections, leaf_index, np.asarray(rows, np.int64), out)
        return
    for selection, row in zip(selections, rows):
        out[row] = selection[leaf_index]


def selection_from_mask(tree: RegionTree, mask: np.ndarray) -> np.ndarray:
    """``(n_leaves,)`` bool: leaves more than half covered by an ``h x w`` bool/float mask (any size; resized to
    the internal resolution)."""
    mask = mask_at_tree_size(tree, mask)
    inside = np.bincount(tree.leaf_map.ravel(), weights=mask.ravel(), minlength=tree.n_leaves)
    return inside > 0.5 * tree.leaf_area


def mask_at_tree_size(tree: RegionTree, mask: np.ndarray) -> np.ndarray:
    """``h x w`` float32 (the tree's internal resolution) of an ``H x W`` bool/float ``mask`` of any size
    (bilinear; unchanged values when it already has that size)."""
    height, width = tree.leaf_map.shape
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != (height, width):
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    return mask


def bounded_change(
    tree: RegionTree, previous: np.ndarray, reference: np.ndarray, cut: np.ndarray, min_fraction: float
) -> np.ndarray:
    """A correction's answer: the ``cut`` (``(n_leaves,)`` bool) unless it changes more of the image than the
    ``previous`` answer's area or ``min_fraction`` of the image, whichever is larger; then the ``reference`` it
    started from (the previous answer corrected by the click's own region), so that one click cannot flood the
    background or wipe out the object."""
    changed = float(tree.leaf_area[cut != previous].sum())
    limit = max(float(tree.leaf_area[previous].sum()), min_fraction * float(tree.leaf_map.size))
    return cut if changed <= limit else reference.copy()


def cap_nested(tree: RegionTree, selections: np.ndarray, references: list, max_fraction: float) -> None:
    """In place: a single click's answers ``selections`` (``(K, n_leaves)`` bool, levels ascending, before their
    running union) capped at ``max_fraction`` of the image. The chain top obeys the same cap, so an answer above
    it is a cut that flooded the background (a top with the background's colours), not a larger object: such a
    level answers its own ``references[k]`` instead (the chain region its cut started from, ``(n_leaves,)``
    bool, under the cap; the level is left as is when None)."""
    limit = max_fraction * float(tree.leaf_map.size)
    for k in range(len(selections)):
        if references[k] is not None and float(tree.leaf_area[selections[k]].sum()) > limit:
            selections[k] = references[k]


def running_union(stack: np.ndarray, feeds: list[bool]) -> None:
    """In place, for a single click's ``(K, ...)`` bool answers ``stack`` (rows ascending by g): each row ``|=``
    the union of the earlier rows whose ``feeds[k]`` is True (the predictor's ten standard levels). A row that
    does not feed (another g asked) gets the union below it, is cut to the next feeding row above it (when there
    is one) and adds to no other row: it lies between its two feeding neighbours and no answer depends on which
    other g were asked. Two non-feeding rows between the same feeding rows are not ordered among themselves
    (each is its own cut; ordering them would make one depend on the other).
    (Row by row: several times faster on bool image stacks than ``np.logical_or.accumulate`` over axis 0.)"""
    below = None  # the union of the feeding rows so far: the last such row itself, which holds the ones below
    waiting = []  # rows that do not feed, since the last feeding row
    for k in range(len(stack)):
        if below is not None:
            np.logical_or(stack[k], below, out=stack[k])
        if not feeds[k]:
            waiting.append(k)
            continue
        below = stack[k]
        for j in waiting:
            np.logical_and(stack[j], below, out=stack[j])
        waiting = []


def keep_uncollapsed(tree: RegionTree, selections: np.ndarray, references: list, min_cover: float) -> None:
    """In place: a single click's answers ``selections`` (``(K, n_leaves)`` bool, levels ascending, the last the
    g = 1.0 answer after the object prior's union, before the running union) where a cut collapsed onto the
    click: it keeps less than ``min_cover`` of the area of ``references[k]``, the chain region it started from
    (``(n_leaves,)`` bool; None: left as is). The region's colour model did not tell it from its surroundings (a
    textured or camouflaged object), so the cut says nothing about its outline and the level answers the region
    instead. The last answer is checked first; a smaller level answers its region within the last answer, so the
    fallback never changes the largest answer through the running union (where that did not collapse, e.g. the
    object prior's cut found the object)."""
    area = tree.leaf_area

    def collapsed(k: int) -> bool:
        kept = float(area[selections[k] & references[k]].sum())
        return kept < min_cover * float(area[references[k]].sum())

    last = len(selections) - 1
    if references[last] is not None and collapsed(last):
        selections[last] = references[last]
    for k in range(last):
        if references[k] is not None and collapsed(k):
            selections[k] = references[k] & selections[last]


def connected_to(tree: RegionTree, selected: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The leaves of ``selected`` joined to a ``seeds`` leaf through selected, adjacent leaves.

    Args:
        selected: ``(n_leaves,)`` bool leaf selection (e.g. a graph cut's answer).
        seeds: ``(S,)`` leaf ranks (the positive clicks' leaves); seeds outside ``selected`` join nothing.
    Returns:
        ``(n_leaves,)`` bool: the connected pieces of ``selected`` (4-adjacency of the leaves) holding a seed; a
        colour model can pick far-off leaves of the object's colours, and a click means one connected thing.
    """
    return connected_to_many(tree, np.asarray(selected)[None], seeds)[0]


def connected_to_many(tree: RegionTree, selected: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """:func:`connected_to` of each row of ``(K, n_leaves)`` bool ``selected`` with the same ``seeds``, as one
    graph (the disjoint union of the K selections' leaf graphs): ``(K, n_leaves)`` bool."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    selected = np.asarray(selected, bool)
    k, n = selected.shape
    seeds = np.asarray(seeds, dtype=np.int64)
    if default_backend() == "numba":  # a search from the seeds per row, compiled (the same pieces)
        from granseg.regions.leafgraph_compiled import pieces_with_seeds

        return pieces_with_seeds(*tree.leaf_neighbours, selected, seeds)
    inside = selected[:, tree.edge_a] & selected[:, tree.edge_b]  # (K, E)
    row, edge = np.nonzero(inside)
    offset = row * n
    graph = coo_matrix(
        (np.ones(len(edge)), (tree.edge_a[edge] + offset, tree.edge_b[edge] + offset)), shape=(k * n, k * n)
    )
    _, component = connected_components(graph, directed=False)
    component = component.reshape(k, n)
    out = selected.copy()
    for r in range(k):
        held = seeds[selected[r, seeds]]
        if len(held):  # no seed inside: the selection as it is
            out[r] &= np.isin(component[r], component[r, held])
    return out


def chroma_close_pieces(
    tree: RegionTree, base: np.ndarray, added: np.ndarray, max_distance: float, min_shared: float = 0.0
) -> np.ndarray:
    """The connected pieces of ``added`` whose mean chromaticity lies within ``max_distance`` of ``base``'s, or
    (``min_shared`` > 0) that share at least that fraction of their outline with ``base``.

    Args:
        base: ``(n_leaves,)`` bool, an answer (e.g. the chain's cut at g = 1.0).
        added: ``(n_leaves,)`` bool, leaves another answer would add to it (``base``'s own leaves are ignored).
        max_distance: CIELAB (a, b) distance between the area-weighted mean colours of a piece and of ``base``
            (lightness ignored: a shaded or darker part of the object keeps its hue); <= 0 keeps every piece.
        min_shared: a piece farther than ``max_distance`` is still kept when at least this fraction of its outline
            (the leaf-graph boundary length to leaves outside it, :func:`shared_outline`) borders ``base``: the
            other half of a two-coloured object meets it along a long seam, a touching neighbour object along a
            short stretch; 0 (off) drops every far piece.
    Returns:
        ``(n_leaves,)`` bool, the kept pieces of ``added`` (4-adjacency of the leaves). A part of the object
        grown from another part of it usually keeps its colour family; a touching neighbour object of another
        colour is dropped, not the whole answer.
    """
    base = np.asarray(base, bool)
    added = np.asarray(added, bool) & ~base
    if max_distance <= 0 or not added.any() or not base.any():
        return added
    piece = leaf_pieces(tree, added)
    area = tree.leaf_area.astype(np.float64)
    base_mean = (tree.leaf_lab[base, 1:].astype(np.float64) * area[base, None]).sum(axis=0) / area[base].sum()
    means, _ = piece_mean_colours(tree, piece)
    keep = np.hypot(*(means[:, 1:] - base_mean).T) <= max_distance
    if min_shared > 0:
        keep |= shared_outline(tree, piece, base) >= min_shared
    return added & keep[piece]


def piece_mean_colours(tree: RegionTree, piece: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per piece label (``piece``: ``(n_leaves,)`` int, -1 outside every piece, :func:`leaf_pieces`): the
    ``(n_leaves, 3)`` area-weighted mean CIELAB colour and the ``(n_leaves,)`` area (internal pixels) of each
    piece; rows of labels no piece has are 0."""
    n = tree.n_leaves
    inside = piece >= 0
    area = tree.leaf_area.astype(np.float64)[inside]
    lab = tree.leaf_lab[inside].astype(np.float64)
    weight = np.bincount(piece[inside], weights=area, minlength=n)
    sums = np.stack([np.bincount(piece[inside], weights=lab[:, k] * area, minlength=n) for k in range(3)], 1)
    return sums / np.maximum(weight, 1e-9)[:, None], weight


def shared_outline(tree: RegionTree, piece: np.ndarray, base: np.ndarray) -> np.ndarray:
    """``(n_leaves,)`` float, indexed by piece label: the fraction of each piece's outline that borders ``base``.

    Args:
        piece: ``(n_leaves,)`` int piece label per leaf, -1 outside every piece (:func:`leaf_pieces`).
        base: ``(n_leaves,)`` bool, leaves of no piece.
    Returns:
        per label, the leaf-graph boundary length (``tree.edge_len``, internal pixels) between the piece and
        ``base`` over that between the piece and every leaf outside it (0 for labels with no outline; the image
        border is no outline).
    """
    n = tree.n_leaves
    a, b, length = tree.edge_a, tree.edge_b, tree.edge_len.astype(np.float64)
    pa, pb = piece[a], piece[b]
    total = np.zeros(n)
    shared = np.zeros(n)
    for p, q, other in ((pa, pb, b), (pb, pa, a)):  # each direction: the piece's side p, the other leaf's q
        out = (p >= 0) & (q != p)
        np.add.at(total, p[out], length[out])
        touch = out & base[other]
        np.add.at(shared, p[touch], length[touch])
    return shared / np.maximum(total, 1e-9)


def leaf_pieces(tree: RegionTree, selected: np.ndarray) -> np.ndarray:
    """``(n_leaves,)`` int: the connected piece of each ``selected`` leaf (``(n_leaves,)`` bool; 4-adjacency of
    the leaves; piece labels are >= 0 but not consecutive), -1 for the leaves not selected."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    selected = np.asarray(selected, bool)
    n = tree.n_leaves
    inside = selected[tree.edge_a] & selected[tree.edge_b]
    graph = coo_matrix((np.ones(int(inside.sum())), (tree.edge_a[inside], tree.edge_b[inside])), shape=(n, n))
    return np.where(selected, connected_components(graph, directed=False)[1], -1)
