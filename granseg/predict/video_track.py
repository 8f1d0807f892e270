"""Weight-free mask tracking: the object's extent from its motion, then optical flow + GrabCut frame by frame.

One :class:`FlowTracker` follows one object (or part) from the frame it was prompted on.

**Start** (:meth:`FlowTracker.start`, a click): the predictor (any ``BasePredictor``, e.g. the weight-free
``hierarchy``) answers the click at the ten standard granularities. At an object-level g (``>=
object_granularity``) and when later frames are given, :func:`granseg.predict.video_motion.motion_object` finds
the pixels that move with the click, and :func:`pick_by_motion` chooses between it and the predictor's masks
(one lying inside it, grown over additions that match its colours or are unlike their surroundings: what moves
along with the object, like water with a swan, is left out; else the closest when they agree; else the motion
mask). Below that g, or when the clicked point does
not move against the background, the predictor's own mask at g.

**Step** (:meth:`FlowTracker.step`), at a working scale (long side ``work_long_side``):

1. Dense flow (OpenCV DIS) from the new frame back to the previous one moves the previous mask (bilinear,
   ``> 0.5``) and the clicks into the new frame (``warp``: by the object's own flow, the flow of the pixels
   coming from deep inside the mask carried to its outline, :func:`granseg.predict.video_warp.warp_object_flow`,
   the default; per pixel; the whole mask by one similarity transform fit to its interior's flow,
   :func:`warp_similarity`; or the union of the last two). With ``capture`` (an
   option) a flow that no longer moves the mask like the object moved against the camera (captured by the
   background) is replaced by the camera's motion plus the object's remembered own motion.
2. GrabCut (OpenCV) on a crop around the moved mask, from a trimap: the mask eroded by ``band`` x sqrt(area)
   certain object, the moved mask probably object, a ring of the same width probably background, the rest of the
   crop background. Its colour models are refit on every frame, so appearance changes are followed.
3. Drift guard: a GrabCut mask whose area differs from the moved mask's by more than ``max_area_change`` x, or
   that is empty, is not kept (the moved mask is).
4. Hidden objects (``occlusion``; :class:`granseg.predict.video_appearance.TrackMemory`, whose size and colour
   memory follow gradual change with ``occlusion_relative``): a mask with too few pixels of the object's own colours
   means the object is hidden: the step returns an empty mask, the last good
   mask coasts at the object's velocity, and the object is searched for by colour (with ``capture``: and by its
   own motion), within a distance of the expected position that grows with the frames it has been hidden
   (``search_ramp``), until it is found again (with ``reemerge``: or until the tracked mask is visible again).

Masks are ``H x W`` bool at the original frame size on output; points are ``(x, y)`` pixels of the original frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from granseg.config import Config
from granseg.predict.video_appearance import TrackMemory, colour_codes, ring_around
from granseg.predict.video_motion import (
    MotionConfig,
    background_homography,
    grabcut_from_trimap,
    motion_object,
    moves_like,
    residual_of,
)
from granseg.predict.video_warp import warp_object_flow

LEVELS = tuple(round(0.1 * k, 1) for k in range(1, 11))
WARPS = ("flow", "similarity", "union", "object")


@dataclass
class FlowTrackerConfig(Config):
    """Parameters of :class:`FlowTracker` (tuned on DAVIS blackswan and bmx-trees only)."""

    work_long_side: int = 480
    flow_preset: str = "medium"  # OpenCV DIS preset: "ultrafast", "fast" or "medium"
    consistency: float = 0.0  # > 0: forward-backward flow check (px); pixels failing it are not moved
    refine: str = "grabcut"  # "grabcut" or "none" (the first mask moved by optical flow alone: a floor)
    band: float = 0.12  # trimap band width, fraction of sqrt(moved mask area)
    roi_margin: float = 0.5  # fraction of the object's box added around it for the GrabCut crop
    grabcut_iterations: int = 1
    grabcut_long_side: int = 0  # > 0: GrabCut on the crop shrunk to this long side (px), the result upsampled
    max_area_change: float = 2.0
    # > 0: moved-mask pixels GrabCut dropped are kept where the first mask's colours explain them better than the
    # ring around the moved mask does (p(object | colour) > keep_moved; 0: off)
    keep_moved: float = 0.65
    keep_bins: int = 8  # CIELAB histogram bins per channel for keep_moved
    # how the previous mask is moved: "object" (by the object's own flow: the flow of the pixels coming from deep
    # inside the mask, carried to its outline by normalised convolution, video_warp.warp_object_flow; local, so
    # a deforming object's parts keep their own motion), "flow" (per pixel: the outline takes the background's
    # smeared flow and the mask loses its leading edge a little on every frame), "similarity" (one rotation +
    # scale + shift fit by RANSAC to the flow of the mask's interior) or "union" (flow | similarity). "object"
    # is the default since video13g (tune pair, synthetic clips; "similarity" had won on those but lost on the
    # held-out DAVIS sequences, docs/video.md)
    warp: str = "object"
    object_spread: float = 1.0  # warp "object": Gaussian sigma of the flow extrapolation, x the band radius
    # > 0: the flow inside the mask is judged captured by the background (a thin occluder sweeping over the
    # object, the object's flow smeared into the camera's) when the mask's own motion against the camera's
    # departs from the remembered one by more than this fraction of it (the remembered one at least
    # capture_min_speed px a frame; + 0.5 px); the previous mask is then moved by the camera's motion plus the remembered
    # own motion instead of by the flow (0: off)
    capture: float = 0.0
    capture_rate: float = 0.3  # EMA rate of the remembered own motion
    capture_min_speed: float = 2.0  # px a frame (working scale): slower own motion is within the flow's noise
    # while the object is hidden, the tracked mask (the coasting mask moved by the flow, refined) that passes the
    # visibility test ends the hiding (False: only a re-detected blob does)
    reemerge: bool = False
    motion_vote: bool = False  # residual motion (against the camera's) votes in the GrabCut trimap
    motion_exclude: float = (
        0.0  # > 0: band pixels moving unlike the object (residual this many tolerances off
    )
    # the object's, and not with the camera: another moving thing) are certain background
    min_area_fraction: float = 0.0001  # a moved mask under this fraction of the frame: the track is lost
    occlusion: bool = True  # hidden-object handling and re-detection (video_appearance.TrackMemory)
    # a mask under this fraction of the remembered area: the object is hidden (0.3 for warp "flow"; 0.25 suited
    # warp "similarity")
    lost_ratio: float = 0.3
    search_radius: float = 2.0  # re-detection looks this many object sizes around the expected position
    # > 0: ... starting at 1 / (search_ramp + 1) of that on the first missed frame, full after search_ramp more
    search_ramp: int = 3
    occlusion_relative: bool = True  # TrackMemory(relative=...): size / colour memory follows gradual change
    motion_init: bool = True  # pick the first mask by motion (object-level g, with later frames)
    object_granularity: float = 0.9
    agreement: float = 0.8
    # first mask from a predictor mask inside the motion mask (pick_by_motion): this much of it moves, the largest
    # covers inside_recall of the motion mask (1: never), smaller ones covering inside_min_recall may grow while
    # what they add has their colours (Bhattacharyya >= grow_similarity; 0: the largest)
    inside_precision: float = 0.85
    inside_recall: float = (
        0.3  # 0.55 before walk_to_motion (a part covering half the motion mask ended the walk)
    )
    inside_min_recall: float = 0.25
    grow_similarity: float = 0.7
    # ... or while what they add is unlike what lies just outside it (Bhattacharyya with the larger mask's ring,
    # ring_fraction x sqrt(area) wide, near the addition < ring_similarity; 0: the older walk, stop at the first
    # unlike step)
    ring_similarity: float = 0.48
    ring_fraction: float = 0.12
    walk_to_motion: bool = True  # the walk's last step is the motion mask itself (same colour tests)
    motion_offsets: tuple[int, ...] = (1, 2, 4)  # later frames for the motion cue (frames after the prompt)
    motion: MotionConfig = field(default_factory=MotionConfig)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def _colour_histogram(lab: np.ndarray, mask: np.ndarray, bins: int = 8) -> np.ndarray:
    """Normalised CIELAB histogram (``bins^3``) of the ``mask`` pixels of ``lab`` (``H x W x 3`` uint8)."""
    hist = np.bincount(colour_codes(lab[mask], bins), minlength=bins**3) + 0.1
    return hist / hist.sum()


def pick_by_motion(masks: Sequence[np.ndarray], moving: np.ndarray, cfg: FlowTrackerConfig, frame=None):
    """The first mask from the predictor's ``masks`` (``H x W`` bool each, one per level) and the ``moving`` mask
    (``H x W`` bool; ``frame`` the ``H x W x 3`` RGB image).

    1. **Inside**: the predictor's masks that lie inside ``moving`` (``inside_precision`` of their pixels move, and
       they cover ``inside_min_recall`` of it), when the largest of them covers ``inside_recall`` of it. The
       smallest grows to each larger one in turn when what that adds has the colours of what it holds
       (Bhattacharyya coefficient of CIELAB histograms >= ``grow_similarity``) or is unlike what lies just outside it
       (coefficient with the larger mask's ring near the addition < ``ring_similarity``: another part of a
       many-coloured object); an addition that looks like its surroundings (water moving with a swan) is skipped.
       With ``walk_to_motion`` the walk's last step is ``moving`` itself (same tests on what it adds), so the
       whole object is reached when the region tree holds only a part of it. Without ``frame``, or with
       ``grow_similarity`` 0, the largest predictor mask.
    2. **Agreement**: else the mask closest to ``moving`` when their IoU >= ``agreement``.
    3. Else ``moving`` itself.

    The inside walk runs first, so a mask that agrees with ``moving`` because both hold what moves along with the
    object is not taken over a smaller one that leaves it out. Returns the mask and ``"predictor-inside-motion"``,
    ``"predictor+motion"`` or ``"motion"``."""
    if cfg.inside_recall < 1.0:
        moving_area = max(1, np.count_nonzero(moving))
        inside = []
        for m in masks:
            area, common = np.count_nonzero(m), np.count_nonzero(m & moving)
            if (
                area
                and common >= cfg.inside_precision * area
                and common >= cfg.inside_min_recall * moving_area
            ):
                inside.append((area, m))
        if inside and max(np.count_nonzero(m & moving) for _, m in inside) >= cfg.inside_recall * moving_area:
            steps = sorted(inside, key=lambda pair: pair[0])
            if cfg.walk_to_motion and frame is not None and cfg.grow_similarity > 0:
                steps.append((moving_area, moving))
            return _grow(steps, frame, cfg), "predictor-inside-motion"
    ious = [_iou(m, moving) for m in masks]
    best = int(np.argmax(ious))
    if ious[best] >= cfg.agreement:
        return masks[best], "predictor+motion"
    return moving, "motion"


def _grow(inside: list[tuple[int, np.ndarray]], frame, cfg: FlowTrackerConfig) -> np.ndarray:
    """Walk the ``(area, mask)`` list (ascending): take each larger mask whose added pixels have the colours
    already held or are unlike the larger mask's ring (:func:`pick_by_motion`); skip the others."""
    if frame is None or cfg.grow_similarity <= 0:
        return inside[-1][1]
    lab = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB)
    current = inside[0][1]
    for _, larger in inside[1:]:
        larger = larger | current  # the motion mask (last step) need not hold every mask before it
        added = larger & ~current
        if not added.any():
            continue
        held = _colour_histogram(lab, added)
        if float(np.sqrt(held * _colour_histogram(lab, current)).sum()) >= cfg.grow_similarity:
            current = larger
            continue
        if cfg.ring_similarity <= 0:  # the older walk: stop at the first addition unlike what is held
            break
        if _outside_similarity(lab, larger, added, cfg.ring_fraction) < cfg.ring_similarity:
            current = larger
    return current


