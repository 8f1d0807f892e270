"""The colour-model fits of :class:`granseg.regions.colour.LeafColours` as one compiled loop per mixture (numba;
imported only where the compiled backend runs, see :func:`granseg.regions.maxflow.default_backend`).

:func:`fit_log_densities` does what :func:`granseg.regions.colour.fit_gmms` followed by
:func:`granseg.regions.colour._log_densities` does: the same initial means (farthest-point, the same ties), the
same weighted EM (six rounds, the same regulariser, the same start), the same log-density; only the order of
the sums differs (results agree to ~1e-12, the integer capacities they end in are the same: tested). It loops over
the bins a model weighs (a region's colours are a fraction of the image's) instead of the batched numpy
arrays over all of them, several times faster on the tens of models a click fits.
"""

import numba
import numpy as np

LOG_2PI = np.log(2.0 * np.pi)


@numba.njit(cache=True, nogil=True, inline="always")
def _invert(c, p):
    """``p`` = inverse of the symmetric 3 x 3 ``c`` (adjugate / determinant); returns log(det c)."""
    a00, a01, a02 = c[0, 0], c[0, 1], c[0, 2]
    a11, a12, a22 = c[1, 1], c[1, 2], c[2, 2]
    c00 = a11 * a22 - a12 * a12
    c01 = a02 * a12 - a01 * a22
    c02 = a01 * a12 - a02 * a11
    det = a00 * c00 + a01 * c01 + a02 * c02
    p[0, 0] = c00 / det
    p[0, 1] = p[1, 0] = c01 / det
    p[0, 2] = p[2, 0] = c02 / det
    p[1, 1] = (a00 * a22 - a02 * a02) / det
    p[1, 2] = p[2, 1] = (a01 * a02 - a00 * a12) / det
    p[2, 2] = (a00 * a11 - a01 * a01) / det
    return np.log(det)


@numba.njit(cache=True, nogil=True, inline="always")
def _component_terms(x0, x1, x2, means, precisions, consts, k, out):
    """``out[j]`` = log(pi_j N(x | mu_j, Sigma_j)) for the first ``k`` components (``consts`` =
    log pi - 0.5 (log det + 3 log 2 pi)); returns their maximum."""
    top = -np.inf
    for j in range(k):
        d0, d1, d2 = x0 - means[j, 0], x1 - means[j, 1], x2 - means[j, 2]
        p = precisions[j]
        maha = (
            p[0, 0] * d0 * d0
            + p[1, 1] * d1 * d1
            + p[2, 2] * d2 * d2
            + 2.0 * (p[0, 1] * d0 * d1 + p[0, 2] * d0 * d2 + p[1, 2] * d1 * d2)
        )
        out[j] = consts[j] - 0.5 * maha
        if out[j] > top:
            top = out[j]
    return top


@numba.njit(cache=True, nogil=True)
def _initial_means(pts, w, components):
    """``(k, 3)`` farthest-point initial means (:func:`granseg.regions.colour._farthest_point_init`): the
    heaviest point, then the point maximising weight x squared distance to the chosen ones; fewer than
    ``components`` where only chosen colours are left."""
    n = len(pts)
    first = 0
    for i in range(1, n):
        if w[i] > w[first]:
            first = i
    chosen = np.empty(components, np.int64)
    chosen[0] = first
    dist = np.empty(n)
    for i in range(n):
        dist[i] = (pts[i, 0] - pts[first, 0]) ** 2 + (pts[i, 1] - pts[first, 1]) ** 2
        dist[i] += (pts[i, 2] - pts[first, 2]) ** 2
    k = 1
    while k < min(components, n):
        index, best = 0, dist[0] * w[0]
        for i in range(1, n):
            if dist[i] * w[i] > best:
                index, best = i, dist[i] * w[i]
        if dist[index] <= 0:
            break
        chosen[k] = index
        k += 1
        for i in range(n):
            d = (
                (pts[i, 0] - pts[index, 0]) ** 2
                + (pts[i, 1] - pts[index, 1]) ** 2
                + (pts[i, 2] - pts[index, 2]) ** 2
            )
            if d < dist[i]:
                dist[i] = d
    means = np.empty((k, 3))
    for j in range(k):
        means[j] = pts[chosen[j]]
    return means


