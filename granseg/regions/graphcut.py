"""Binary graph cut over a region tree's leaves (GrabCut over superpixels), for click corrections.

Energy over leaves l with label x_l in {object, background}:

* hard constraints: leaves under positive clicks are object, under negative clicks background;
* unary: ``-(log p_fg - log p_bg)`` of the leaf's colour under two GMMs (:mod:`granseg.regions.colour`), fitted to
  the current reference selection and to the rest, plus ``prior_weight`` for disagreeing with the reference; both
  scaled by ``sqrt(area / mean leaf area)``;
* pairwise: ``smoothness * sqrt(border_length) * exp(-mean_boundary_strength / beta)`` between adjacent leaves
  (``beta`` = mean over borders), so cuts follow strong boundaries.

``iterations`` > 1 re-fits the colour models to the cut and cuts again (GrabCut's loop). Solved exactly (integer
capacities) on at most a few thousand nodes by :func:`granseg.regions.maxflow.min_cut_side` (a compiled
Boykov-Kolmogorov solver with numba, else scipy's Dinic; the same answers).

:func:`grabcut_many` runs several such cuts side by side (a ``predict`` call's levels): one batched colour-model
fit per round, the same answers as one :func:`grabcut_leaves` per cut. Without numba a round's cuts are one max
flow over the disjoint union of their graphs; with the compiled solver a round is one compiled call
(:mod:`granseg.regions.graphcut_compiled`: unaries, integer capacities and each cut's max flow, which restarts
from its previous round's residual flow: only the terminal capacities change between rounds;
:class:`_CompiledRounds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from granseg.regions.colour import LeafColours
from granseg.regions.maxflow import default_backend, min_cut_side, thread_pool
from granseg.regions.tree import RegionTree

CAPACITY_SCALE = 1000.0
HARD = 10**8


def min_cut(tree: RegionTree, cost_object, cost_background, pair, positives, negatives) -> np.ndarray:
    """``(n_leaves,)`` bool object side of the minimum cut; ``cost_*`` ``(n_leaves,)`` unaries, ``pair`` ``(E,)``
    pairwise weights of ``tree``'s leaf edges, ``positives`` / ``negatives`` leaf ranks with hard labels."""
    src_cap, snk_cap = _terminal_caps(cost_object, cost_background, positives, negatives)
    return st_min_cut(tree.edge_a, tree.edge_b, pair, src_cap, snk_cap)


def st_min_cut(edge_a, edge_b, pair, src_cap, snk_cap, backend: str | None = None) -> np.ndarray:
    """Source side ``(n,)`` bool of the minimum s-t cut of a graph over ``n = len(src_cap)`` nodes: undirected
    edges ``(edge_a[e], edge_b[e])`` of weight ``pair[e]``, ``src_cap`` / ``snk_cap`` ``(n,)`` terminal weights
    (the cost of putting a node on the sink / source side). Float weights are scaled to integers
    (``CAPACITY_SCALE``, at most ``HARD``). Of several minimum cuts, the one with the smallest source side (the
    nodes reachable from the source in the residual graph of any maximum flow;
    :func:`granseg.regions.maxflow.min_cut_side`, whose ``backend`` this passes on)."""
    src_cap = np.asarray(src_cap, dtype=np.float64)
    snk_cap = np.asarray(snk_cap, dtype=np.float64)
    shift = np.minimum(src_cap, snk_cap)  # only the difference matters
    return min_cut_side(
        edge_a, edge_b, _integer(pair), _integer(src_cap - shift), _integer(snk_cap - shift), backend
    )


def _integer(weights) -> np.ndarray:
    """Float weights as the solver's integer capacities: ``min(round(w x CAPACITY_SCALE), HARD)``."""
    return np.minimum(np.round(np.asarray(weights, np.float64) * CAPACITY_SCALE), HARD).astype(np.int32)


def _area_weights(tree: RegionTree) -> np.ndarray:
    """``(n_leaves,)`` weights of the unaries: sqrt of each leaf's area over the mean leaf area."""
    return np.sqrt(tree.leaf_area / tree.leaf_area.mean())


def pairwise_weights(tree: RegionTree, smoothness: float) -> np.ndarray:
    """``(E,)`` pairwise weights of the leaf edges (see the module docstring)."""
    mean_strength = tree.edge_strength / tree.edge_len
    beta = max(float(np.mean(mean_strength)), 1e-6)
    return smoothness * np.sqrt(tree.edge_len) * np.exp(-mean_strength / beta)


def grabcut_leaves(
    tree: RegionTree,
    reference: np.ndarray,
    positives: np.ndarray,
    negatives: np.ndarray,
    smoothness: float = 2.0,
    prior_weight: float = 0.1,
    iterations: int = 1,
    colour_weight: float = 1.0,
    components: int = 5,
    colours: LeafColours | None = None,
) -> np.ndarray:
    """Graph-cut selection ``(n_leaves,)`` bool near the ``reference`` selection given click leaves."""
    job = CutJob(reference, positives, negatives, prior_weight, iterations)
    return grabcut_many(tree, [job], smoothness, colour_weight, colours or LeafColours(tree, components))[0]


