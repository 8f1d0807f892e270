"""The weight-free ``hierarchy`` predictor: the package's region hierarchy (:mod:`granseg.regions`) answering
point / box / granularity prompts.

``set_image`` builds the merge tree of superpixels (:func:`granseg.regions.tree.build_region_tree`).
``predict``:

* Each positive click has a chain of nested regions, its leaf superpixel up to the *top*: among the chain
  regions covering ``[min_object_fraction, max_object_fraction]`` of the image, the one with the largest
  persistence x (area fraction) ** ``top_size_power`` (a region before a strong-boundary merge, larger ones
  preferred among similarly persistent ones; never the whole image). g picks a region of the full chain by the UnSAMv2 sqrt-area
  formula (leaf 0.1, top 1.0; :mod:`granseg.regions.chains`), so one click answers up to ten nested masks from
  the leaf-level part to the whole object. For a single click the levels start at the smallest chain region
  whose colours differ from its surroundings' by at least ``part_min_distinct`` (a texture fragment of a part
  is not a part: :func:`granseg.regions.chains.colour_distinctness`; when none does, at the leaf as before);
  in a featureless area (a blank backdrop: :mod:`granseg.regions.flat`, ``flat_area_spread``) at the smallest
  region holding it, which may then exceed ``max_object_fraction``. Several positive clicks give the union of
  their regions.
* Negative clicks: every superpixel goes to its nearest click under the ultrametric (the height of the lowest
  common ancestor: a seeded watershed cut of the hierarchy), so a negative click removes the sub-region it is in.
* GrabCut over the superpixels (``refine``; for a single click too with ``refine_single_click``, the
  default, starting from the chain region at g, ``refine_iterations`` rounds;
  :func:`granseg.regions.graphcut.grabcut_leaves`): Gaussian-mixture colour models of the reference selection
  and of the rest, a boundary-aware smoothness term and every click so far as a hard constraint. Single-click
  answers are then made nested by a running union over the ten standard levels (the answer at g does not depend
  on the other g asked); with ``clip_to_next_level`` a refined answer that spilled past the chain's next larger
  region with colours of its own (below the top) is first cut to that region's pixels (a part's answer does not
  spread into its sibling parts; no extra graph cut). From the second click the reference is the previous
  answer when it comes back as ``mask_input`` (the ``low_res_logits`` of the last call, +-10 on the internal
  grid), corrected by the last click's own region at g (grown for a positive click, cut for a negative one; at
  most ``correction_size`` x the previous answer's area and holding no click of the other label); else the
  hierarchy's selection.
  After the cut, that region keeps the click's label (``correction_keep_size``: when it is at most that x the
  previous answer's area): the cut's colour model and memory of the previous answer otherwise put a spill of
  the object's colours straight back, and negative clicks in it change nothing.
* One click at g = 1.0: also GrabCut over the leaves seeded by a disk of ``object_prior_radius`` x the long side
  around the click (as cv2.grabCut is seeded from one click); its union with the chain answer is the g = 1.0
  answer where it covers at most ``max_object_fraction`` of the image (and, with ``object_prior_contrast`` > 0,
  where its outline contrast is at least that x the chain answers'; the default 0 keeps the union: the gate
  dropped whole objects whose parts have the stronger outline; ``object_prior_max_chroma``: a hue gate).
* A correction click's reach (``correction_reach`` > 0, :mod:`granseg.regions.reach`): the leaves within
  ``correction_reach`` x the click's distance to the previous answer's outline (at least
  ``correction_min_reach`` internal pixels). A cut that changes more area than the reach covers, or breaks an
  earlier click's neighbourhood (its leaves within ``correction_min_reach``), is replaced by the previous answer
  edited by the cut only within the reach: a click a few pixels off the outline edits the outline there, it does
  not flood the background of the object's colours.
* Guards on a correction's answer (:func:`granseg.regions.reach.guard_correction`): a positive correction only
  adds leaves, a negative one only removes them (``correction_sign``); a negative one never separates two
  earlier positive clicks (``correction_split_guard``); a leaf a positive one adds must look more like the
  click's leaf than like the negative clicks' (``correction_colour_vote``); a leaf a negative one removes goes
  back where the kept answer reaches it over lower tree boundaries than the click does (``correction_watershed``,
  off).
* ``correction_max_change`` > 0 (off): a correction's cut changing more than the previous answer's area or that
  fraction of the image falls back to the reference it started from.
* Pixel-accurate outlines (``pixel_band`` > 0): the pixels near each answer's outline are relabelled by a graph
  cut with GrabCut's per-pixel energy (:func:`granseg.regions.pixelcut.refine_outline`); ``low_res_logits``
  are the refined internal masks.
* A box restricts candidate regions to those mostly inside it and clips the mask to it; a box without points
  uses its centre as the positive click.
* ``partition(g)``: the whole image at g as one cut of the tree (:mod:`granseg.regions.cuts`; one split height
  per g, so unlike the clicks' chain-relative g the ten partitions are nested cuts of one tree).

Speed: all GrabCuts of a call run side by side (:func:`granseg.regions.graphcut.grabcut_many`), colour models are
cached per selection for the image (:class:`granseg.regions.colour.LeafColours`, built in ``set_image``), every
min cut is solved by a compiled Boykov-Kolmogorov max flow where numba is installed (else scipy's; the same
answers, :mod:`granseg.regions.maxflow`), and with numba the colour EM is compiled, each GrabCut round is one
compiled call whose later rounds restart the max flow from the previous round's flow (the same answers up to
~1e-10 in the colour models; the same masks), and each pixel band is found and cut in the window of the mask by
one compiled call; the cuts of a call run on ``cut_threads`` threads (0, the default: 2 where the process has 2
cores, :func:`granseg.regions.maxflow.auto_cut_threads`), and the last ``ANSWER_CACHE`` answers are kept per
request.

Scores: a single click's answer scores the persistence in the tree of the region g picked on its chain
(:func:`granseg.regions.chains.node_score`: whole objects with a strong outline high, fragments of a uniform area
low); several clicks score the boundary contrast of the mask's outline
(:func:`granseg.regions.chains.selection_contrast`).
"""

