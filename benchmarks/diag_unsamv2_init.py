"""Diagnostic of issue 16: can a tiny random-init SAM-2 learn to put a mask where the click is?

Task: a blank 128 px image, a random click, the target a disk of radius 14 px around it (8 clicks per step). The
decoder side (prompt encoder, mask decoder, granularity modules; LoRA frozen off) trains with the recipe's losses
(focal x ``--focal`` + dice + IoU L1 + object BCE), AdamW lr 1e-3, gradient clip 1. Only the position of the click
tells where the mask goes, so a model that cannot learn this cannot learn anything interactive.

``--init transformers``: the weights ``transformers.Sam2Model`` gives (every Linear / Conv ~ N(0, 0.02));
``--init pytorch``: :func:`granseg.train.unsamv2_task.reset_random_init` (what training from scratch now uses).
Prints the mean IoU of the thresholded masks over the last 25 steps every 50 steps.

Run: ``OMP_NUM_THREADS=1 python benchmarks/diag_unsamv2_init.py --init transformers --steps 300``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from granseg.models.unsamv2 import UnSAMv2Model, tiny_config
from granseg.train.unsamv2_losses import LossWeights, unsamv2_loss
from granseg.train.unsamv2_task import reset_random_init

SIZE, RADIUS, PROMPTS = 128, 14, 8


def run(init: str, steps: int, focal: float, seed: int = 0) -> list[float]:
    """Mean IoU per step (thresholded low-res logits upsampled to 128 x 128 vs the disks)."""
    torch.manual_seed(seed)
    model = UnSAMv2Model(tiny_config(lora=None))
    if init == "pytorch":
        reset_random_init(model)
    model.train()
    for name, parameter in model.named_parameters():
        parameter.requires_grad = not name.startswith("sam.vision_encoder")
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    with torch.no_grad():
        features = model.embed_image(torch.zeros(1, 3, SIZE, SIZE))
    ious = []
    for _ in range(steps):
        clicks = rng.uniform(16, SIZE - 16, size=(PROMPTS, 2)).astype(np.float32)  # (x, y)
        disks = np.stack([(xx - x) ** 2 + (yy - y) ** 2 < RADIUS**2 for x, y in clicks])
        targets = torch.from_numpy(disks).float()
        out = model(
            image_embeddings=features,
            input_points=torch.from_numpy(clicks)[None, :, None],
            granularity=torch.full((1, PROMPTS), 0.5),
        )
        logits = F.interpolate(out.mask_logits[0], size=(SIZE, SIZE), mode="bilinear")[:, 0]
        loss, _ = unsamv2_loss(
            logits,
            targets,
            out.iou_scores[0, :, 0],
            out.object_score_logits[0, :, 0],
            LossWeights(focal=focal),
        )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        predicted, target = (logits > 0).flatten(1), targets.flatten(1) > 0
        union = (predicted | target).sum(1).clamp(min=1)
        ious.append(float(((predicted & target).sum(1) / union).mean()))
    return ious


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", choices=("transformers", "pytorch"), default="pytorch")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--focal", type=float, default=20.0)
    args = parser.parse_args(argv)
    ious = run(args.init, args.steps, args.focal)
    for step in range(49, args.steps, 50):
        print(f"step {step + 1}: mean IoU of the last 25 steps {np.mean(ious[step - 24 : step + 1]):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
