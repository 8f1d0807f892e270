"""FLOPs of the UnSAMv2 decoder (one click at one g, a 10-level g-sweep in one call; the fast decoder and the
reference order) vs transformers' stock ``Sam2Model`` prompt + decoder path, with torch's FlopCounterMode (hiera-small config, random init, 1024 px).

Usage: ``python benchmarks/flops_unsamv2.py``
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import Sam2Model

from granseg.models.unsamv2 import UnSAMv2Config, build_unsamv2


def main() -> None:
    torch.set_num_threads(1)
    model = build_unsamv2(UnSAMv2Config(), seed=0)
    stock = Sam2Model(model.config.sam2.to_hf()).eval()
    # image embeddings as the encoder returns them at 1024 px: (1, 32, 256, 256), (1, 64, 128, 128), (1, 256, 64, 64)
    embeddings = [torch.randn(1, 32, 256, 256), torch.randn(1, 64, 128, 128), torch.randn(1, 256, 64, 64)]
    positional = model.image_positional_embeddings()
    point = torch.tensor([[[[500.0, 400.0]]]])
    label = torch.tensor([[[1]]])
    with torch.inference_mode():
        for levels in (1, 10):
            granularity = torch.linspace(0.1, 1.0, levels)[None]
            with FlopCounterMode(display=False) as counter:
                sparse, dense = model.encode_prompts(
                    point.expand(1, levels, -1, -1), label.expand(1, levels, -1), granularity=granularity
                )
                model.decode(
                    embeddings,
                    sparse,
                    dense,
                    True,
                    image_positional_embeddings=positional,
                )
            print(
                f"reference decoder (transformers' modules), {levels} level(s) in one call: "
                f"{counter.get_total_flops() / 1e9:.2f} GFLOP"
            )
        engine = model.fast_decoder()
        _, dense = model.encode_prompts(None, None)
        with FlopCounterMode(display=False) as counter:
            state = engine.image_state(embeddings, dense, positional)
        print(
            f"fast decoder, per-image state (once, at set_image): {counter.get_total_flops() / 1e9:.2f} GFLOP"
        )
        for levels in (1, 10):
            granularity = torch.linspace(0.1, 1.0, levels)[None]
            with FlopCounterMode(display=False) as counter:
                sparse, dense = model.encode_prompts(
                    point.expand(1, levels, -1, -1), label.expand(1, levels, -1), granularity=granularity
                )
                model.decode(embeddings, sparse, dense, True, fast_state=state)
            print(f"fast decoder, {levels} level(s) in one call: {counter.get_total_flops() / 1e9:.2f} GFLOP")
        with FlopCounterMode(display=False) as counter:
            stock(image_embeddings=embeddings, input_points=point, input_labels=label)
        print(f"stock Sam2Model prompt + decoder: {counter.get_total_flops() / 1e9:.2f} GFLOP")


if __name__ == "__main__":
    main()
