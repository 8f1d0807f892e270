"""Losses for dense "feature image" models (Gen2Seg).

Conventions: ``prediction`` is ``B x 3 x H x W`` float (any range); ``labels`` is ``B x H x W`` int64 with
``0`` = background, ``>= 1`` = an instance id (ids need not be contiguous), ``-1`` (``IGNORE_LABEL``) = ignore
(the pixel takes part in no term at all), ``-2`` (``UNLABELLED``) = unlabelled background (it may hold objects
nobody annotated, e.g. everything but cars in Virtual KITTI 2).

:func:`instance_colouring_loss` is the Gen2Seg instance-colouring loss (docs/gen2seg.md, matching the authors'
public ``InstanceSegmentationLoss``), on a 0..255 scale:

* the prediction of each sample is min-max normalised to 0..255 (``normalise=True``);
* for each instance ``I`` with mean ``mu_I`` (not detached): Huber (delta 1, mean over its pixels and the three
  channels) of its pixels to ``mu_I``;
* background (label 0, where labelled): Huber of its pixels to 0; the background then counts as an "instance"
  with mean fixed to ``(0, 0, 0)`` for the mean-level term, exactly as the reference code does;
* pixel separation, for each non-background instance ``I``: ``w_I * mean_{p not in I} 300 / (1 + ||p - mu_I||^2)``
  with ``w_I = 10 / sqrt(|I|)``; the mean runs over all labelled pixels of the sample outside ``I`` (other
  instances and labelled background; ignored pixels are left out);
* mean-level separation: mean over unordered pairs of the (capped) means of ``300 / (||mu_i - mu_j||^2 + 1)``;
* unlabelled background (``-2``, or label 0 of a sample whose ``background_labelled`` is False): with
  ``unlabelled="separation"`` (the default, as the authors' code does with ``no_bg``) those pixels get no Huber
  term and no mean, but still count among the "other" pixels of every instance's separation term; with
  ``unlabelled="ignore"`` they take part in nothing (this package's behaviour before; an ablation option);
* at most ``max_instances`` (1250) segments per sample (background first, then instances by increasing id);
* per sample: (sum of Huber terms + separation terms + mean-level term) / number of Huber terms; the batch loss
  is the mean over samples. A sample without any labelled pixel contributes 0 (still connected to the graph).

Everything is vectorised over instances with ``index_add``/``bincount`` (one Python loop over the batch only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_LABEL = -1
UNLABELLED = -2
UNLABELLED_MODES = ("separation", "ignore")
MAX_INSTANCES = 1250
SEPARATION_STRENGTH = 300.0
SEPARATION_WEIGHT = 10.0
MEAN_SEPARATION_STRENGTH = 300.0


def minmax_to_255(prediction: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-sample min-max of a ``B x C x H x W`` tensor to 0..255 (over all channels and pixels)."""
    flat = prediction.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1)
    high = flat.max(dim=1).values.view(-1, 1, 1, 1)
    return (prediction - low) / (high - low + eps) * 255.0


def _as_float(prediction: torch.Tensor) -> torch.Tensor:
    """float64 stays float64; everything else (bf16/fp16 outputs) is computed in float32."""
    return prediction if prediction.dtype == torch.float64 else prediction.float()


def _check(prediction: torch.Tensor, labels: torch.Tensor) -> None:
    if prediction.ndim != 4:
        raise ValueError(f"prediction must be B x C x H x W, got shape {tuple(prediction.shape)}")
    if labels.shape != (prediction.shape[0], *prediction.shape[2:]):
        raise ValueError(
            f"labels must be B x H x W = {(prediction.shape[0], *prediction.shape[2:])}, got {tuple(labels.shape)}"
        )