def _outside_similarity(lab: np.ndarray, larger: np.ndarray, added: np.ndarray, fraction: float) -> float:
    """Bhattacharyya coefficient between the colours of ``added`` (``H x W`` bool, part of ``larger``) and of what
    lies just outside them: the ring ``fraction`` x sqrt(area) wide around ``larger``, within that width of
    ``added`` (1.0 when that ring is empty: nothing says the addition is unlike its surroundings)."""
    ring = ring_around(larger, fraction)
    size = max(3, int(fraction * np.sqrt(larger.sum())))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1, 2 * size + 1))
    ring &= cv2.dilate(added.astype(np.uint8), kernel) > 0
    if not ring.any():
        return 1.0
    return float(np.sqrt(_colour_histogram(lab, added) * _colour_histogram(lab, ring)).sum())


def warp_similarity(mask: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, radius: int) -> np.ndarray | None:
    """``mask`` (``h x w`` bool, the previous frame) moved into the new frame by one similarity transform
    (rotation + scale + shift; ``h x w`` bool). ``(map_x, map_y)`` (``h x w`` float32 each): for each new pixel
    ``(x, y)``, its position in the previous frame (backward flow). The transform is fit (RANSAC, 1 px, at most
    2000 pairs, seeded) to the pairs whose previous position lies in the mask eroded by ``radius`` px, so the flow
    at the outline, smeared by the background's, moves nothing. None when under 8 pairs or no fit."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    interior = cv2.erode(mask.astype(np.uint8), kernel)
    if not interior.any():
        interior = mask.astype(np.uint8)
    ys, xs = np.nonzero(cv2.remap(interior, map_x, map_y, cv2.INTER_NEAREST))
    if len(xs) < 8:
        return None
    pick = np.random.default_rng(0).choice(len(xs), min(len(xs), 2000), replace=False)
    ys, xs = ys[pick], xs[pick]
    src = np.stack([map_x[ys, xs], map_y[ys, xs]], 1).astype(np.float32)
    dst = np.stack([xs, ys], 1).astype(np.float32)
    cv2.setRNGSeed(0)
    affine, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.0)
    if affine is None:
        return None
    h, w = mask.shape
    return cv2.warpAffine(mask.astype(np.float32), affine, (w, h), flags=cv2.INTER_LINEAR) > 0.5


def resize_to(array: np.ndarray, hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize an ``h x w [x C]`` array to ``hw = (H, W)``."""
    if array.shape[:2] == tuple(hw):
        return array
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(array, (hw[1], hw[0]), interpolation=interp)


