"""Joint (cross) bilateral filter in torch, with OpenCV's conventions (``cv2.ximgproc.jointBilateralFilter`` /
``cv2.bilateralFilter``): a circular window of diameter ``d`` (offsets with ``dx^2 + dy^2 <= r^2``, r = d // 2),
spatial weight ``exp(-(dx^2 + dy^2) / (2 sigma_space^2))``, colour weight ``exp(-c^2 / (2 sigma_colour^2))`` where
``c`` is the L1 distance between the guide's pixels (summed over channels, as OpenCV does for 3-channel
images), reflect-101 borders. Vectorised over pixels (one step per window offset, no per-pixel loop).

OpenCV contrib (``opencv-contrib-python-headless``) is not used: installing it next to ``opencv-python-headless``
puts two packages into the same ``cv2`` folder, so it does not install cleanly.
"""

from __future__ import annotations

import numpy as np
import torch


def joint_bilateral_filter(
    source: np.ndarray | torch.Tensor,
    guide: np.ndarray | torch.Tensor,
    diameter: int = 9,
    sigma_colour: float = 75.0,
    sigma_space: float = 75.0,
) -> np.ndarray:
    """Filter ``source`` (``H x W`` float) with weights from ``guide`` (``H x W x C`` float on the 0..255 scale).
    Returns ``H x W`` float32."""
    src = torch.as_tensor(np.asarray(source), dtype=torch.float64)
    gd = torch.as_tensor(np.asarray(guide), dtype=torch.float64)
    if gd.ndim == 2:
        gd = gd[..., None]
    if src.shape != gd.shape[:2]:
        raise ValueError(f"source {tuple(src.shape)} and guide {tuple(gd.shape)} differ in size")
    height, width = src.shape
    radius = max(int(diameter) // 2, 0)
    pad = min(radius, height - 1, width - 1)  # reflect padding needs pad < size
    stacked = torch.cat([src[None], gd.permute(2, 0, 1)], dim=0)[None]  # 1 x (1 + C) x H x W
    if pad > 0:
        stacked = torch.nn.functional.pad(stacked, (pad, pad, pad, pad), mode="reflect")
    padded_src, padded_guide = stacked[0, 0], stacked[0, 1:]
    centre_guide = gd.permute(2, 0, 1)
    numerator = torch.zeros(height, width, dtype=torch.float64)
    denominator = torch.zeros(height, width, dtype=torch.float64)
    space_coeff = -0.5 / sigma_space**2
    colour_coeff = -0.5 / sigma_colour**2
    for dy in range(-pad, pad + 1):
        for dx in range(-pad, pad + 1):
            if dy * dy + dx * dx > radius * radius:
                continue
            rows = slice(pad + dy, pad + dy + height)
            cols = slice(pad + dx, pad + dx + width)
            colour = (padded_guide[:, rows, cols] - centre_guide).abs().sum(dim=0)
            weight = torch.exp(space_coeff * (dx * dx + dy * dy) + colour_coeff * colour * colour)
            numerator += weight * padded_src[rows, cols]
            denominator += weight
    return (numerator / denominator).numpy().astype(np.float32)
