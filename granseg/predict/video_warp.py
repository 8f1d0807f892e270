"""Moving a tracked mask by the object's own flow: optical flow extrapolated from the mask's interior.

A dense optical flow (OpenCV DIS) is smooth: along an object's outline it mixes the object's motion with the
background's. A mask moved pixel by pixel by that flow (backward warp: each new pixel takes the previous mask's
value where the flow says it came from) loses, on every frame, the leading edge and thin parts whose new pixels
carry the background's flow. :func:`warp_object_flow` moves the mask by the *object's* flow instead: the flow of
the new pixels that come from deep inside the previous mask (where it is not mixed), carried to the pixels around
them by normalised convolution (a Gaussian-weighted mean of those trusted flows). The field stays local
(non-rigid: each part of a deforming object keeps its own motion), unlike one similarity transform for the whole
mask (:func:`granseg.predict.video_track.warp_similarity`).

Arrays are at the tracker's working scale: masks ``h x w`` bool; ``flow`` ``h x w x 2`` float32, backward (new
frame -> previous frame: the new pixel ``(x, y)`` came from ``(x, y) + flow[y, x]``), in pixels.
"""

from __future__ import annotations

import cv2
import numpy as np


def object_flow(mask: np.ndarray, flow: np.ndarray, radius: int, spread: float = 1.0) -> np.ndarray | None:
    """The object's backward flow (``h x w x 2`` float32) near ``mask`` (``h x w`` bool, the previous frame).

    Trusted pixels: new pixels whose backward flow lands more than ``radius`` px inside ``mask`` (for a mask
    thinner than that, ``radius`` shrinks to its depth - 1), weighted by how much deeper (capped at ``radius``):
    their flow is the object's. Every pixel gets the Gaussian-weighted mean (sigma ``spread`` x
    ``radius``) of the trusted flows; pixels the Gaussian does not reach (weight under 1e-3 of the trusted
    pixels' typical weight) keep ``flow``. None when no new pixel lands inside ``mask``."""
    h, w = mask.shape
    padded = np.pad(mask, 1).astype(np.uint8)
    depth = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]
    if depth.max() <= radius:  # thin object: every pixel of it is trusted, by depth
        radius = max(1, int(depth.max()) - 1)
    weight_prev = np.clip(depth - radius, 0, None)  # 0 within radius of the outline, growing inside
    weight_prev = np.minimum(weight_prev, radius).astype(np.float32)
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    weight = cv2.remap(weight_prev, map_x, map_y, cv2.INTER_NEAREST, borderValue=0)
    if not weight.any():
        return None
    sigma = max(1.0, spread * radius)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    num = cv2.GaussianBlur(flow * weight[..., None], (0, 0), sigma)
    reached = den > 1e-3 * float(weight[weight > 0].mean())
    out = flow.astype(np.float32).copy()
    out[reached] = num[reached] / den[reached, None]
    return out


def warp_object_flow(
    mask: np.ndarray, flow: np.ndarray, radius: int, spread: float = 1.0
) -> np.ndarray | None:
    """``mask`` (``h x w`` bool, previous frame) moved into the new frame by :func:`object_flow` (bilinear,
    ``> 0.5``); ``h x w`` bool, or None when no new pixel comes from inside ``mask``."""
    moving = object_flow(mask, flow, radius, spread)
    if moving is None:
        return None
    h, w = mask.shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    moved = cv2.remap(
        mask.astype(np.float32), grid_x + moving[..., 0], grid_y + moving[..., 1], cv2.INTER_LINEAR
    )
    return moved > 0.5