@dataclass
class CutJob:
    """One GrabCut over the leaves: ``reference`` ``(n_leaves,)`` bool, click leaf ranks, prior weight towards
    the reference and the number of GrabCut rounds (see :func:`grabcut_leaves`)."""

    reference: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    prior_weight: float
    iterations: int


def grabcut_many(
    tree: RegionTree,
    jobs: list[CutJob],
    smoothness: float,
    colour_weight: float,
    colours: LeafColours,
    threads: int = 1,
) -> list[np.ndarray]:
    """:func:`grabcut_leaves` of every job, run side by side: each round fits the colour models of all running
    jobs in one batch (``colours`` caches them per selection) and solves their cuts (:class:`_NumpyRounds`: as
    one graph, the disjoint union of the jobs' leaf graphs, whose minimal minimum cut is the union of theirs;
    :class:`_CompiledRounds` with the compiled solver: one compiled call per round), split over up to
    ``threads`` threads. Same answers as one :func:`grabcut_leaves` per job."""
    out: list[np.ndarray | None] = [None] * len(jobs)
    model_of: dict[int, np.ndarray] = {}
    for j, job in enumerate(jobs):
        selected = job.reference.copy()
        selected[job.positives] = True
        selected[job.negatives] = False
        if selected.all() or not selected.any():
            out[j] = selected
        else:
            model_of[j] = selected
    if not model_of:
        return out
    rounds_type = _CompiledRounds if default_backend() == "numba" else _NumpyRounds
    rounds = rounds_type(tree, jobs, smoothness, colour_weight)
    for round_ in range(max(max(1, job.iterations) for job in jobs)):
        running = [j for j in model_of if round_ < max(1, jobs[j].iterations)]
        if not running:
            break
        current = np.stack([model_of[j] for j in running])
        _, leaf_ratio = colours.ratios(current)
        bounds = np.linspace(0, len(running), min(max(threads, 1), len(running)) + 1).astype(int)
        groups = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        solve = partial(rounds.cut, running, leaf_ratio, current)
        parts = list(thread_pool(len(groups)).map(solve, groups) if len(groups) > 1 else [solve(groups[0])])
        cuts = [cut for part in parts for cut in part[0]]
        finished = [done for part in parts for done in part[1]]
        for j, cut, done in zip(running, cuts, finished):
            out[j] = cut
            if done:
                del model_of[j]
            else:
                model_of[j] = cut
    return out


class _NumpyRounds:
    """A round's cuts of :func:`grabcut_many` with numpy unaries and one union graph per group of jobs (any
    solver of :func:`st_min_cut`)."""

    def __init__(self, tree: RegionTree, jobs: list[CutJob], smoothness: float, colour_weight: float) -> None:
        self.tree, self.jobs, self.colour_weight = tree, jobs, colour_weight
        self.weight = _area_weights(tree)
        self.pair = pairwise_weights(tree, smoothness)

    def cut(self, running: list[int], leaf_ratio, current, group: slice) -> tuple[list, list]:
        """Cuts and "finished" flags (empty, full or unchanged from ``current``) of the jobs ``running[group]``
        with ``(R, n_leaves)`` colour ratios ``leaf_ratio`` and current selections ``current`` of all R."""
        jobs = [self.jobs[j] for j in running[group]]
        # the unaries of all these jobs at once, (R, n_leaves): the same arithmetic per element as one job's
        ratio = np.clip(leaf_ratio[group], -10, 10) * self.colour_weight
        reference = np.stack([job.reference for job in jobs])
        prior = np.array([job.prior_weight for job in jobs], np.float64)[:, None]
        snk = (np.maximum(-ratio, 0) + prior * ~reference) * self.weight  # cost of the object label
        src = (np.maximum(ratio, 0) + prior * reference) * self.weight  # cost of the background label
        for row, job in enumerate(jobs):
            _hard_labels(src[row], snk[row], job.positives, job.negatives)
        cuts = _union_min_cut(self.tree, self.pair, src, snk)
        finished = [
            not cut.any() or cut.all() or np.array_equal(cut, model)
            for cut, model in zip(cuts, current[group])
        ]
        return cuts, finished


