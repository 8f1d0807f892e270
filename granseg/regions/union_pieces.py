"""Which pieces of a single click's disk-cut union belong to the object: boosted trees over piece geometry and
colour, fit on synthetic scenes with exact ground truth (``benchmarks/fit_union_pieces.py``), the trees shipped
in ``union_pieces.json``.

At g = 1.0 a single click's answer is the chain's cut (the *base*) joined with the connected pieces of a second
cut grown from a disk around the click (the predictor's ``object_prior_radius``): the object's other parts when
the chain top is only a part of it, but also a touching neighbour object or background. Each piece of the second
cut outside the base is described by :data:`FEATURES` and kept when the model's probability that it lies inside
the object is at least 0.5. The hand-made alternative is :func:`granseg.regions.chains.chroma_close_pieces`.

Conventions: a *selection* is an ``(n_leaves,)`` bool over the tree's leaf ranks; geometry is measured on the
tree's internal image (``tree.leaf_map``, ``h x w``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from granseg.regions.chains import chroma_close_pieces, leaf_pieces, piece_mean_colours, shared_outline
from granseg.regions.tree import RegionTree

WEIGHTS_PATH = Path(__file__).with_name("union_pieces.json")

FEATURES = (
    "log_area_ratio",  # log(piece area / base area)
    "chroma_distance",  # CIELAB (a, b) distance of the area-weighted mean colours / 50
    "lightness_distance",  # |L| difference of the mean colours / 50
    "shared_outline",  # fraction of the piece's outline on the base (chains.shared_outline)
    "inside_hull",  # fraction of the piece's pixels inside the base's convex hull
    "solidity_gain",  # solidity (area / convex-hull area) of base + piece minus the base's own
    "base_solidity",  # the base's solidity
    "image_border",  # fraction of the piece's pixels on the image border (x 10, clipped to 1)
)


def piece_features(tree: RegionTree, base: np.ndarray, added: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The connected pieces of ``added`` outside ``base`` and their :data:`FEATURES`.

    Args:
        base: ``(n_leaves,)`` bool, the chain's answer (not empty).
        added: ``(n_leaves,)`` bool, the second cut; ``base``'s leaves are ignored.
    Returns:
        ``piece``: ``(n_leaves,)`` int piece label per leaf, -1 outside every piece (labels as
        :func:`~granseg.regions.chains.leaf_pieces`: >= 0, not consecutive); ``features``: ``(n_leaves, F)``
        float64 indexed by piece label (rows of labels no piece has are zero).
    """
    base = np.asarray(base, bool)
    added = np.asarray(added, bool) & ~base
    n = tree.n_leaves
    features = np.zeros((n, len(FEATURES)))
    piece = leaf_pieces(tree, added)
    labels = np.unique(piece[added])
    if not len(labels) or not base.any():
        return piece, features
    area = tree.leaf_area.astype(np.float64)
    base_area = area[base].sum()
    base_mean = (tree.leaf_lab[base].astype(np.float64) * area[base, None]).sum(axis=0) / base_area
    means, weight = piece_mean_colours(tree, piece)
    shared = shared_outline(tree, piece, base)

    base_pixels = base[tree.leaf_map]
    base_hull = _hull_points(base_pixels)
    hull_mask = np.zeros(base_pixels.shape, np.uint8)
    cv2.fillPoly(hull_mask, [base_hull], 1)
    piece_pixels = np.where(added[tree.leaf_map], piece[tree.leaf_map], -1)
    border = np.zeros(piece_pixels.shape, bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    base_count = int(base_pixels.sum())
    base_solidity = base_count / max(int(hull_mask.sum()), 1)
    for label in labels:
        pixels = piece_pixels == label
        count = max(int(pixels.sum()), 1)
        hull = cv2.convexHull(np.concatenate([base_hull, _hull_points(pixels)]))
        union_solidity = (base_count + count) / _filled_count(hull)
        features[label] = (
            np.log(weight[label] / base_area + 1e-3),
            np.hypot(*(means[label, 1:] - base_mean[1:])) / 50.0,
            abs(means[label, 0] - base_mean[0]) / 50.0,
            shared[label],
            float(hull_mask[pixels].mean()),
            union_solidity - base_solidity,
            base_solidity,
            min(10.0 * np.count_nonzero(pixels & border) / count, 1.0),
        )
    return piece, features


def learned_pieces(
    tree: RegionTree,
    base: np.ndarray,
    added: np.ndarray,
    same_chroma: float = 0.0,
    weights_path: Path = WEIGHTS_PATH,
) -> np.ndarray:
    """``(n_leaves,)`` bool: the pieces of ``added`` outside ``base`` the shipped model keeps (probability >= 0.5
    that the piece lies inside the object; see the module docstring), and every piece whose mean CIELAB (a, b)
    lies within ``same_chroma`` of the base's (0: none): the model never saw a photograph, where a chain answer
    far short of the object is common and the rest of the object, of the same colour, comes as one piece many
    times its size, a size the synthetic scenes give mostly to background."""
    base = np.asarray(base, bool)
    if not base.any():  # nothing to compare the pieces with: every piece (as chains.chroma_close_pieces)
        return np.asarray(added, bool).copy()
    piece, features = piece_features(tree, base, added)
    inside = piece >= 0
    if not inside.any():
        return inside
    labels = np.unique(piece[inside])
    keep = np.zeros(len(features), bool)
    keep[labels] = load_model(str(weights_path)).log_odds(features[labels]) >= 0.0
    keep[labels] |= features[labels, FEATURES.index("chroma_distance")] * 50.0 < same_chroma
    return inside & keep[np.maximum(piece, 0)]


class BoostedTrees:
    """A gradient-boosted ensemble of small regression trees over :data:`FEATURES` (binary log-loss), read from
    the JSON ``benchmarks/fit_union_pieces.py`` writes: ``init`` (the log-odds before any tree),
    ``learning_rate`` and ``trees``, each with per-node lists ``feature``, ``threshold``, ``left``, ``right`` and
    ``value`` (a node with ``left`` -1 is a leaf; a sample goes left when its feature, as float32, is <=
    ``threshold``, as in scikit-learn)."""

    def __init__(self, data: dict) -> None:
        if tuple(data["features"]) != FEATURES:
            raise ValueError(f"model features {data['features']} are not {list(FEATURES)}")
        self.init = float(data["init"])
        self.learning_rate = float(data["learning_rate"])
        self.trees = [
            tuple(np.asarray(tree[key]) for key in ("feature", "threshold", "left", "right", "value"))
            for tree in data["trees"]
        ]

    def log_odds(self, features: np.ndarray) -> np.ndarray:
        """``(S,)`` log-odds that each of ``(S, F)`` feature rows is a piece of the object."""
        x = np.asarray(features, np.float32)
        rows = np.arange(len(x))
        total = np.full(len(x), self.init)
        for feature, threshold, left, right, value in self.trees:
            node = np.zeros(len(x), np.int64)
            for _ in range(len(left)):  # a tree of n nodes is at most n - 1 deep
                inner = left[node] >= 0
                if not inner.any():
                    break
                goes_left = x[rows, np.maximum(feature[node], 0)] <= threshold[node]
                node = np.where(inner, np.where(goes_left, left[node], right[node]), node)
            total += self.learning_rate * value[node]
        return total


@lru_cache(maxsize=4)
def load_model(path: str) -> BoostedTrees:
    """The :class:`BoostedTrees` stored at ``path`` (read once per process)."""
    return BoostedTrees(json.loads(Path(path).read_text()))


def _filled_count(polygon: np.ndarray) -> int:
    """Pixels covered by a ``(K, 1, 2)`` int32 convex polygon (x, y) drawn filled (its outline included), >= 1."""
    x0, y0 = polygon[:, 0].min(axis=0)
    x1, y1 = polygon[:, 0].max(axis=0)
    canvas = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillConvexPoly(canvas, polygon - np.array([x0, y0], np.int32), 1)
    return max(int(canvas.sum()), 1)


def _hull_points(mask: np.ndarray) -> np.ndarray:
    """``(K, 1, 2)`` int32 convex-hull points (x, y) of the pixels of an ``h x w`` bool mask (not empty)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return cv2.convexHull(np.concatenate(contours)).astype(np.int32)


PIECE_RULES = ("chroma", "learned")


def select_pieces(
    tree: RegionTree,
    base: np.ndarray,
    added: np.ndarray,
    rule: str,
    max_chroma: float,
    keep_shared: float,
    same_chroma: float = 0.0,
) -> np.ndarray:
    """``(n_leaves,)`` bool: the pieces of ``added`` (outside ``base``) a single click's g = 1.0 answer takes.

    ``rule``: "learned" (:func:`learned_pieces` with ``same_chroma``) or "chroma" (the hand-made gate,
    :func:`~granseg.regions.chains.chroma_close_pieces` with ``max_chroma`` and ``keep_shared``)."""
    if rule == "learned":
        return learned_pieces(tree, base, added, same_chroma)
    if rule == "chroma":
        return chroma_close_pieces(tree, base, added, max_chroma, keep_shared)
    raise ValueError(f"unknown piece rule {rule!r}; expected one of {PIECE_RULES}")
