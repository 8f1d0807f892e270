"""Boundary detection on BSDS500: boundary maps, BSDS-style matching, PR curves, ODS/OIS/AP.

Boundary maps: :func:`sobel_nms` takes an ``H x W`` or ``H x W x C`` image (the RGB input, or a model's predicted
feature image such as Gen2Seg's instance colouring), Sobel gradients (3 x 3), magnitude summed over channels,
orientation from the channel-summed structure tensor, and non-maximum suppression along the gradient; the result
is ``H x W`` float in [0, 1] (divided by its maximum). :func:`boundary_map_from_masks` is Sobel + NMS on a stack of
(whole-image, automatic) masks, each weighted by its score.

Evaluation follows the BSDS500 benchmark (``evaluation_bdry_image`` / ``correspondPixels``): for each of
``n_thresholds`` thresholds t = 1/(n+1) .. n/(n+1) the map is binarised (``>= t``) and thinned, then matched
one-to-one against each human boundary map separately with a distance tolerance of ``0.0075 x`` the image
diagonal; recall counts matched human pixels over all annotators, precision counts predicted pixels matched to at
least one annotator. The one-to-one matching is a maximum-cardinality bipartite matching solved as a max flow
(Dinic) on the candidate pairs within the tolerance (BSDS's CSA solver minimises distance among near-maximum
matchings; the counts are what P/R use). scipy's ``maximum_bipartite_matching`` is avoided on purpose: its
Hopcroft-Karp takes exponential time on the chain-like graphs boundaries make.

Metrics (dataset level): ODS F (best F over thresholds on summed counts, BSDS interpolation between thresholds),
OIS F (each image at its own best threshold), AP (BSDS: precision interpolated on recall 0:0.01:1, area, 0 outside
the measured recall range), AP_interp (VOC-style: best precision at recall >= r, mean over r = 0:0.01:1), and the
two readings of Gen2Seg's "AP for recall < 20%": ``ap_r20_area`` (area under the PR curve over recall in
[0, 0.2] divided by 0.2, precision held constant below the lowest measured recall) and ``p_at_r20`` (precision at
recall 0.2, interpolated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BSDS_MAX_DIST = 0.0075


def sobel_nms(image: np.ndarray) -> np.ndarray:
    """``H x W`` float32 boundary strength in [0, 1]: Sobel magnitude with non-maximum suppression."""
    import cv2

    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[2] == 3 and image.dtype == np.uint8:  # an RGB photo: grayscale, as "plain Sobel" does
        array = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)[..., None]
    gx = np.stack([cv2.Sobel(array[..., c], cv2.CV_32F, 1, 0, ksize=3) for c in range(array.shape[2])], -1)
    gy = np.stack([cv2.Sobel(array[..., c], cv2.CV_32F, 0, 1, ksize=3) for c in range(array.shape[2])], -1)
    magnitude = np.sqrt((gx**2 + gy**2).sum(axis=2))
    jxx, jyy, jxy = (gx**2).sum(2), (gy**2).sum(2), (gx * gy).sum(2)
    theta = 0.5 * np.arctan2(2 * jxy, jxx - jyy)  # gradient direction
    suppressed = non_maximum_suppression(magnitude, theta)
    peak = suppressed.max()
    return (suppressed / peak).astype(np.float32) if peak > 0 else suppressed.astype(np.float32)


def non_maximum_suppression(magnitude: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Keep pixels not smaller than both neighbours along ``theta`` (radians, gradient direction), bilinear."""
    import cv2

    height, width = magnitude.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = np.cos(theta).astype(np.float32), np.sin(theta).astype(np.float32)
    mag = magnitude.astype(np.float32)
    ahead = cv2.remap(mag, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    behind = cv2.remap(mag, xs - dx, ys - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    keep = (mag >= ahead) & (mag >= behind) & (mag > 0)
    out = np.where(keep, mag, 0.0).astype(np.float32)
    out[[0, -1], :] = 0
    out[:, [0, -1]] = 0
    return out


def boundary_map_from_masks(masks: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
    """``K x H x W`` bool masks (and optional ``K`` scores) -> ``H x W`` float32 boundary map in [0, 1]: Sobel on
    the masks (the "Sobel on automatic masks" edge baseline of SAM / Gen2Seg).

    Each mask is a channel weighted by its score: the 3 x 3 Sobel gradients of all channels give the magnitude
    ``sqrt(sum_k w_k^2 |grad m_k|^2)`` and the orientation of the channel-summed structure tensor (as
    :func:`sobel_nms` does for a multi-channel image), then non-maximum suppression thins the boundaries to one
    pixel. Accumulated one mask at a time (memory ``O(H W)`` whatever K)."""
    import cv2

    masks = np.asarray(masks, dtype=bool)
    weights = np.ones(len(masks)) if scores is None else np.asarray(scores, dtype=np.float64)
    jxx = np.zeros(masks.shape[1:], dtype=np.float32)
    jyy, jxy = np.zeros_like(jxx), np.zeros_like(jxx)
    for mask, weight in zip(masks, weights):
        m = mask.astype(np.float32) * np.float32(weight)
        gx = cv2.Sobel(m, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
        gy = cv2.Sobel(m, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
        jxx += gx * gx
        jyy += gy * gy
        jxy += gx * gy
    magnitude = np.sqrt(jxx + jyy)
    theta = 0.5 * np.arctan2(2 * jxy, jxx - jyy)
    suppressed = non_maximum_suppression(magnitude, theta)
    peak = suppressed.max()
    return (suppressed / peak).astype(np.float32) if peak > 0 else suppressed.astype(np.float32)


def match_counts(pred: np.ndarray, gt: np.ndarray, max_dist_px: float) -> tuple[np.ndarray, int]:
    """One-to-one matching of ``H x W`` bool predicted boundary pixels to ground-truth ones within
    ``max_dist_px``. Returns (``H x W`` bool: predicted pixels matched, number of GT pixels matched)."""
    pred_yx = np.argwhere(pred)
    gt_yx = np.argwhere(gt)
    matched = np.zeros(pred.shape, dtype=bool)
    if len(pred_yx) == 0 or len(gt_yx) == 0:
        return matched, 0
    pairs_p, pairs_g = candidate_pairs(pred_yx, gt_yx, max_dist_px)
    flags = max_matching(pairs_p, pairs_g, len(pred_yx), len(gt_yx))
    matched[pred_yx[flags, 0], pred_yx[flags, 1]] = True
    return matched, int(flags.sum())


def candidate_pairs(a_yx: np.ndarray, b_yx: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) with ``||a_i - b_j|| <= radius`` (``(N, 2)`` and ``(M, 2)`` coordinates)."""
    from scipy.spatial import cKDTree

    if len(a_yx) == 0 or len(b_yx) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # a tiny shift keeps exact overlaps (distance 0) from being dropped as implicit zeros of the sparse result
    eps = 1e-3
    tree_a = cKDTree(np.asarray(a_yx, dtype=np.float64))
    tree_b = cKDTree(np.asarray(b_yx, dtype=np.float64) + (eps, 0.0))
    coo = tree_a.sparse_distance_matrix(tree_b, radius + eps, output_type="coo_matrix")
    return coo.row.astype(np.int64), coo.col.astype(np.int64)


def max_matching(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    """Maximum-cardinality bipartite matching as a unit-capacity max flow (scipy, Dinic).
    ``rows``/``cols``: the candidate pairs (no duplicates). Returns ``(n_rows,)`` bool: which rows are matched."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    matched = np.zeros(n_rows, dtype=bool)
    if len(rows) == 0:
        return matched
    used_rows, row_index = np.unique(rows, return_inverse=True)
    used_cols, col_index = np.unique(cols, return_inverse=True)
    nr, nc = len(used_rows), len(used_cols)
    n_nodes = nr + nc + 2
    source, sink = 0, n_nodes - 1
    # CSR built directly: source -> rows, rows -> cols (grouped by row), cols -> sink
    order = np.argsort(row_index, kind="stable")
    per_row = np.bincount(row_index, minlength=nr)
    indptr = np.empty(n_nodes + 1, dtype=np.int64)
    indptr[0] = 0
    indptr[1] = nr
    indptr[2 : nr + 2] = nr + np.cumsum(per_row)
    indptr[nr + 2 : nr + nc + 2] = indptr[nr + 1] + np.arange(1, nc + 1)
    indptr[n_nodes] = indptr[n_nodes - 1]
    indices = np.concatenate([1 + np.arange(nr), 1 + nr + col_index[order], np.full(nc, sink)]).astype(
        np.int32
    )
    graph = csr_matrix((np.ones(len(indices), dtype=np.int32), indices, indptr), shape=(n_nodes, n_nodes))
    flow = maximum_flow(graph, source, sink, method="dinic").flow
    start, stop = flow.indptr[source], flow.indptr[source + 1]
    targets = flow.indices[start:stop]
    values = np.asarray(flow.data[start:stop]).ravel()
    out_of_source = np.zeros(nr, dtype=bool)
    positive = values > 0
    out_of_source[targets[positive] - 1] = True
    matched[used_rows[out_of_source]] = True
    return matched


@dataclass
class ImageCounts:
    """Per-threshold BSDS counts of one image: arrays of shape ``(T,)``."""

    image_id: str
    cnt_r: np.ndarray
    sum_r: np.ndarray
    cnt_p: np.ndarray
    sum_p: np.ndarray


def bsds_thresholds(n: int = 99) -> np.ndarray:
    return np.linspace(1.0 / (n + 1), 1.0 - 1.0 / (n + 1), n)


def evaluate_boundary_image(
    boundary_map: np.ndarray,
    ground_truths: list[np.ndarray],
    thresholds: np.ndarray,
    image_id: str = "",
    max_dist: float = BSDS_MAX_DIST,
    thin: bool = True,
) -> ImageCounts:
    """BSDS counts for one ``H x W`` float map against K ``H x W`` bool human boundary maps."""
    from skimage.morphology import thin as thin_fn

    height, width = boundary_map.shape
    radius = max_dist * float(np.hypot(height, width))
    n = len(thresholds)
    counts = ImageCounts(image_id, np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n))
    # Thinning only removes pixels, so every binarised map is a subset of the pixels the lowest threshold keeps:
    # the candidate pairs are found once per annotator and filtered per threshold.
    candidates_yx = np.argwhere(boundary_map >= thresholds.min())
    annotators = []
    for gt in ground_truths:
        gt_yx = np.argwhere(np.asarray(gt, dtype=bool))
        annotators.append((len(gt_yx), *candidate_pairs(candidates_yx, gt_yx, radius)))
    for t, threshold in enumerate(thresholds):
        binary = boundary_map >= threshold
        if thin:
            binary = thin_fn(binary)
        present = binary[candidates_yx[:, 0], candidates_yx[:, 1]]
        accumulated = np.zeros(len(candidates_yx), dtype=bool)
        for n_gt, pairs_p, pairs_g in annotators:
            keep = present[pairs_p]
            matched = max_matching(pairs_p[keep], pairs_g[keep], len(candidates_yx), n_gt)
            accumulated |= matched
            counts.cnt_r[t] += matched.sum()
            counts.sum_r[t] += n_gt
        counts.cnt_p[t] = accumulated.sum()
        counts.sum_p[t] = present.sum()
    return counts


def _f(p, r):
    p, r = np.asarray(p, float), np.asarray(r, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return f


def _pr(cnt_r, sum_r, cnt_p, sum_p):
    r = np.where(sum_r > 0, cnt_r / np.maximum(sum_r, 1), 0.0)
    p = np.where(sum_p > 0, cnt_p / np.maximum(sum_p, 1), 1.0)  # BSDS: no prediction -> precision 1
    return p, r


def _interpolated_max_f(
    p: np.ndarray, r: np.ndarray, thresholds: np.ndarray
) -> tuple[float, float, float, float]:
    """BSDS ``maxF``: best F along the PR polyline (100 steps between thresholds). (F, P, R, threshold)."""
    best = (float(_f(p[0], r[0])), float(p[0]), float(r[0]), float(thresholds[0]))
    steps = np.linspace(0, 1, 100)
    for i in range(1, len(thresholds)):
        pp = p[i - 1] * (1 - steps) + p[i] * steps
        rr = r[i - 1] * (1 - steps) + r[i] * steps
        tt = thresholds[i - 1] * (1 - steps) + thresholds[i] * steps
        ff = _f(pp, rr)
        k = int(np.argmax(ff))
        if ff[k] > best[0]:
            best = (float(ff[k]), float(pp[k]), float(rr[k]), float(tt[k]))
    return best


def summarize_edges(per_image: list[ImageCounts], thresholds: np.ndarray) -> dict:
    """ODS/OIS F, AP, both R<0.2 readings and the dataset PR curve."""
    cnt_r = sum(c.cnt_r for c in per_image)
    sum_r = sum(c.sum_r for c in per_image)
    cnt_p = sum(c.cnt_p for c in per_image)
    sum_p = sum(c.sum_p for c in per_image)
    p, r = _pr(cnt_r, sum_r, cnt_p, sum_p)
    ods_f, ods_p, ods_r, ods_t = _interpolated_max_f(p, r, thresholds)
    # OIS: each image at its own best threshold
    totals = np.zeros(4)
    for c in per_image:
        pi, ri = _pr(c.cnt_r, c.sum_r, c.cnt_p, c.sum_p)
        k = int(np.argmax(_f(pi, ri)))
        totals += (c.cnt_r[k], c.sum_r[k], c.cnt_p[k], c.sum_p[k])
    ois_p, ois_r = _pr(*totals)
    ois_f = float(_f(ois_p, ois_r))
    # AP (BSDS): precision interpolated at recall 0:0.01:1 on the unique recalls, NaN -> 0
    order = np.argsort(r)
    r_sorted, p_sorted = r[order], p[order]
    r_unique, first = np.unique(r_sorted, return_index=True)
    p_unique = p_sorted[first]
    grid = np.linspace(0, 1, 101)
    if len(r_unique) > 1:
        pi = np.interp(grid, r_unique, p_unique, left=np.nan, right=np.nan)
        ap = float(np.nansum(pi) * 0.01)
    else:
        ap = 0.0
    # VOC-style interpolated AP: precision at recall r = the best precision at any recall >= r (0 if none)
    ap_interp = float(np.mean([p[r >= level].max() if (r >= level).any() else 0.0 for level in grid]))
    # Gen2Seg "AP for recall < 20%": both readings
    fine = np.linspace(0, 0.2, 201)
    p_low = np.interp(fine, r_unique, p_unique, left=p_unique[0], right=np.nan) if len(r_unique) else fine * 0
    covered = ~np.isnan(p_low)
    ap_r20_area = float(np.trapezoid(np.where(covered, p_low, 0.0), fine) / 0.2) if covered.any() else 0.0
    p_at_r20 = (
        float(np.interp(0.2, r_unique, p_unique)) if len(r_unique) and r_unique[-1] >= 0.2 else float("nan")
    )
    return {
        "images": len(per_image),
        "ODS_F": ods_f,
        "ODS_P": ods_p,
        "ODS_R": ods_r,
        "ODS_threshold": ods_t,
        "OIS_F": ois_f,
        "AP": ap,
        "AP_interp": ap_interp,
        "ap_r20_area": ap_r20_area,
        "p_at_r20": p_at_r20,
        "max_recall": float(r.max()) if len(r) else 0.0,
        "pr_curve": {"thresholds": thresholds.tolist(), "precision": p.tolist(), "recall": r.tolist()},
    }


def plot_pr(path, curves: dict[str, tuple[list[float], list[float]]], title: str = "") -> bool:
    """PR curves (name -> (recall, precision)) as a PNG with iso-F lines; False when matplotlib is missing."""
    from granseg.eval.plots import new_figure, save_figure

    made = new_figure(4.5, 4.5)
    if made is None:
        return False
    fig, ax = made
    grid = np.linspace(0.01, 1, 200)
    for f in np.arange(0.1, 1.0, 0.1):
        with np.errstate(divide="ignore", invalid="ignore"):
            p = f * grid / (2 * grid - f)
        ok = (p > 0) & (p <= 1)
        ax.plot(grid[ok], p[ok], color="0.85", linewidth=0.6)
    for name, (recall, precision) in curves.items():
        ax.plot(recall, precision, label=name)
    ax.axvline(0.2, color="0.6", linestyle="--", linewidth=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.legend(loc="lower left")
    save_figure(fig, path)
    return True


def ultrametric_contour_map(tree, original_size: tuple[int, int]) -> np.ndarray:
    """Boundary map of a region hierarchy (``granseg.regions.tree.RegionTree``): each border between
    two adjacent superpixels gets the merge height of their lowest common ancestor (an ultrametric contour map),
    divided by the largest height and resized to ``original_size`` (H, W). ``H x W`` float32 in [0, 1]."""
    import cv2

    a, b = np.asarray(tree.edge_a), np.asarray(tree.edge_b)
    node = np.asarray(tree.leaf_node)[a].copy()
    hi, parent = np.asarray(tree.hi), np.asarray(tree.parent)
    pending = hi[node] < b  # the LCA is the first ancestor of a whose leaf-rank interval reaches b
    while pending.any():
        up = parent[node[pending]]
        if (up < 0).any():  # separate roots: no common ancestor, strongest boundary
            stuck = np.flatnonzero(pending)[up < 0]
            pending[stuck] = False
            node[stuck] = int(np.argmax(tree.height))
            up = parent[node[pending]]
        node[pending] = up
        pending = hi[node] < b
    heights = np.asarray(tree.height)[node]
    leaf_map = np.asarray(tree.leaf_map)
    n = tree.n_leaves
    table: dict[int, float] = {int(x) * n + int(y): float(h) for x, y, h in zip(a, b, heights)}
    ucm = np.zeros(leaf_map.shape, dtype=np.float32)
    for dy, dx in ((0, 1), (1, 0)):
        p = leaf_map[: leaf_map.shape[0] - dy, : leaf_map.shape[1] - dx]
        q = leaf_map[dy:, dx:]
        differ = p != q
        lo_rank, hi_rank = np.minimum(p[differ], q[differ]), np.maximum(p[differ], q[differ])
        values = np.asarray(
            [table.get(int(u) * n + int(v), 0.0) for u, v in zip(lo_rank, hi_rank)], dtype=np.float32
        )
        view = ucm[: leaf_map.shape[0] - dy, : leaf_map.shape[1] - dx]
        view[differ] = np.maximum(view[differ], values)
    peak = ucm.max()
    if peak > 0:
        ucm /= peak
    height, width = original_size
    if ucm.shape != (height, width):
        ucm = cv2.resize(ucm, (width, height), interpolation=cv2.INTER_LINEAR)
    return ucm
