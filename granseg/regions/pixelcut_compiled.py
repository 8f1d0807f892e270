"""The band graph of :func:`granseg.regions.pixelcut._band_cut` built by a compiled loop over the window's pixels
(numba; imported only when the compiled backend runs, see :func:`granseg.regions.maxflow.default_backend`). Same
graph and the same float sums, term by term, as the numpy construction (tested against it)."""

import numba
import numpy as np
from numba import boolean as b1
from numba import float64 as f8
from numba import int8 as i1
from numba import int64 as i8
from numba.types import UniTuple

from granseg.regions.maxflow_bk import bk_min_cut, integer_capacity, integer_terminals


@numba.njit(cache=True, nogil=True, inline="always")
def _pull(weight, fixed_inside, s, t):
    """A fixed neighbour's pull on a band pixel: ``weight`` added to the cost of the other label."""
    if fixed_inside:
        return s + weight, t
    return s, t + weight


def _signatures(arguments) -> list[tuple]:
    """Explicit numba signatures of a compiled function, one per dtype of its ``right`` / ``down`` contrast
    weights (float32 from the predictor's Lab image, float64 elsewhere): ``arguments(contrast)`` gives the
    argument types. Arrays are typed ``dtype[:, :]`` (any memory layout, ``"A"``): without explicit signatures
    each new combination of contiguous and non-contiguous crops compiled anew (about a second, once per machine
    and combination)."""
    return [arguments(numba.float32), arguments(numba.float64)]


@numba.njit(
    _signatures(lambda c: (b1[:, :], b1[:, :], i8[:, :], c[:, :], c[:, :], f8[:], f8, i8)),
    cache=True,
    nogil=True,
)
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


@numba.njit(cache=True, nogil=True, inline="always")
def _mark(marks, y0, y1, x0, x1):
    """Add one to the ``[y0, y1] x [x0, x1]`` rectangle (inclusive) of the difference table ``marks``."""
    marks[y0, x0] += 1
    marks[y0, x1 + 1] -= 1
    marks[y1 + 1, x0] -= 1
    marks[y1 + 1, x1 + 1] += 1


@numba.njit(cache=True, nogil=True)
def _outline_band(mask, band):
    """``h x w`` bool: cv2.dilate(mask) & ~cv2.erode(mask) by a ``2 band + 1`` square with OpenCV's default
    border (pixels beyond the window: absent for the dilation, object for the erosion), i.e. the pixels whose
    square, clipped to the window, holds mask and non-mask pixels; that is, a 4-adjacent pair of them that
    differ. Each differing pair marks the pixels whose square holds both of its pixels (a difference table
    summed once), in time linear in the window."""
    h, w = mask.shape
    marks = np.zeros((h + 1, w + 1), np.int32)
    for y in range(h):
        for x in range(w):
            if x + 1 < w and mask[y, x] != mask[y, x + 1]:
                _mark(
                    marks, max(y - band, 0), min(y + band, h - 1), max(x + 1 - band, 0), min(x + band, w - 1)
                )
            if y + 1 < h and mask[y, x] != mask[y + 1, x]:
                _mark(
                    marks, max(y + 1 - band, 0), min(y + band, h - 1), max(x - band, 0), min(x + band, w - 1)
                )
    out = np.empty((h, w), np.bool_)
    above = np.zeros(w + 1, np.int32)  # column sums of the rows above, then of this one
    for y in range(h):
        run = 0
        for x in range(w):
            above[x] += marks[y, x]
            run += above[x]
            out[y, x] = run > 0
    return out


@numba.njit(
    _signatures(
        lambda c: (b1[:, :], i1[:, :], i8[:, :], c[:, :], c[:, :], UniTuple(i8, 2), f8[:], i8, f8, i8, f8)
    ),
    cache=True,
    nogil=True,
)
def refine_window(mask, fixed, bins, right, down, corner, bin_ratio, band, smoothness, hard, scale):
    """:func:`granseg.regions.pixelcut._refine_window` and its band cut in one compiled call (the same band,
    graph, integer capacities and minimal minimum cut; tested against it): ``mask`` / ``fixed`` the window's
    crops, ``corner`` its top-left (row, column) in the :class:`~granseg.regions.pixelcut.PixelImage` arrays
    ``bins`` / ``right`` / ``down``; ``hard`` / ``scale`` the leaf graph cut's ``HARD`` and ``CAPACITY_SCALE``.
    Returns the window's refined mask and whether any pixel was in the band (if not, the mask stays)."""
    in_band = _outline_band(mask, band) & (fixed == 0)
    inside = (mask | (fixed > 0)) & (fixed >= 0)
    h, w = mask.shape
    r0, r1, c0, c1 = h, -1, w, -1
    for y in range(h):
        for x in range(w):
            if in_band[y, x]:
                r0, r1 = min(r0, y), max(r1, y)
                c0, c1 = min(c0, x), max(c1, x)
    if r1 < 0:
        return inside, False
    r0, r1, c0, c1 = max(r0 - 1, 0), min(r1 + 2, h), max(c0 - 1, 0), min(c1 + 2, w)  # the band's box + 1 px
    ay, ax = corner[0] + r0, corner[1] + c0  # its top-left pixel in the image
    by, bx = corner[0] + r1, corner[1] + c1
    crop_band, crop_inside = in_band[r0:r1, c0:c1], inside[r0:r1, c0:c1]
    edge_a, edge_b, weights, src, snk = band_graph(
        crop_band,
        crop_inside,
        bins[ay:by, ax:bx],
        right[ay:by, ax : bx - 1],
        down[ay : by - 1, ax:bx],
        bin_ratio,
        smoothness,
        hard,
    )
    caps = np.empty(len(weights), np.int64)
    for e in range(len(weights)):
        caps[e] = integer_capacity(weights[e], scale, hard)
    src_caps, snk_caps = np.empty(len(src), np.int64), np.empty(len(src), np.int64)
    for p in range(len(src)):
        src_caps[p], snk_caps[p] = integer_terminals(src[p], snk[p], scale, hard)
    labels = bk_min_cut(len(src), edge_a, edge_b, caps, src_caps, snk_caps)
    count = 0
    for y in range(r1 - r0):
        for x in range(c1 - c0):
            if crop_band[y, x]:
                crop_inside[y, x] = labels[count]
                count += 1
    return inside, True