class _CompiledRounds:
    """A round's cuts of :func:`grabcut_many` by :func:`granseg.regions.graphcut_compiled.grabcut_round` (numba
    only): the leaf graph in arc form (built once per tree, :func:`_leaf_graph`), and each job's residual flow
    of its last cut, from which its next round restarts (only the terminal capacities change between rounds;
    GrabCut's later rounds, whose colour models change little, need few augmentations). The same integer
    capacities and the same cuts as :func:`st_min_cut` from scratch."""

    def __init__(self, tree: RegionTree, jobs: list[CutJob], smoothness: float, colour_weight: float) -> None:
        n, count = tree.n_leaves, len(jobs)
        self.graph, self.arc_caps, self.weight = _leaf_graph(tree, smoothness)
        self.references = np.stack([job.reference for job in jobs])
        self.priors = np.array([job.prior_weight for job in jobs], np.float64)
        self.hard_labels = np.zeros((count, n), np.int8)
        for j, job in enumerate(jobs):  # positives, then negatives (as _hard_labels)
            self.hard_labels[j, job.positives] = 1
            self.hard_labels[j, job.negatives] = -1
        self.settings = (float(colour_weight), float(HARD), float(CAPACITY_SCALE))
        arcs_count = len(self.arc_caps)
        self.state = (
            np.zeros((count, arcs_count), np.int64),  # each job's residual arc capacities
            np.zeros((count, n), np.int64),  # ... residual terminal capacities
            np.zeros((count, n), np.int64),  # ... integer src - snk of its last cut
            np.zeros(count, np.bool_),  # ... whether it has been cut yet
        )

    def cut(self, running: list[int], leaf_ratio, current, group: slice) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_NumpyRounds.cut` (arrays instead of lists)."""
        from granseg.regions.graphcut_compiled import grabcut_round

        return grabcut_round(
            self.graph,
            self.arc_caps,
            np.asarray(running[group], np.int64),
            np.ascontiguousarray(leaf_ratio[group]),
            np.ascontiguousarray(current[group]),
            self.references,
            self.priors,
            self.weight,
            self.hard_labels,
            self.settings,
            self.state,
        )


# the last few (tree, smoothness, graph): one image's calls share its leaf graph
_LEAF_GRAPHS: list[tuple] = []


def _leaf_graph(tree: RegionTree, smoothness: float) -> tuple[tuple, np.ndarray, np.ndarray]:
    """The leaf graph in arc form (:func:`granseg.regions.maxflow_bk.arcs`), its ``(2E,)`` integer arc capacities
    and the ``(n_leaves,)`` area weights of the unaries, built once per tree and smoothness (kept for the last
    two; the entry holds the tree itself, so a new tree never takes an old one's graph)."""
    for entry in _LEAF_GRAPHS:
        if entry[0] is tree and entry[1] == smoothness:
            return entry[2]
    from granseg.regions.maxflow_bk import arcs

    graph = arcs(tree.n_leaves, tree.edge_a.astype(np.int64), tree.edge_b.astype(np.int64))
    arc_caps = np.repeat(_integer(pairwise_weights(tree, smoothness)).astype(np.int64), 2)
    weight = _area_weights(tree)
    _LEAF_GRAPHS.insert(0, (tree, smoothness, (graph, arc_caps, weight)))
    del _LEAF_GRAPHS[2:]
    return graph, arc_caps, weight


def _terminal_caps(cost_object, cost_background, positives, negatives) -> tuple[np.ndarray, np.ndarray]:
    """Source / sink capacities of :func:`min_cut`."""
    src_cap = np.asarray(cost_background, dtype=np.float64).copy()  # paid when the leaf is background
    snk_cap = np.asarray(cost_object, dtype=np.float64).copy()
    _hard_labels(src_cap, snk_cap, positives, negatives)
    return src_cap, snk_cap


def _hard_labels(src_cap: np.ndarray, snk_cap: np.ndarray, positives, negatives) -> None:
    """In place: the click leaves' terminal capacities (positives object, then negatives background)."""
    src_cap[positives], snk_cap[positives] = HARD, 0
    snk_cap[negatives], src_cap[negatives] = HARD, 0


def _union_min_cut(tree: RegionTree, pair: np.ndarray, src: np.ndarray, snk: np.ndarray) -> list:
    """Object sides of the minimum cuts of ``K`` copies of the leaf graph with ``(K, n_leaves)`` terminal
    capacities ``src`` / ``snk``, solved as one graph."""
    k, n = src.shape
    edge_a, edge_b = _copies_edges(tree, k)
    side = st_min_cut(edge_a, edge_b, np.tile(pair, k), src.ravel(), snk.ravel())
    return list(side.reshape(k, n))


def _copies_edges(tree: RegionTree, copies: int) -> tuple[np.ndarray, np.ndarray]:
    """``(copies * E,)`` int64 ends of the leaf graph's edges in ``copies`` disjoint copies (copy i's leaves are
    numbered from ``i * n_leaves``)."""
    offsets = np.arange(copies, dtype=np.int64)[:, None] * tree.n_leaves
    edge_a = (tree.edge_a[None].astype(np.int64) + offsets).ravel()
    edge_b = (tree.edge_b[None].astype(np.int64) + offsets).ravel()
    return edge_a, edge_b
