"""Instance-colouring loss: hand-computed cases, ignore regions, empty images, a loop reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from granseg.train.losses import foreground_loss, instance_colouring_loss, minmax_to_255

torch.set_num_threads(1)


def _tensors(values, labels):
    """A 1 x C x 1 x W prediction from per-pixel values (lists of C floats or floats) and 1 x 1 x W labels."""
    pred = torch.tensor(values, dtype=torch.float64)
    if pred.ndim == 1:
        pred = pred[:, None]
    return pred.T[None, :, None, :].clone().requires_grad_(True), torch.tensor([[labels]])


def _reference(pixels, labels, cap=1250):
    """Straight per-instance loop (the reference code's structure) for one sample: pixels (P, C), labels (P,)."""
    valid = labels >= 0
    pixels, labels = pixels[valid], labels[valid]
    if len(labels) == 0:
        return pixels.sum() * 0
    total, count, means = 0.0, 0, []
    for inst in sorted(set(labels.tolist()))[:cap]:
        mask = labels == inst
        own = pixels[mask]
        if inst == 0:
            total = total + F.huber_loss(own, torch.zeros_like(own))
            means.append(torch.zeros(pixels.shape[1], dtype=pixels.dtype))
        else:
            mu = own.mean(0)
            total = total + F.huber_loss(own, mu.expand_as(own))
            means.append(mu)
            others = pixels[~mask]
            if len(others):
                total = total + 10 / math.sqrt(mask.sum()) * (300 / (1 + (others - mu).pow(2).sum(1))).mean()
        count += 1
    if len(means) > 1:
        m = torch.stack(means)
        i, j = torch.triu_indices(len(m), len(m), 1)
        total = total + (300 / ((m[i] - m[j]).pow(2).sum(1) + 1)).mean()
    return total / count


def test_two_instances_by_hand():
    pred, labels = _tensors([0.0, 2.0, 10.0, 10.0], [1, 1, 2, 2])
    loss = instance_colouring_loss(pred, labels, normalise=False)
    w = 10 / math.sqrt(2)
    expected = (0.5 + 0.0 + w * 300 / 82 + w * (300 / 101 + 300 / 65) / 2 + 300 / 82) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_background_and_ignore_by_hand():
    # pixel 3 is ignored: its huge value must not change anything
    pred, labels = _tensors([4.0, 0.0, 3.0, 100.0], [0, 1, 1, -1])
    loss = instance_colouring_loss(pred, labels, normalise=False)
    expected = (3.5 + 1.0 + 10 / math.sqrt(2) * 300 / 7.25 + 300 / 3.25) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    pred2, _ = _tensors([4.0, 0.0, 3.0, -7.0], [0, 1, 1, -1])
    assert instance_colouring_loss(pred2, labels, normalise=False).item() == pytest.approx(expected, rel=1e-9)


def test_unlabelled_background_stays_in_separation_by_default():
    # the authors' no_bg: background pixels (4 and 9) get no Huber and no mean but stay "other" pixels
    pred, labels = _tensors([4.0, 0.0, 3.0, 9.0], [0, 1, 1, 0])
    flag = torch.tensor([False])
    default = instance_colouring_loss(pred, labels, background_labelled=flag, normalise=False)
    # instance 1: mean 1.5, Huber 1.0; separation 10/sqrt(2) * mean(300/(1+2.5^2), 300/(1+7.5^2)); one segment
    expected = 1.0 + 10 / math.sqrt(2) * (300 / 7.25 + 300 / 57.25) / 2
    assert default.item() == pytest.approx(expected, rel=1e-12)
    # the same through the -2 label convention
    pred2, labels2 = _tensors([4.0, 0.0, 3.0, 9.0], [-2, 1, 1, -2])
    assert instance_colouring_loss(pred2, labels2, normalise=False).item() == pytest.approx(
        expected, rel=1e-12
    )


def test_unlabelled_background_ignore_option():
    pred, labels = _tensors([4.0, 0.0, 3.0, 9.0], [0, 1, 1, 0])
    skipped = instance_colouring_loss(
        pred, labels, background_labelled=torch.tensor([False]), normalise=False, unlabelled="ignore"
    )
    # only instance 1 remains: Huber 1.0, no other pixels, no pairs
    assert skipped.item() == pytest.approx(1.0)
    assert instance_colouring_loss(pred, labels, normalise=False).item() != pytest.approx(1.0)
    with pytest.raises(ValueError):
        instance_colouring_loss(pred, labels, unlabelled="drop")


def test_unlabelled_only_sample_is_zero_and_ignored_pixels_stay_out():
    pred, labels = _tensors([4.0, 7.0], [-2, -2])
    assert instance_colouring_loss(pred, labels, normalise=False).item() == 0.0
    # an ignored pixel (-1) next to unlabelled ones changes nothing
    pred_a, labels_a = _tensors([4.0, 0.0, 3.0, 9.0, 1.0], [-2, 1, 1, -2, -1])
    pred_b, labels_b = _tensors([4.0, 0.0, 3.0, 9.0], [-2, 1, 1, -2])
    a = instance_colouring_loss(pred_a, labels_a, normalise=False).item()
    assert a == pytest.approx(instance_colouring_loss(pred_b, labels_b, normalise=False).item(), rel=1e-12)


def test_unlabelled_matches_authors_loop_with_gradients():
    """Loop reference of the authors' structure with no_bg: every pixel outside an instance is an "other"."""
    gen = torch.Generator().manual_seed(3)
    pred = (torch.rand(1, 3, 6, 7, generator=gen, dtype=torch.float64) * 60).requires_grad_(True)
    labels = torch.randint(0, 5, (1, 6, 7), generator=gen)
    loss = instance_colouring_loss(pred, labels, background_labelled=torch.tensor([False]), normalise=False)
    pixels, flat = pred.reshape(3, -1).T, labels.reshape(-1)
    total, means = 0.0, []
    for inst in sorted(set(flat.tolist()) - {0}):
        mask = flat == inst
        mu = pixels[mask].mean(0)
        means.append(mu)
        total = total + F.huber_loss(pixels[mask], mu.expand_as(pixels[mask]))
        total = total + 10 / math.sqrt(mask.sum()) * (300 / (1 + (pixels[~mask] - mu).pow(2).sum(1))).mean()
    m = torch.stack(means)
    i, j = torch.triu_indices(len(m), len(m), 1)
    ref = (total + (300 / ((m[i] - m[j]).pow(2).sum(1) + 1)).mean()) / len(means)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-9)
    (grad,) = torch.autograd.grad(loss, pred)
    (grad_ref,) = torch.autograd.grad(ref, pred)
    torch.testing.assert_close(grad, grad_ref)