def _sample_loss(pixels: torch.Tensor, labels: torch.Tensor, max_instances: int) -> torch.Tensor:
    """One sample: ``pixels`` (P, C) on the 0..255 scale, ``labels`` (P,) int64 (``-1`` ignored, ``-2`` only an
    "other" pixel of the separation term). Returns a scalar."""
    context = (labels >= 0) | (labels == UNLABELLED)  # pixels that take part in the separation term
    if not bool((labels >= 0).any()):
        return pixels.sum() * 0.0
    pixels = pixels[context]
    labels = labels[context]
    # Unlabelled pixels sort first (id -2) and are dropped from the segments below.
    ids, segment = torch.unique(labels, sorted=True, return_inverse=True)  # segment: (P,) in [0, K)
    skip = int((ids < 0).sum())
    ids, segment = ids[skip:], segment - skip  # unlabelled pixels now have segment -1
    channels = pixels.shape[1]
    counts_all = torch.bincount(segment[segment >= 0], minlength=len(ids)).to(pixels.dtype)  # (K,)
    # Beyond the cap, segments get no terms of their own but their pixels still count as "other" pixels.
    num_segments = min(len(ids), max_instances)
    ids, counts = ids[:num_segments], counts_all[:num_segments]
    kept = (segment >= 0) & (segment < num_segments)
    kept_pixels, kept_segment = pixels[kept], segment[kept]
    sums = pixels.new_zeros(num_segments, channels).index_add_(0, kept_segment, kept_pixels)
    means = sums / counts[:, None]  # (K, C), not detached
    is_background = ids == 0  # (K,)

    # Huber of each pixel to its target (instance mean, or 0 for background), mean per segment.
    targets = torch.where(is_background[:, None], torch.zeros_like(means), means)
    per_pixel = F.huber_loss(kept_pixels, targets[kept_segment], reduction="none", delta=1.0).mean(dim=1)
    huber = pixels.new_zeros(num_segments).index_add_(0, kept_segment, per_pixel) / counts
    total = huber.sum()

    # Pixel separation for each non-background instance: mean over pixels outside it.
    instance_index = torch.nonzero(~is_background).flatten()
    if len(instance_index):
        inst_means = means[instance_index]  # (M, C)
        squared = torch.cdist(pixels[None], inst_means[None]).squeeze(0).pow(2)  # (P, M)
        repulsion = SEPARATION_STRENGTH / (1.0 + squared)
        column_total = repulsion.sum(dim=0)  # (M,)
        # contribution of each instance's own pixels: pick repulsion[p, column of segment[p]] where it is an instance
        column_of_segment = torch.full((len(counts_all) + 1,), -1, dtype=torch.long, device=pixels.device)
        column_of_segment[instance_index] = torch.arange(len(instance_index), device=pixels.device)
        own_column = column_of_segment[segment]  # segment -1 (unlabelled) reads the last entry: -1
        inside = own_column >= 0
        own = repulsion[inside.nonzero().flatten(), own_column[inside]]
        own_total = pixels.new_zeros(len(instance_index)).index_add_(0, own_column[inside], own)
        outside_count = len(pixels) - counts[instance_index]
        has_outside = outside_count > 0
        separation = (column_total - own_total) / outside_count.clamp_min(1.0)
        weight = SEPARATION_WEIGHT / counts[instance_index].sqrt()
        total = total + (weight * separation * has_outside).sum()

    # Mean-level separation over pairs (background mean fixed to 0, as in the reference code).
    if num_segments > 1:
        pair_means = torch.where(is_background[:, None], torch.zeros_like(means), means)
        rows, cols = torch.triu_indices(num_segments, num_segments, offset=1, device=pixels.device)
        pair_squared = (pair_means[rows] - pair_means[cols]).pow(2).sum(dim=1)
        total = total + (MEAN_SEPARATION_STRENGTH / (pair_squared + 1.0)).mean()
    return total / num_segments


def instance_colouring_loss(
    prediction: torch.Tensor,
    labels: torch.Tensor,
    background_labelled: torch.Tensor | None = None,
    normalise: bool = True,
    max_instances: int = MAX_INSTANCES,
    unlabelled: str = "separation",
) -> torch.Tensor:
    """Gen2Seg instance-colouring loss (see the module docstring).

    prediction: ``B x 3 x H x W`` float; labels: ``B x H x W`` int (0 background, >= 1 instance, -1 ignore,
    -2 unlabelled background); background_labelled: optional ``(B,)`` bool; where False, that sample's label 0
    counts as unlabelled (-2) (the reference code's ``no_bg``, for datasets whose background holds unlabelled
    objects); normalise: per-sample min-max of the prediction to 0..255 first (the paper's setting);
    unlabelled: ``"separation"`` (default, the authors' behaviour: unlabelled pixels stay among the "other" pixels
    of the separation term) or ``"ignore"`` (they take part in no term). Returns a scalar tensor.
    """
    _check(prediction, labels)
    if unlabelled not in UNLABELLED_MODES:
        raise ValueError(f"unlabelled must be one of {UNLABELLED_MODES}, got {unlabelled!r}")
    prediction = _as_float(prediction)
    labels = labels.to(device=prediction.device, dtype=torch.long)
    if background_labelled is not None:
        no_background = ~torch.as_tensor(background_labelled, dtype=torch.bool, device=labels.device)
        labels = torch.where(
            no_background[:, None, None] & (labels == 0), torch.full_like(labels, UNLABELLED), labels
        )
    if unlabelled == "ignore":
        labels = torch.where(labels == UNLABELLED, torch.full_like(labels, IGNORE_LABEL), labels)
    scaled = minmax_to_255(prediction) if normalise else prediction
    batch, channels = scaled.shape[:2]
    losses = [
        _sample_loss(scaled[b].reshape(channels, -1).T, labels[b].reshape(-1), max_instances)
        for b in range(batch)
    ]
    return torch.stack(losses).mean()


def foreground_loss(prediction: torch.Tensor, labels: torch.Tensor, normalise: bool = True) -> torch.Tensor:
    """Plain per-pixel foreground loss (the ablation baseline): every labelled pixel is pulled, with Huber
    (delta 1) on the 0..255 scale, to white (255) if it lies in any instance and to black (0) on background.
    It carries no instance identity. Shapes as :func:`instance_colouring_loss`; ignored pixels are skipped."""
    _check(prediction, labels)
    prediction = _as_float(prediction)
    labels = labels.to(prediction.device)
    scaled = minmax_to_255(prediction) if normalise else prediction
    valid = (labels >= 0)[:, None].expand_as(scaled)
    if not bool(valid.any()):
        return scaled.sum() * 0.0
    target = (labels > 0).to(scaled.dtype)[:, None].expand_as(scaled) * 255.0
    return F.huber_loss(scaled[valid], target[valid], delta=1.0)