def interior_points(mask: np.ndarray, count: int, min_depth: float = 2.0) -> list[tuple[float, float]]:
    """Up to ``count`` ``(x, y)`` points deep inside ``mask``, spread apart (greedy farthest-from-outline)."""
    if count <= 0 or not mask.any():
        return []
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    points = []
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        depth = float(dist[y, x])
        if depth < min_depth:
            break
        points.append((float(x), float(y)))
        cv2.circle(dist, (int(x), int(y)), int(max(3, 2 * depth)), 0.0, -1)
    return points


def _box(mask: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of ``mask`` grown by ``margin`` x its longer side + 8 px, clipped to the array."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    pad = margin * max(x1 - x0, y1 - y0) + 8
    h, w = mask.shape
    return int(max(0, x0 - pad)), int(max(0, y0 - pad)), int(min(w, x1 + pad)), int(min(h, y1 + pad))


class FlowTracker:
    """Tracks one object; see the module docstring. ``predictor`` is a ``BasePredictor`` (used by
    :meth:`start` only)."""

    def __init__(self, predictor, config: FlowTrackerConfig | None = None) -> None:
        self.predictor = predictor
        self.config = config or FlowTrackerConfig()
        if self.config.warp not in WARPS:
            raise ValueError(f"warp must be one of {WARPS}, not {self.config.warp!r}")
        preset = getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{self.config.flow_preset.upper()}")
        self._flow = cv2.DISOpticalFlow_create(preset)
        self.granularity = 1.0
        self.mask: np.ndarray | None = None  # working-scale bool
        self.gray: np.ndarray | None = None
        self.clicks = np.zeros((0, 2))  # working-scale (x, y)
        self.labels = np.zeros(0, dtype=np.int64)
        self.full_size: tuple[int, int] = (0, 0)
        self.scale = 1.0
        self.start_source = ""  # "motion", "predictor+motion" or "predictor": how the first mask was chosen

    def _set_scale(self, hw: tuple[int, int]) -> None:
        self.full_size = hw
        self.scale = min(1.0, self.config.work_long_side / max(hw))
        self._work_hw = (max(1, round(hw[0] * self.scale)), max(1, round(hw[1] * self.scale)))

    def start(
        self, frame: np.ndarray, points, labels, granularity: float, later: Sequence[np.ndarray] = ()
    ) -> np.ndarray:
        """Prompt on ``frame`` (``H x W x 3``): clicks ``(N, 2)`` (x, y) pixels, labels ``(N,)``; ``later``: the
        frames ``motion_offsets`` after it in the direction of travel (optional; for the motion cue). Returns the
        frame's ``H x W`` bool mask."""
        self._set_scale(frame.shape[:2])
        self.predictor.set_image(frame)
        g = float(granularity)
        masks = self.predictor.predict(points, labels, granularity=list(LEVELS)).masks
        own = self.predictor.predict(points, labels, granularity=g).masks[0]
        full, self.start_source = own, "predictor"
        positives = np.asarray(points, dtype=float).reshape(-1, 2)[np.asarray(labels).reshape(-1) == 1]
        cfg = self.config
        if cfg.motion_init and later and g >= cfg.object_granularity and len(positives):
            moving = motion_object(frame, list(later), tuple(positives[0]), cfg.motion)
            if moving is not None:
                full, self.start_source = pick_by_motion(masks, moving, cfg, frame)
        return self.start_mask(frame, full, g, points, labels)

    def start_mask(self, frame: np.ndarray, mask: np.ndarray, granularity: float, points=None, labels=None):
        """Start from a given ``H x W`` bool ``mask`` on ``frame`` (clicks default to its deepest point)."""
        self._set_scale(frame.shape[:2])
        self.granularity = float(granularity)
        full = np.asarray(mask, dtype=bool)
        if points is None or len(points) == 0:
            points = interior_points(full, 1, min_depth=0.5) or [(0.0, 0.0)]
            labels = [1] * len(points)
        self.clicks = np.asarray(points, dtype=np.float64).reshape(-1, 2) * self.scale
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.gray = self._gray(frame)
        self.mask = self._last_good = resize_to(full.astype(np.float32), self._work_hw) > 0.5
        small = cv2.resize(frame, self._work_hw[::-1], interpolation=cv2.INTER_AREA)
        self.memory = TrackMemory(
            self.config.lost_ratio,
            self.config.search_radius,
            relative=self.config.occlusion_relative,
            search_ramp=self.config.search_ramp,
        )
        lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)
        self.memory.start(lab, self.mask)
        self._first_colours = _colour_histogram(lab, self.mask, self.config.keep_bins)
        self.own_motion: np.ndarray | None = (
            None  # (2,) px a frame, backward (new -> previous), vs the camera's
        )
        self.captured = 0  # steps whose flow was judged captured by the background (``capture``)
        self._homography: np.ndarray | None = None  # this step's background homography (``capture``)
        return full

    def _gray(self, frame: np.ndarray) -> np.ndarray:
        small = cv2.resize(frame, self._work_hw[::-1], interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)

    def step(self, frame: np.ndarray) -> np.ndarray:
        """Move the track to ``frame`` (the next one in the direction of travel); returns ``H x W`` bool."""
        assert self.mask is not None and self.gray is not None, "call start() first"
        small = cv2.resize(frame, self._work_hw[::-1], interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        flow = self._flow.calc(gray, self.gray, None)  # new -> previous: new(x) ~ previous(x + flow(x))
        h, w = gray.shape
        grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
        if self.config.capture > 0:
            map_x, map_y = self._uncaptured_map(flow, grid_x, grid_y, map_x, map_y)
        moved = cv2.remap(self.mask.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR)
        if self.config.consistency > 0:  # forward-backward check: occluded / unreliable pixels move nothing
            forward = self._flow.calc(self.gray, gray, None)
            back_again = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR)
            error = np.linalg.norm(back_again + flow, axis=-1)
            moved[error > self.config.consistency + 0.05 * np.linalg.norm(flow, axis=-1)] = 0.0
        self._move_clicks(flow)
        self.gray = gray
        mask = warped = moved > 0.5
        radius = max(
            1, int(self.config.band * np.sqrt(self.mask.sum()))
        )  # the band's width (similarity, object)
        if self.config.warp == "object":
            moving = flow if self.config.capture <= 0 else np.stack([map_x - grid_x, map_y - grid_y], -1)
            own = warp_object_flow(self.mask, moving, radius, self.config.object_spread)
            if own is not None:
                mask = warped = own
        elif self.config.warp != "flow":
            rigid = warp_similarity(self.mask, map_x, map_y, radius)
            if rigid is not None:
                mask = warped = rigid if self.config.warp == "similarity" else warped | rigid
        if mask.sum() < self.config.min_area_fraction * h * w:
            mask = np.zeros_like(mask)
        elif self.config.refine == "grabcut":
            mask = self._refine(small, mask, flow)
        lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)  # for the keep step and the hidden-object memory
        kept = self._kept(lab, warped, mask) if self.config.keep_moved > 0 and mask.any() else None
        if self.config.occlusion:
            mask = self._occlusion(lab, mask, kept)
        else:
            self.mask = mask = mask if kept is None else mask | kept
        return resize_to(mask.astype(np.float32), self.full_size) > 0.5

    def _uncaptured_map(self, flow, grid_x, grid_y, map_x, map_y):
        """The backward map (``h x w`` float32 each: each new pixel's position in the previous frame) that moves
        the mask: the flow's (``map_x, map_y``) unless the flow inside the mask has been captured by the
        background (``capture``): the mask's own motion against the camera's (median over the previous mask of
        the flow minus the background homography's) departs from the remembered one by more than ``capture`` x
        it. Then the camera's map plus the remembered own motion (the object keeps its course)."""
        cfg = self.config
        homography = self._homography = background_homography(flow)
        self._step_flow = flow
        if homography is None or not self.mask.any():
            return map_x, map_y
        own = self._own_motion_of(self.mask)
        remembered = self.own_motion
        if self._strays(own):
            self.captured += 1
            grid = np.stack([grid_x, grid_y], -1).reshape(-1, 1, 2)
            back = cv2.perspectiveTransform(grid, homography).reshape(grid_x.shape + (2,))
            return back[..., 0] + np.float32(remembered[0]), back[..., 1] + np.float32(remembered[1])
        rate = cfg.capture_rate
        self.own_motion = own if remembered is None else (1 - rate) * remembered + rate * own
        return map_x, map_y

    def _own_motion_of(self, mask: np.ndarray) -> np.ndarray:
        """``(2,)``: the median over ``mask`` (``h x w`` bool) of this step's backward flow minus the camera's
        (the background homography's)."""
        ys, xs = np.nonzero(mask)
        points = np.stack([xs, ys], 1).astype(np.float32).reshape(-1, 1, 2)
        camera = cv2.perspectiveTransform(points, self._homography).reshape(-1, 2) - points.reshape(-1, 2)
        return np.median(self._step_flow[ys, xs] - camera, axis=0)

    def _strays(self, own: np.ndarray) -> bool:
        """Whether the own motion ``own`` (``(2,)`` px) departs from the remembered one by more than ``capture``
        x it + 0.5 px (only once the object has been seen moving against the camera at ``capture_min_speed`` px
        a frame: slower own motion is within the flow's noise)."""
        cfg, remembered = self.config, self.own_motion
        speed = float(np.linalg.norm(remembered)) if remembered is not None else 0.0
        return speed >= cfg.capture_min_speed and np.linalg.norm(own - remembered) > cfg.capture * speed + 0.5

    def _moves_like_object(self, blob: np.ndarray) -> bool:
        """Re-detection test (``capture``): a blob that moves unlike the object (:meth:`_strays`) is not it."""
        if self._homography is None or not blob.any():
            return True
        return not self._strays(self._own_motion_of(blob))

    def _occlusion(self, lab: np.ndarray, mask: np.ndarray, kept: np.ndarray | None = None) -> np.ndarray:
        """Keep ``mask`` when the object is visible; else report it hidden (empty), coast the last good mask and
        look for the object again (:class:`granseg.predict.video_appearance.TrackMemory`). ``kept`` (``keep_moved``,
        :meth:`_kept`) joins the visible mask on output, but neither the visibility test nor the memory sees it.
        ``lab``: the working-scale frame in CIELAB (``h x w x 3`` uint8)."""
        memory = self.memory
        if (memory.hidden and not self.config.reemerge) or not memory.visible(lab, mask):
            found = memory.redetect(lab, self._moves_like_object if self.config.capture > 0 else None)
            if found is None or not memory.hidden and found.sum() <= mask.sum():
                self.mask = memory.coast(self.mask if memory.hidden else self._last_good)
                return np.zeros_like(mask)
            mask, kept = found, None
        memory.remember(lab, mask)
        if kept is not None:
            mask = mask | kept
        self.mask = self._last_good = mask
        return mask

    def _refine(self, small: np.ndarray, moved: np.ndarray, flow: np.ndarray) -> np.ndarray:
        """GrabCut on a crop around ``moved`` (working-scale bool) from a trimap (with the motion vote), with the
        drift guard."""
        cfg = self.config
        box = _box(moved, cfg.roi_margin)
        x0, y0, x1, y1 = box
        local = moved[y0:y1, x0:x1]
        area = float(local.sum())
        radius = max(2, int(cfg.band * np.sqrt(area)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        sure = cv2.erode(local.astype(np.uint8), kernel) > 0
        near = cv2.dilate(local.astype(np.uint8), kernel) > 0
        trimap = np.full(local.shape, cv2.GC_BGD, np.uint8)
        trimap[near] = cv2.GC_PR_BGD
        trimap[local] = cv2.GC_PR_FGD
        trimap[sure] = cv2.GC_FGD
        if cfg.motion_vote:
            self._vote_motion(trimap, flow, box, local, near)
        crop = small[y0:y1, x0:x1]
        shrink = min(1.0, cfg.grabcut_long_side / max(local.shape)) if cfg.grabcut_long_side else 1.0
        if shrink < 1.0:  # GrabCut's cost grows with the pixels: a large object is cut at a lower resolution
            size = (max(1, round(local.shape[1] * shrink)), max(1, round(local.shape[0] * shrink)))
            crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
            trimap = cv2.resize(trimap, size, interpolation=cv2.INTER_NEAREST)
        cut = grabcut_from_trimap(crop, trimap, cfg.grabcut_iterations)
        if cut is None:  # e.g. no probable-background pixel in a crop that fills the frame
            return moved
        refined = cut.astype(np.float32)
        refined = resize_to(refined, local.shape) > 0.5
        new_area = float(refined.sum())
        if not new_area or not area / cfg.max_area_change <= new_area <= area * cfg.max_area_change:
            return moved
        out = np.zeros_like(moved)
        out[y0:y1, x0:x1] = refined
        return out

    def _kept(self, lab: np.ndarray, moved: np.ndarray, refined: np.ndarray) -> np.ndarray:
        """``h x w`` bool: the ``moved`` pixels ``refined`` left out whose colour is likelier on the first mask
        than in the ring around ``moved`` (``p(object | colour) > keep_moved``, CIELAB histograms): parts of a
        many-coloured object that GrabCut's refit colour model drops (``keep_moved``)."""
        dropped = moved & ~refined
        if not dropped.any():
            return dropped
        bins = self.config.keep_bins
        ring = _colour_histogram(lab, ring_around(moved), bins)
        ratio = self._first_colours / (self._first_colours + ring)
        keep = ratio[colour_codes(lab[dropped], bins)] > self.config.keep_moved
        out = np.zeros_like(dropped)
        out[dropped] = keep
        return out

    def _vote_motion(self, trimap, flow, box, local, near) -> None:
        """Motion vote on the ``trimap`` of the crop ``box``: band pixels that move like the object (its median
        residual motion against the camera's, at least ``motion.min_motion`` px) become probably object, moved-mask
        pixels that move with the background probably background."""
        cfg = self.config
        residual = residual_of(-flow, box)  # previous -> new direction, at the new frame's pixels
        if residual is None or not local.any():
            return
        target = np.median(residual[local], axis=0)
        if float(np.linalg.norm(target)) < cfg.motion.min_motion:
            return
        like, still = moves_like(residual, target, cfg.motion.similarity, cfg.motion.min_fraction)
        trimap[near & ~local & like] = cv2.GC_PR_FGD
        if cfg.motion_exclude > 0:
            tolerance = cfg.motion.similarity * float(np.linalg.norm(target)) + 0.5
            other = np.linalg.norm(residual - target, axis=-1) > cfg.motion_exclude * tolerance
            trimap[near & ~local & other & ~still] = cv2.GC_BGD
        trimap[(trimap == cv2.GC_PR_FGD) & local & still] = cv2.GC_PR_BGD

    def _move_clicks(self, flow: np.ndarray) -> None:
        """Forward-move the clicks by the (backward) flow at their position: ``p' = p - flow(p)``."""
        if not len(self.clicks):
            return
        h, w = flow.shape[:2]
        xi = np.clip(self.clicks[:, 0].round().astype(int), 0, w - 1)
        yi = np.clip(self.clicks[:, 1].round().astype(int), 0, h - 1)
        moved = self.clicks - flow[yi, xi].astype(np.float64)
        moved[:, 0] = np.clip(moved[:, 0], 0, w - 1)
        moved[:, 1] = np.clip(moved[:, 1], 0, h - 1)
        self.clicks = moved
