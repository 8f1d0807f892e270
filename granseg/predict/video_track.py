"""Weight-free mask tracking: optical flow + an appearance model + snapping to a predictor's image regions.

One :class:`FlowTracker` follows one object (or part) from the frame it was prompted on. Per step, at a working
scale (long side ``work_long_side``):

1. **Flow** (OpenCV DIS) from the new frame back to the previous one moves the previous mask (a soft
   ``H x W`` float map, bilinear) and the user's clicks (``(x, y)`` pixels) into the new frame.
2. **Shape prior**: a sigmoid of the signed distance to the warped mask's outline, its width a fraction of the
   object's size, so the outline may move a little but the shape stays.
3. **Appearance**: CIELAB colour histograms of the object and of a ring of background around it, updated by an
   exponential moving average; ``p(object | colour)`` per pixel.
4. **Snap**: the predictor (any ``BasePredictor``, e.g. the weight-free ``hierarchy``) is set on a crop around
   the candidate and clicked at the moved clicks (and interior points of the candidate) at the object's g; its
   mask is a third vote, so the result follows image regions.

The three votes add in log-odds; the mask is the part above 0 that touches the warped mask. Masks and maps are
``H x W`` at the original frame size on output; points are ``(x, y)`` pixels of the original frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from granseg.config import Config


@dataclass
class FlowTrackerConfig(Config):
    """Parameters of :class:`FlowTracker` (tuned on DAVIS blackswan and bmx-trees only)."""

    work_long_side: int = 480
    hist_bins: int = 16
    appearance_rate: float = 0.2
    prior_width: float = 0.06  # sigmoid width of the shape prior, fraction of sqrt(object area)
    prior_min_width: float = 2.0  # px at working scale
    prior_weight: float = 1.0
    prior_clip: float = 12.0  # log-odds bound of the shape prior (far from the mask it always wins)
    colour_eps: float = 0.05  # colour probabilities clipped to [eps, 1 - eps]: log-odds within +-2.9
    colour_weight: float = 1.0
    snap_weight: float = 1.5
    open_radius: int = 0  # px at working scale; morphological opening of each frame's mask
    band: float = 0.1  # the mask stays within this fraction of sqrt(area) outside the warped mask
    snap: bool = True
    snap_every: int = 4  # snap on every n-th step (the hierarchy costs most of the time)
    roi_margin: float = 0.35  # fraction of the object's box added around it for the snap crop
    snap_long_side: int = 320
    snap_min_iou: float = 0.6  # the snapped mask votes only when it overlaps the candidate this much
    extra_clicks: int = 2  # interior points of the candidate added to the moved clicks
    min_area_fraction: float = 0.0001  # below this the track is lost (the mask is empty, the state kept)
    lost_ratio: float = 0.3  # masks under this fraction of the remembered area (or over 1/it) are not kept
    search_radius: float = 2.0  # re-detection looks this many object sizes around the expected position


def _logit(p: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    p = np.clip(p, eps, 1 - eps)
    return np.log(p / (1 - p))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def resize_to(array: np.ndarray, hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize an ``h x w [x C]`` array to ``hw = (H, W)``."""
    if array.shape[:2] == tuple(hw):
        return array
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(array, (hw[1], hw[0]), interpolation=interp)


