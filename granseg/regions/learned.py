"""The learned merge criterion of the region tree: logistic regression on per-pair features, fit on human
segmentations (BSDS500; ``benchmarks/fit_merge.py``), coefficients shipped in ``merge_weights.json`` (over SLIC
leaves, the default) and ``merge_weights_watershed.json`` (over watershed leaves).

For two adjacent regions ``a`` and ``b`` (leaves or merged nodes) the features are (:data:`FEATURES`):

* ``border:<cue>``: the mean, along their shared border, of each oriented gradient of
  :mod:`granseg.regions.gradients` (L, a, b, texton at three scales; a pixel pair on the border counts the larger
  of its two pixels' values);
* ``chi2:<channel>``: the chi-squared distance of the two regions' histograms of L, a, b and textons;
* ``lab``: the distance of their mean CIELAB colours / 100;
* ``log_min_area``, ``log_max_area``: log of the smaller / larger area as a fraction of the image;
* ``border_share``: shared border length / the smaller region's perimeter (to other regions);
* ``log_border_mean``: log of the mean of the ``border`` features (+ 0.05): p(same) falls steeply as a faint
  border appears and little more once it is strong. It replaced the square of that mean, whose positive fitted
  weight made a *stronger* border raise p(same) above a mean of about 0.45-0.55 (beyond most training pairs):
  the strongest outlines of an image (e.g. the coffee cup's) then merged last-but-early, the running-max heights
  flattened into one plateau at the top of the tree and every large region lost its persistence;
* three interactions: that mean, ``lab`` and ``border_share`` times ``log_min_area`` (a weak boundary between
  two large regions means more than one around a speck; a speck enclosed by a region belongs to it, an object
  enclosed by the background does not: without this term the last merge of a photograph, an object into the
  background that encloses it, scored *more* likely than the merges inside the object);
* a bias.

The model gives ``p(same | a, b)``: the probability that the two regions lie in the same segment of a human
segmentation (target of the fit: for a random pixel of each region, the chance that they share a human segment,
averaged over annotators). Greedy merging joins the most probable pair first; the merge height of a node is the
running maximum of ``1 - p`` over its merges, so heights rise towards the root, lie in [0, 1] and are comparable
across images (which one dataset-wide UCM threshold, the ODS, needs).

With the spectral cue (:mod:`granseg.regions.spectral`, ``build_region_tree(..., spectral=True)``; its own fit,
``merge_weights_spectral.json``, written by ``benchmarks/fit_merge.py --spectral``; not shipped, as the cue did not
improve the tree on BSDS: ``benchmarks/results/tree.md``) two features follow (:data:`SPECTRAL_FEATURES`):

* ``log_border_spb``: log(1 + the mean sPb along the shared border) (the eigenvector gradients of gPb);
* ``log_spectral``: log(1 + the distance of the two regions' mean spectral embeddings ``v_k / sqrt(lambda_k)``).

All border statistics, histograms and embedding sums are additive over merges, so a pair's features are exact
for any node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from granseg.regions.agglomerate import agglomerate
from granseg.regions.gradients import CHANNEL_BINS, CHANNELS, SCALES
from granseg.regions.maxflow import default_backend

WEIGHTS_FILES = {  # one fit per kind of leaves (and per feature set: "-spectral" adds SPECTRAL_FEATURES)
    "slic": Path(__file__).with_name("merge_weights.json"),
    "watershed": Path(__file__).with_name("merge_weights_watershed.json"),
    "slic-spectral": Path(__file__).with_name("merge_weights_spectral.json"),
    "slic-owt": Path(__file__).with_name("merge_weights_owt.json"),  # border features across the border (OWT)
}
BORDER_FEATURES = tuple(f"border:{c}@{s:g}" for c in CHANNELS for s in SCALES)
BORDER_LOG_OFFSET = 0.05  # log(mean border + this): steep for faint borders, flat for strong ones
FEATURES = (
    *BORDER_FEATURES,
    *(f"chi2:{c}" for c in CHANNELS),
    "lab",
    "log_min_area",
    "log_max_area",
    "border_share",
    "log_border_mean",
    "border_mean*log_min_area",
    "lab*log_min_area",
    "border_share*log_min_area",
)
SPECTRAL_FEATURES = ("log_border_spb", "log_spectral")  # appended to FEATURES with the spectral cue

# Required sign of each weight (benchmarks/fit_merge.py imposes them; 0: free). Every feature that measures a
# difference between the two regions (a border gradient, a histogram or colour distance) may only lower p(same),
# for regions of any size (the interactions with log_min_area <= 0 need a positive weight for that), so merging
# is monotone in the evidence: a stronger outline never merges earlier.
FEATURE_SIGNS = np.array(
    [
        *(-1 for _ in BORDER_FEATURES),
        *(-1 for _ in CHANNELS),  # chi2
        -1,  # lab
        0,  # log_min_area
        0,  # log_max_area
        0,  # border_share
        -1,  # log_border_mean
        +1,  # border_mean * log_min_area
        +1,  # lab * log_min_area
        0,  # border_share * log_min_area
    ]
)
SPECTRAL_SIGNS = np.array([-1, -1])  # a stronger sPb border, a larger embedding distance: never more p(same)


OWT_FEATURES = tuple(f"owt:{c}@{s:g}" for c in CHANNELS for s in SCALES)  # replace BORDER_FEATURES with OWT


def feature_names(spectral: bool = False, owt: bool = False) -> tuple[str, ...]:
    """The features of the criterion without / with the spectral cue; ``owt``: the border gradients are read
    across the border (:mod:`granseg.regions.owt`) instead of at their largest orientation (same order)."""
    names = OWT_FEATURES + FEATURES[len(BORDER_FEATURES) :] if owt else FEATURES
    return names + SPECTRAL_FEATURES if spectral else names


def feature_signs(spectral: bool = False) -> np.ndarray:
    """``(F,)`` required weight signs of :func:`feature_names` (``benchmarks/fit_merge.py``)."""
    return np.concatenate([FEATURE_SIGNS, SPECTRAL_SIGNS]) if spectral else FEATURE_SIGNS


@dataclass
class MergeModel:
    """Logistic regression over ``features`` (:data:`FEATURES`, + :data:`SPECTRAL_FEATURES` when ``spectral``):
    ``p = sigmoid(bias + weights . ((x - mean) / scale))``."""

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    spectral: bool = False
    owt: bool = False

    def logit(self, features: np.ndarray) -> np.ndarray:
        """``(m,)`` logit of ``p(same)`` for ``(m, F)`` features."""
        return self.bias + ((features - self.mean) / self.scale) @ self.weights

    def to_dict(self) -> dict:
        return {
            "features": list(feature_names(self.spectral, self.owt)),
            "weights": self.weights.tolist(),
            "bias": float(self.bias),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> MergeModel:
        names = list(data["features"])
        kinds = {(spectral, owt) for spectral in (False, True) for owt in (False, True)}
        found = [k for k in kinds if names == list(feature_names(*k))]
        if not found:
            raise ValueError("merge weights were fit on other features than granseg.regions.learned.FEATURES")
        arrays = [np.asarray(data[k], np.float64) for k in ("weights", "mean", "scale")]
        return cls(arrays[0], float(data["bias"]), arrays[1], arrays[2], *found[0])


@lru_cache(maxsize=3)
def default_model(leaves: str = "slic") -> MergeModel:
    """The shipped coefficients fit over ``leaves`` (a key of :data:`WEIGHTS_FILES`, next to this module).
    ``"slic-spectral"`` is not shipped (the cue did not pay): ``benchmarks/fit_merge.py --spectral`` writes it."""
    path = WEIGHTS_FILES[leaves]
    if not path.exists():
        raise FileNotFoundError(
            f"no merge weights {path.name} for {leaves!r}: fit them with benchmarks/fit_merge.py "
            f"{_fit_flags(leaves)}, or pass a MergeModel"
        )
    return MergeModel.from_dict(json.loads(path.read_text()))


def _fit_flags(key: str) -> str:
    """The ``benchmarks/fit_merge.py`` options that write the weights of ``key`` (e.g. ``"slic-owt"``)."""
    leaves, *extras = key.split("-")
    return " ".join(
        [*([] if leaves == "slic" and extras else [f"--leaves {leaves}"]), *(f"--{e}" for e in extras)]
    )


class NodeStats:
    """Additive statistics of up to ``2n - 1`` nodes over ``n`` leaves: area, perimeter (border length to other
    regions), summed CIELAB, the concatenated histograms of :data:`~granseg.regions.gradients.CHANNELS` and,
    with the spectral cue, the ``(n, k)`` summed spectral embedding ``embedding`` (None: no spectral cue; then
    the borders given to :meth:`pair_features` hold the oriented gradients only, else the sPb last)."""

    def __init__(self, area, perimeter, lab_sum, histograms, image_area: float, embedding=None) -> None:
        n = len(area)
        total = 2 * n - 1
        self.image_area = float(image_area)
        self.area = np.zeros(total)
        self.perimeter = np.zeros(total)
        self.lab = np.zeros((total, 3))
        self.hist = np.zeros((total, histograms.shape[1]))
        self.area[:n], self.perimeter[:n], self.lab[:n], self.hist[:n] = area, perimeter, lab_sum, histograms
        self.splits = np.cumsum([0, *(CHANNEL_BINS[c] for c in CHANNELS)])
        self.embedding = None
        if embedding is not None:
            self.embedding = np.zeros((total, embedding.shape[1]))
            self.embedding[:n] = embedding

    def merge(self, a: int, b: int, c: int, shared_length: float) -> None:
        self.area[c] = self.area[a] + self.area[b]
        self.perimeter[c] = self.perimeter[a] + self.perimeter[b] - 2.0 * shared_length
        self.lab[c] = self.lab[a] + self.lab[b]
        self.hist[c] = self.hist[a] + self.hist[b]
        if self.embedding is not None:
            self.embedding[c] = self.embedding[a] + self.embedding[b]

    def pair_features(self, a: np.ndarray, b: np.ndarray, borders: np.ndarray) -> np.ndarray:
        """``(m, F)`` features (:func:`feature_names`) of node pairs ``a``, ``b`` (``(m,)`` ints) with
        ``(m, 1 + G)`` borders: shared length, then the summed gradients along it (the sPb last with the
        spectral cue)."""
        length = np.maximum(borders[:, 0], 1e-9)
        area_a, area_b = self.area[a], self.area[b]
        pa = self.hist[a] / area_a[:, None]
        pb = self.hist[b] / area_b[:, None]
        terms = (pa - pb) ** 2 / (pa + pb + 1e-9)
        chi2 = [0.5 * terms[:, lo:hi].sum(1) for lo, hi in zip(self.splits[:-1], self.splits[1:])]
        lab = np.linalg.norm(self.lab[a] / area_a[:, None] - self.lab[b] / area_b[:, None], axis=1) / 100.0
        small, large = np.minimum(area_a, area_b), np.maximum(area_a, area_b)
        small_perimeter = np.where(area_a <= area_b, self.perimeter[a], self.perimeter[b])
        spectral = self.embedding is not None
        border = (borders[:, 1:-1] if spectral else borders[:, 1:]) / length[:, None]
        border_mean = border.mean(1)
        share = np.minimum(borders[:, 0] / np.maximum(small_perimeter, 1.0), 1.0)
        log_min_area = np.log(small / self.image_area)
        extra = []
        if spectral:
            distance = np.linalg.norm(
                self.embedding[a] / area_a[:, None] - self.embedding[b] / area_b[:, None], axis=1
            )
            extra = [np.log1p(borders[:, -1] / length), np.log1p(distance)]
        return np.column_stack(
            [
                border,
                *chi2,
                lab,
                log_min_area,
                np.log(large / self.image_area),
                share,
                np.log(border_mean + BORDER_LOG_OFFSET),
                border_mean * log_min_area,
                lab * log_min_area,
                share * log_min_area,
                *extra,
            ]
        )


def learned_merge(stats: NodeStats, edges, model: MergeModel, log: list | None = None, compiled: bool = True):
    """Greedy merging by ``p(same)`` of a region adjacency graph of ``n`` leaves (module docstring).

    ``edges``: ``(a, b, borders)`` with ``(E,)`` leaf pairs and ``(E, 1 + G)`` borders (length, summed
    gradients). ``log``: when a list, every evaluated pair is appended as ``(a, b, features, border_length)``
    arrays (for fitting). Returns ``parent``, ``children``, ``height`` and ``area`` over the ``2n - 1`` nodes at most.

    Without the spectral cue and the log, the loop runs compiled where numba is installed
    (:mod:`granseg.regions.learned_compiled`: the same merges, distances to ~1e-15); ``compiled`` False forces
    the Python loop."""
    n = (len(stats.area) + 1) // 2
    edge_a, edge_b, borders = edges
    if compiled and log is None and stats.embedding is None and default_backend() == "numba":
        from granseg.regions.learned_compiled import merge_loop

        parent, children, height, made = merge_loop(
            n,
            np.ascontiguousarray(edge_a, np.int64),
            np.ascontiguousarray(edge_b, np.int64),
            np.ascontiguousarray(np.atleast_2d(borders), np.float64),
            (stats.area, stats.perimeter, stats.lab, stats.hist),
            np.asarray(stats.splits, np.int64),
            stats.image_area,
            (
                *(np.ascontiguousarray(v, np.float64) for v in (model.mean, model.scale, model.weights)),
                float(model.bias),
                BORDER_LOG_OFFSET,
            ),
        )
        return parent, children, height, stats.area[:made].copy()
    neighbours: list[dict[int, np.ndarray]] = [dict() for _ in range(2 * n - 1)]
    for a, b, border in zip(edge_a.tolist(), edge_b.tolist(), borders):
        neighbours[a][b] = neighbours[b][a] = border

    def scored(a: np.ndarray, b: np.ndarray, border: np.ndarray) -> list:
        features = stats.pair_features(a, b, border)
        if log is not None:
            log.append((a.copy(), b.copy(), features, border[:, 0].copy()))
        distance = 1.0 / (1.0 + np.exp(model.logit(features)))  # 1 - p(same)
        return list(zip(distance.tolist(), a.tolist(), b.tolist()))

    def merge(a: int, b: int, c: int) -> None:
        stats.merge(a, b, c, float(neighbours[a][b][0]))

    def score_new(c: int, others: list[int], borders: list[np.ndarray]) -> list:
        return scored(np.full(len(others), c), np.asarray(others, np.int64), np.stack(borders))

    heap = scored(np.asarray(edge_a), np.asarray(edge_b), np.asarray(borders)) if len(edge_a) else []
    parent, children, height, made = agglomerate(n, neighbours, heap, merge, score_new)
    return parent, children, height, stats.area[:made].copy()
