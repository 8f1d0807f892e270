"""One round of :func:`granseg.regions.graphcut.grabcut_many` (the leaf-graph cuts of the running GrabCuts) as one
compiled call (numba; imported only where the compiled backend runs, see
:func:`granseg.regions.maxflow.default_backend`): the unaries of every running cut from its leaves' colour ratios
(the same float operations, element by element, as the numpy round), their integer capacities, and each cut's
max flow restarted from its previous round's residuals on the leaf graph built once (:func:`arcs`), one graph
per cut instead of their disjoint union (the union's minimal minimum cut is the union of theirs)."""

import numba
import numpy as np

from granseg.regions.maxflow_bk import bk_solve, integer_terminals


@numba.njit(cache=True, nogil=True)
def _net_terminals(ratio, reference, prior, weight, hard_label, colour_weight, hard, scale, out):
    """``out`` ``(n,)``: one cut's integer ``src - snk`` per leaf (graphcut.grabcut_many's unaries, hard labels
    and graphcut.st_min_cut's shift and scaling): ``ratio`` its leaves' colour log-likelihood ratios,
    ``reference`` its reference selection, ``hard_label`` 1 / -1 at positive / negative click leaves."""
    for i in range(len(ratio)):
        r = min(max(ratio[i], -10.0), 10.0) * colour_weight
        inside = 1.0 if reference[i] else 0.0
        snk = (max(-r, 0.0) + prior * (1.0 - inside)) * weight[i]  # cost of the object label
        src = (max(r, 0.0) + prior * inside) * weight[i]  # cost of the background label
        if hard_label[i] > 0:
            src, snk = hard, 0.0
        elif hard_label[i] < 0:
            src, snk = 0.0, hard
        src_cap, snk_cap = integer_terminals(src, snk, scale, hard)
        out[i] = src_cap - snk_cap


@numba.njit(cache=True, nogil=True)
def grabcut_round(
    graph, arc_caps, jobs, ratios, current, references, priors, weight, hard_labels, settings, state
):
    """Cuts ``(R, n)`` bool and ``(R,)`` bool "finished" (empty, full or unchanged from ``current``, the
    selection its colour models were fitted to) of the R running ``jobs`` (indices into the per-job arrays).

    ``graph``: ``(head, start, out_arcs)`` of the leaf graph; ``arc_caps`` ``(2E,)`` its integer arc capacities;
    ``ratios`` / ``current`` ``(R, n)``; ``references`` ``(J, n)`` bool, ``priors`` ``(J,)``, ``hard_labels``
    ``(J, n)`` int8 per job; ``weight`` ``(n,)`` the unaries' area weights; ``settings``: ``(colour_weight,
    hard, scale)``; ``state``: ``(rcap (J, 2E), tr (J, n), net (J, n), started (J,))`` each job's residual flow
    and integer terminals of its last cut, updated in place (a job's next round restarts from them)."""
    head, start, out_arcs = graph
    colour_weight, hard, scale = settings
    rcap, tr, net, started = state
    rows, n = ratios.shape
    cuts = np.empty((rows, n), np.bool_)
    finished = np.empty(rows, np.bool_)
    terminals = np.empty(n, np.int64)
    for row in range(rows):
        j = jobs[row]
        _net_terminals(
            ratios[row],
            references[j],
            priors[j],
            weight,
            hard_labels[j],
            colour_weight,
            hard,
            scale,
            terminals,
        )
        if started[j]:  # the terminals' change since the last flow (maxflow_bk.bk_flow's warm start)
            tr[j] += terminals - net[j]
        else:
            rcap[j] = arc_caps
            tr[j] = terminals
            started[j] = True
        net[j] = terminals
        cuts[row] = bk_solve(head, start, out_arcs, rcap[j], tr[j])
        count = 0
        same = True
        for i in range(n):
            count += cuts[row, i]
            same = same and cuts[row, i] == current[row, i]
        finished[row] = count == 0 or count == n or same
    return cuts, finished
