"""FLOPs of the UnSAMv2 decoder (one click, 10-level sweep) vs stock Sam2Model (torch FlopCounterMode, hiera-small, random init)."""

import numpy as np
import torch

torch.set_num_threads(1)
from torch.utils.flop_counter import FlopCounterMode
from transformers import Sam2Model

from granseg.models.unsamv2 import UnSAMv2Config, build_unsamv2

m = build_unsamv2(UnSAMv2Config(), seed=0)
stock = Sam2Model(m.config.sam2.to_hf()).eval()
p = m.create_predictor()
feats = [torch.randn(1, 32, 256, 256), torch.randn(1, 64, 128, 128), torch.randn(1, 256, 64, 64)]
p._features = feats
p._image_size = (480, 640)
p._content_hw = (768, 1024)
pts = np.array([[320.0, 240.0]])
lab = np.array([1])
for K in (1, 10):
    with FlopCounterMode(display=False) as fc:
        p.decode_logits(pts, lab, None, np.linspace(0.1, 1, K))
    print("ours K=%d GFLOP %.2f" % (K, fc.get_total_flops() / 1e9))
with FlopCounterMode(display=False) as fc, torch.inference_mode():
    stock(
        image_embeddings=feats,
        input_points=torch.tensor([[[[500.0, 400.0]]]]),
        input_labels=torch.tensor([[[1]]]),
    )
print("stock GFLOP %.2f" % (fc.get_total_flops() / 1e9))
