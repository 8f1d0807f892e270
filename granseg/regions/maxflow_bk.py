"""The compiled Boykov-Kolmogorov minimum cut of :mod:`granseg.regions.maxflow` (imported only when that backend
runs: importing numba takes about a second). Requires numba (``pip install granseg[fast]``).

Arc ``2e`` is ``a -> b`` and ``2e + 1`` is ``b -> a`` of undirected edge ``e``; ``arc ^ 1`` is its reverse.
Both search trees hang from their terminal: ``parent[i]`` is the arc from node ``i`` towards its parent (or
``TERMINAL`` for a root, ``ORPHAN``, ``FREE``); ``tr[i] > 0`` is the residual capacity source -> i, ``tr[i] < 0``
minus that of i -> sink. ``ts`` / ``dist`` are the timestamp and distance-to-terminal marks that keep the
adoption's origin checks short (Boykov & Kolmogorov, PAMI 2004, sec. 3.2).
"""

import numba
import numpy as np

TERMINAL, ORPHAN, FREE = -1, -2, -3
INFINITE = 1 << 40


@numba.njit(cache=True, nogil=True, inline="always")
def integer_capacity(weight, scale, hard):
    """:func:`granseg.regions.graphcut._integer` of one weight: ``min(round(weight x scale), hard)`` (round half
    to even, as numpy)."""
    return np.int64(min(np.rint(weight * scale), hard))


@numba.njit(cache=True, nogil=True, inline="always")
def integer_terminals(src, snk, scale, hard):
    """One node's integer ``(source, sink)`` capacities from float ones: only their difference matters, so the
    smaller is shifted to 0 first (as :func:`granseg.regions.graphcut.st_min_cut`)."""
    shift = min(src, snk)
    return integer_capacity(src - shift, scale, hard), integer_capacity(snk - shift, scale, hard)


@numba.njit(cache=True, nogil=True)
def arcs(n, edge_a, edge_b):
    """``head`` of the ``2E`` arcs and the arcs out of node i: ``out_arcs[start[i]:start[i + 1]]``."""
    m = len(edge_a)
    head = np.empty(2 * m, np.int64)
    degree = np.zeros(n + 1, np.int64)
    for e in range(m):
        head[2 * e], head[2 * e + 1] = edge_b[e], edge_a[e]
        degree[edge_a[e] + 1] += 1
        degree[edge_b[e] + 1] += 1
    start = np.cumsum(degree)
    fill = start[:-1].copy()
    out_arcs = np.empty(2 * m, np.int64)
    for e in range(m):
        out_arcs[fill[edge_a[e]]] = 2 * e
        fill[edge_a[e]] += 1
        out_arcs[fill[edge_b[e]]] = 2 * e + 1
        fill[edge_b[e]] += 1
    return head, start, out_arcs


@numba.njit(cache=True, nogil=True, inline="always")
def _push(queue, state, active, j):
    """Mark node ``j`` active (FIFO ``queue`` of ``n + 1`` slots; ``state[0:2]`` its head and tail)."""
    if not active[j]:
        active[j] = True
        queue[state[1]] = j
        state[1] = (state[1] + 1) % len(queue)


@numba.njit(cache=True, nogil=True, inline="always")
def _grow(i, head, rcap, start, out_arcs, parent, is_sink, ts, dist, active, queue, state):
    """Grow node ``i``'s tree over its residual arcs; the arc (source tree -> sink tree) that closes a path to the
    other tree, or -1."""
    for idx in range(start[i], start[i + 1]):
        a = out_arcs[idx]
        j = head[a]
        if rcap[a ^ 1 if is_sink[i] else a] == 0:  # no residual capacity in the tree's direction
            continue
        if parent[j] == FREE:
            is_sink[j] = is_sink[i]
            parent[j], ts[j], dist[j] = a ^ 1, ts[i], dist[i] + 1
            _push(queue, state, active, j)
        elif is_sink[j] != is_sink[i]:
            return a ^ 1 if is_sink[i] else a
        elif ts[j] <= ts[i] and dist[j] > dist[i]:  # a shorter way to the terminal
            parent[j], ts[j], dist[j] = a ^ 1, ts[i], dist[i] + 1
    return -1


