"""The isegm / RITM robot user: where the next corrective click goes, and IoU with ignore regions.

Protocol (SamsungLabs/ritm_interactive_segmentation, ``isegm/inference/clicker.py``, reproduced exactly):

* error maps: false negatives ``fn = gt & ~pred`` and false positives ``fp = ~gt & pred``, both restricted to
  pixels that are not ignored;
* both maps are zero-padded by 1 px so that the image border counts as "outside" the error region;
* OpenCV's exact L2 distance transform (``cv2.distanceTransform(m, cv2.DIST_L2, 0)``, mask size 0 = precise),
  then the padding is cropped off;
* pixels already clicked are zeroed;
* the click is positive iff the largest fn distance is strictly greater than the largest fp distance, and it goes
  to the first pixel (row-major order) that reaches that maximum.

A second robot user, :class:`CentreClicker` (``clicker="gen2seg"``), follows the Gen2Seg paper's iterative
protocol: every click is positive; the first goes to the centre of the object, each next one into the largest
contiguous region of the ground truth not yet predicted (false negatives, 4-connected), at the point of that
region farthest from its border (the exact L2 distance transform, as above, so the "centre" of the region); no
click is placed once nothing of the object is missed (the sequence ends; the paper uses up to 9 clicks).

Masks are ``H x W`` bool. A :class:`Click` stores ``(row, col)`` = ``(y, x)`` integer pixel indices; predictors take
``(x, y)``, see :meth:`Clicker.points_xy`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from granseg.errors import InputError


@dataclass(frozen=True)
class Click:
    """One robot click: ``is_positive`` and its pixel ``(y, x)`` (row, column)."""

    is_positive: bool
    y: int
    x: int

    @property
    def label(self) -> int:
        return 1 if self.is_positive else 0


def _distance_map(error: np.ndarray) -> np.ndarray:
    """Exact L2 distance of each error pixel to the nearest non-error pixel, image border counting as non-error."""
    import cv2

    padded = np.pad(error, ((1, 1), (1, 1)), mode="constant").astype(np.uint8)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 0)[1:-1, 1:-1]


def next_click(
    gt_mask: np.ndarray,
    pred_mask: np.ndarray,
    not_clicked: np.ndarray | None = None,
    ignore_mask: np.ndarray | None = None,
) -> Click:
    """The RITM next click for a prediction. ``not_clicked``: ``H x W`` bool, False where a click already is;
    ``ignore_mask``: ``H x W`` bool, True where the ground truth is unlabelled (excluded from both error maps)."""
    gt = np.asarray(gt_mask, dtype=bool)
    pred = np.asarray(pred_mask, dtype=bool)
    valid = np.ones_like(gt) if ignore_mask is None else ~np.asarray(ignore_mask, dtype=bool)
    fn_dt = _distance_map(gt & ~pred & valid)
    fp_dt = _distance_map(~gt & pred & valid)
    if not_clicked is not None:
        fn_dt = fn_dt * not_clicked
        fp_dt = fp_dt * not_clicked
    fn_max = fn_dt.max()
    fp_max = fp_dt.max()
    is_positive = bool(fn_max > fp_max)
    chosen = fn_dt if is_positive else fp_dt
    flat = int(np.argmax(chosen == (fn_max if is_positive else fp_max)))  # first hit in row-major order
    y, x = divmod(flat, gt.shape[1])
    return Click(is_positive, int(y), int(x))


class Clicker:
    """Stateful robot user for one instance: remembers its clicks and which pixels were clicked."""

    def __init__(self, gt_mask: np.ndarray, ignore_mask: np.ndarray | None = None) -> None:
        self.gt_mask = np.asarray(gt_mask, dtype=bool)
        self.ignore_mask = None if ignore_mask is None else np.asarray(ignore_mask, dtype=bool)
        self.not_clicked = np.ones(self.gt_mask.shape, dtype=bool)
        self.clicks: list[Click] = []

    def make_next_click(self, pred_mask: np.ndarray) -> Click:
        """Place the next click given the current prediction (all-False before the first click)."""
        click = next_click(self.gt_mask, pred_mask, self.not_clicked, self.ignore_mask)
        self.add_click(click)
        return click

    def add_click(self, click: Click) -> None:
        self.clicks.append(click)
        self.not_clicked[click.y, click.x] = False

    def points_xy(self) -> np.ndarray:
        """``(N, 2)`` float64 (x, y) of the clicks so far, for :meth:`BasePredictor.predict`."""
        return np.asarray([(c.x, c.y) for c in self.clicks], dtype=np.float64).reshape(-1, 2)

    def labels(self) -> np.ndarray:
        """``(N,)`` int64: 1 positive, 0 negative."""
        return np.asarray([c.label for c in self.clicks], dtype=np.int64)


def centre_click(
    gt_mask: np.ndarray,
    pred_mask: np.ndarray,
    not_clicked: np.ndarray | None = None,
    ignore_mask: np.ndarray | None = None,
) -> Click | None:
    """The Gen2Seg paper's next click (a positive click at the distance-transform centre of the largest
    4-connected false-negative region), or None when no false negative is left. With an empty prediction this is
    the centre click of the object's largest part."""
    from scipy import ndimage

    gt = np.asarray(gt_mask, dtype=bool)
    missed = gt & ~np.asarray(pred_mask, dtype=bool)
    if ignore_mask is not None:
        missed &= ~np.asarray(ignore_mask, dtype=bool)
    regions, count = ndimage.label(missed)
    if count == 0:
        return None
    sizes = np.bincount(regions.ravel(), minlength=count + 1)
    sizes[0] = 0
    largest = regions == int(np.argmax(sizes))  # ties: the lowest label (first in row-major order)
    distance = _distance_map(largest)
    if not_clicked is not None and bool((distance * not_clicked).max() > 0):
        distance = distance * not_clicked
    flat = int(np.argmax(distance))  # first maximum in row-major order
    y, x = divmod(flat, gt.shape[1])
    return Click(True, int(y), int(x))


