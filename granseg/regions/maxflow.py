"""Exact minimum s-t cut with integer capacities: the source side of the *minimal* minimum cut.

Graph: ``n`` nodes, undirected edges ``(edge_a[e], edge_b[e])`` of integer capacity ``caps[e]`` (both directions),
and terminal capacities ``src[i]`` (source -> i) and ``snk[i]`` (i -> sink). The answer is the set of nodes reachable
from the source in the residual graph of a maximum flow. That set is the same for *every* maximum flow (it is the
smallest source side among all minimum cuts), so the solvers below give bit-identical answers:

* ``"numba"`` (optional dependency, ``pip install granseg[fast]``; the pixel band's graph is then built by a
  compiled loop too, :mod:`granseg.regions.pixelcut_compiled`): the Boykov-Kolmogorov augmenting-path algorithm
  (search trees grown from both terminals and reused between augmentations, Boykov & Kolmogorov, PAMI 2004),
  written here and compiled by numba, then a breadth-first search of the residual graph. Several times faster
  than scipy's Dinic on the graphs of a click (a few thousand leaf or pixel nodes, a few boundary edges each).
  The first call of a process compiles it (cached on disk by numba afterwards).
* ``"scipy"``: ``scipy.sparse.csgraph.maximum_flow`` (Dinic) and ``breadth_first_order`` on its residual graph.

:func:`min_cut_side` picks ``"numba"`` when it imports and ``"scipy"`` otherwise (``GRANSEG_MAXFLOW=scipy`` forces
the fallback).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from importlib.util import find_spec

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, maximum_flow

BACKENDS = ("numba", "scipy")


def default_backend() -> str:
    """``"numba"`` when numba is installed (and ``GRANSEG_MAXFLOW`` is not ``"scipy"``), else ``"scipy"``."""
    if os.environ.get("GRANSEG_MAXFLOW", "").lower() == "scipy" or not _numba_installed():
        return "scipy"
    return "numba"


CUT_THREADS_ENV = "GRANSEG_CUT_THREADS"


def auto_cut_threads() -> int:
    """Threads for the independent cuts of one call when a config asks for ``0`` (auto): ``GRANSEG_CUT_THREADS``
    where set (the evaluation's worker processes set 1: they already fill the cores), else 2 where this process
    may run on at least 2 cores, else 1. More than 2 rarely helps: a call has ~2-3 cuts."""
    value = os.environ.get(CUT_THREADS_ENV, "").strip()
    if value:
        if not value.isdigit():
            from granseg.errors import InputError

            raise InputError(f"{CUT_THREADS_ENV} must be a whole number of threads, got {value!r}")
        return max(1, int(value))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 2 if cores >= 2 else 1


@lru_cache(maxsize=4)
def thread_pool(threads: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``threads`` worker threads for independent cuts (the compiled solver releases the
    GIL, so they run side by side on several cores)."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="granseg-cut")


@lru_cache(maxsize=1)
def _numba_installed() -> bool:
    return find_spec("numba") is not None


def min_cut_side(edge_a, edge_b, caps, src, snk, backend: str | None = None) -> np.ndarray:
    """``(n,)`` bool source side of the minimal minimum cut, ``n = len(src)``.

    Args:
        edge_a, edge_b: ``(E,)`` int node indices of undirected edges (parallel edges add up).
        caps: ``(E,)`` non-negative int capacities of those edges, the same in both directions.
        src, snk: ``(n,)`` non-negative int terminal capacities (source -> node, node -> sink).
        backend: ``"numba"``, ``"scipy"`` or None (:func:`default_backend`).
    """
    backend = backend or default_backend()
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    edge_a = np.asarray(edge_a, np.int64)
    edge_b = np.asarray(edge_b, np.int64)
    caps = np.asarray(caps, np.int64)
    src = np.asarray(src, np.int64)
    snk = np.asarray(snk, np.int64)
    if backend == "numba":
        try:
            from granseg.regions.maxflow_bk import bk_min_cut
        except ImportError as error:
            raise ImportError("the numba max-flow backend needs numba (pip install granseg[fast])") from error
        return bk_min_cut(len(src), edge_a, edge_b, caps, src, snk)
    return _scipy_min_cut(edge_a, edge_b, caps, src, snk)


def _scipy_min_cut(edge_a, edge_b, caps, src, snk) -> np.ndarray:
    """:func:`min_cut_side` with ``scipy.sparse.csgraph.maximum_flow`` (int32 capacities)."""
    n = len(src)
    source, sink = n, n + 1
    nodes = np.arange(n)
    rows = np.concatenate([edge_a, edge_b, np.full(n, source), nodes])
    cols = np.concatenate([edge_b, edge_a, nodes, np.full(n, sink)])
    data = np.concatenate([caps, caps, src, snk]).astype(np.int32)
    graph = coo_matrix((data, (rows, cols)), shape=(n + 2, n + 2)).tocsr()
    graph.sum_duplicates()
    flow = maximum_flow(graph, source, sink).flow
    residual = (graph - flow).tocsr()
    residual.data = (residual.data > 0).astype(np.int32)
    residual.eliminate_zeros()
    reachable = breadth_first_order(residual, source, directed=True, return_predecessors=False)
    out = np.zeros(n, bool)
    out[reachable[reachable < n]] = True
    return out
