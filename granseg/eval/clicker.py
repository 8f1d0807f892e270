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

Masks are ``H x W`` bool. A :class:`Click` stores ``(row, col)`` = ``(y, x)`` integer pixel indices; predictors take
``(x, y)``, see :meth:`Clicker.points_xy`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
