"""The band graph of :func:`granseg.regions.pixelcut._band_cut` built by a compiled loop over the window's pixels
(numba; imported only when the compiled backend runs, see :func:`granseg.regions.maxflow.default_backend`). Same
graph and the same float sums, term by term, as the numpy construction (tested against it)."""

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, inline="always")
def _pull(weight, fixed_inside, s, t):
    """A fixed neighbour's pull on a band pixel: ``weight`` added to the cost of the other label."""
    if fixed_inside:
        return s + weight, t
    return s, t + weight


def _signature(contrast):
    """``band_graph``'s argument types, every 2-D crop in any memory layout (``"A"``), with ``contrast`` the
    dtype of ``right`` / ``down`` (float32 from the predictor's Lab image, float64 elsewhere)."""
    crop = numba.types.Array
    return (
        crop(numba.boolean, 2, "A"),
        crop(numba.boolean, 2, "A"),
        crop(numba.int64, 2, "A"),
        crop(contrast, 2, "A"),
        crop(contrast, 2, "A"),
        crop(numba.float64, 1, "A"),
        numba.float64,
        numba.int64,
    )


# explicit signatures: one compiled version for every memory layout of the window's crops (contiguous or not);
# without them each new combination of layouts compiled anew (about a second, once per machine and combination)
@numba.njit([_signature(numba.float32), _signature(numba.float64)], cache=True, nogil=True)
def band_graph(in_band, inside, bins, right, down, bin_ratio, smoothness, hard):
    """Edges ``(a, b, weight)`` between 4-adjacent band pixels and terminal weights ``src`` / ``snk`` of the
    ``in_band`` pixels (row-major numbering) of an ``h x w`` window: ``inside`` its fixed labels, ``bins`` its
    colour bins, ``right`` ``h x w-1`` / ``down`` ``h-1 x w`` contrast weights. A pixel's terminal weight is its
    clipped colour ratio, then its right, left, lower and upper fixed neighbours' pulls, in that order."""
    h, w = in_band.shape
    index = np.full((h, w), -1, np.int64)
    count = 0
    for y in range(h):
        for x in range(w):
            if in_band[y, x]:
                index[y, x] = count
                count += 1
    src, snk = np.empty(count), np.empty(count)
    edge_a, edge_b = np.empty(2 * count, np.int64), np.empty(2 * count, np.int64)
    weights = np.empty(2 * count)
    e = 0
    for y in range(h):
        for x in range(w):
            p = index[y, x]
            if p < 0:
                continue
            r = min(max(bin_ratio[bins[y, x]], -10.0), 10.0)
            s, t = max(r, 0.0), max(-r, 0.0)
            for dy, dx in ((0, 1), (1, 0)):
                if y + dy < h and x + dx < w:  # after: an edge, or a fixed pixel's pull
                    weight = smoothness * (right[y, x] if dx else down[y, x])
                    q = index[y + dy, x + dx]
                    if q >= 0:
                        edge_a[e], edge_b[e], weights[e] = p, q, weight
                        e += 1
                    else:
                        s, t = _pull(weight, inside[y + dy, x + dx], s, t)
                if y - dy >= 0 and x - dx >= 0 and index[y - dy, x - dx] < 0:  # before: fixed only
                    weight = smoothness * (right[y, x - 1] if dx else down[y - 1, x])
                    s, t = _pull(weight, inside[y - dy, x - dx], s, t)
            src[p], snk[p] = min(s, hard), t
    return edge_a[:e], edge_b[:e], weights[:e], src, snk