@numba.njit(cache=True, nogil=True, inline="always")
def _augment(middle, head, rcap, tr, parent, orphans):
    """Push the bottleneck flow along the path through arc ``middle``; the nodes cut off from their parent (or
    terminal) become orphans (``orphans[:count]``, returned count)."""
    bottleneck = rcap[middle]
    k = head[middle ^ 1]
    while parent[k] != TERMINAL:
        bottleneck = min(bottleneck, rcap[parent[k] ^ 1])
        k = head[parent[k]]
    bottleneck = min(bottleneck, tr[k])
    k = head[middle]
    while parent[k] != TERMINAL:
        bottleneck = min(bottleneck, rcap[parent[k]])
        k = head[parent[k]]
    bottleneck = min(bottleneck, -tr[k])
    rcap[middle ^ 1] += bottleneck
    rcap[middle] -= bottleneck
    count = 0
    for side in range(2):  # 0: source tree (flow towards the child), 1: sink tree (towards the parent)
        k = head[middle ^ 1] if side == 0 else head[middle]
        while parent[k] != TERMINAL:
            a = parent[k]
            forward = a ^ 1 if side == 0 else a
            rcap[forward] -= bottleneck
            rcap[forward ^ 1] += bottleneck
            if rcap[forward] == 0:
                parent[k] = ORPHAN
                orphans[count] = k
                count += 1
            k = head[a]
        tr[k] += -bottleneck if side == 0 else bottleneck
        if tr[k] == 0:
            parent[k] = ORPHAN
            orphans[count] = k
            count += 1
    return count


@numba.njit(cache=True, nogil=True, inline="always")
def _origin_distance(j, time, head, parent, ts, dist):
    """Distance from tree node ``j`` to its terminal (INFINITE if it hangs from an orphan); marks the path."""
    d = 0
    k = j
    while True:
        if ts[k] == time:
            d += dist[k]
            break
        d += 1
        if parent[k] == TERMINAL:
            ts[k], dist[k] = time, 1
            break
        if parent[k] == ORPHAN:
            return INFINITE
        k = head[parent[k]]
    found = d
    k = j
    while ts[k] != time:
        ts[k], dist[k] = time, d
        d -= 1
        k = head[parent[k]]
    return found


@numba.njit(cache=True, nogil=True)
def _adopt(
    orphans, count, time, head, rcap, start, out_arcs, parent, is_sink, ts, dist, active, queue, state
):
    """Each orphan takes the neighbour of its tree nearest to the terminal as its parent, or becomes free (its
    tree neighbours become active, its children orphans)."""
    size = len(orphans)
    first = 0
    while first != count:
        i = orphans[first % size]
        first += 1
        best, best_dist = -1, INFINITE
        for idx in range(start[i], start[i + 1]):
            a = out_arcs[idx]
            j = head[a]
            if is_sink[j] != is_sink[i] or parent[j] == FREE or rcap[a if is_sink[i] else a ^ 1] == 0:
                continue
            d = _origin_distance(j, time, head, parent, ts, dist)
            if d < best_dist:
                best, best_dist = a, d
        if best >= 0:
            parent[i], ts[i], dist[i] = best, time, best_dist + 1
            continue
        parent[i] = FREE
        for idx in range(start[i], start[i + 1]):
            a = out_arcs[idx]
            j = head[a]
            if is_sink[j] != is_sink[i] or parent[j] == FREE:
                continue
            if rcap[a if is_sink[i] else a ^ 1] > 0:
                _push(queue, state, active, j)
            if parent[j] >= 0 and head[parent[j]] == i:
                parent[j] = ORPHAN
                orphans[count % size] = j
                count += 1


@numba.njit(cache=True, nogil=True)
def _reachable(tr, head, rcap, start, out_arcs):
    """``(n,)`` bool: the nodes reachable from the source in the residual graph (depth-first)."""
    n = len(tr)
    out = np.zeros(n, np.bool_)
    stack = np.empty(n, np.int64)
    top = 0
    for i in range(n):
        if tr[i] > 0:
            out[i] = True
            stack[top] = i
            top += 1
    while top > 0:
        top -= 1
        i = stack[top]
        for idx in range(start[i], start[i + 1]):
            a = out_arcs[idx]
            if rcap[a] > 0 and not out[head[a]]:
                out[head[a]] = True
                stack[top] = head[a]
                top += 1
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _send(f, a, rcap):
    """``f`` units of flow along arc ``a``."""
    rcap[a] -= f
    rcap[a ^ 1] += f


