"""Vectorised pieces of whole-image mask generation: the point grid, stability scores, mask boxes and box NMS.

Coordinates: points ``(x, y)`` and boxes ``(x0, y0, x1, y1)`` in pixels of the original image; a mask's box is
``(min x, min y, max x + 1, max y + 1)`` (the COCO ``[x, y, w, h]`` of :func:`granseg.io.masks.mask_bbox` as corners).
"""

from __future__ import annotations

import numpy as np
import torch

NMS_BLOCK = 2048  # rows of the IoU matrix computed at once (2048 x N float32)


def point_grid(height: int, width: int, per_side: int) -> np.ndarray:
    """``(per_side**2, 2)`` float64 (x, y) cell centres, row-major."""
    offsets = (np.arange(per_side) + 0.5) / per_side
    xs = np.minimum(offsets * width, width - 1)
    ys = np.minimum(offsets * height, height - 1)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def stability_scores(logits: torch.Tensor, offset: float, threshold: float = 0.0) -> torch.Tensor:
    """``(N, h, w)`` logits -> ``(N,)`` float: ``#(logits > threshold + offset) / #(logits > threshold - offset)``,
    the IoU of the two thresholded masks (1 when both are empty)."""
    flat = logits.flatten(1)
    high = (flat > threshold + offset).sum(1, dtype=torch.int64)
    low = (flat > threshold - offset).sum(1, dtype=torch.int64)
    return torch.where(
        low > 0, high.double() / low.clamp(min=1).double(), torch.ones_like(high.double())
    ).float()


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)`` bool -> ``(N, 4)`` float64 boxes ``(x0, y0, x1, y1)``; an empty mask gets ``(0, 0, 0, 0)``."""
    count, height, width = masks.shape
    if count == 0:
        return torch.zeros(0, 4, dtype=torch.float64)
    rows, cols = masks.any(2), masks.any(1)  # (N, H), (N, W)
    ys = torch.arange(height, device=masks.device)
    xs = torch.arange(width, device=masks.device)
    y0 = torch.where(rows, ys, height).amin(1)
    y1 = torch.where(rows, ys, -1).amax(1) + 1
    x0 = torch.where(cols, xs, width).amin(1)
    x1 = torch.where(cols, xs, -1).amax(1) + 1
    boxes = torch.stack([x0, y0, x1, y1], 1).double()
    boxes[~rows.any(1)] = 0.0
    return boxes.cpu()


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, 4)`` x ``(M, 4)`` xyxy boxes -> ``(N, M)`` float64 IoU (0 where the union is empty)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by greedy NMS on ``(N, 4)`` xyxy boxes, highest score first (ties: lower index first).

    Exact greedy NMS: the IoU of each box against every lower-ranked box is computed in blocks of
    :data:`NMS_BLOCK` rows (one vectorised product per block); the greedy pass then only touches kept boxes."""
    scores = np.asarray(scores, dtype=np.float64)
    count = len(scores)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(count), -scores))
    ranked = np.asarray(boxes, dtype=np.float64)[order]
    suppressed = np.zeros(count, dtype=bool)
    keep = []
    for start in range(0, count, NMS_BLOCK):
        stop = min(start + NMS_BLOCK, count)
        overlaps = box_iou(ranked[start:stop], ranked) > threshold  # (block, N)
        for row in range(start, stop):
            if suppressed[row]:
                continue
            keep.append(row)
            later = overlaps[row - start]
            later[: row + 1] = False
            suppressed |= later
    return order[np.asarray(keep, dtype=np.int64)]