@numba.njit(cache=True, nogil=True)
def _expectation(pts, w, means, covs, log_pi, resp, mass, sums):
    """E step: weighted responsibilities ``resp`` ``(n, k)``, their sums ``mass`` ``(k,)`` (+1e-9) and weighted
    point sums ``sums`` ``(k, 3)``."""
    k = len(means)
    precisions = np.empty((k, 3, 3))
    consts = np.empty(k)
    terms = np.empty(k)
    for j in range(k):
        consts[j] = log_pi[j] - 0.5 * (_invert(covs[j], precisions[j]) + 3 * LOG_2PI)
    mass[:] = 0.0
    sums[:] = 0.0
    for i in range(len(pts)):
        top = _component_terms(pts[i, 0], pts[i, 1], pts[i, 2], means, precisions, consts, k, terms)
        total = 0.0
        for j in range(k):
            terms[j] = np.exp(terms[j] - top)
            total += terms[j]
        for j in range(k):
            r = terms[j] / total * w[i]
            resp[i, j] = r
            mass[j] += r
            sums[j, 0] += r * pts[i, 0]
            sums[j, 1] += r * pts[i, 1]
            sums[j, 2] += r * pts[i, 2]
    for j in range(k):
        mass[j] += 1e-9


@numba.njit(cache=True, nogil=True)
def _maximisation(pts, resp, mass, sums, regulariser, means, covs, log_pi):
    """M step: mixing weights, means and regularised covariances from the E step's sums (in place)."""
    k = len(means)
    all_mass = 0.0
    for j in range(k):
        all_mass += mass[j]
    for j in range(k):
        log_pi[j] = np.log(mass[j] / all_mass)
        for a in range(3):
            means[j, a] = sums[j, a] / mass[j]
    covs[:] = 0.0
    for i in range(len(pts)):
        for j in range(k):
            r = resp[i, j]
            d0, d1, d2 = pts[i, 0] - means[j, 0], pts[i, 1] - means[j, 1], pts[i, 2] - means[j, 2]
            c = covs[j]
            c[0, 0] += r * d0 * d0
            c[0, 1] += r * d0 * d1
            c[0, 2] += r * d0 * d2
            c[1, 1] += r * d1 * d1
            c[1, 2] += r * d1 * d2
            c[2, 2] += r * d2 * d2
    for j in range(k):
        c = covs[j]
        for a in range(3):
            for b in range(a, 3):
                c[a, b] /= mass[j]
            c[a, a] += regulariser
        c[1, 0], c[2, 0], c[2, 1] = c[0, 1], c[0, 2], c[1, 2]


@numba.njit(cache=True, nogil=True)
def _fit_one(points, weights, components, iterations, regulariser, log_density):
    """One mixture fitted to ``(B, 3)`` points with ``(B,)`` weights (EM over the weighted points only); writes
    its ``(B,)`` log-density at every point into ``log_density``."""
    active = np.flatnonzero(weights > 0)
    n = len(active)
    pts = np.empty((n, 3))
    w = np.empty(n)
    for i in range(n):
        pts[i] = points[active[i]]
        w[i] = weights[active[i]]
    means = _initial_means(pts, w, components)
    k = len(means)
    covs = np.zeros((k, 3, 3))
    for j in range(k):
        covs[j, 0, 0] = covs[j, 1, 1] = covs[j, 2, 2] = 100.0
    log_pi = np.full(k, np.log(1.0 / k))
    resp, mass, sums = np.empty((n, k)), np.empty(k), np.empty((k, 3))
    for _ in range(iterations):
        _expectation(pts, w, means, covs, log_pi, resp, mass, sums)
        _maximisation(pts, resp, mass, sums, regulariser, means, covs, log_pi)
    precisions, consts, terms = np.empty((k, 3, 3)), np.empty(k), np.empty(k)
    for j in range(k):
        consts[j] = log_pi[j] - 0.5 * (_invert(covs[j], precisions[j]) + 3 * LOG_2PI)
    for i in range(len(points)):
        top = _component_terms(points[i, 0], points[i, 1], points[i, 2], means, precisions, consts, k, terms)
        total = 0.0
        for j in range(k):
            total += np.exp(terms[j] - top)
        log_density[i] = top + np.log(total)


@numba.njit(cache=True, nogil=True)
def fit_log_densities(points, weights, components, iterations, regulariser):
    """``(M, B)`` log-density at the ``(B, 3)`` points of a ``components``-Gaussian mixture fitted to each of the
    ``(M, B)`` weight rows (``iterations`` EM rounds, ``regulariser`` added to covariance diagonals)."""
    out = np.empty(weights.shape)
    for m in range(len(weights)):
        _fit_one(points, weights[m], components, iterations, regulariser, out[m])
    return out