@numba.njit(cache=True, nogil=True)
def _prepush(head, start, out_arcs, rcap, tr):
    """A feasible flow to start from, in place: each node with source excess (``tr > 0``) sends it greedily, arc
    by arc, to a neighbour that drains to the sink, else through that neighbour to one of its neighbours that
    does (paths of one or two arcs, no search). On the pixel band's graphs (every pixel tied to a terminal, strong
    edges) this leaves the tree search about 30 % fewer paths to augment, at a fraction of their cost (the band's
    cuts ~15 % faster, the leaf graph's warm-started ones ~10 %); the search then finishes the maximum flow, so
    the minimal minimum cut is the same."""
    for i in range(len(tr)):
        for idx in range(start[i], start[i + 1]):
            if tr[i] <= 0:
                break
            a = out_arcs[idx]
            j = head[a]
            if rcap[a] == 0:
                continue
            if tr[j] < 0:
                f = min(tr[i], -tr[j], rcap[a])
                _send(f, a, rcap)
                tr[i] -= f
                tr[j] += f
                continue
            for idx2 in range(start[j], start[j + 1]):
                b = out_arcs[idx2]
                k = head[b]
                if tr[k] < 0 and rcap[b] > 0:
                    f = min(tr[i], -tr[k], rcap[a], rcap[b])
                    _send(f, a, rcap)
                    _send(f, b, rcap)
                    tr[i] -= f
                    tr[k] += f
                    if tr[i] == 0 or rcap[a] == 0:
                        break


@numba.njit(cache=True, nogil=True)
def bk_min_cut(n, edge_a, edge_b, caps, src, snk):
    """``(n,)`` bool source side of the minimal minimum cut (arguments: ``int64`` arrays, see
    :func:`granseg.regions.maxflow.min_cut_side`): Boykov-Kolmogorov maximum flow, then the residual graph's
    nodes reachable from the source."""
    rcap = np.empty(2 * len(caps), np.int64)
    rcap[0::2] = caps
    rcap[1::2] = caps
    return bk_flow(n, edge_a, edge_b, rcap, src - snk)


@numba.njit(cache=True, nogil=True)
def bk_flow(n, edge_a, edge_b, rcap, tr):
    """:func:`bk_min_cut` from a flow already in the graph (a warm start; Kohli & Torr, ICCV 2005): ``rcap``
    ``(2E,)`` residual capacities of the arcs (``2e``: a -> b, ``2e + 1``: b -> a), ``tr`` ``(n,)`` residual
    terminal capacities (source -> i where > 0, i -> sink where < 0). Both are updated in place to the maximum
    flow's residuals; returns the ``(n,)`` bool source side of the minimal minimum cut. A graph whose terminal
    capacities changed by ``(d_src, d_snk)`` since its last flow restarts from ``tr + d_src - d_snk`` (adding the
    same amount to both terminal capacities of a node shifts every cut by it), so the same cut comes out as from
    scratch, after fewer augmentations."""
    head, start, out_arcs = arcs(n, edge_a, edge_b)
    return bk_solve(head, start, out_arcs, rcap, tr)


@numba.njit(cache=True, nogil=True)
def bk_solve(head, start, out_arcs, rcap, tr):
    """:func:`bk_flow` on a graph already in arc form (:func:`arcs`: ``head``, ``start``, ``out_arcs``), so a graph
    cut again and again (GrabCut's rounds) builds it once."""
    n = len(tr)
    _prepush(head, start, out_arcs, rcap, tr)
    parent = np.full(n, FREE, np.int64)
    is_sink = tr < 0
    ts = np.zeros(n, np.int64)
    dist = np.ones(n, np.int64)
    active = np.zeros(n, np.bool_)
    queue = np.empty(n + 1, np.int64)
    state = np.zeros(2, np.int64)  # queue head, tail
    orphans = np.empty(n + 1, np.int64)
    for i in range(n):
        if tr[i] != 0:
            parent[i] = TERMINAL
            _push(queue, state, active, i)
    time = 0
    current = -1
    while True:
        i = -1
        if current >= 0:  # the node of the last augmentation keeps growing while it is in a tree
            active[current] = False
            if parent[current] != FREE:
                i = current
        while i < 0 and state[0] != state[1]:
            k = queue[state[0]]
            state[0] = (state[0] + 1) % (n + 1)
            active[k] = False
            if parent[k] != FREE:
                i = k
        if i < 0:
            break
        middle = _grow(i, head, rcap, start, out_arcs, parent, is_sink, ts, dist, active, queue, state)
        time += 1
        current = -1
        if middle >= 0:
            current = i
            active[i] = True  # not queued again meanwhile
            count = _augment(middle, head, rcap, tr, parent, orphans)
            for q in range(count // 2):  # the ones nearest their terminal first (reversed in place)
                orphans[q], orphans[count - 1 - q] = orphans[count - 1 - q], orphans[q]
            _adopt(
                orphans,
                count,
                time,
                head,
                rcap,
                start,
                out_arcs,
                parent,
                is_sink,
                ts,
                dist,
                active,
                queue,
                state,
            )
    return _reachable(tr, head, rcap, start, out_arcs)
