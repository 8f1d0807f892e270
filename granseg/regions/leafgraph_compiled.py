"""Compiled searches over a region tree's leaf graph, and leaf selections painted as pixel masks (numba; imported
only where the compiled backend runs, see :func:`granseg.regions.maxflow.default_backend`)."""

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def pieces_with_seeds(start, neighbours, selected, seeds):
    """:func:`granseg.regions.chains.connected_to_many` by a depth-first search per row: the leaves of each row of
    ``(K, n)`` bool ``selected`` joined to a selected ``seeds`` leaf through selected leaves (``start`` /
    ``neighbours``: the leaf graph in CSR form, ``RegionTree.leaf_neighbours``); a row holding no seed is kept as
    it is. Returns ``(K, n)`` bool."""
    k, n = selected.shape
    out = selected.copy()
    seen = np.zeros(n, np.bool_)
    stack = np.empty(n, np.int64)
    for r in range(k):
        seen[:] = False
        top = 0
        for s in seeds:
            if selected[r, s] and not seen[s]:
                seen[s] = True
                stack[top] = s
                top += 1
        if top == 0:
            continue
        while top > 0:
            top -= 1
            i = stack[top]
            for idx in range(start[i], start[i + 1]):
                j = neighbours[idx]
                if selected[r, j] and not seen[j]:
                    seen[j] = True
                    stack[top] = j
                    top += 1
        out[r] = seen
    return out


@numba.njit(cache=True, nogil=True)
def paint(selections, leaf_map, rows, out):
    """In place: ``out[rows[k]] = selections[k][leaf_map]`` for the ``(D, n)`` bool leaf selections (``leaf_map``
    ``h x w`` leaf ranks, ``out`` ``(K, h, w)`` bool): about 1.5x faster than numpy's fancy indexing."""
    h, w = leaf_map.shape
    for k in range(len(rows)):
        row = out[rows[k]]
        selection = selections[k]
        for y in range(h):
            for x in range(w):
                row[y, x] = selection[leaf_map[y, x]]
