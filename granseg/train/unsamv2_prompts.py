"""Targets and clicks for UnSAMv2 training, in the *model-input frame* (the ``S x S`` padded input of
:func:`granseg.predict.unsamv2.preprocess_image`; points are ``(x, y)`` pixels of that frame).

Interactive simulation (SAM / SAM-2 training): the first click is drawn uniformly inside the target; each
correction click is drawn uniformly from the error region of the previous prediction (positive where the target
was missed, negative where the prediction spilled over); the previous low-res logits are the next mask prompt.
"""

from __future__ import annotations

import numpy as np

from granseg.predict.unsamv2 import resized_shape


def masks_to_input_frame(masks: np.ndarray, size: int, mode: str) -> np.ndarray:
    """``N x H x W`` bool (original image) -> ``N x S x S`` bool in the model-input frame: resized like the image
    (nearest neighbour) into the content area, zeros over the padding."""
    import cv2

    count, height, width = masks.shape
    new_h, new_w = resized_shape(height, width, size, mode)
    out = np.zeros((count, size, size), dtype=bool)
    for i, mask in enumerate(masks):
        if (new_h, new_w) == (height, width):
            out[i, :height, :width] = mask
        else:
            resized = cv2.resize(mask.astype(np.uint8), (new_w, new_h), interpolation=cv2.INTER_NEAREST)
            out[i, :new_h, :new_w] = resized.astype(bool)
    return out


def _uniform_pixel(region: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """A pixel of the non-empty ``H x W`` bool ``region`` drawn uniformly: ``(x, y)``."""
    flat = np.flatnonzero(region)
    index = int(flat[rng.integers(len(flat))])
    y, x = divmod(index, region.shape[1])
    return x, y


def first_clicks(targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``P x S x S`` bool non-empty targets -> ``(P, 2)`` float32 ``(x, y)``, uniform inside each target."""
    return np.asarray([_uniform_pixel(t, rng) for t in targets], dtype=np.float32).reshape(-1, 2)


def correction_clicks(
    predictions: np.ndarray, targets: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One correction click per prompt: ``predictions``, ``targets`` ``P x S x S`` bool -> points ``(P, 2)``
    float32 ``(x, y)`` and labels ``(P,)`` int64 (1 = positive, on a missed target pixel; 0 = negative, on a false
    positive). Uniform over the error region ``prediction XOR target``; where there is no error, a positive click
    uniform inside the target."""
    points = np.zeros((len(targets), 2), dtype=np.float32)
    labels = np.ones(len(targets), dtype=np.int64)
    for i, (prediction, target) in enumerate(zip(predictions, targets)):
        error = prediction ^ target
        region = error if error.any() else target
        x, y = _uniform_pixel(region, rng)
        points[i] = (x, y)
        labels[i] = int(target[y, x])
    return points, labels


def nearest_level_granularity(
    masks: np.ndarray,
    granularity: np.ndarray,
    points: np.ndarray,
    own: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """The requested g of each prompt, drawn uniformly from the range of g for which its target is the nearest
    level at its click (an option of training, ``granularity_sampling = "nearest_level"``; the labels' g, from the
    DESIGN.md formula, is unchanged).

    Args:
        masks: ``M x S x S`` bool, EVERY mask of one image (model-input frame): the levels at a click.
        granularity: ``(M,)`` their granularity labels.
        points: ``(P, 2)`` ``(x, y)`` pixels of the model-input frame, the first click of each prompt (inside its
            target, one of ``masks``).
        own: ``(P,)`` the granularity label of each prompt's target.
    Returns:
        ``(P,)`` float32: for prompt ``i`` the levels at its click are the distinct g of the masks containing it;
        g is uniform between the midpoints to the next smaller and next larger level (0.1 / 1.0 at the ends),
        i.e. over every g whose nearest level at the click is the target's. Example: a part (g 0.47) clicked where
        no sub-part lies, inside an object (g 1): g ~ U(0.1, 0.735); clicked inside a sub-part of g 0.12:
        g ~ U(0.295, 0.735).
    """
    out = np.zeros(len(points), dtype=np.float32)
    for i, (x, y) in enumerate(np.asarray(points).astype(int)):
        low, high = nearest_level_range(np.unique(granularity[masks[:, y, x]]), float(own[i]))
        out[i] = rng.uniform(low, high)
    return out


def nearest_level_range(levels: np.ndarray, value: float) -> tuple[float, float]:
    """The range ``(low, high)`` of g whose nearest level among the distinct ``levels`` at a click is ``value``:
    the midpoints to the next smaller and next larger level (0.1 / 1.0 at the ends)."""
    below, above = levels[levels < value], levels[levels > value]
    low = (below.max() + value) / 2 if below.size else 0.1
    high = (above.min() + value) / 2 if above.size else 1.0
    return low, high
