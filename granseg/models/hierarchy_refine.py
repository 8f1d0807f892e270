"""Click-constrained refinement of a superpixel selection: a binary graph cut on the superpixel graph.

Energy over leaves (superpixels) l with label x_l in {object, background}:

* hard constraints: leaves under positive clicks are object, under negative clicks background;
* unary: ``-log`` of the object probability from two CIELAB colour models (area-weighted Gaussian kernel density
  over leaf mean colours, one from the currently selected leaves, one from the rest), plus a prior that keeps the
  hierarchy's selection (``prior_weight``);
* pairwise: ``smoothness * border_length * exp(-mean_boundary_strength / beta)`` between adjacent leaves, so cuts
  follow strong boundaries.

Solved exactly with ``scipy.sparse.csgraph.maximum_flow`` (integer capacities) on at most a few thousand nodes.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, maximum_flow

from granseg.models.hierarchy_build import RegionTree

CAPACITY_SCALE = 1000.0
HARD = 10**8


def colour_probability(tree: RegionTree, selected: np.ndarray, bandwidth: float = 8.0) -> np.ndarray:
    """``(n_leaves,)`` P(object | leaf colour) from area-weighted kernel densities of leaf mean Lab colours."""
    area = tree.area[tree.leaf_node]
    if tree.colour_kernel is None:  # depends on the image only: computed once per set_image
        colours = tree.leaf_lab
        sq = ((colours[:, None, :] - colours[None, :, :]) ** 2).sum(-1)
        tree.colour_kernel = np.exp(-sq / (2 * bandwidth**2))
    fg = tree.colour_kernel @ (area * selected) / max(area[selected].sum(), 1.0)
    bg = tree.colour_kernel @ (area * ~selected) / max(area[~selected].sum(), 1.0)
    return (fg + 1e-6) / (fg + bg + 2e-6)


def refine_selection(
    tree: RegionTree, selected: np.ndarray, positives: np.ndarray, negatives: np.ndarray, cfg
) -> np.ndarray:
    """Graph-cut refinement of ``selected`` ``(n_leaves,)`` bool given positive/negative click leaves."""
    n = tree.n_leaves
    if selected.all() or not selected.any():
        return selected
    p_obj = np.clip(colour_probability(tree, selected), 1e-4, 1 - 1e-4)
    area = tree.area[tree.leaf_node]
    weight = np.sqrt(area / area.mean())
    prior = cfg.refine_prior
    cost_object = (-np.log(p_obj) + prior * ~selected) * weight  # paid when labelled object
    cost_background = (-np.log(1 - p_obj) + prior * selected) * weight
    mean_strength = tree.edge_strength / tree.edge_len
    beta = max(float(np.mean(mean_strength)), 1e-6)
    pair = cfg.refine_smoothness * np.sqrt(tree.edge_len) * np.exp(-mean_strength / beta)

    source, sink = n, n + 1
    src_cap = cost_background.copy()  # cut source->l (l on sink side = background) costs cost_background
    snk_cap = cost_object.copy()
    src_cap[positives] = HARD
    snk_cap[positives] = 0
    snk_cap[negatives] = HARD
    src_cap[negatives] = 0
    leaves = np.arange(n)
    rows = np.concatenate([tree.edge_a, tree.edge_b, np.full(n, source), leaves])
    cols = np.concatenate([tree.edge_b, tree.edge_a, leaves, np.full(n, sink)])
    caps = np.concatenate([pair, pair, src_cap, snk_cap])
    caps = np.minimum(np.round(caps * CAPACITY_SCALE), HARD).astype(np.int32)
    graph = coo_matrix((caps, (rows, cols)), shape=(n + 2, n + 2)).tocsr()
    graph.sum_duplicates()
    flow = maximum_flow(graph, source, sink).flow
    residual = (graph - flow).tocsr()
    residual.data = np.where(residual.data > 0, 1, 0).astype(np.int32)
    residual.eliminate_zeros()
    reachable = breadth_first_order(residual, source, directed=True, return_predecessors=False)
    out = np.zeros(n, bool)
    out[reachable[reachable < n]] = True
    return out