from __future__ import annotations

import time

import numpy as np

from granseg.predict.base import GRANULARITY_LEVELS, BasePredictor, Granularity, Prediction, parse_granularity
from granseg.predict.hierarchy_config import HierarchyConfig
from granseg.regions import chains as ch
from granseg.regions.colour import LeafColours
from granseg.regions.consensus import build_consensus_tree
from granseg.regions.ensemble import UCM_STARTS
from granseg.regions.flat import area_start, featureless_areas
from granseg.regions.graphcut import CutJob, grabcut_many
from granseg.regions.maxflow import thread_pool
from granseg.regions.pixelcut import tree_pixel_image
from granseg.regions.reach import guard_correction
from granseg.regions.tree import RegionTree, build_region_tree
from granseg.regions.union_pieces import select_pieces

LOGIT = 10.0  # magnitude of the returned low-res logits (inside +, outside -)
ANSWER_CACHE = 16  # answers kept per image (HierarchyPredictor._answers)


class HierarchyModel:
    """Weight-free model object (registry contract: ``.name`` and ``.create_predictor()``)."""

    name = "hierarchy"

    def __init__(self, config: HierarchyConfig | None = None, device: str = "cpu") -> None:
        self.config = config or HierarchyConfig()
        self.device = device  # unused: pure CPU

    def create_predictor(self) -> HierarchyPredictor:
        return HierarchyPredictor(self.config)

    def warm_up(self) -> float:
        """Compile the click path's numba code now; returns the seconds it took. A fresh install's first click
        otherwise pays ~25 s of CPU for it (numba caches the result on disk, so later processes start warm).
        Runs one click at every g and one correction click with a negative point on a small synthetic image."""
        start = time.perf_counter()
        yy, xx = np.mgrid[:96, :128]
        image = np.zeros((96, 128, 3), np.uint8)
        image[...] = (40, 90, 160)
        image[(yy - 48) ** 2 + (xx - 60) ** 2 < 30**2] = (200, 60, 40)  # a disk ...
        image[40:56, 52:68] = (240, 220, 90)  # ... with a part
        predictor = self.create_predictor()
        predictor.set_image(image)
        first = predictor.predict([[60, 48]], [1], granularity="all")
        predictor.predict([[60, 48], [20, 10]], [1, 0], granularity=0.5, mask_input=first.low_res_logits[-1:])
        return time.perf_counter() - start


