"""Video object segmentation scores on DAVIS: region similarity J and boundary accuracy F (DAVIS conventions).

* J: IoU of the ``H x W`` bool masks; both empty -> 1.
* F: boundaries by DAVIS ``seg2bmap`` (a pixel is boundary when it differs from its right, lower or lower-right
  neighbour), matched within ``ceil(0.008 x diagonal)`` px (a disk dilation); P = matched predicted boundary /
  predicted boundary, R = matched GT boundary / GT boundary, F = 2PR/(P+R); empty cases as in the toolkit
  (no prediction and no GT boundary -> P = R = 1).
* Per sequence: the mean over frames, leaving out the first (given as the prompt) and the last frame, as the
  DAVIS toolkit does; dataset J&F = (mean J + mean F) / 2 over sequences.

:func:`propagate_with_session` tracks with :class:`granseg.predict.video.VideoSession` (flow, appearance,
snapping). :func:`propagate_with_clicks` is the older weight-free baseline over any ``BasePredictor`` at a fixed g: the
first frame gets the RITM first click on its ground truth, every later frame one positive click at the interior
point (largest distance to the outline) of the previous frame's predicted mask.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

BOUNDARY_TOLERANCE = 0.008


def jaccard(gt: np.ndarray, pred: np.ndarray) -> float:
    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    union = np.count_nonzero(gt | pred)
    return 1.0 if union == 0 else np.count_nonzero(gt & pred) / union


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """DAVIS boundary map of an ``H x W`` bool mask (same size)."""
    seg = np.asarray(mask, dtype=bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    boundary = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    boundary[-1, :] = seg[-1, :] ^ east[-1, :]
    boundary[:, -1] = seg[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def boundary_f(gt: np.ndarray, pred: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """DAVIS boundary F-measure of two ``H x W`` bool masks."""
    from scipy.ndimage import binary_dilation
    from skimage.morphology import disk

    bound_pix = tolerance if tolerance >= 1 else math.ceil(tolerance * np.linalg.norm(np.shape(gt)))
    fg_boundary = seg2bmap(pred)
    gt_boundary = seg2bmap(gt)
    fg_dil = binary_dilation(fg_boundary, disk(bound_pix))
    gt_dil = binary_dilation(gt_boundary, disk(bound_pix))
    n_fg, n_gt = fg_boundary.sum(), gt_boundary.sum()
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = float((fg_boundary & gt_dil).sum()) / n_fg
        recall = float((gt_boundary & fg_dil).sum()) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def score_sequence(gts: list[np.ndarray], preds: list[np.ndarray], skip_first_last: bool = True) -> dict:
    """Mean J and F of one sequence (lists of ``H x W`` bool, same length)."""
    if len(gts) != len(preds):
        raise ValueError(f"{len(gts)} ground-truth frames but {len(preds)} predicted frames")
    frames = range(1, len(gts) - 1) if skip_first_last and len(gts) > 2 else range(len(gts))
    j = [jaccard(gts[i], preds[i]) for i in frames]
    f = [boundary_f(gts[i], preds[i]) for i in frames]
    return {
        "J": float(np.mean(j)),
        "F": float(np.mean(f)),
        "J&F": float((np.mean(j) + np.mean(f)) / 2),
        "frames": len(j),
    }


def summarize_sequences(per_sequence: dict[str, dict]) -> dict:
    j = float(np.mean([s["J"] for s in per_sequence.values()]))
    f = float(np.mean([s["F"] for s in per_sequence.values()]))
    return {"sequences": len(per_sequence), "J": j, "F": f, "J&F": (j + f) / 2, "per_sequence": per_sequence}


def davis_sequences(root: str | Path) -> dict[str, tuple[list[Path], list[Path]]]:
    """``{sequence: (frame paths, annotation paths)}`` for the DAVIS layout ``JPEGImages/480p``,
    ``Annotations/480p`` (or without the resolution folder)."""
    from granseg.errors import InputError
    from granseg.eval.datasets.base import list_images
    from granseg.eval.datasets.isegm import _resolution_dir

    root = Path(root)
    frames_root = _resolution_dir(root / "JPEGImages")
    masks_root = (
        root / "Annotations" / frames_root.name if frames_root.name != "JPEGImages" else root / "Annotations"
    )
    if not frames_root.is_dir() or not masks_root.is_dir():
        raise InputError(f"expected DAVIS folders JPEGImages/ and Annotations/ under {root}")
    out = {}
    for seq in sorted(p for p in frames_root.iterdir() if p.is_dir()):
        frames = list_images(seq)
        masks = [masks_root / seq.name / f"{f.stem}.png" for f in frames]
        out[seq.name] = (frames, masks)
    return out


def read_binary_mask(path: Path) -> np.ndarray:
    from granseg.eval.datasets.base import read_gray

    return read_gray(path) > 0


def interior_point(mask: np.ndarray) -> tuple[int, int] | None:
    """``(x, y)`` of the pixel farthest from the mask's outline (first in row-major order), or None if empty."""
    import cv2

    if not mask.any():
        return None
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1]
    y, x = divmod(int(np.argmax(dist)), mask.shape[1])
    return x, y


def propagate_with_clicks(
    predictor, frames: list[np.ndarray], first_gt: np.ndarray, granularity: float
) -> list[np.ndarray]:
    """Weight-free propagation baseline (see the module docstring). Returns one ``H x W`` bool mask per frame."""
    from granseg.eval.clicker import next_click

    click = next_click(first_gt, np.zeros_like(first_gt, dtype=bool))
    point: tuple[int, int] | None = (click.x, click.y)
    masks = []
    for frame in frames:
        predictor.set_image(frame)
        if point is None:
            masks.append(np.zeros(frame.shape[:2], dtype=bool))
            continue
        mask = predictor.predict([point], [1], granularity=granularity).masks[0]
        masks.append(mask)
        point = interior_point(mask) or point
    return masks


def propagate_with_session(
    predictor, frames, first_gt: np.ndarray, granularity: float, tracker_config=None, first: str = "click"
) -> list[np.ndarray]:
    """Weight-free tracking through :class:`granseg.predict.video.VideoSession` over ``frames`` (image paths,
    arrays, a folder or a video file; read lazily): ``first="click"``: the RITM
    first click on the first frame's ground truth at ``granularity``; ``first="mask"``: the first frame's
    ground truth itself (DAVIS semi-supervised protocol). Then forward propagation. One ``H x W`` bool mask per
    frame."""
    from granseg.eval.clicker import next_click
    from granseg.predict.video import VideoSession

    click = next_click(first_gt, np.zeros_like(first_gt, dtype=bool))
    session = VideoSession(predictor, frames, tracker_config=tracker_config)
    if first == "mask":
        session.add_mask(0, first_gt, granularity=granularity, obj_id=1)
    else:
        session.add_prompt(0, [(click.x, click.y)], [1], granularity=granularity, obj_id=1)
    return [masks[1] for _, masks in session.propagate("forward")]
