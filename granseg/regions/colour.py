"""GrabCut-style colour models over a region tree's leaves: Gaussian mixtures in CIELAB fitted by weighted EM on
quantised colours.

Every pixel's colour is quantised once per image (:func:`granseg.regions.cues.colour_bins`); a leaf is its
histogram over the used bins (``RegionTree.leaf_colours``, ``n_leaves x B``). A model of a set of leaves is a
``components``-Gaussian mixture (full covariances) fitted to the bin centres weighted by the set's pixel counts,
so a fit costs O(B x components) whatever the image size. A leaf's log-likelihood under a model is the mean over
its pixels of the per-pixel log-density.
"""

from __future__ import annotations

import numpy as np

from granseg.regions.tree import RegionTree

REGULARISER = 4.0  # added to covariance diagonals (Lab units^2): quantisation is ~8 units wide


def _farthest_point_init(points: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` deterministic initial means: the heaviest bin, then repeatedly the bin maximising
    weight x squared distance to the chosen ones."""
    chosen = [int(np.argmax(weights))]
    dist = ((points - points[chosen[0]]) ** 2).sum(1)
    for _ in range(1, k):
        index = int(np.argmax(dist * weights))
        if dist[index] <= 0:
            break
        chosen.append(index)
        dist = np.minimum(dist, ((points - points[index]) ** 2).sum(1))
    return np.asarray(chosen)


def fit_gmm(points: np.ndarray, weights: np.ndarray, components: int = 5, iterations: int = 6):
    """Weighted EM for a Gaussian mixture on ``(B, 3)`` points with ``(B,)`` non-negative weights.
    Returns ``(log_pi (K,), means (K, 3), precisions (K, 3, 3), log_dets (K,))``."""
    active = weights > 0
    pts, w = points[active], weights[active]
    init = _farthest_point_init(pts, w, min(components, len(pts)))
    means = pts[init].copy()
    k = len(means)
    covs = np.repeat(np.eye(3)[None] * 100.0, k, axis=0)
    pis = np.full(k, 1.0 / k)
    for _ in range(iterations):
        log_resp = _component_log_density(pts, np.log(pis), means, *_precisions(covs))
        log_resp -= log_resp.max(1, keepdims=True)
        resp = np.exp(log_resp)
        resp /= resp.sum(1, keepdims=True)
        resp *= w[:, None]
        mass = resp.sum(0) + 1e-9
        pis = mass / mass.sum()
        means = (resp.T @ pts) / mass[:, None]
        for j in range(k):
            centred = pts - means[j]
            covs[j] = (centred * resp[:, j : j + 1]).T @ centred / mass[j] + np.eye(3) * REGULARISER
    return (np.log(pis), means, *_precisions(covs))


def _precisions(covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.linalg.inv(covs), np.linalg.slogdet(covs)[1]


def _component_log_density(points, log_pi, means, precisions, log_dets) -> np.ndarray:
    """``(B, K)`` log(pi_k N(x_b | mu_k, Sigma_k))."""
    centred = points[:, None, :] - means[None]
    maha = np.einsum("bki,kij,bkj->bk", centred, precisions, centred)
    return log_pi[None] - 0.5 * (maha + log_dets[None] + 3 * np.log(2 * np.pi))


def log_density(points: np.ndarray, model) -> np.ndarray:
    """``(B,)`` log-density of the mixture ``model`` (from :func:`fit_gmm`) at ``(B, 3)`` points."""
    comp = _component_log_density(points, *model)
    top = comp.max(1)
    return top + np.log(np.exp(comp - top[:, None]).sum(1))


def bin_log_likelihood_ratio(tree: RegionTree, foreground: np.ndarray, components: int = 5) -> np.ndarray:
    """``(B,)`` ``log p_fg - log p_bg`` at every used colour bin of ``tree``, with the two mixtures fitted to the
    pixels of the ``foreground`` ``(n_leaves,)`` bool leaves and of the others."""
    counts = tree.leaf_colours
    fg_weights = np.asarray(counts.T @ foreground.astype(np.float32)).ravel()
    bg_weights = np.asarray(counts.sum(0)).ravel() - fg_weights
    centres = tree.colour_centres
    return log_density(centres, fit_gmm(centres, fg_weights, components)) - log_density(
        centres, fit_gmm(centres, np.maximum(bg_weights, 0), components)
    )


def leaf_log_likelihood_ratio(tree: RegionTree, foreground: np.ndarray, components: int = 5) -> np.ndarray:
    """``(n_leaves,)`` mean per-pixel ``log p_fg - log p_bg`` of every leaf (see
    :func:`bin_log_likelihood_ratio`)."""
    ratio = bin_log_likelihood_ratio(tree, foreground, components)
    return np.asarray(tree.leaf_colours @ ratio).ravel() / np.maximum(tree.leaf_area, 1.0)
