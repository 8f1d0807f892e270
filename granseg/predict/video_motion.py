"""Motion cues for weight-free video tracking: the clicked object's extent from how it moves.

A video shows what a single image cannot: the pixels of one object move together, and differently from the
background. :func:`motion_object` takes the prompt frame, a few frames after it (in the direction of travel) and
the click, and returns the object's mask (or None when the clicked point does not move relative to the
background):

1. Dense optical flow (OpenCV DIS) from the prompt frame to each later frame, at a working scale.
2. The background's motion: a homography fit by RANSAC to the flow on a pixel grid (camera pan / zoom).
3. Residual motion = flow minus the background's motion. The clicked point's residual ``r_c`` (median of a
   5 x 5 window) must be at least ``min_motion`` px; pixels whose residual is close to ``r_c`` (within
   ``similarity`` x |r_c| + 0.5 px) and not background-like (over ``min_fraction`` x |r_c|) in *every* later frame
   move with the click; their connected component holding the click is the motion mask.
4. GrabCut (OpenCV) from that mask (probably object; a ring around it probably background; the click certain)
   snaps the extent to colour edges.

Coordinates: points ``(x, y)`` in pixels of the original frame; frames ``H x W x 3`` uint8 RGB; the returned mask
``H x W`` bool at the original size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from granseg.config import Config


@dataclass
class MotionConfig(Config):
    """Parameters of :func:`motion_object` (tuned on DAVIS blackswan and bmx-trees only)."""

    work_long_side: int = 480
    min_motion: float = 1.0  # px at working scale between the prompt frame and each later frame
    similarity: float = 0.5  # residuals within this fraction of |r_c| (+ 0.5 px) move with the click
    min_fraction: float = 0.3  # and at least this fraction of |r_c| away from the background's motion
    grabcut_iterations: int = 4
    ring: float = 0.15  # probable-background ring width, fraction of sqrt(motion mask area)
    max_area_fraction: float = 0.6  # a motion mask over this fraction of the frame is not an object
    # a pixel moves with the click when it does in at least this many of the later frames (0: in every one)
    min_votes: int = 0


def _small(frame: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return frame
    h, w = frame.shape[:2]
    return cv2.resize(
        frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )


def residual_flow(gray0: np.ndarray, gray1: np.ndarray, flow_engine=None) -> np.ndarray | None:
    """Flow from ``gray0`` to ``gray1`` (``h x w`` uint8) minus the background's homography: ``h x w x 2``
    float32 px, or None when no homography fits."""
    engine = flow_engine or cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return residual_of(engine.calc(gray0, gray1, None))


def background_homography(flow: np.ndarray) -> np.ndarray | None:
    """The ``3 x 3`` homography (RANSAC, 1 px) that best explains ``flow`` (``h x w x 2``, x -> x + flow(x)) on a
    pixel grid: the camera's motion when the background fills most of the frame; None when none fits."""
    h, w = flow.shape[:2]
    step = max(4, min(h, w) // 40)
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    src = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    if len(src) < 8:
        return None
    dst = src + flow[ys.ravel(), xs.ravel()]
    homography, _ = cv2.findHomography(src, dst, cv2.RANSAC, 1.0)
    return homography


def residual_of(flow: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray | None:
    """``flow`` (``h x w x 2``) minus the background's homography, over ``box`` ``(x0, y0, x1, y1)`` (default
    the whole frame): ``(y1 - y0) x (x1 - x0) x 2`` float32 px, or None when no homography fits."""
    homography = background_homography(flow)
    if homography is None:
        return None
    h, w = flow.shape[:2]
    x0, y0, x1, y1 = box or (0, 0, w, h)
    grid_y, grid_x = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    grid = np.stack([grid_x, grid_y], -1)
    moved = cv2.perspectiveTransform(grid.reshape(-1, 1, 2), homography).reshape(grid.shape)
    return (flow[y0:y1, x0:x1] - (moved - grid)).astype(np.float32)


def moves_like(residual: np.ndarray, target: np.ndarray, similarity: float, min_fraction: float):
    """``(like, still)``: ``h x w`` bool maps of the pixels whose ``residual`` (``h x w x 2``) is within
    ``similarity`` x |target| + 0.5 px of ``target`` (``(2,)``) and over ``min_fraction`` x |target| long, and of
    those under it (moving with the background)."""
    speed = float(np.linalg.norm(target))
    magnitude = np.linalg.norm(residual, axis=-1)
    distance = np.linalg.norm(residual - target, axis=-1)
    still = magnitude < min_fraction * speed
    return (distance < similarity * speed + 0.5) & ~still, still


def motion_object(
    frame: np.ndarray,
    later: Sequence[np.ndarray],
    point: tuple[float, float],
    config: MotionConfig | None = None,
) -> np.ndarray | None:
    """The object at ``point`` on ``frame`` by its motion over ``later`` frames (see the module docstring);
    ``H x W`` bool, or None (no later frame, the point does not move relative to the background, or no object
    of a plausible size)."""
    cfg = config or MotionConfig()
    if not later:
        return None
    full_hw = frame.shape[:2]
    scale = min(1.0, cfg.work_long_side / max(full_hw))
    small = _small(frame, scale)
    gray0 = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    h, w = gray0.shape
    cx = int(np.clip(round(point[0] * scale), 0, w - 1))
    cy = int(np.clip(round(point[1] * scale), 0, h - 1))
    engine = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    votes = np.zeros((h, w), dtype=np.int32)
    for other in later:
        residual = residual_flow(gray0, cv2.cvtColor(_small(other, scale), cv2.COLOR_RGB2GRAY), engine)
        if residual is None:
            return None
        window = residual[max(0, cy - 2) : cy + 3, max(0, cx - 2) : cx + 3].reshape(-1, 2)
        click = np.median(window, axis=0)
        speed = float(np.linalg.norm(click))
        if speed < cfg.min_motion:
            return None
        votes += moves_like(residual, click, cfg.similarity, cfg.min_fraction)[0]
    moving = votes >= (min(cfg.min_votes, len(later)) if cfg.min_votes > 0 else len(later))
    if not moving[cy, cx]:
        return None
    _, labels = cv2.connectedComponents(moving.astype(np.uint8), connectivity=8)
    component = labels == labels[cy, cx]
    if component.sum() > cfg.max_area_fraction * h * w:
        return None
    refined = grabcut_from(small, component, (cx, cy), cfg.ring, cfg.grabcut_iterations)
    if not refined[cy, cx]:
        refined = component
    return cv2.resize(refined.astype(np.uint8), full_hw[::-1], interpolation=cv2.INTER_LINEAR) > 0


def grabcut_from(
    image: np.ndarray, mask: np.ndarray, click: tuple[int, int], ring: float, iterations: int
) -> np.ndarray:
    """GrabCut on ``image`` (``h x w x 3`` RGB) from ``mask`` (``h x w`` bool, probably object), a ring of
    ``ring`` x sqrt(area) px around it probably background, the rest background, ``click`` ``(x, y)`` certain
    object. Returns ``h x w`` bool (``mask`` itself when GrabCut fails)."""
    width = int(ring * np.sqrt(mask.sum())) + 3
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    trimap = np.full(mask.shape, cv2.GC_BGD, np.uint8)
    trimap[cv2.dilate(mask.astype(np.uint8), kernel) > 0] = cv2.GC_PR_BGD
    trimap[mask] = cv2.GC_PR_FGD
    cv2.circle(trimap, (int(click[0]), int(click[1])), 3, cv2.GC_FGD, -1)
    cut = grabcut_from_trimap(image, trimap, iterations)
    return mask if cut is None else cut


def grabcut_from_trimap(image: np.ndarray, trimap: np.ndarray, iterations: int) -> np.ndarray | None:
    """``cv2.grabCut`` initialised with ``trimap`` (``H x W`` uint8 of ``cv2.GC_*`` labels, updated in place) on
    the ``H x W x 3`` RGB ``image``, with OpenCV's RNG seeded so the answer does not depend on what ran before.

    Returns the ``H x W`` bool foreground (certain or probable), or None where OpenCV refuses the trimap (e.g. no
    probable-background pixel)."""
    cv2.setRNGSeed(0)  # GrabCut's k-means start: the same answer whatever ran before
    try:
        cv2.grabCut(
            cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
            trimap,
            None,
            np.zeros((1, 65)),
            np.zeros((1, 65)),
            iterations,
            cv2.GC_INIT_WITH_MASK,
        )
    except cv2.error:
        return None
    return (trimap == cv2.GC_FGD) | (trimap == cv2.GC_PR_FGD)
