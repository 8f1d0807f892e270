"""Configuration of the weight-free ``hierarchy`` predictor (:mod:`granseg.predict.hierarchy`; every field is
explained in docs/hierarchy.md). Kept in its own module so the predictor module stays about the predictor."""

from __future__ import annotations

from dataclasses import dataclass, fields

from granseg.config import Config
from granseg.regions.ensemble import UCM_STARTS
from granseg.regions.tree import TreeParams


@dataclass
class HierarchyConfig(TreeParams, Config):
    """Parameters of the weight-free hierarchy predictor (see docs/hierarchy.md). The region tree's own fields come
    first, inherited from :class:`~granseg.regions.tree.TreeParams` (same names, defaults and order: one
    definition for both)."""

    min_object_fraction: float = 0.01
    max_object_fraction: float = 0.7
    part_min_fraction: float = 0.05
    # ... for a single click's levels (a correction's chain keeps part_min_fraction). 0.03 reaches smaller parts
    # (synthetic every-part IoU +0.025 held out) but lost DAVIS frames' first click (0.450 -> 0.428): kept at 0.05
    # (issue 18 session 18; docs/hierarchy.md)
    single_click_min_fraction: float = 0.05
    # one click: the levels start at the smallest chain region whose colours differ this much from its
    # surroundings' (regions.chains.colour_distinctness; 0: at the leaf)
    part_min_distinct: float = 0.7
    part_max_recurrence: float = 0.5  # ... and (if a level by size) whose colours recur at most this much
    # in its wider surroundings (regions.chains.colour_recurrence: a texture dot or stripe; 1: any)
    # ... and, when the chain holds such a texture element (distinct from its immediate surroundings, recurring
    # further out), no lower than above the unbroken run of regions right after the last such element whose
    # distinctness is under this (patches of the texture; none when the run is empty or reaches the region just
    # below the top; 0: off; regions.chains.chain_levels)
    part_fragment_distinct: float = 0.3
    top_size_power: float = 0.5  # chain top: the largest persistence x area fraction ** this (regions.chains)
    # one click: the answer at g stays inside the chain's next larger region with colours of its own
    # (colour_distinctness >= part_min_distinct), unless that is the top (see _clip_to_next_level)
    clip_to_next_level: bool = True
    clip_min_outside: float = 0.3  # ... only an answer with more than this fraction of its pixels outside it
    # one click: a level's cut covering more than max_object_fraction of the image (the chain top's own cap: a cut
    # that flooded the background) is refused, the level answers the chain region it started from
    # (regions.chains.cap_nested)
    cap_single_answers: bool = True
    # one click: a level's cut keeping less than this fraction of the chain region it started from collapsed onto
    # the click (the region's colours are not its own); the level answers that region, within the largest g's
    # answer (0: off; regions.chains.keep_uncollapsed)
    single_click_min_cover: float = 0.3
    refine: bool = True
    refine_single_click: bool = True
    refine_smoothness: float = 2.0
    refine_prior: float = 0.1
    refine_memory: float = 0.5  # prior weight towards the previous answer (mask_input)
    correction_size: float = 0.5  # a correction click's region: at most this x the previous answer's area
    correction_min_fraction: float = 0.0  # ... or this fraction of the image, whichever is larger
    correction_max_change: float = 0.0  # a correction's cut changes <= max(previous area, this x image)
    # a correction click's own region at g (the one its reference was corrected by) keeps the click's label in
    # the cut's answer when it is at most this x the previous answer's area (0: off): the cut may move the rest
    # of the outline but not undo what the click asked for
    correction_keep_size: float = 0.5
    # a correction's reach: this x the click's distance to the previous outline, at least correction_min_reach
    # internal pixels (also the radius of an earlier click's neighbourhood); a cut that changes more than the
    # reach's area or breaks an earlier click's neighbourhood is cut back to the reach (regions.reach; 0: off)
    correction_reach: float = 3.0
    correction_min_reach: float = 8.0
    # a negative correction that separates two earlier positive clicks is cut back to correction_min_reach
    correction_split_guard: bool = True
    # a positive correction only adds leaves to the previous answer, a negative one only removes leaves
    correction_sign: bool = True
    # a leaf a correction flips stays flipped only where its colour distance to the click's leaf is under this x
    # that to the other label's earlier clicks' leaves (0: off); only for positive clicks with the second option
    correction_colour_vote: float = 1.0
    correction_vote_positive_only: bool = True
    # the leaves a negative correction removes go back where the kept answer reaches them over lower boundaries
    # (the tree's ultrametric of adjacent leaves; False for correction_watershed_tree: mean boundary strength)
    # inside the previous answer than the click's leaf does, x the margin (regions.reach.boundary_watershed)
    correction_watershed: bool = False
    correction_watershed_margin: float = 1.0
    correction_watershed_tree: bool = True
    refine_iterations: int = 3
    gmm_components: int = 5
    object_prior_radius: float = 0.2  # single click, g = 1.0: also a cut from a disk of this x the long side
    object_prior_iterations: int = 5
    # ... only its connected pieces whose mean CIELAB (a, b) lies within this of the chain answer's (0: all of it;
    # regions.chains.chroma_close_pieces: a touching neighbour object of another colour is not added), or that
    # share at least object_prior_keep_shared of their outline with it (0: off; the other colour of a two-coloured
    # object meets it along a long seam, a neighbour along a short stretch). 60 / 0.3 since issue 18 session 16
    # (synth tune objects +0.016 / +0.010, photos unchanged; docs/hierarchy.md)
    object_prior_max_chroma: float = 60.0
    object_prior_keep_shared: float = 0.3
    # which pieces: "chroma" (the two settings above) or "learned" (regions.union_pieces: boosted trees over piece
    # geometry and colour fit on synthetic scenes, benchmarks/fit_union_pieces.py), which also keeps every piece
    # within object_prior_same_chroma of the chain answer's (a, b)
    object_prior_pieces: str = "chroma"
    object_prior_same_chroma: float = 15.0
    object_mode: bool = False
    object_prior_contrast: float = 0.0  # ... kept only where its contrast is >= this x the chain's
    keep_connected: bool = True  # a cut keeps only its pieces joined to a positive click (regions.chains)
    pixel_band: int = 4  # pixel-accurate outline: graph cut over the pixels this close to it (0: off)
    pixel_smoothness: float = 50.0
    cut_threads: int = 0  # the graph cuts of one call run on up to this many threads (same answers); 0 = auto
    tree_merge: str = "learned"  # the region tree's merge criterion: "learned" (shared tree) or "handcrafted"
    # learned tree, k >= 2: the consensus tree (regions.consensus) of the first k trees of the `ucm` edge map's
    # ensemble (regions.ensemble.UCM_STARTS; over the first start's leaves, SLIC 700 whatever n_superpixels);
    # 1: the one tree (build_region_tree; also the handcrafted tree's only form). 2 since issue 18's covering
    # work (tune: covering, GrabCut 1-25, BSDS objects; set_image 0.29 -> 0.41 s at 1024 px): docs/hierarchy.md
    tree_starts: int = 2
    # whole-image partition at g (HierarchyPredictor.partition, regions.cuts): the tree's cut at split height
    # 1 - p(same) = partition_finest at g = 0.1 ... partition_coarsest at g = 1.0, linear in g (one cut per g,
    # nested across g; the whole image one region only if g = 0.1 merges it; BSDS val 26-50 covering: docs/hierarchy.md)
    partition_finest: float = 0.1
    partition_coarsest: float = 0.7
    # a single click in a featureless area (adjacent leaves of one colour, RMS CIELAB spread under this:
    # regions.flat) starts its levels at the smallest region holding that area, which may then exceed
    # max_object_fraction (a click on a white backdrop answers the backdrop, not arbitrary blocks of it). 0: off.
    # 1.5 chosen on GrabCut 1-20 pasted on backdrops (0.5 / 1.0 / 1.5 / 2.5; 1.5 also takes backdrops under
    # noise of sigma 3 grey levels); every photo click set unchanged (benchmarks/bench_blank_noisy.py, RESULTS.md)
    flat_area_spread: float = 1.5

    def validate(self) -> None:
        from granseg.errors import InputError
        from granseg.regions.tree import MERGE_CRITERIA
        from granseg.regions.union_pieces import PIECE_RULES

        if self.tree_merge not in MERGE_CRITERIA:
            raise InputError(f"tree_merge must be one of {MERGE_CRITERIA}, got {self.tree_merge!r}")
        if self.object_prior_pieces not in PIECE_RULES:
            raise InputError(
                f"object_prior_pieces must be one of {PIECE_RULES}, got {self.object_prior_pieces!r}"
            )
        for name in ("part_min_fraction", "single_click_min_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.part_fragment_distinct <= 1.0:
            raise InputError(f"part_fragment_distinct must be in [0, 1], got {self.part_fragment_distinct}")
        if self.flat_area_spread < 0:
            raise InputError(f"flat_area_spread must be >= 0 (0 = off), got {self.flat_area_spread}")
        if self.cut_threads < 0:
            raise InputError(f"cut_threads must be >= 0 (0 = auto), got {self.cut_threads}")
        if not 1 <= self.tree_starts <= len(UCM_STARTS):
            raise InputError(f"tree_starts must be in 1..{len(UCM_STARTS)}, got {self.tree_starts}")
        if not 0.0 <= self.partition_finest <= self.partition_coarsest <= 1.0:
            raise InputError(
                "partition heights need 0 <= partition_finest <= partition_coarsest <= 1, got "
                f"{self.partition_finest} and {self.partition_coarsest}"
            )

    def tree_params(self) -> TreeParams:
        """The :class:`TreeParams` fields of this config (same names, same values)."""
        return TreeParams(**{f.name: getattr(self, f.name) for f in fields(TreeParams)})