def test_empty_and_background_only_images():
    pred = torch.randn(2, 3, 5, 6, requires_grad=True)
    empty = torch.full((2, 5, 6), -1)
    loss = instance_colouring_loss(pred, empty)
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad is not None and torch.all(pred.grad == 0)
    pred_bg, labels_bg = _tensors([1.0, 0.5, 0.0], [0, 0, 0])
    assert instance_colouring_loss(pred_bg, labels_bg, normalise=False).item() == pytest.approx(
        (0.5 + 0.125 + 0.0) / 3
    )


@pytest.mark.parametrize("cap", [1250, 3])
def test_matches_loop_reference_with_gradients(cap):
    gen = torch.Generator().manual_seed(0)
    pred = (torch.rand(2, 3, 7, 9, generator=gen, dtype=torch.float64) * 60).requires_grad_(True)
    labels = torch.randint(-1, 6, (2, 7, 9), generator=gen)
    labels[1, :3] = 4  # a big instance
    loss = instance_colouring_loss(pred, labels, normalise=False, max_instances=cap)
    (grad,) = torch.autograd.grad(loss, pred)
    pred_ref = pred.detach().clone().requires_grad_(True)
    ref = torch.stack(
        [_reference(pred_ref[b].reshape(3, -1).T, labels[b].reshape(-1), cap) for b in range(2)]
    ).mean()
    (grad_ref,) = torch.autograd.grad(ref, pred_ref)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-9)
    torch.testing.assert_close(grad, grad_ref)


def test_mean_not_detached():
    # one instance: Huber to its own (attached) mean -> gradient sums to zero over the instance's pixels
    pred, labels = _tensors([[0.0, 0, 0], [0.4, 0, 0]], [1, 1])
    loss = instance_colouring_loss(pred, labels, normalise=False)
    (grad,) = torch.autograd.grad(loss, pred)
    assert grad.sum().abs().item() < 1e-12 and grad.abs().sum().item() > 0


def test_minmax_normalisation_is_scale_invariant():
    gen = torch.Generator().manual_seed(1)
    pred = torch.randn(1, 3, 6, 6, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 4, (1, 6, 6), generator=gen)
    scaled = minmax_to_255(pred)
    assert scaled.min().item() == pytest.approx(0) and scaled.max().item() == pytest.approx(255, rel=1e-6)
    a = instance_colouring_loss(pred, labels)
    b = instance_colouring_loss(pred * 7.0 + 3.0, labels)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_separated_colouring_scores_lower_than_merged():
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, :4, :4] = 1
    labels[0, 4:, 4:] = 2
    good = torch.zeros(1, 3, 8, 8)
    good[0, 0][labels[0] == 1] = 255
    good[0, 1][labels[0] == 2] = 255
    merged = torch.zeros(1, 3, 8, 8)
    merged[0, :, labels[0] > 0] = 255
    assert instance_colouring_loss(good, labels) < instance_colouring_loss(merged, labels)


def test_foreground_loss_by_hand_and_ignore():
    pred, labels = _tensors([0.0, 255.0, 254.0, 3.0], [0, 1, 1, -1])
    assert foreground_loss(pred, labels, normalise=False).item() == pytest.approx(0.5 / 3)
    empty = torch.full((1, 1, 4), -1)
    assert foreground_loss(pred, empty).item() == 0.0
    with pytest.raises(ValueError):
        foreground_loss(pred, torch.zeros(1, 2, 4, dtype=torch.long))
