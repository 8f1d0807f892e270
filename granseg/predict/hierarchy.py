"""The weight-free ``hierarchy`` predictor: the package's region hierarchy (:mod:`granseg.regions`) answering
point / box / granularity prompts.

``set_image`` builds the merge tree of superpixels (:func:`granseg.regions.tree.build_region_tree`).
``predict``:

* Each positive click has a chain of nested regions, its leaf superpixel up to the *top*: the most persistent
  chain region covering ``[min_object_fraction, max_object_fraction]`` of the image (the largest region before
  a strong-boundary merge, never the whole image). g picks a region of the full chain by the UnSAMv2 sqrt-area
  formula (leaf 0.1, top 1.0; :mod:`granseg.regions.chains`), so one click answers up to ten nested masks from
  the leaf-level part to the whole object. Several positive clicks give the union of their regions.
* Negative clicks: every superpixel goes to its nearest click under the ultrametric (the height of the lowest
  common ancestor: a seeded watershed cut of the hierarchy), so a negative click removes the sub-region it is in.
* GrabCut over the superpixels (``refine``; for a single click too with ``refine_single_click``, the
  default, starting from the chain region at g, ``refine_iterations`` rounds;
  :func:`granseg.regions.graphcut.grabcut_leaves`): Gaussian-mixture colour models of the reference selection
  and of the rest, a boundary-aware smoothness term and every click so far as a hard constraint. Single-click
  answers are then made nested by a running union over the ten standard levels (the answer at g does not depend
  on the other g asked). From the second click the reference is the previous answer when it comes back as
  ``mask_input`` (the ``low_res_logits`` of the last call, +-10 on the internal grid), corrected by the last
  click's own region at g (grown for a positive click, cut for a negative one; at most ``correction_size`` x
  the previous answer's area and holding no click of the other label); else the hierarchy's selection.
* One click at g = 1.0: also GrabCut over the leaves seeded by a disk of ``object_prior_radius`` x the long side
  around the click (as cv2.grabCut is seeded from one click); its union with the chain answer is the g = 1.0
  answer where its outline contrast is at least ``object_prior_contrast`` x the chain answers' and it covers at
  most ``max_object_fraction`` of the image.
* Pixel-accurate outlines (``pixel_band`` > 0): the pixels near each answer's outline are relabelled by a graph
  cut with GrabCut's per-pixel energy (:func:`granseg.regions.pixelcut.refine_outline`); ``low_res_logits``
  are the refined internal masks.
* A box restricts candidate regions to those mostly inside it and clips the mask to it; a box without points
  uses its centre as the positive click.

Scores: a single click's answer scores the persistence in the tree of the region g picked on its chain
(:func:`granseg.regions.chains.node_score`: whole objects with a strong outline high, fragments of a uniform area
low); several clicks score the boundary contrast of the mask's outline
(:func:`granseg.regions.chains.selection_contrast`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from granseg.config import Config
from granseg.predict.base import GRANULARITY_LEVELS, BasePredictor, Prediction
from granseg.regions import chains as ch
from granseg.regions.tree import RegionTree, TreeParams, build_region_tree

LOGIT = 10.0  # magnitude of the returned low-res logits (inside +, outside -)


@dataclass
class HierarchyConfig(Config):
    """Parameters of the weight-free hierarchy predictor (see docs/hierarchy.md)."""

    internal_long_side: int = 448
    n_superpixels: int = 700
    slic_compactness: float = 12.0
    boundary_weight: float = 1.0
    colour_weight: float = 1.0
    texture_weight: float = 0.3
    small_region_fraction: float = 0.004
    boundary_texture_weight: float = 0.0
    height_power: float = 3.0  # learned tree: heights (1 - p(same)) ** this (TreeParams)
    min_object_fraction: float = 0.01
    max_object_fraction: float = 0.7
    part_min_fraction: float = 0.05
    refine: bool = True
    refine_single_click: bool = True
    refine_smoothness: float = 2.0
    refine_prior: float = 0.1
    refine_memory: float = 0.5  # prior weight towards the previous answer (mask_input)
    correction_size: float = 0.5  # a correction click's region: at most this x the previous answer's area
    correction_min_fraction: float = 0.0  # ... or this fraction of the image, whichever is larger
    refine_iterations: int = 3
    gmm_components: int = 5
    object_prior_radius: float = 0.2  # single click, g = 1.0: also a cut from a disk of this x the long side
    object_prior_iterations: int = 5
    object_mode: bool = False
    object_prior_contrast: float = 1.0  # ... kept where its outline contrast is >= this x the chain answer's
    pixel_band: int = 4  # pixel-accurate outline: graph cut over the pixels this close to it (0: off)
    pixel_smoothness: float = 50.0
    tree_merge: str = "learned"  # the region tree's merge criterion: "learned" (shared tree) or "handcrafted"

    def validate(self) -> None:
        from granseg.errors import InputError
        from granseg.regions.tree import MERGE_CRITERIA

        if self.tree_merge not in MERGE_CRITERIA:
            raise InputError(f"tree_merge must be one of {MERGE_CRITERIA}, got {self.tree_merge!r}")

    def tree_params(self) -> TreeParams:
        """The :class:`TreeParams` fields of this config (same names, same values)."""
        return TreeParams(**{f.name: getattr(self, f.name) for f in fields(TreeParams)})


class HierarchyModel:
    """Weight-free model object (registry contract: ``.name`` and ``.create_predictor()``)."""

    name = "hierarchy"

    def __init__(self, config: HierarchyConfig | None = None, device: str = "cpu") -> None:
        self.config = config or HierarchyConfig()
        self.device = device  # unused: pure CPU

    def create_predictor(self) -> HierarchyPredictor:
        return HierarchyPredictor(self.config)


def build_hierarchy(device: str = "cpu", **overrides) -> HierarchyModel:
    """Registry builder: ``HierarchyConfig`` fields may be overridden by keyword."""
    return HierarchyModel(
        HierarchyConfig.from_dict({**HierarchyConfig().to_dict(), **overrides}), device=device
    )


class HierarchyPredictor(BasePredictor):
    """Predictor over a :class:`~granseg.regions.tree.RegionTree`; see the module docstring for the rules."""

    model_name = "hierarchy"

    def __init__(self, config: HierarchyConfig | None = None) -> None:
        super().__init__()
        self.config = config or HierarchyConfig()
        self.tree: RegionTree | None = None

    def _set_image(self, image: np.ndarray) -> None:
        self.tree = build_region_tree(image, self.config.tree_params(), merge=self.config.tree_merge)
        self._original_size = image.shape[:2]
        self._pixels = None
        if self.config.pixel_band > 0:
            self._pixels = _pixel_image(image, self.config.internal_long_side, self.tree)

    def _chain(self, leaf: int, box_counts) -> tuple[np.ndarray, np.ndarray]:
        """The chain regions of a click's leaf up to its top, and their granularity levels."""
        tree, cfg = self.tree, self.config
        chain = tree.chain(int(tree.leaf_node[leaf]))
        allowed = None
        if box_counts is not None:
            nodes = np.asarray(chain)
            allowed = box_counts[tree.hi[nodes]] - box_counts[tree.lo[nodes]] >= 0.8 * tree.area[nodes]
        top = ch.chain_top(tree, chain, cfg.min_object_fraction, cfg.max_object_fraction, allowed)
        return ch.chain_levels(tree, chain, top, cfg.part_min_fraction)

    def _predict(self, points, labels, box, granularity, mask_input) -> Prediction:
        tree, cfg = self.tree, self.config
        assert tree is not None
        if len(points) == 0 or not (labels == 1).any():
            centre = np.array([[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]])
            points, labels = np.concatenate([points, centre]), np.concatenate([labels, [1]])
        leaves = ch.points_to_leaves(tree, points, self._original_size)
        box_counts = ch.leaf_box_counts(tree, box, self._original_size) if box is not None else None
        chains = [self._chain(leaf, box_counts) for leaf in leaves]
        refine = cfg.refine and (len(points) > 1 or cfg.refine_single_click)
        previous = None
        if refine and mask_input is not None and len(points) > 1:
            previous = [ch.selection_from_mask(tree, np.asarray(m) > 0) for m in np.asarray(mask_input)]
        nested = refine and len(points) == 1
        # one click with the cut: every standard level up to the largest g asked is answered and the answers are
        # made nested by a running union from small to large g, so the mask at g does not depend on the other g
        levels = (
            sorted({*(v for v in GRANULARITY_LEVELS if v <= max(granularity)), *map(float, granularity)})
            if nested
            else list(map(float, granularity))
        )
        selections = np.zeros((len(levels), tree.n_leaves), bool)
        scores = np.zeros(len(levels))
        # levels that pick the same regions share one cut
        answered: dict[tuple, tuple[np.ndarray, float]] = {}
        for k, g in enumerate(levels):
            prior = None if previous is None else previous[min(k, len(previous) - 1)]
            key = (
                tuple(ch.node_for_granularity(nodes, levels_, g) for nodes, levels_ in chains),
                None if prior is None else prior.tobytes(),
            )
            if key not in answered:
                if cfg.object_mode and g >= 1.0 - 1e-9 and len(points) > 1 and refine:
                    first = points[np.flatnonzero(labels == 1)[0]]
                    answered[key] = (self._object_prior_cut(first, leaves, labels), 0.0)
                else:
                    answered[key] = self._answer(leaves, labels, chains, g, prior, refine)
            selections[k], scores[k] = answered[key]
        if nested and levels[-1] >= 1.0 - 1e-9 and cfg.object_prior_radius > 0:
            union = selections[-1] | self._object_prior_cut(points[0], leaves, labels)
            # the larger answer only where its outline is the stronger boundary (not a cut through background)
            # and never above max_object_fraction of the image (the chain top's own cap)
            small_enough = tree.leaf_area[union].sum() <= cfg.max_object_fraction * tree.leaf_map.size
            if small_enough and ch.selection_contrast(
                tree, union
            ) >= cfg.object_prior_contrast * ch.selection_contrast(
                tree, np.logical_or.reduce(selections, axis=0)
            ):
                selections[-1] = union
        if nested:
            selections = np.logical_or.accumulate(selections, axis=0)
        small = self._outlines(selections, points, labels)
        if nested:
            small = np.logical_or.accumulate(small, axis=0)
            rows = [levels.index(float(g)) for g in granularity]
            small, scores = small[rows], scores[rows]
        masks = np.stack([self._to_mask(m, box) for m in small])
        logits = np.where(small, LOGIT, -LOGIT).astype(np.float32)
        return Prediction(
            masks=masks,
            scores=scores,
            granularity=np.asarray(granularity, dtype=np.float64),
            low_res_logits=logits,
        )

    def _answer(self, leaves, labels, chains, g: float, previous, refine: bool) -> tuple[np.ndarray, float]:
        """Leaf selection and score at one g (see the module docstring)."""
        from granseg.regions.graphcut import grabcut_leaves

        tree, cfg = self.tree, self.config
        positives, negatives = leaves[labels == 1], leaves[labels == 0]
        picked = [
            ch.node_for_granularity(nodes, levels, g) for (nodes, levels), lab in zip(chains, labels) if lab
        ]
        if previous is None:
            reference = np.zeros(tree.n_leaves, bool)
            for node in picked:
                reference[tree.lo[node] : tree.hi[node]] = True
            if len(negatives):
                keep = ch.ultrametric_distance(tree, positives) < ch.ultrametric_distance(tree, negatives)
                reference &= keep
            prior_weight = cfg.refine_prior
        else:  # the previous answer, corrected by the last click's own region at g
            reference = previous.copy()
            nodes, levels = chains[-1]
            below = [
                n for n in tree.chain(int(tree.leaf_node[leaves[-1]])) if tree.area[n] < tree.area[nodes[0]]
            ]
            nodes = np.concatenate([np.asarray(below, dtype=nodes.dtype), nodes])  # from the leaf up
            levels = np.concatenate([np.zeros(len(below)), levels])
            other = negatives if labels[-1] == 1 else positives
            budget = max(
                cfg.correction_size * float(tree.leaf_area[previous].sum()),
                cfg.correction_min_fraction * float(tree.leaf_map.size),
            )
            node = ch.node_for_click(tree, nodes, levels, g, other, budget)
            if node is not None:
                reference[tree.lo[node] : tree.hi[node]] = bool(labels[-1] == 1)
            prior_weight = cfg.refine_memory
        reference[positives] = True
        reference[negatives] = False
        one_click = len(leaves) == 1
        if not refine:
            return reference, ch.node_score(tree, picked[0]) if one_click else ch.selection_contrast(
                tree, reference
            )
        selected = grabcut_leaves(
            tree,
            reference,
            positives,
            negatives,
            cfg.refine_smoothness,
            prior_weight,
            cfg.refine_iterations,
            components=cfg.gmm_components,
        )
        return selected, ch.node_score(tree, picked[0]) if one_click else ch.selection_contrast(
            tree, selected
        )

    def _object_prior_cut(self, point: np.ndarray, leaves: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``(n_leaves,)`` bool: GrabCut over the leaves from the leaves mostly inside a disk of radius
        ``object_prior_radius`` x the long side around the ``(2,)`` (x, y) click (original pixels), as
        cv2.grabCut is seeded from one click; the whole object's colour model when the chain top is only a part."""
        from granseg.regions.graphcut import grabcut_leaves

        tree, cfg = self.tree, self.config
        reference = ch.disk_selection(tree, point, self._original_size, cfg.object_prior_radius)
        return grabcut_leaves(
            tree,
            reference,
            leaves[labels == 1],
            leaves[labels == 0],
            cfg.refine_smoothness,
            cfg.refine_prior,
            cfg.object_prior_iterations,
            components=cfg.gmm_components,
        )

    def _outlines(self, selections: np.ndarray, points, labels) -> np.ndarray:
        """``(K, h, w)`` bool internal masks of ``(K, n_leaves)`` selections, with pixel-accurate outlines
        (:func:`granseg.regions.pixelcut.refine_outline`) when ``pixel_band`` > 0."""
        from granseg.regions.colour import bin_log_likelihood_ratio
        from granseg.regions.pixelcut import refine_outline

        tree, cfg = self.tree, self.config
        small = selections[:, tree.leaf_map]
        if self._pixels is None:
            return small
        height, width = tree.leaf_map.shape
        fixed = np.zeros((height, width), np.int8)
        cols = np.clip(np.floor(points[:, 0] * width / self._original_size[1]), 0, width - 1).astype(int)
        rows = np.clip(np.floor(points[:, 1] * height / self._original_size[0]), 0, height - 1).astype(int)
        for x, y, label in zip(cols, rows, labels):
            fixed[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = 1 if label == 1 else -1
        done: dict[bytes, np.ndarray] = {}
        out = np.empty_like(small)
        for k, selection in enumerate(selections):
            key = selection.tobytes()
            if key not in done and (selection.all() or not selection.any()):
                done[key] = small[k]
            if key not in done:
                ratio = bin_log_likelihood_ratio(tree, selection, cfg.gmm_components)
                done[key] = refine_outline(
                    self._pixels, small[k], ratio, fixed, cfg.pixel_band, cfg.pixel_smoothness
                )
            out[k] = done[key]
        return out

    def _to_mask(self, small: np.ndarray, box) -> np.ndarray:
        mask = _upsample(small, self._original_size)
        if box is not None:
            x0, y0 = np.floor(box[:2]).astype(int).tolist()
            x1, y1 = np.ceil(box[2:]).astype(int).tolist()
            clipped = np.zeros_like(mask)
            clipped[y0:y1, x0:x1] = mask[y0:y1, x0:x1]
            mask = clipped
        return mask


def _upsample(small: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """``h x w`` bool internal mask -> ``H x W`` bool (bilinear, threshold 0.5)."""
    import cv2

    if small.shape == tuple(original_size):
        return small.copy()
    big = cv2.resize(
        small.astype(np.float32), (original_size[1], original_size[0]), interpolation=cv2.INTER_LINEAR
    )
    return big > 0.5


def _pixel_image(image: np.ndarray, long_side: int, tree: RegionTree):
    """:class:`granseg.regions.pixelcut.PixelImage` of the internal image behind ``tree``."""
    from granseg.regions.cues import colour_bins, to_lab
    from granseg.regions.pixelcut import pixel_image
    from granseg.regions.superpixels import resize_long_side

    small, _ = resize_long_side(image, long_side)
    lab = to_lab(small)
    bins, centres = colour_bins(lab)
    used, index = np.unique(bins.ravel(), return_inverse=True)
    assert len(used) == len(tree.colour_centres), "colour bins differ from the tree's"
    return pixel_image(lab, index.reshape(bins.shape))