def build_hierarchy(device: str = "cpu", **overrides) -> HierarchyModel:
    """Registry builder: ``HierarchyConfig`` fields may be overridden by keyword."""
    return HierarchyModel(HierarchyConfig.from_dict(overrides), device=device)


class HierarchyPredictor(BasePredictor):
    """Predictor over a :class:`~granseg.regions.tree.RegionTree`; see the module docstring for the rules."""

    model_name = "hierarchy"

    def __init__(self, config: HierarchyConfig | None = None) -> None:
        super().__init__()
        self.config = config or HierarchyConfig()
        self.tree: RegionTree | None = None

    def _set_image(self, image: np.ndarray) -> None:
        if self.config.tree_starts > 1 and self.config.tree_merge == "learned":
            starts = UCM_STARTS[: self.config.tree_starts]
            self.tree = build_consensus_tree(image, self.config.tree_params(), starts)
        else:
            self.tree = build_region_tree(image, self.config.tree_params(), merge=self.config.tree_merge)
        self._original_size = image.shape[:2]
        self._colours = LeafColours(self.tree, self.config.gmm_components)
        self._leaf_index = self.tree.leaf_map.astype(np.intp)  # painting selections: ~2x faster than int32
        self._flat = featureless_areas(self.tree, self.config.flat_area_spread)
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._pixels = None
        if self.config.pixel_band > 0:
            self._pixels = tree_pixel_image(image, self.config.internal_long_side, self.tree)

    def _chain(
        self, leaf: int, box_counts, distinct: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The chain regions of a click's leaf up to its top, their granularity levels (from the smallest region
        with colours of its own, ``part_min_distinct``, when ``distinct``: a single click's chain) and their
        ``colour_distinctness`` (None when not computed: not ``distinct`` or ``part_min_distinct`` 0)."""
        tree, cfg = self.tree, self.config
        chain = tree.chain(int(tree.leaf_node[leaf]))
        if distinct and self._flat[leaf] >= 0:  # in a featureless area: no level inside it (regions.flat)
            chain = chain[area_start(tree, chain, self._flat == self._flat[leaf]) :]
        allowed = None
        if box_counts is not None:
            nodes = np.asarray(chain)
            allowed = box_counts[tree.hi[nodes]] - box_counts[tree.lo[nodes]] >= 0.8 * tree.area[nodes]
        top = ch.chain_top(
            tree,
            chain,
            cfg.min_object_fraction,
            cfg.max_object_fraction,
            allowed,
            cfg.top_size_power,
        )
        min_distinct, min_fraction = (
            (cfg.part_min_distinct, cfg.single_click_min_fraction)
            if distinct
            else (0.0, cfg.part_min_fraction)
        )
        fragments = cfg.part_fragment_distinct if distinct else 0.0
        return ch.chain_levels(
            tree, chain, top, min_fraction, min_distinct, cfg.part_max_recurrence, fragments
        )

    def partition(self, granularity: Granularity = 1.0) -> np.ndarray:
        """Whole-image partitions: ``(G, H, W)`` int32 region labels at the original size, one map per g of
        ``granularity`` (a number, a list or "all"): the tree's cut at one split height per g, nested across g
        (:func:`granseg.regions.cuts.partitions`)."""
        from granseg.regions.cuts import partitions

        cfg, levels, size = self.config, parse_granularity(granularity), self.image_size
        return partitions(self.tree, levels, cfg.partition_finest, cfg.partition_coarsest, size)

    def _predict(self, points, labels, box, granularity, mask_input) -> Prediction:
        tree, cfg = self.tree, self.config
        assert tree is not None
        if len(points) == 0 or not (labels == 1).any():
            centre = np.array([[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]])
            points, labels = np.concatenate([points, centre]), np.concatenate([labels, [1]])
        refine = cfg.refine and (len(points) > 1 or cfg.refine_single_click)
        previous = reach = None
        if refine and mask_input is not None and len(points) > 1:
            previous = [ch.selection_from_mask(tree, np.asarray(m) > 0) for m in np.asarray(mask_input)]
            if cfg.correction_reach > 0:
                reach = self._reach(np.asarray(mask_input), points[-1], labels[-1])
        nested = refine and len(points) == 1
        # one click with the cut: all ten standard levels (and any other g asked) are answered and made nested by
        # a running union over the standard levels, so the mask at g never depends on the other g asked (the
        # smaller levels' fallback reads the g = 1.0 answer: regions.chains.keep_uncollapsed)
        levels = (
            sorted({*GRANULARITY_LEVELS, *map(float, granularity)})
            if nested
            else list(map(float, granularity))
        )
        small, scores = self._answers(points, labels, box, levels, (previous, reach), refine, nested)
        rows = [levels.index(float(g)) for g in granularity]
        small, scores = small[rows], scores[rows]
        masks = np.empty((len(small), *self._original_size), bool)
        for k, first in enumerate(_first_equal(small)):  # nested answers repeat: each is upsampled once
            masks[k] = masks[first] if first < k else self._to_mask(small[k], box)
        logits = small.astype(np.float32)  # +-LOGIT, ~15x faster than np.where on a stack of masks
        logits *= np.float32(2 * LOGIT)
        logits -= np.float32(LOGIT)
        return Prediction(
            masks=masks,
            scores=scores,
            granularity=np.asarray(granularity, dtype=np.float64),
            low_res_logits=logits,
        )

    def _answers(
        self, points, labels, box, levels, previous, refine, nested
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(K, h, w)`` bool internal masks and ``(K,)`` scores at the K ``levels``. Kept for the last
        ``ANSWER_CACHE`` requests of this image (same clicks, box, previous answer, levels and config), so asking
        again (another g of the same levels, a repeated request) costs nothing. ``previous``: the previous
        answers' leaf selections and the leaves the last click may relabel in each (:meth:`_reach`), or Nones."""
        key = (
            points.tobytes(),
            labels.tobytes(),
            None if box is None else np.asarray(box, np.float64).tobytes(),
            *(None if p is None else b"".join(s.tobytes() for s in p) for p in previous),
            tuple(levels),
            repr(self.config),  # a config changed between calls is a different request
        )
        if key not in self._cache:
            selections, scores, chains = self._selections(
                points, labels, box, levels, previous, refine, nested
            )
            small = self._outlines(selections, points, labels)
            if nested and self.config.clip_to_next_level:
                self._clip_to_next_level(small, chains[0], levels)
            if nested:
                ch.running_union(small, [g in GRANULARITY_LEVELS for g in levels])
            self._cache[key] = (small, scores)
            while len(self._cache) > ANSWER_CACHE:
                self._cache.pop(next(iter(self._cache)))
        small, scores = self._cache[key]
        return small.copy(), scores.copy()

    def _selections(
        self, points, labels, box, levels, previous, refine, nested
    ) -> tuple[np.ndarray, np.ndarray, list]:
        """``(K, n_leaves)`` bool leaf selections and ``(K,)`` scores at the K ``levels`` (module docstring), and
        each click's chain (``(nodes, levels, distinctness)``, :meth:`_chain`)."""
        tree, cfg = self.tree, self.config
        previous, reach = previous
        leaves = ch.points_to_leaves(tree, points, self._original_size)
        box_counts = ch.leaf_box_counts(tree, box, self._original_size) if box is not None else None
        # a single click's levels skip texture fragments; corrections pick their own region from every level
        chains = [self._chain(leaf, box_counts, len(leaves) == 1) for leaf in leaves]
        # levels that pick the same regions share one cut; all cuts of this call run side by side
        keys, jobs, answered, iterations, priors, reaches = [], [], {}, cfg.refine_iterations, {}, {}
        owns: dict[int, np.ndarray] = {}  # job index -> the correction click's own region (leaves)
        references: dict[tuple, np.ndarray] = {}  # level key -> the selection its cut started from
        for k, g in enumerate(levels):
            prior = None if previous is None else previous[min(k, len(previous) - 1)]
            near = None if reach is None else reach[min(k, len(reach) - 1)]
            key = (
                tuple(ch.node_for_granularity(nodes, levels_, g) for nodes, levels_, _ in chains),
                None if prior is None else prior.tobytes(),
                None if near is None else near.tobytes(),
            )
            keys.append(key)
            if key in answered:
                continue
            if cfg.object_mode and g >= 1.0 - 1e-9 and len(points) > 1 and refine:
                first = points[np.flatnonzero(labels == 1)[0]]
                answered[key] = (len(jobs), 0.0)
                jobs.append(self._object_prior_job(first, leaves, labels))
                continue
            reference, prior_weight, score, own = self._reference(leaves, labels, chains, g, prior)
            references[key] = reference
            if not refine:  # the hierarchy's selection itself
                answered[key] = (
                    reference,
                    ch.selection_contrast(tree, reference) if score is None else score,
                )
                continue
            answered[key] = (len(jobs), score)
            if prior is not None:
                priors[len(jobs)] = prior
            if near is not None:
                reaches[len(jobs)] = (prior, near)
            if (
                own is not None
                and tree.leaf_area[own].sum() <= cfg.correction_keep_size * tree.leaf_area[prior].sum()
            ):
                owns[len(jobs)] = own
            jobs.append(CutJob(reference, leaves[labels == 1], leaves[labels == 0], prior_weight, iterations))
        object_prior = nested and cfg.object_prior_radius > 0  # a single click always answers g = 1.0 too
        if object_prior:
            jobs.append(self._object_prior_job(points[0], leaves, labels))
        cuts = (
            grabcut_many(tree, jobs, cfg.refine_smoothness, 1.0, self._colours, self._cut_threads())
            if jobs
            else []
        )
        for index, own in owns.items():  # the correction click's own region keeps its label
            cuts[index] = cuts[index].copy()
            cuts[index][own] = bool(labels[-1] == 1)
        if cfg.keep_connected and cuts:
            cuts = list(ch.connected_to_many(tree, np.stack(cuts), leaves[labels == 1]))
        if reaches:  # corrections that change more than their reach or break an earlier click's neighbourhood
            self._within_reach(cuts, reaches, points, labels, leaves)
        if priors:  # the sign, split and colour guards (regions.reach), at the last click's internal pixel
            xy = tuple(int(v[0]) for v in ch.points_to_pixels(tree, points[-1], self._original_size))
            for index, prior in priors.items():
                cuts[index] = guard_correction(tree, cuts[index], prior, leaves, labels, xy, cfg)
        if cfg.correction_max_change > 0:
            for index, prior in priors.items():
                cuts[index] = ch.bounded_change(
                    tree, prior, jobs[index].reference, cuts[index], cfg.correction_max_change
                )
        selections = np.zeros((len(levels), tree.n_leaves), bool)
        scores = np.zeros(len(levels))
        for k, key in enumerate(keys):
            answer, score = answered[key]  # a job's index or a selection; a score or None (the contrast)
            selections[k] = cuts[answer] if isinstance(answer, int) else answer
            scores[k] = ch.selection_contrast(tree, selections[k]) if score is None else score
        refs = [references.get(key) for key in keys]  # per level: the selection its cut started from, or None
        if nested and cfg.cap_single_answers and references:
            ch.cap_nested(tree, selections, refs, cfg.max_object_fraction)
        if object_prior:
            # only its pieces the object_prior_pieces rule takes (regions.union_pieces, object_prior_*)
            gate = (cfg.object_prior_max_chroma, cfg.object_prior_keep_shared, cfg.object_prior_same_chroma)
            added = select_pieces(tree, selections[-1], cuts[-1], cfg.object_prior_pieces, *gate)
            union = selections[-1] | added
            # the larger answer never above max_object_fraction of the image (the chain top's own cap) and, with
            # object_prior_contrast > 0, only where its outline is the stronger boundary
            small_enough = tree.leaf_area[union].sum() <= cfg.max_object_fraction * tree.leaf_map.size
            if small_enough and (
                cfg.object_prior_contrast <= 0
                or ch.selection_contrast(tree, union)
                >= cfg.object_prior_contrast
                * ch.selection_contrast(tree, np.logical_or.reduce(selections, axis=0))
            ):
                selections[-1] = union
        if nested and cfg.single_click_min_cover > 0 and references:
            ch.keep_uncollapsed(tree, selections, refs, cfg.single_click_min_cover)
        if nested:
            ch.running_union(selections, [g in GRANULARITY_LEVELS for g in levels])
        return selections, scores, chains

    def _within_reach(self, cuts, reaches, points, labels, leaves) -> None:
        """In place: each correction's cut ``cuts[index]``, for ``reaches[index] = (previous, near)``, limited to
        the click's reach (:func:`granseg.regions.reach.limit_to_reach`), the pieces joined to a positive click
        kept again where it was cut back (``keep_connected``)."""
        from granseg.regions.reach import click_neighbourhoods, limit_to_reach

        tree, cfg = self.tree, self.config
        xs, ys = ch.points_to_pixels(tree, points[:-1], self._original_size)
        keep_in, keep_out = click_neighbourhoods(tree, xs, ys, labels[:-1], cfg.correction_min_reach)
        for index, (prior, near) in reaches.items():
            limited = limit_to_reach(tree, cuts[index], prior, near, keep_in, keep_out)
            if limited is not cuts[index]:
                cuts[index] = (
                    ch.connected_to(tree, limited, leaves[labels == 1]) if cfg.keep_connected else limited
                )

    def _reach(self, mask_input: np.ndarray, point: np.ndarray, label: int) -> list[np.ndarray]:
        """Per previous answer (``(K, h, w)`` low-res logits), the ``(n_leaves,)`` bool leaves the last click (``(2,)``
        x, y in original pixels; its label) may relabel: within ``correction_reach`` x its distance to that
        answer's outline (:func:`granseg.regions.reach.correction_reach`)."""
        from granseg.regions.reach import correction_reach

        tree, cfg = self.tree, self.config
        x, y = (int(v[0]) for v in ch.points_to_pixels(tree, point, self._original_size))
        out = []
        for logits in mask_input:
            mask = ch.mask_at_tree_size(tree, logits > 0) > 0.5
            out.append(
                correction_reach(
                    tree, mask, x, y, bool(label == 1), cfg.correction_reach, cfg.correction_min_reach
                )
            )
        return out

    def _cut_threads(self) -> int:
        """Threads for the cuts of one call: ``cut_threads``, or where it is 0 (auto)
        :func:`granseg.regions.maxflow.auto_cut_threads`."""
        if self.config.cut_threads:
            return self.config.cut_threads
        from granseg.regions.maxflow import auto_cut_threads

        return auto_cut_threads()

    def _clip_to_next_level(self, small: np.ndarray, chain, levels) -> None:
        """In place: the ``(K, h, w)`` internal masks of a single click's refined answers at the K ``levels``,
        each cut to the pixels of its *clip region*: the smallest chain region above the one g picks whose colours
        differ from its surroundings' by at least ``part_min_distinct`` (``colour_distinctness`` over the chain's
        levels), the top excluded. A part's answer may fill out its region and move its outline but not spill into
        sibling parts that only a coarser level holds. No extra graph cut: the clip comes after the pixel band
        cut and follows the clip region's superpixel outline (cutting each clipped answer again cost ~4-5 ms a
        click). Levels without a clip region (the top, or only the top above) are left as they are: the top is
        often short of the object on photographs, and a part's answer reaching past it is the better one there.
        Only an answer with more than ``clip_min_outside`` of its pixels outside its clip region is cut (one that
        mostly spilled); a smaller overflow is the part growing past a clip region that is only a piece of it.
        ``chain``: ``(nodes, levels, distinctness)`` of :meth:`_chain` (its distinctness, computed once there;
        None: ``part_min_distinct`` 0, every level qualifies); the running union follows in the caller."""
        tree, (nodes, chain_levels, distinctness) = self.tree, chain
        # the clip regions: the chain's levels below the top with colours of their own (a part, a group of parts)
        if distinctness is None:
            own = np.arange(len(nodes) - 1)
        else:
            own = np.flatnonzero(distinctness[:-1] >= self.config.part_min_distinct)
        regions: dict[int, list[int]] = {}  # clip region -> the rows clipped to it
        for k, g in enumerate(levels):
            position = int(np.flatnonzero(nodes == ch.node_for_granularity(nodes, chain_levels, g))[0])
            above = own[own > position]
            if len(above):
                regions.setdefault(int(nodes[above[0]]), []).append(k)
        if not regions:
            return
        inside = np.zeros((len(regions), tree.n_leaves), bool)
        for i, node in enumerate(regions):
            inside[i, tree.lo[node] : tree.hi[node]] = True
        masks = np.empty((len(regions), *tree.leaf_map.shape), bool)
        ch.paint_selections(inside, self._leaf_index, list(range(len(regions))), masks)
        spill = self.config.clip_min_outside
        for mask, ks in zip(masks, regions.values()):
            for k in ks:
                outside = np.count_nonzero(small[k] & ~mask)
                if outside and outside > spill * np.count_nonzero(small[k]):
                    small[k] &= mask

    def _reference(
        self, leaves, labels, chains, g: float, previous
    ) -> tuple[np.ndarray, float, float | None, np.ndarray | None]:
        """The selection the cut at g starts from (see the module docstring), its prior weight, the answer's
        score for a single click (the persistence of the region picked; None: score the outline contrast) and,
        for a correction from a previous answer, the ``(n_leaves,)`` bool leaves of the last click's own region
        (None: no previous answer or no region)."""
        tree, cfg = self.tree, self.config
        positives, negatives = leaves[labels == 1], leaves[labels == 0]
        own = None
        picked = [
            ch.node_for_granularity(nodes, levels, g)
            for (nodes, levels, _), lab in zip(chains, labels)
            if lab
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
            nodes, levels, _ = chains[-1]
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
                own = np.zeros(tree.n_leaves, bool)
                own[tree.lo[node] : tree.hi[node]] = True
            prior_weight = cfg.refine_memory
        reference[positives] = True
        reference[negatives] = False
        return reference, prior_weight, ch.node_score(tree, picked[0]) if len(leaves) == 1 else None, own

    def _object_prior_job(self, point: np.ndarray, leaves: np.ndarray, labels: np.ndarray) -> CutJob:
        """GrabCut over the leaves from the leaves mostly inside a disk of radius ``object_prior_radius`` x the
        long side around the ``(2,)`` (x, y) click (original pixels), as cv2.grabCut is seeded from one click;
        the whole object's colour model when the chain top is only a part."""
        cfg = self.config
        reference = ch.disk_selection(self.tree, point, self._original_size, cfg.object_prior_radius)
        return CutJob(
            reference, leaves[labels == 1], leaves[labels == 0], cfg.refine_prior, cfg.object_prior_iterations
        )

    def _outlines(self, selections: np.ndarray, points, labels) -> np.ndarray:
        """``(K, h, w)`` bool internal masks of ``(K, n_leaves)`` selections, with pixel-accurate outlines
        (:func:`granseg.regions.pixelcut.refine_outline`) when ``pixel_band`` > 0; each distinct selection is
        drawn and refined once."""
        tree = self.tree
        distinct: dict[bytes, list[int]] = {}
        for k, selection in enumerate(selections):
            distinct.setdefault(selection.tobytes(), []).append(k)
        out = np.empty((len(selections), *tree.leaf_map.shape), bool)
        firsts = [rows[0] for rows in distinct.values()]  # each distinct selection is drawn in its first row
        ch.paint_selections(selections[firsts], self._leaf_index, firsts, out)
        refine = [
            rows
            for rows in distinct.values()
            if self._pixels is not None and selections[rows[0]].any() and not selections[rows[0]].all()
        ]
        if refine:
            self._refine_outlines(out, refine, selections, points, labels)
        for rows in distinct.values():
            out[rows[1:]] = out[rows[0]]
        return out

    def _refine_outlines(self, out, refine: list[list[int]], selections, points, labels) -> None:
        """In place: the ``out`` rows ``refine[k][0]`` refined by :func:`granseg.regions.pixelcut.refine_outline`
        (the pixels near the outline relabelled by a graph cut), with the clicks' pixels fixed."""
        from granseg.regions.pixelcut import refine_outline

        tree, cfg = self.tree, self.config
        height, width = tree.leaf_map.shape
        fixed = np.zeros((height, width), np.int8)
        cols, ys = ch.points_to_pixels(tree, points, self._original_size)
        for x, y, label in zip(cols, ys, labels):
            fixed[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = 1 if label == 1 else -1
        ratios, _ = self._colours.ratios(selections[[rows[0] for rows in refine]])

        def cut(k: int) -> np.ndarray:
            return refine_outline(
                self._pixels, out[refine[k][0]], ratios[k], fixed, cfg.pixel_band, cfg.pixel_smoothness
            )

        threads = min(self._cut_threads(), len(refine))
        masks = (
            thread_pool(threads).map(cut, range(len(refine))) if threads > 1 else map(cut, range(len(refine)))
        )
        for rows, mask in zip(refine, list(masks)):
            out[rows[0]] = mask

    def _to_mask(self, small: np.ndarray, box) -> np.ndarray:
        mask = ch.upsample_mask(small, self._original_size)
        if box is not None:
            x0, y0 = np.floor(box[:2]).astype(int).tolist()
            x1, y1 = np.ceil(box[2:]).astype(int).tolist()
            clipped = np.zeros_like(mask)
            clipped[y0:y1, x0:x1] = mask[y0:y1, x0:x1]
            mask = clipped
        return mask


def _first_equal(stack: np.ndarray) -> list[int]:
    """For each row of a ``(K, ...)`` stack, the index of the first row equal to it (compared by pixel count,
    then in full: cheaper than hashing image-sized rows)."""
    counts = np.count_nonzero(stack.reshape(len(stack), -1), axis=1)
    distinct: list[int] = []  # the first row of each distinct value so far
    firsts = []
    for k, row in enumerate(stack):
        same = [d for d in distinct if counts[d] == counts[k] and np.array_equal(stack[d], row)]
        firsts.append(same[0] if same else k)
        if not same:
            distinct.append(k)
    return firsts
