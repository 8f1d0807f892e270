"""UnSAMv2 / SAM-2 training losses: focal (alpha 0.25, gamma 2) x 20 + dice x 1 + IoU-prediction L1 x 1 +
object-score BCE x 1 (DESIGN.md sec. 4).

Shapes: ``P`` masks; logits and targets ``(P, H, W)`` (targets float in {0, 1}); predicted IoU ``(P,)``;
object-score logits ``(P,)``. Each term returns the per-mask loss ``(P,)``; :func:`unsamv2_loss` averages over masks.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from granseg.config import Config


@dataclasses.dataclass
class LossWeights(Config):
    focal: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    object_score: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Focal loss (Lin et al.) per mask, averaged over pixels: ``(P, H, W) -> (P,)``."""
    probability = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probability * targets + (1 - probability) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.flatten(1).mean(1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """``1 - (2 sum(p t) + 1) / (sum p + sum t + 1)`` with ``p = sigmoid(logits)``: ``(P, H, W) -> (P,)``."""
    probability = logits.sigmoid().flatten(1)
    targets = targets.flatten(1)
    numerator = 2 * (probability * targets).sum(1)
    return 1 - (numerator + smooth) / (probability.sum(1) + targets.sum(1) + smooth)


def actual_iou(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """IoU of the thresholded prediction ``logits > 0`` with the targets: ``(P,)`` (1 when both are empty)."""
    prediction = (logits > 0).flatten(1).float()
    targets = targets.flatten(1)
    intersection = (prediction * targets).sum(1)
    union = prediction.sum(1) + targets.sum(1) - intersection
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))


def iou_prediction_loss(
    predicted_iou: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """L1 between the predicted IoU and the actual IoU of the thresholded mask (no gradient through it): ``(P,)``."""
    return (predicted_iou - actual_iou(logits.detach(), targets)).abs()


def object_score_loss(object_logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """BCE of the object-presence logit against ``present`` (1 when the target mask is non-empty): ``(P,)``."""
    return F.binary_cross_entropy_with_logits(object_logits, present.float(), reduction="none")


def unsamv2_loss_per_mask(
    logits: torch.Tensor,
    targets: torch.Tensor,
    predicted_iou: torch.Tensor,
    object_logits: torch.Tensor,
    weights: LossWeights,
) -> torch.Tensor:
    """Each mask's share of :func:`unsamv2_loss`'s weighted total: ``(P,)``, summing to that total. Used to pick
    the best of several outputs per prompt (SAM's multimask rule) rather than one output for the whole image."""
    logits, targets = logits.float(), targets.float()
    present = targets.flatten(1).amax(1) > 0
    keep = present.float()
    count = keep.sum().clamp(min=1)
    mask_terms = (
        weights.focal * sigmoid_focal_loss(logits, targets, weights.focal_alpha, weights.focal_gamma)
        + weights.dice * dice_loss(logits, targets)
        + weights.iou * iou_prediction_loss(predicted_iou.float(), logits, targets)
    )
    object_term = weights.object_score * object_score_loss(object_logits.float(), present)
    return mask_terms * keep / count + object_term / len(keep)


def best_of_outputs(per_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's multimask rule per prompt: ``per_mask`` ``(M, P)`` losses of M outputs for P prompts ->
    (index of the lowest-loss output per prompt ``(P,)`` long, the loss summed over prompts of those outputs)."""
    best = per_mask.detach().argmin(0)
    return best, per_mask.gather(0, best[None])[0].sum()


def unsamv2_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    predicted_iou: torch.Tensor,
    object_logits: torch.Tensor,
    weights: LossWeights,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted total (scalar, mean over masks) and each unweighted term (mean over masks). Mask terms count only
    for targets that are present (SAM-2); the object-score term counts for all."""
    logits, targets = logits.float(), targets.float()
    present = targets.flatten(1).amax(1) > 0
    keep = present.float()
    count = keep.sum().clamp(min=1)
    terms = {
        "focal": (sigmoid_focal_loss(logits, targets, weights.focal_alpha, weights.focal_gamma) * keep).sum()
        / count,
        "dice": (dice_loss(logits, targets) * keep).sum() / count,
        "iou": (iou_prediction_loss(predicted_iou.float(), logits, targets) * keep).sum() / count,
        "object_score": object_score_loss(object_logits.float(), present).mean(),
    }
    total = (
        weights.focal * terms["focal"]
        + weights.dice * terms["dice"]
        + weights.iou * terms["iou"]
        + weights.object_score * terms["object_score"]
    )
    return total, terms