class Appearance:
    """Object / background colour histograms in CIELAB (``bins^3`` cells each), smoothed and EMA-updated."""

    def __init__(self, bins: int, rate: float) -> None:
        self.bins, self.rate = bins, rate
        self.fg: np.ndarray | None = None
        self.bg: np.ndarray | None = None

    def _codes(self, lab: np.ndarray) -> np.ndarray:
        q = (lab.astype(np.int32) * self.bins) // 256
        return (q[..., 0] * self.bins + q[..., 1]) * self.bins + q[..., 2]

    def _hist(self, codes: np.ndarray) -> np.ndarray:
        hist = np.bincount(codes, minlength=self.bins**3).astype(np.float64) + 0.5
        return hist / hist.sum()

    def update(self, lab: np.ndarray, mask: np.ndarray, ring: np.ndarray, first: bool = False) -> None:
        """``lab``: ``h x w x 3`` uint8; ``mask``/``ring``: ``h x w`` bool (object / nearby background)."""
        if not mask.any() or not ring.any():
            return
        codes = self._codes(lab)
        fg, bg = self._hist(codes[mask]), self._hist(codes[ring])
        rate = 1.0 if first or self.fg is None else self.rate
        self.fg = fg if self.fg is None else (1 - rate) * self.fg + rate * fg
        self.bg = bg if self.bg is None else (1 - rate) * self.bg + rate * bg

    def probability(self, lab: np.ndarray) -> np.ndarray:
        """``p(object | colour)`` per pixel, ``h x w`` float32 in (0, 1)."""
        assert self.fg is not None and self.bg is not None
        codes = self._codes(lab)
        ratio = (self.fg / (self.fg + self.bg)).astype(np.float32)
        return ratio[codes]


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Distance to the outline, positive inside and negative outside (``h x w`` float32 px)."""
    m = mask.astype(np.uint8)
    inside = cv2.distanceTransform(m, cv2.DIST_L2, 3)
    outside = cv2.distanceTransform(1 - m, cv2.DIST_L2, 3)
    return inside - outside


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


def _box(mask: np.ndarray, margin: float, hw: tuple[int, int]) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    pad = margin * max(x1 - x0, y1 - y0) + 8
    return (
        int(max(0, x0 - pad)),
        int(max(0, y0 - pad)),
        int(min(hw[1], x1 + pad)),
        int(min(hw[0], y1 + pad)),
    )


class FlowTracker:
    """Tracks one object; see the module docstring. ``predictor`` is a ``BasePredictor`` or None (no snap)."""

    def __init__(self, predictor, config: FlowTrackerConfig | None = None) -> None:
        self.predictor = predictor
        self.config = config or FlowTrackerConfig()
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self.appearance = Appearance(self.config.hist_bins, self.config.appearance_rate)
        self.granularity = 1.0
        self.mask: np.ndarray | None = None  # working-scale bool
        self.gray: np.ndarray | None = None
        self.clicks = np.zeros((0, 2))  # working-scale (x, y)
        self.labels = np.zeros(0, dtype=np.int64)
        self.full_size: tuple[int, int] = (0, 0)
        self._steps = 0
        self.ref_area = 0.0  # working-scale px of the object when fully visible (EMA)
        self.centre: np.ndarray | None = None  # (x, y) working px
        self.velocity = np.zeros(2)  # (dx, dy) working px per frame
        self.lost = False
        self.scale = 1.0

    def _work(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Working-scale ``(Lab uint8, gray uint8)`` of an ``H x W x 3`` RGB frame."""
        small = resize_to(frame, self._work_hw)
        return cv2.cvtColor(small, cv2.COLOR_RGB2LAB), cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)

    def _set_scale(self, hw: tuple[int, int]) -> None:
        self.full_size = hw
        self.scale = min(1.0, self.config.work_long_side / max(hw))
        self._work_hw = (max(1, round(hw[0] * self.scale)), max(1, round(hw[1] * self.scale)))

    def start(self, frame: np.ndarray, points, labels, granularity: float) -> np.ndarray:
        """Prompt on ``frame`` (``H x W x 3``): clicks ``(N, 2)`` (x, y) pixels, labels ``(N,)``. Returns the
        ``H x W`` bool mask of this frame."""
        self._set_scale(frame.shape[:2])
        self.granularity = float(granularity)
        self.predictor.set_image(frame)
        full = self.predictor.predict(points, labels, granularity=granularity).masks[0]
        return self.start_mask(frame, full, granularity, points, labels)

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
        lab, self.gray = self._work(frame)
        self.mask = resize_to(full.astype(np.uint8), self._work_hw, nearest=True) > 0
        self.ref_area = float(self.mask.sum())
        self.centre = (
            np.array(np.nonzero(self.mask)[::-1], dtype=np.float64).mean(1) if self.ref_area else None
        )
        self.velocity, self.lost = np.zeros(2), False
        self._update_appearance(lab, first=True)
        return full

    def _ring(self, mask: np.ndarray) -> np.ndarray:
        size = max(3, int(0.25 * np.sqrt(mask.sum())))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1, 2 * size + 1))
        return (cv2.dilate(mask.astype(np.uint8), kernel) > 0) & ~mask

    def _update_appearance(self, lab: np.ndarray, first: bool = False) -> None:
        assert self.mask is not None
        self.appearance.update(lab, self.mask, self._ring(self.mask), first=first)

    def step(self, frame: np.ndarray) -> np.ndarray:
        """Move the track to ``frame`` (the next one in the direction of travel); returns ``H x W`` bool."""
        assert self.mask is not None and self.gray is not None, "call start() first"
        lab, gray = self._work(frame)
        flow = self._flow.calc(gray, self.gray, None)  # new -> previous: new(x) ~ previous(x + flow(x))
        h, w = gray.shape
        grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        warped = cv2.remap(
            self.mask.astype(np.float32), grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR
        )
        self._move_clicks(flow)
        self.gray = gray
        core = warped > 0.5
        mask = np.zeros_like(core)
        logits = np.full(core.shape, -1.0, dtype=np.float32)
        if core.sum() >= self.config.min_area_fraction * h * w and not self.lost:
            logits = self._votes(frame, lab, core)
            mask = self._clean(logits > 0, core)
        if mask.sum() < self.config.lost_ratio * self.ref_area:  # occluded, left the frame, or lost
            found = self._redetect(lab)
            if found is not None:
                mask, logits = found, np.where(found, 1.0, -1.0).astype(np.float32)
        self._remember(mask, lab)
        full = resize_to(logits, self.full_size) > 0
        return full & (resize_to(mask.astype(np.uint8), self.full_size, nearest=True) > 0)

    def _remember(self, mask: np.ndarray, lab: np.ndarray) -> None:
        """Keep a healthy mask (area near the reference) as the state; else move the last one by the velocity."""
        area = float(mask.sum())
        healthy = self.config.lost_ratio * self.ref_area <= area <= self.ref_area / self.config.lost_ratio
        if area > 0:
            centre = np.array(np.nonzero(mask)[::-1], dtype=np.float64).mean(1)
            if healthy and self.centre is not None:
                self.velocity = 0.7 * self.velocity + 0.3 * (centre - self.centre)
            if healthy:
                self.centre = centre
        if healthy:
            self.lost = False
            self.mask = mask
            self.ref_area = 0.9 * self.ref_area + 0.1 * area
            self._update_appearance(lab)
            return
        self.lost = area == 0
        if area > 0:
            self.mask = mask  # partly hidden: follow what is visible, keep the appearance and the size
        else:
            shift = np.float32([[1, 0, self.velocity[0]], [0, 1, self.velocity[1]]])
            self.mask = cv2.warpAffine(self.mask.astype(np.uint8), shift, self.mask.shape[::-1]) > 0
            if self.centre is not None:
                self.centre = self.centre + self.velocity

    def _redetect(self, lab: np.ndarray) -> np.ndarray | None:
        """The object-coloured blob of about the remembered size nearest to where the object should be (within
        ``search_radius`` object sizes), or None."""
        if self.appearance.fg is None or self.centre is None:
            return None
        prob = self.appearance.probability(lab)
        count, labels, stats, centroids = cv2.connectedComponentsWithStats((prob > 0.5).astype(np.uint8), 8)
        expected = self.centre + self.velocity
        size = np.sqrt(self.ref_area)
        best, best_dist = None, self.config.search_radius * size
        for k in range(1, count):
            area = stats[k, cv2.CC_STAT_AREA]
            if not self.config.lost_ratio * self.ref_area <= area <= self.ref_area / self.config.lost_ratio:
                continue
            dist = float(np.hypot(*(centroids[k] - expected)))
            if dist < best_dist:
                best, best_dist = k, dist
        return None if best is None else labels == best

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

    def _votes(self, frame: np.ndarray, lab: np.ndarray, core: np.ndarray) -> np.ndarray:
        """Log-odds of the object at working scale (``h x w`` float32)."""
        cfg = self.config
        sdf = signed_distance(core)
        width = max(cfg.prior_min_width, cfg.prior_width * float(np.sqrt(core.sum())))
        prior = np.clip(sdf / width, -cfg.prior_clip, cfg.prior_clip)  # log-odds of a sigmoid of the distance
        colour = _logit(self.appearance.probability(lab), cfg.colour_eps)
        logits = cfg.prior_weight * prior + cfg.colour_weight * colour
        self._steps += 1
        if cfg.snap and self.predictor is not None and self._steps % max(1, cfg.snap_every) == 0:
            snapped = self._snap(frame, logits > 0, core)
            if snapped is not None and _iou(snapped, logits > 0) >= cfg.snap_min_iou:
                logits = logits + cfg.snap_weight * np.where(snapped, 2.0, -2.0).astype(np.float32)
        return logits.astype(np.float32)

    def _snap(self, frame: np.ndarray, candidate: np.ndarray, core: np.ndarray) -> np.ndarray | None:
        """The predictor's mask (working scale, bool) on a crop around the candidate, or None."""
        cfg = self.config
        region = candidate & (cv2.dilate(core.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0)
        if not region.any():
            return None
        x0, y0, x1, y1 = _box(region | core, cfg.roi_margin, region.shape)
        inv = 1.0 / self.scale
        crop = frame[int(y0 * inv) : int(np.ceil(y1 * inv)), int(x0 * inv) : int(np.ceil(x1 * inv))]
        crop_scale = min(1.0, cfg.snap_long_side / max(crop.shape[:2]))
        crop = resize_to(
            crop, (max(1, round(crop.shape[0] * crop_scale)), max(1, round(crop.shape[1] * crop_scale)))
        )
        to_crop = crop_scale * inv  # working px -> crop px
        local = region[y0:y1, x0:x1]
        points, labels = [], []
        for (x, y), label in zip(self.clicks, self.labels):
            xi, yi = int(round(x)), int(round(y))
            inside = y0 <= yi < y1 and x0 <= xi < x1
            if inside and (local[yi - y0, xi - x0] == bool(label)):
                points.append(((x - x0) * to_crop, (y - y0) * to_crop))
                labels.append(int(label))
        extra = interior_points(local, cfg.extra_clicks + (0 if any(labels) else 1))
        points += [(x * to_crop, y * to_crop) for x, y in extra]
        labels += [1] * len(extra)
        if not any(labels):
            return None
        ch, cw = crop.shape[:2]
        points = [(min(max(x, 0.0), cw - 1.0), min(max(y, 0.0), ch - 1.0)) for x, y in points]
        self.predictor.set_image(crop)
        crop_mask = self.predictor.predict(points, labels, granularity=self.granularity).masks[0]
        out = np.zeros_like(candidate)
        out[y0:y1, x0:x1] = resize_to(crop_mask.astype(np.uint8), (y1 - y0, x1 - x0), nearest=True) > 0
        return out

    def _clean(self, mask: np.ndarray, core: np.ndarray) -> np.ndarray:
        """Open away thin tendrils (radius ``open_radius``), stay within a band around the warped mask, keep the
        components that touch it."""
        cfg = self.config
        if cfg.open_radius > 0:
            r = cfg.open_radius
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0
        if cfg.band > 0:
            mask &= signed_distance(core) > -(cfg.band * float(np.sqrt(core.sum())) + 2.0)
        return self._keep_touching(mask, core)

    @staticmethod
    def _keep_touching(mask: np.ndarray, core: np.ndarray) -> np.ndarray:
        """The connected components of ``mask`` that overlap ``core``."""
        count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        if count <= 1:
            return mask
        keep = np.unique(labels[core & mask])
        keep = keep[keep > 0]
        return np.isin(labels, keep)
