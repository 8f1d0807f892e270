"""Occlusion handling for weight-free tracking: the object's colour model, its size and speed, re-detection.

A :class:`TrackMemory` watches the masks a tracker produces. While the object is visible (its mask keeps at least
``lost_ratio`` of the remembered area) it updates a colour model (CIELAB histograms of the object and of a ring
of background around it, EMA), the remembered area (EMA) and the velocity of the mask's centroid. When the mask
shrinks under that, the object is taken as hidden (occluded or out of view): the tracker reports an empty mask,
its last good mask coasts at the remembered velocity, and every frame :meth:`TrackMemory.redetect` looks for a
blob of the object's colours, of about the remembered size, near where the object should be.

Arrays are at the tracker's working scale: ``lab`` ``h x w x 3`` uint8, masks ``h x w`` bool, points ``(x, y)`` px.
"""

from __future__ import annotations

import cv2
import numpy as np


def colour_codes(lab: np.ndarray, bins: int) -> np.ndarray:
    """Histogram cell (``0 .. bins^3 - 1``, int) of each CIELAB colour of ``lab`` (``... x 3`` uint8): each
    channel quantised to ``bins`` levels."""
    q = (lab.astype(np.int32) * bins) // 256
    return (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]


class Appearance:
    """Object / background colour histograms in CIELAB (``bins^3`` cells each), EMA-updated."""

    def __init__(self, bins: int = 16, rate: float = 0.1) -> None:
        self.bins, self.rate = bins, rate
        self.fg: np.ndarray | None = None
        self.bg: np.ndarray | None = None

    def _codes(self, lab: np.ndarray) -> np.ndarray:
        return colour_codes(lab, self.bins)

    def _hist(self, codes: np.ndarray) -> np.ndarray:
        hist = np.bincount(codes, minlength=self.bins**3).astype(np.float64) + 0.5
        return hist / hist.sum()

    def update(self, lab: np.ndarray, mask: np.ndarray, ring: np.ndarray) -> None:
        """Blend in the colours of ``mask`` (object) and ``ring`` (nearby background); the first call sets them."""
        if not mask.any() or not ring.any():
            return
        codes = self._codes(lab)
        fg, bg = self._hist(codes[mask]), self._hist(codes[ring])
        first = self.fg is None
        self.fg = fg if first else (1 - self.rate) * self.fg + self.rate * fg
        self.bg = bg if first else (1 - self.rate) * self.bg + self.rate * bg

    def seen(self, lab: np.ndarray) -> np.ndarray:
        """``h x w`` bool: colours the object has shown (its histogram cell over 4 x the empty cells' level)."""
        assert self.fg is not None
        return self.fg[self._codes(lab)] > 4 * self.fg.min()

    def probability(self, lab: np.ndarray) -> np.ndarray:
        """``p(object | colour)`` per pixel, ``h x w`` float32 in (0, 1)."""
        assert self.fg is not None and self.bg is not None
        ratio = (self.fg / (self.fg + self.bg)).astype(np.float32)
        return ratio[self._codes(lab)]


def ring_around(mask: np.ndarray, fraction: float = 0.25) -> np.ndarray:
    """The background ring ``fraction`` x sqrt(area) px wide (at least 3) around ``mask``."""
    size = max(3, int(fraction * np.sqrt(mask.sum())))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1, 2 * size + 1))
    return (cv2.dilate(mask.astype(np.uint8), kernel) > 0) & ~mask


def centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


