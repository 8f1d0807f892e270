"""UnSAMv2's granularity modules: the prompt-side encoder of the scalar g and the decoder-side granularity token.

Facts (official release; docs/unsamv2.md):

* Prompt side: Fourier features of g with 64 frequencies ``f_k = 100 ** (k / 64)``, ``k = 0..63``, interleaved
  ``[sin(g f_0), cos(g f_0), sin(g f_1), cos(g f_1), ...]`` (no 2*pi, nothing learned) -> 128-d, then the MLP
  ``Linear(128,192)-ReLU-Dropout(0.1)-Linear(192,192)-ReLU-Dropout(0.1)-Linear(192,256)``, plus a learned type
  embedding ``[1, 256]``. The result is one extra sparse prompt token.
* Decoder side: a learned granularity output token ``[1, 256]`` and its hypernetwork ``MLP(256, 256, 32, 3 layers)``
  (the same shape as SAM-2's per-mask hypernetworks). The official model reads the IoU of the granularity mask from
  the frozen IoU head's channel 0; :class:`GranularityDecoderHead` can optionally own a dedicated IoU head instead.

Tensor shapes use ``C`` for the prompt/decoder width (256 for every SAM-2 size).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.sam2.modeling_sam2 import Sam2FeedForward

NUM_FREQUENCIES = 64
FREQUENCY_BASE = 100.0
MLP_HIDDEN = 192
MLP_DROPOUT = 0.1


class FourierGranularityFeatures(nn.Module):
    """``g (...,) -> (..., 2 * num_frequencies)``; interleaved sin/cos of ``g * f_k``. No parameters."""

    def __init__(self, num_frequencies: int = NUM_FREQUENCIES, base: float = FREQUENCY_BASE) -> None:
        super().__init__()
        exponents = torch.arange(num_frequencies, dtype=torch.float64) / num_frequencies
        # Not persistent: the official checkpoint has no key for it (it is a fixed function of the config).
        self.register_buffer("frequencies", (base**exponents).to(torch.float32), persistent=False)

    @property
    def out_features(self) -> int:
        return 2 * self.frequencies.numel()

    def forward(self, granularity: torch.Tensor) -> torch.Tensor:
        angles = granularity.to(self.frequencies.dtype)[..., None] * self.frequencies  # (..., F)
        return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # (..., 2F), interleaved


class GranularityMLP(nn.Module):
    """The 128 -> 192 -> 192 -> C MLP. The inner ``nn.Sequential`` is named ``mlp`` so that parameter names
    (``mlp.0``, ``mlp.3``, ``mlp.6``) match the official ``fourier_embedder.mlp.mlp.{0,3,6}``."""

    def __init__(
        self, in_features: int, hidden: int, out_features: int, dropout: float = MLP_DROPOUT
    ) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_features),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)


class GranularityPromptEncoder(nn.Module):
    """``g (...,) float in [0.1, 1] -> (..., C)`` granularity prompt embedding (MLP(Fourier(g)) + type embedding)."""

    def __init__(
        self,
        hidden_size: int = 256,
        num_frequencies: int = NUM_FREQUENCIES,
        mlp_hidden: int = MLP_HIDDEN,
        dropout: float = MLP_DROPOUT,
    ) -> None:
        super().__init__()
        self.fourier = FourierGranularityFeatures(num_frequencies)
        self.mlp = GranularityMLP(self.fourier.out_features, mlp_hidden, hidden_size, dropout)
        self.type_embedding = nn.Parameter(torch.zeros(1, hidden_size))
        nn.init.normal_(self.type_embedding)

    def forward(self, granularity: torch.Tensor) -> torch.Tensor:
        features = self.fourier(granularity).to(self.type_embedding.dtype)
        return self.mlp(features) + self.type_embedding[0]

    @torch.no_grad()
    def reset_unit_variance(self) -> None:
        """Re-initialise the MLP so that its output (the g-dependent part of the token) has about unit variance
        per channel, like the N(0, 1) type embedding: He-normal hidden layers (ReLU gain), zero biases, and the
        last layer rescaled to unit output std on g = 0.1 ... 1.0. PyTorch's default Linear init shrinks the
        variance about 3x per layer, so at init the g-dependent part is only ~7 % of the token's norm."""
        layers = [m for m in self.mlp.mlp if isinstance(m, nn.Linear)]
        for layer in layers:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        grid = torch.linspace(0.1, 1.0, 91, dtype=self.type_embedding.dtype)
        training = self.training
        self.eval()  # no dropout while measuring
        std = self.mlp(self.fourier(grid).to(grid.dtype)).std()
        self.train(training)
        layers[-1].weight.div_(std.clamp_min(1e-6))

    @torch.no_grad()
    def reset_zero(self) -> None:
        """Start the granularity prompt token at exactly zero for every g: the MLP's last layer and the type
        embedding zeroed (the hidden layers keep their init, so the last layer's gradient is not zero and g enters
        as training grows it). At init the extra sparse token then carries nothing that the point tokens would
        have to learn around."""
        nn.init.zeros_(self.mlp.mlp[-1].weight)
        nn.init.zeros_(self.mlp.mlp[-1].bias)
        nn.init.zeros_(self.type_embedding)


class GranularityDecoderHead(nn.Module):
    """The decoder's granularity output token and its hypernetwork (and optionally a dedicated IoU head).

    token:        ``[1, C]`` appended after SAM-2's output tokens ``[obj_score, iou, mask x4]``.
    hypernetwork: ``(..., C) -> (..., C // 8)`` weights that dot the upscaled image features into one mask.
    iou_head:     ``None`` (official: use the frozen SAM-2 IoU head's channel 0) or ``(..., C) -> (..., 1)``
                  sigmoid IoU read from the granularity token itself.
    """

    def __init__(self, hidden_size: int = 256, dedicated_iou_head: bool = False, iou_head_hidden: int = 256):
        super().__init__()
        self.token = nn.Embedding(1, hidden_size)
        self.hypernetwork = Sam2FeedForward(hidden_size, hidden_size, hidden_size // 8, 3)
        self.iou_head = (
            Sam2FeedForward(hidden_size, iou_head_hidden, 1, 3, sigmoid_output=True)
            if dedicated_iou_head
            else None
        )
