"""GrabCut-style colour models over a region tree's leaves: Gaussian mixtures in CIELAB fitted by weighted EM on
quantised colours.

Every pixel's colour is quantised once per image (:func:`granseg.regions.cues.colour_bins`); a leaf is its
histogram over the used bins (``RegionTree.leaf_colours``, ``n_leaves x B``). A model of a set of leaves is a
``components``-Gaussian mixture (full covariances) fitted to the bin centres weighted by the set's pixel counts,
so a fit costs O(B x components) whatever the image size. A leaf's log-likelihood under a model is the mean over
its pixels of the per-pixel log-density.

Speed (``predict`` runs tens of fits per click): :func:`fit_gmms` fits M mixtures at once (batched EM: the
object and background models of every GrabCut running in one call share each numpy operation), and
:class:`LeafColours` (built once per image) keeps the log-likelihood ratios of recent selections, so a
selection's pair of models is fitted once per image. The batched EM does the arithmetic of :func:`fit_gmm`;
only the summation order of its weighted sums differs (the log-densities agree to ~1e-9). Where numba runs
(:func:`granseg.regions.maxflow.default_backend`), :class:`LeafColours` fits with the compiled EM of
:mod:`granseg.regions.colour_compiled` instead (the same models up to that order, ~7x faster).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from granseg.regions.maxflow import default_backend
from granseg.regions.tree import RegionTree

REGULARISER = 4.0  # added to covariance diagonals (Lab units^2): quantisation is ~8 units wide
_EYE = np.eye(3)


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


def _batched_init(points: np.ndarray, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_farthest_point_init` for ``(M, B)`` weights at once: ``(M, k)`` indices and ``(M,)`` bool, False
    where a model has fewer than ``k`` distinct weighted bins (its init stops early; fit it alone)."""
    rows = np.arange(len(weights))
    chosen = [np.argmax(weights, 1)]
    dist = ((points[None] - points[chosen[0]][:, None]) ** 2).sum(2)
    full = np.ones(len(weights), bool)
    for _ in range(1, k):
        score = dist * weights
        index = np.argmax(score, 1)
        full &= score[rows, index] > 0  # zero weight x distance: only already chosen bins are left
        chosen.append(index)
        dist = np.minimum(dist, ((points[None] - points[index][:, None]) ** 2).sum(2))
    return np.stack(chosen, 1), full


def fit_gmms(points: np.ndarray, weights: np.ndarray, components: int = 5, iterations: int = 6):
    """:func:`fit_gmm` of ``(M, B)`` weight rows over the shared ``(B, 3)`` points, batched. Returns a list of M
    models (each as :func:`fit_gmm` returns it)."""
    weights = np.asarray(weights, dtype=np.float64)
    k = components
    init, full = _batched_init(points, weights, k)
    models: list = [None] * len(weights)
    batch = np.flatnonzero(full)
    for m in np.flatnonzero(~full):  # fewer than `components` distinct colours: the single fit
        models[m] = fit_gmm(points, weights[m], components, iterations)
    if not len(batch):
        return models
    w = weights[batch].T[:, :, None]  # (B, M, 1)
    outer = (points[:, :, None] * points[:, None, :]).reshape(-1, 9)  # (B, 9) x x^T per point
    means = points[init[batch]]  # (M, K, 3)
    covs = np.broadcast_to(_EYE * 100.0, (len(batch), k, 3, 3)).copy()
    log_pi = np.log(np.full((len(batch), k), 1.0 / k))
    for _ in range(iterations):
        log_resp = _expanded_log_density(points, outer, log_pi, means, *_precisions(covs))  # (B, M, K)
        log_resp -= log_resp.max(2, keepdims=True)
        resp = np.exp(log_resp)
        resp /= resp.sum(2, keepdims=True)
        resp *= w
        mass = resp.sum(0) + 1e-9  # (M, K)
        log_pi = np.log(mass / mass.sum(1, keepdims=True))
        means = (resp.reshape(len(points), -1).T @ points).reshape(means.shape) / mass[..., None]
        centred = (points[:, None, None, :] - means).transpose(1, 2, 0, 3)  # (M, K, B, 3)
        weighted = (centred * resp.transpose(1, 2, 0)[..., None]).transpose(0, 1, 3, 2)  # (M, K, 3, B)
        covs = np.matmul(weighted, centred) / mass[..., None, None] + _EYE * REGULARISER
    precisions, log_dets = _precisions(covs)
    for i, m in enumerate(batch.tolist()):
        models[m] = (log_pi[i], means[i], precisions[i], log_dets[i])
    return models