class CentreClicker(Clicker):
    """The Gen2Seg paper's robot user (see the module docstring). ``make_next_click`` returns None when the
    object is fully predicted (no click is added then)."""

    def make_next_click(self, pred_mask: np.ndarray) -> Click | None:
        click = centre_click(self.gt_mask, pred_mask, self.not_clicked, self.ignore_mask)
        if click is not None:
            self.add_click(click)
        return click


CLICKERS = {"ritm": Clicker, "gen2seg": CentreClicker}


def make_clicker(kind: str, gt_mask: np.ndarray, ignore_mask: np.ndarray | None = None) -> Clicker:
    """A robot user by name: ``"ritm"`` (isegm/RITM, the default) or ``"gen2seg"`` (the paper's protocol)."""
    if kind not in CLICKERS:
        raise InputError(f"unknown clicker {kind!r} (known: {', '.join(CLICKERS)})")
    return CLICKERS[kind](gt_mask, ignore_mask)


def iou(gt_mask: np.ndarray, pred_mask: np.ndarray, ignore_mask: np.ndarray | None = None) -> float:
    """IoU of two ``H x W`` bool masks over the non-ignored pixels (isegm ``get_iou``). Both empty -> 1.0."""
    gt = np.asarray(gt_mask, dtype=bool)
    pred = np.asarray(pred_mask, dtype=bool)
    if ignore_mask is not None:
        valid = ~np.asarray(ignore_mask, dtype=bool)
        gt = gt & valid
        pred = pred & valid
    union = np.count_nonzero(gt | pred)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(gt & pred)) / union


def number_of_clicks(ious: np.ndarray | list[float], target: float, max_clicks: int = 20) -> int:
    """NoC@target: the 1-based index of the first click whose IoU reaches ``target``, else ``max_clicks``."""
    reached = np.asarray(ious, dtype=np.float64) >= target
    return int(np.argmax(reached)) + 1 if reached.any() else int(max_clicks)
