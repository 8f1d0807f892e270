"""The greedy merging of :func:`granseg.regions.learned.learned_merge` in one compiled loop (numba; imported only
where numba is installed, see :func:`granseg.regions.maxflow.default_backend`).

The same pairs, features (:meth:`~granseg.regions.learned.NodeStats.pair_features`, without the spectral cue),
logistic model, heap order (distance, then node ids) and merges as the Python loop over
:func:`granseg.regions.agglomerate.agglomerate`; only the order of a few floating-point sums differs (numpy's
pairwise sums and BLAS dot products against plain loops here), so distances agree to ~1e-15 and the trees are
the same wherever no two candidate merges lie that close (tested against the Python loop on photographs and
synthetic scenes: ``benchmarks/diag_compiled_merge.py``). For the predictor's two trees at 1024 px the Python
loop cost ~0.3 s of ``set_image`` on issue 18 session 20's slow 2-core machine (1.34-1.40 -> 1.04-1.06 s).
"""

import heapq

import numba
import numpy as np
from numba import types
from numba.typed import Dict, List


@numba.njit(cache=True, nogil=True)
def _distance(a, b, border, nodes, splits, image_area, model):
    """``1 - p(same)`` of nodes ``a`` and ``b`` with the ``(1 + G)`` ``border`` (shared length, summed
    gradients): :meth:`~granseg.regions.learned.NodeStats.pair_features` and
    :meth:`~granseg.regions.learned.MergeModel.logit` for one pair. ``nodes``: the node statistics ``(area,
    perimeter, lab, hist)``; ``model``: ``(mean, scale, weights, bias, border log offset)``."""
    area, perimeter, lab, hist = nodes
    mean, scale, weights, bias, offset = model
    n_border = len(border) - 1
    n_chi2 = len(splits) - 1
    features = np.empty(n_border + n_chi2 + 8)
    length = max(border[0], 1e-9)
    area_a, area_b = area[a], area[b]
    border_sum = 0.0
    for k in range(n_border):
        features[k] = border[1 + k] / length
        border_sum += features[k]
    for c in range(n_chi2):
        total = 0.0
        for k in range(splits[c], splits[c + 1]):
            pa, pb = hist[a, k] / area_a, hist[b, k] / area_b
            total += (pa - pb) ** 2 / (pa + pb + 1e-9)
        features[n_border + c] = 0.5 * total
    squares = 0.0
    for k in range(3):
        squares += (lab[a, k] / area_a - lab[b, k] / area_b) ** 2
    colour = np.sqrt(squares) / 100.0
    small, large = min(area_a, area_b), max(area_a, area_b)
    small_perimeter = perimeter[a] if area_a <= area_b else perimeter[b]
    border_mean = border_sum / n_border
    share = min(border[0] / max(small_perimeter, 1.0), 1.0)
    log_min_area = np.log(small / image_area)
    i = n_border + n_chi2
    features[i] = colour
    features[i + 1] = log_min_area
    features[i + 2] = np.log(large / image_area)
    features[i + 3] = share
    features[i + 4] = np.log(border_mean + offset)
    features[i + 5] = border_mean * log_min_area
    features[i + 6] = colour * log_min_area
    features[i + 7] = share * log_min_area
    logit = 0.0
    for k in range(len(features)):
        logit += (features[k] - mean[k]) / scale[k] * weights[k]
    return 1.0 / (1.0 + np.exp(bias + logit))


@numba.njit(cache=True, nogil=True)
def merge_loop(n, edge_a, edge_b, borders, nodes, splits, image_area, model):
    """Greedy merging of ``n`` leaves (module docstring): ``edge_a``, ``edge_b`` ``(E,)`` adjacent leaf pairs
    with ``(E, 1 + G)`` ``borders``; ``nodes`` the float64 node statistics ``(area, perimeter, lab, hist)``,
    ``(2n - 1,)``, ``(2n - 1,)``, ``(2n - 1, 3)``, ``(2n - 1, B)``, the leaves' rows filled (the rest are written
    here, as :meth:`~granseg.regions.learned.NodeStats.merge`); ``splits`` the histogram channels' bin offsets;
    ``model`` ``(mean, scale, weights, bias, border log offset)``. Returns ``parent``, ``children``, ``height``
    over the ``m`` nodes made and ``m``."""
    area, perimeter, lab, hist = nodes
    total = 2 * n - 1
    parent = np.full(total, -1, np.int64)
    children = np.full((total, 2), -1, np.int64)
    height = np.zeros(total)
    alive = np.zeros(total, np.bool_)
    alive[:n] = True
    # each node's neighbours: node -> row of `rows`, the borders (a merged pair's border is the sum of its parts')
    rows = np.empty((len(edge_a) + total, borders.shape[1]))
    neighbours = List()
    for _ in range(total):
        neighbours.append(Dict.empty(key_type=types.int64, value_type=types.int64))
    heap = List()
    for e in range(len(edge_a)):
        a, b = edge_a[e], edge_b[e]
        rows[e] = borders[e]
        neighbours[a][b] = e
        neighbours[b][a] = e
        d = _distance(a, b, rows[e], nodes, splits, image_area, model)
        heap.append((d, a, b))
    used = len(edge_a)
    heapq.heapify(heap)
    next_id = n
    while len(heap):
        d, a, b = heapq.heappop(heap)
        if not (alive[a] and alive[b]):
            continue
        c = next_id
        next_id += 1
        alive[a] = alive[b] = False
        alive[c] = True
        parent[a] = parent[b] = c
        children[c, 0], children[c, 1] = a, b
        height[c] = max(d, height[a], height[b])
        shared = rows[neighbours[a][b], 0]
        area[c] = area[a] + area[b]
        perimeter[c] = perimeter[a] + perimeter[b] - 2.0 * shared
        lab[c] = lab[a] + lab[b]
        hist[c] = hist[a] + hist[b]
        merged = neighbours[c]
        for src in (a, b):
            for nb, row in neighbours[src].items():
                if nb == a or nb == b:
                    continue
                if nb in merged:
                    rows[used] = rows[merged[nb]] + rows[row]
                    merged[nb] = used
                    used += 1
                else:
                    merged[nb] = row
                neighbours[nb].pop(src)
            neighbours[src].clear()
        for nb, row in merged.items():
            neighbours[nb][c] = row
            d = _distance(c, nb, rows[row], nodes, splits, image_area, model)
            heapq.heappush(heap, (d, c, nb))
    return parent[:next_id], children[:next_id], height[:next_id], next_id