def _expanded_log_density(points, outer, log_pi, means, precisions, log_dets) -> np.ndarray:
    """``(B, M, K)`` log(pi_k N(x_b | mu_k, Sigma_k)) of M mixtures with K components each, the Mahalanobis
    term expanded as ``x^T P x - 2 mu^T P x + mu^T P mu`` (two matrix products for all models at once);
    ``outer`` ``(B, 9)`` the flattened ``x x^T`` of the points."""
    m, k = log_pi.shape
    p_mu = np.einsum("mkij,mkj->mki", precisions, means)  # (M, K, 3)
    maha = outer @ precisions.reshape(m * k, 9).T - 2.0 * (points @ p_mu.reshape(m * k, 3).T)
    maha = maha.reshape(len(points), m, k) + np.einsum("mki,mki->mk", p_mu, means)
    return log_pi - 0.5 * (maha + log_dets + 3 * np.log(2 * np.pi))


def _batched_log_density(points, log_pi, means, precisions, log_dets) -> np.ndarray:
    """``(M, B, K)`` log(pi_k N(x_b | mu_k, Sigma_k)) of M mixtures with K components each."""
    centred = points[None, :, None, :] - means[:, None]
    maha = np.einsum("mbki,mkij,mbkj->mbk", centred, precisions, centred)
    return log_pi[:, None] - 0.5 * (maha + log_dets[:, None] + 3 * np.log(2 * np.pi))


def bin_log_likelihood_ratio(tree: RegionTree, foreground: np.ndarray, components: int = 5) -> np.ndarray:
    """``(B,)`` ``log p_fg - log p_bg`` at every used colour bin of ``tree``, with the two mixtures fitted to the
    pixels of the ``foreground`` ``(n_leaves,)`` bool leaves and of the others."""
    return LeafColours(tree, components).ratios(foreground[None])[0][0]


def leaf_log_likelihood_ratio(tree: RegionTree, foreground: np.ndarray, components: int = 5) -> np.ndarray:
    """``(n_leaves,)`` mean per-pixel ``log p_fg - log p_bg`` of every leaf (see
    :func:`bin_log_likelihood_ratio`)."""
    return LeafColours(tree, components).ratios(foreground[None])[1][0]


class LeafColours:
    """A tree's colour table for repeated fits (built once per image, e.g. in ``set_image``), with a cache of
    the ratios of the last ``cache_size`` selections (keyed by the selection's bytes)."""

    def __init__(self, tree: RegionTree, components: int = 5, cache_size: int = 256) -> None:
        self.counts = tree.leaf_colours.tocsr()  # (n_leaves, B) pixel counts
        self.counts_t = self.counts.T.tocsr()
        self.totals = np.asarray(self.counts.sum(0)).ravel()
        self.centres = tree.colour_centres
        self.area = np.maximum(tree.leaf_area, 1.0)
        self.components = components
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def ratios(self, foregrounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(M, B)`` bin and ``(M, n_leaves)`` leaf log-likelihood ratios of ``(M, n_leaves)`` bool foreground
        selections (see :func:`bin_log_likelihood_ratio`, :func:`leaf_log_likelihood_ratio`)."""
        foregrounds = np.asarray(foregrounds, bool)
        keys = [row.tobytes() for row in foregrounds]
        missing = [i for i, key in enumerate(keys) if key not in self._cache]
        if missing:
            unique = list(dict.fromkeys(keys[i] for i in missing))
            rows = np.stack([np.frombuffer(key, bool) for key in unique])
            fg = np.asarray(self.counts_t @ rows.T.astype(np.float32)).T  # (U, B), exact integer counts
            bg = np.maximum(self.totals[None] - fg, 0)
            density = _fit_log_densities(self.centres, np.concatenate([fg, bg]), self.components)
            bins = density[: len(unique)] - density[len(unique) :]  # (U, B)
            leaves = np.asarray(self.counts @ bins.T).T / self.area  # (U, n_leaves)
            for i, key in enumerate(unique):
                self._cache[key] = (bins[i], leaves[i])
        out = [self._cache[key] for key in keys]
        for key in keys:
            self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def _fit_log_densities(points: np.ndarray, weights: np.ndarray, components: int) -> np.ndarray:
    """``(M, B)`` log-density at the ``(B, 3)`` points of the mixture fitted to each ``(M, B)`` weight row: compiled
    (:mod:`granseg.regions.colour_compiled`) where the compiled max flow runs, else :func:`fit_gmms` (the same
    models up to the order of their sums)."""
    if default_backend() == "numba":
        from granseg.regions.colour_compiled import fit_log_densities

        return fit_log_densities(points, np.asarray(weights, np.float64), components, 6, REGULARISER)
    return _log_densities(points, fit_gmms(points, weights, components))


def _log_densities(points: np.ndarray, models: list) -> np.ndarray:
    """``(M, B)`` :func:`log_density` of each of ``models`` at ``(B, 3)`` points (batched when they have the same
    number of components)."""
    if len({len(model[0]) for model in models}) > 1:
        return np.stack([log_density(points, model) for model in models])
    comp = _batched_log_density(points, *(np.stack(part) for part in zip(*models)))  # (M, B, K)
    top = comp.max(2)
    return top + np.log(np.exp(comp - top[..., None]).sum(2))