class TrackMemory:
    """Colour, size and speed of one tracked object, and whether it is hidden; see the module docstring."""

    def __init__(
        self,
        lost_ratio: float = 0.3,
        search_radius: float = 2.0,
        rate: float = 0.1,
        relative: bool = True,
        search_ramp: int = 0,
    ) -> None:
        """``relative``: the remembered area and own-colour fraction follow every visible mask (EMA), and the
        own-colour test is relative to the remembered fraction; False: the older rule (area learnt only from
        masks >= 0.7 x it, half the mask of own colours required)."""
        self.lost_ratio, self.search_radius, self.rate, self.relative = (
            lost_ratio,
            search_radius,
            rate,
            relative,
        )
        self.ref_own = 1.0
        self.appearance = Appearance(rate=rate)
        self.ref_area = 0.0
        self.centre: np.ndarray | None = None
        self.velocity = np.zeros(2)
        self.hidden = False
        self.search_ramp = search_ramp
        self.unseen = 0  # frames the object has been hidden so far

    def start(self, lab: np.ndarray, mask: np.ndarray) -> None:
        self.appearance = Appearance(rate=self.rate)
        self.ref_area, self.velocity, self.hidden = float(mask.sum()), np.zeros(2), False
        self.centre = centroid(mask) if mask.any() else None
        self.appearance.update(lab, mask, ring_around(mask))
        self.ref_own = self._own_fraction(lab, mask)

    def _own_fraction(self, lab: np.ndarray, mask: np.ndarray) -> float:
        return np.count_nonzero(mask & self.own_colour(lab)) / max(1, np.count_nonzero(mask))

    def visible(self, lab: np.ndarray, mask: np.ndarray) -> bool:
        """Whether ``mask`` can be the object: at least ``lost_ratio`` x the remembered area of the object's own
        colours (:meth:`own_colour`), and an own-colour fraction at least ``lost_ratio`` x its remembered one
        (lighting drifts the colours slowly; an occluder replaces them at once)."""
        if not mask.any() or self.appearance.fg is None:
            return bool(mask.any())
        own = np.count_nonzero(mask & self.own_colour(lab))
        if self.relative:
            return (
                own >= self.lost_ratio * self.ref_area and own >= self.lost_ratio * self.ref_own * mask.sum()
            )
        return own >= self.lost_ratio * self.ref_area and own >= 0.5 * mask.sum()

    def own_colour(self, lab: np.ndarray) -> np.ndarray:
        """``h x w`` bool: colours the object has shown that are likelier on it than around it."""
        return (self.appearance.probability(lab) > 0.5) & self.appearance.seen(lab)

    def remember(self, lab: np.ndarray, mask: np.ndarray) -> None:
        """Learn from a visible ``mask``: centroid velocity; colours, area and own-colour fraction (relative
        memory: always; else only while the mask is near the remembered area, ``>= 0.7`` x: not partly hidden)."""
        centre = centroid(mask)
        if self.centre is not None and not self.hidden:
            self.velocity = 0.7 * self.velocity + 0.3 * (centre - self.centre)
        self.centre, self.hidden, self.unseen = centre, False, 0
        if self.relative:  # a gradual change of size (the object drives away) or of colour is followed
            self.ref_area = (1 - self.rate) * self.ref_area + self.rate * float(mask.sum())
            self.ref_own = (1 - self.rate) * self.ref_own + self.rate * self._own_fraction(lab, mask)
            self.appearance.update(lab, mask, ring_around(mask))
        elif mask.sum() >= 0.7 * self.ref_area:
            self.ref_area = (1 - self.rate) * self.ref_area + self.rate * float(mask.sum())
            self.appearance.update(lab, mask, ring_around(mask))

    def coast(self, mask: np.ndarray) -> np.ndarray:
        """The object is hidden: ``mask`` (its last good one) moved by the velocity."""
        self.hidden = True
        self.unseen += 1
        shift = np.float32([[1, 0, self.velocity[0]], [0, 1, self.velocity[1]]])
        if self.centre is not None:
            self.centre = self.centre + self.velocity
        return cv2.warpAffine(mask.astype(np.uint8), shift, mask.shape[::-1]) > 0

    def search_distance(self) -> float:
        """How far (px) from the expected position re-detection looks: ``search_radius`` x sqrt(remembered area);
        with ``search_ramp`` > 0 it starts at ``1 / (search_ramp + 1)`` of that on the first frame the object is
        missed and grows linearly to it over ``search_ramp`` more hidden frames (the expected position is
        surest just after the object was last seen)."""
        full = self.search_radius * np.sqrt(self.ref_area)
        if self.search_ramp <= 0:
            return full
        return full * min(1.0, (1 + self.unseen) / (1 + self.search_ramp))

    def redetect(self, lab: np.ndarray, accept=None) -> np.ndarray | None:
        """The object-coloured blob (``p > 0.5`` and a colour the object has shown) of ``[lost_ratio, 1 /
        lost_ratio]`` x the remembered area whose centroid is nearest the expected position, within
        ``search_radius`` x sqrt(area); or None. ``accept`` (optional, ``h x w`` bool -> bool): a further test a
        blob must pass (e.g. that it moves like the object); the nearest blob passing it is returned."""
        if self.appearance.fg is None or self.centre is None:
            return None
        candidate = self.own_colour(lab)
        count, labels, stats, centres = cv2.connectedComponentsWithStats(candidate.astype(np.uint8), 8)
        near = []
        for k in range(1, count):
            if not self.lost_ratio <= stats[k, cv2.CC_STAT_AREA] / self.ref_area <= 1 / self.lost_ratio:
                continue
            dist = float(np.hypot(*(centres[k] - self.centre)))
            if dist < self.search_distance():
                near.append((dist, k))
        for _, k in sorted(near):
            blob = labels == k
            if accept is None or accept(blob):
                return blob
        return None
