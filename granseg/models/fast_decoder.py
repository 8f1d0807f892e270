"""An inference engine for SAM-2's mask decoder that gives transformers' results with about half the arithmetic.

:class:`FastMaskDecoder` evaluates the same function as transformers' ``Sam2TwoWayTransformer`` + the mask
decoder's upscaling path (the weights are read from those modules; nothing is re-trained or approximated), but
orders the computation for the interactive case, where a handful of prompt tokens meet thousands of image tokens:

* **Per-image work is done once** (:meth:`FastMaskDecoder.image_state`): the first two-way block's token-to-image
  keys/values and image-to-token queries depend only on the image (plus the dense prompt), so they are projected
  when the image is set and shared by every click and every granularity level.
* **Re-associated cross-attention**: with ``n`` tokens, ``H`` heads and attention width ``D``, a projection of the
  ``L`` image tokens (``L x C x D`` multiply-adds) is replaced by folding the few token-side vectors into the weight
  first (``L x C x H n``). Softmax is invariant to the key bias, and attention rows sum to one, so
  ``softmax(q (X Wk + bk)^T) (X Wv + bv) == softmax((q Wk^T) X^T) X Wv + bv`` exactly in real arithmetic. Used
  when ``H n < D`` (one to ~6 clicks with SAM-2's 8 heads and D = 128); otherwise the direct order is used.
* **Upscaling without pixel shuffles**: both 2x2/stride-2 transposed convolutions are matrix products on
  channels-last tokens; the result stays in a "sub-pixel" layout ``(h, w, 2, 2, 2, 2, C/8)`` to which the
  high-resolution skip features are matched once per image, and only the final ``4h x 4w`` mask is permuted.

Floating-point results differ from the reference order by rounding only: tests/test_fast_decoder.py requires
``max |fast - reference| <= 1e-5 * (1 + max |reference|)`` on the mask logits, IoU and object scores (random
weights, non-zero biases and LoRA, float32); measured there: at most 1e-7. ``dtype=torch.bfloat16`` runs the
matrix products in bfloat16 (fast on CPUs with AMX/AVX512-BF16 and on GPUs); that is an approximation, opt-in,
measured in ``benchmarks/bench_unsamv2.py``.

Shapes: ``P`` prompts (a g-sweep is ``P = K`` levels), ``T`` tokens per prompt, ``C`` decoder width, ``h x w`` the
embedding grid, ``L = h w``; masks ``(P, M, 4h, 4w)`` logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from granseg.models.lora import lora_modules, merged_copy


@dataclass
class DecoderImageState:
    """Per-image tensors, computed once by :meth:`FastMaskDecoder.image_state` (``I`` = 1, or one per prompt when
    each prompt has its own dense mask prompt).

    keys:           ``(I, L, C)`` image tokens (embedding + dense prompt).
    key_pe:         ``(1, L, C)`` positional encoding of the grid.
    first_k:        ``(I, H, L, d)`` first block, token-to-image keys (projected ``keys + key_pe``).
    first_v:        ``(I, H, L, d)`` first block, token-to-image values.
    first_q_t:      ``(I, H, d, L)`` first block, image-to-token queries (projected ``keys + key_pe``, pre-scaled),
                    transposed for the product with the token keys.
    skip_s1:        ``(1, h, w, 2, 2, C/4)`` stride-8 skip features + ``upscale_conv1``'s bias, in the sub-pixel
                    layout of ``upscale_conv1``'s output.
    skip_s0:        ``(1, h, w, 2, 2, 2, 2, C/8)`` stride-4 skip features + ``upscale_conv2``'s bias, in the layout
                    of ``upscale_conv2``'s output.
    grid:           ``(h, w)``.
    decoder:        the :class:`FastMaskDecoder` that computed this state (and decodes with it).
    """

    keys: torch.Tensor
    key_pe: torch.Tensor
    first_k: torch.Tensor
    first_v: torch.Tensor
    first_q_t: torch.Tensor
    skip_s1: torch.Tensor
    skip_s0: torch.Tensor
    grid: tuple[int, int]
    decoder: FastMaskDecoder


class _Attention(nn.Module):
    """Weights of one transformers ``Sam2Attention`` (``q/k/v_proj: C -> D``, ``o_proj: D -> C``, ``H`` heads)."""

    def __init__(self, module: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.heads = module.num_attention_heads
        self.head_dim = module.head_dim
        self.scaling = module.scaling
        self.width = self.heads * self.head_dim  # D
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            linear = module.get_submodule(name)
            self.register_buffer(name[0] + "_weight", _copy(linear.weight, dtype))
            self.register_buffer(name[0] + "_bias", _copy(linear.bias, dtype))

    def heads_split(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., N, D) -> (..., H, N, d)``."""
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(-3, -2)

    def heads_merge(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., H, N, d) -> (..., N, D)``."""
        return x.transpose(-3, -2).flatten(-2)

    def direct(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """The reference order, ``(P, Nq, C), (P, Nk, C), (P, Nk, C) -> (P, Nq, C)``."""
        q = self.heads_split(F.linear(query, self.q_weight, self.q_bias))
        k = self.heads_split(F.linear(key, self.k_weight, self.k_bias))
        v = self.heads_split(F.linear(value, self.v_weight, self.v_bias))
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scaling)
        return F.linear(self.heads_merge(out), self.o_weight, self.o_bias)

    # The re-associated forms below work on ONE prompt (2-D tensors): plain matrix products, which also take
    # transposed operands without copies in bfloat16 (batched products would copy them).
    def tokens_to_image(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Few queries ``(n, C)`` over many keys/values ``(L, C)`` -> ``(n, C)``; re-associated when ``H n < D``."""
        count = query.shape[0]
        if self.heads * count >= self.width:
            return self.direct(query[None], key[None], value[None])[0]
        q = self.heads_split(F.linear(query, self.q_weight, self.q_bias) * self.scaling)  # (H, n, d)
        # (H n, C): the key bias adds the same value to every score of a row, which the softmax cancels
        folded = (q @ self.k_weight.view(self.heads, self.head_dim, -1)).flatten(0, 1)
        probs = (folded @ key.t()).softmax(dim=-1)  # (H n, L)
        mixed = (probs @ value).view(self.heads, count, -1)  # (H, n, C): rows sum to 1, so the value bias
        out = mixed @ self.v_weight.view(self.heads, self.head_dim, -1).transpose(-1, -2)  # passes through
        out = out + self.v_bias.view(self.heads, 1, self.head_dim)  # (H, n, d)
        return F.linear(self.heads_merge(out), self.o_weight, self.o_bias)

    def image_to_tokens(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, residual: torch.Tensor
    ) -> torch.Tensor:
        """``residual`` + many queries ``(L, C)`` over few keys/values ``(n, C)``, accumulated into ``residual``
        ``(L, C)`` itself (the caller no longer needs it); re-associated when ``H n < D``."""
        count = key.shape[0]
        if self.heads * count >= self.width:
            return residual.add_(self.direct(query[None], key[None], value[None])[0])
        k = self.heads_split(F.linear(key, self.k_weight, self.k_bias) * self.scaling)  # (H, n, d)
        folded = (k @ self.q_weight.view(self.heads, self.head_dim, -1)).flatten(0, 1)  # (H n, C)
        bias = (k @ self.q_bias.view(self.heads, self.head_dim, 1)).flatten(0, 1)  # (H n, 1)
        # scores are kept as (H n, L): the softmax over the n tokens then runs along a strided dimension with L
        # contiguous, which PyTorch vectorises (a last dimension of size n would not be)
        return self._mix_tokens(torch.addmm(bias, folded, query.t()), value, residual, in_place=True)

    def image_to_tokens_projected(
        self, query_t: torch.Tensor, key: torch.Tensor, value: torch.Tensor, residual: torch.Tensor
    ) -> torch.Tensor:
        """``residual + `` :meth:`image_to_tokens` with the queries projected and scaled beforehand,
        ``query_t (H, d, L)`` (any number of tokens: the cost no longer depends on the projection width)."""
        k = self.heads_split(F.linear(key, self.k_weight, self.k_bias))  # (H, n, d)
        return self._mix_tokens((k @ query_t).flatten(0, 1), value, residual, in_place=False)

    def _mix_tokens(
        self, scores: torch.Tensor, value: torch.Tensor, residual: torch.Tensor, in_place: bool
    ) -> torch.Tensor:
        """scores ``(H n, L)`` (scaled logits, heads-major), value ``(n, C)`` -> ``residual + out (L, C)`` after
        o_proj (added inside the matrix product, and into ``residual`` itself when ``in_place``)."""
        count, length = value.shape[0], scores.shape[-1]
        probs = scores.view(self.heads, count, length).softmax(dim=1).view(-1, length)
        v = self.heads_split(F.linear(value, self.v_weight, self.v_bias))  # (H, n, d)
        # fold o_proj into the values: out = sum_h probs_h (v_h Wo_h^T + bo / H), as each head's probs sum to 1
        o_weight = self.o_weight.view(-1, self.heads, self.head_dim).transpose(0, 1)  # (H, C, d)
        folded = (v @ o_weight.transpose(-1, -2) + self.o_bias / self.heads).flatten(0, 1)  # (H n, C)
        probs_t = probs.t().contiguous()  # (a contiguous copy of the small probs: faster product)
        return residual.addmm_(probs_t, folded) if in_place else torch.addmm(residual, probs_t, folded)


def _copy(tensor: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A detached copy in ``dtype`` (the snapshot never aliases the model's parameters)."""
    return None if tensor is None else tensor.detach().to(dtype, copy=True)


class _Linear(nn.Module):
    def __init__(self, module: nn.Linear, dtype: torch.dtype) -> None:
        super().__init__()
        self.register_buffer("weight", _copy(module.weight, dtype))
        self.register_buffer("bias", _copy(module.bias, dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class _LayerNorm(nn.Module):
    def __init__(self, module: nn.LayerNorm, dtype: torch.dtype) -> None:
        super().__init__()
        self.shape = module.normalized_shape
        self.register_buffer("weight", _copy(module.weight, dtype))
        self.register_buffer("bias", _copy(module.bias, dtype))
        self.eps = module.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.shape, self.weight, self.bias, self.eps)


class _Block(nn.Module):
    """Weights of one ``Sam2TwoWayAttentionBlock``."""

    def __init__(self, block: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.skip_first_layer_pe = block.skip_first_layer_pe
        self.self_attn = _Attention(block.self_attn, dtype)
        self.token_to_image = _Attention(block.cross_attn_token_to_image, dtype)
        self.image_to_token = _Attention(block.cross_attn_image_to_token, dtype)
        self.norms = nn.ModuleList(_LayerNorm(getattr(block, f"layer_norm{i}"), dtype) for i in range(1, 5))
        mlp = block.mlp
        if len(mlp.layers) or mlp.sigmoid_output:
            raise RuntimeError("expected SAM-2's two-layer ReLU MLP in the two-way blocks")
        self.mlp_in, self.mlp_out = _Linear(mlp.proj_in, dtype), _Linear(mlp.proj_out, dtype)
        self.mlp_activation = mlp.activation

    def tokens_part(self, queries: torch.Tensor, tokens: torch.Tensor, attend_image) -> torch.Tensor:
        """Self-attention, token-to-image attention (``attend_image(query) -> (..., n, C)``) and the MLP; queries
        and tokens ``(P, n, C)`` or, for one prompt, ``(n, C)``."""
        if self.skip_first_layer_pe:
            queries = self.self_attn.direct(queries, queries, queries)
        else:
            query = queries + tokens
            queries = queries + self.self_attn.direct(query, query, queries)
        queries = self.norms[0](queries)
        queries = self.norms[1](queries + attend_image(queries + tokens))
        return self.norms[2](queries + self.mlp_out(self.mlp_activation(self.mlp_in(queries))))


class FastMaskDecoder(nn.Module):
    """Snapshot (a copy, as buffers: ``.to()`` and ``state_dict()`` work) of a SAM-2 mask decoder's two-way
    transformer and upscaling weights, evaluated in the cheap order.

    ``model``: an :class:`~granseg.models.unsamv2.UnSAMv2Model` (anything with ``.sam.mask_decoder``); LoRA
    adapters are merged by peft into a copy first (:func:`granseg.models.lora.merged_copy`). The model holds its
    fast decoders (``model.fast_decoder(dtype)``). Inference only: no gradients, eval-mode semantics (no dropout).
    Later changes of the model's weights are not seen: rebuild it (``model.fast_decoder(dtype, refresh=True)``;
    predictors: ``refresh()``), and re-compute image states.
    """

    # level-2 upscaled activations per step (~2 MB: 16 rows of a 64 x 64 grid at C = 256 in float32)
    UPSCALE_CHUNK_BYTES = 2**21

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        decoder = model.sam.mask_decoder
        transformer = decoder.transformer
        if lora_modules(transformer):  # peft's adapted layers expose the *base* weight: read a merged copy
            transformer = merged_copy(transformer)
        self.blocks = nn.ModuleList(_Block(layer, dtype) for layer in transformer.layers)
        if not self.blocks or not self.blocks[0].skip_first_layer_pe:
            raise RuntimeError("expected SAM-2's two-way transformer (first block skips the query PE)")
        self.final_attention = _Attention(transformer.final_attn_token_to_image, dtype)
        self.final_norm = _LayerNorm(transformer.layer_norm_final_attn, dtype)
        if not isinstance(decoder.activation, nn.GELU) or decoder.activation.approximate != "none":
            raise RuntimeError("expected SAM-2's exact GELU in the upscaling path")
        conv1, conv2 = decoder.upscale_conv1, decoder.upscale_conv2
        for conv in (conv1, conv2):
            if tuple(conv.kernel_size) != (2, 2) or tuple(conv.stride) != (2, 2):
                raise RuntimeError("expected 2x2 stride-2 transposed convolutions in the upscaling path")
        # (in, out, a, b) -> (in, a * b * out): output sub-pixel (a, b) of every input pixel, channels last
        # (the convolutions' biases are folded into the skip features of each image, see image_state)
        self.register_buffer("up1_weight", _copy(conv1.weight.permute(0, 2, 3, 1).flatten(1), dtype))
        self.register_buffer("up1_bias", _copy(conv1.bias, dtype))
        self.register_buffer("up2_weight", _copy(conv2.weight.permute(0, 2, 3, 1).flatten(1), dtype))
        self.register_buffer("up2_bias", _copy(conv2.bias, dtype))
        self.up_norm = _LayerNorm(decoder.upscale_layer_norm, dtype)
        self.eval()

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the products run in (that of the weights)."""
        return self.up1_weight.dtype

    # --------------------------------------------------------------------------------------------- image
    @torch.no_grad()
    def image_state(
        self,
        image_embeddings: list[torch.Tensor],
        dense: torch.Tensor,
        positional: torch.Tensor,
        same_image: DecoderImageState | None = None,
    ) -> DecoderImageState:
        """image_embeddings ``[(1, C/8, 4h, 4w), (1, C/4, 2h, 2w), (1, C, h, w)]`` of one image, dense prompt
        ``(I, C, h, w)`` (``I`` = 1 or one per prompt), positional ``(1, C, h, w)``. ``same_image``: a state of
        the same image (other dense prompt) whose skip features are reused."""
        features = image_embeddings[-1].to(self.dtype)
        if features.shape[0] != 1:
            raise ValueError("FastMaskDecoder works on one image at a time")
        _, channels, height, width = features.shape
        keys = (features + dense.to(self.dtype)).flatten(2).transpose(1, 2).contiguous()  # (I, L, C)
        key_pe = positional[:1].to(self.dtype).flatten(2).transpose(1, 2).contiguous()  # (1, L, C)
        with_pe = keys + key_pe
        first = self.blocks[0]
        t2i, i2t = first.token_to_image, first.image_to_token
        first_k = t2i.heads_split(F.linear(with_pe, t2i.k_weight, t2i.k_bias)).contiguous()
        first_v = t2i.heads_split(F.linear(keys, t2i.v_weight, t2i.v_bias)).contiguous()
        first_q_t = i2t.heads_split(F.linear(with_pe, i2t.q_weight, i2t.q_bias) * i2t.scaling)
        first_q_t = first_q_t.transpose(-1, -2).contiguous()
        if same_image is not None:
            skip_s1, skip_s0 = same_image.skip_s1, same_image.skip_s0
        else:
            skip_s1, skip_s0 = self._skip_features(image_embeddings[0], image_embeddings[1], height, width)
        return DecoderImageState(
            keys, key_pe, first_k, first_v, first_q_t, skip_s1, skip_s0, (height, width), self
        )

    def _skip_features(
        self, s0: torch.Tensor, s1: torch.Tensor, height: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The high-resolution features ``s0 (1, C/8, 4h, 4w)``, ``s1 (1, C/4, 2h, 2w)`` plus the upscaling
        convolutions' biases, in the sub-pixel layouts of :meth:`masks` (see :class:`DecoderImageState`)."""
        s0, s1 = s0.to(self.dtype), s1.to(self.dtype)
        c4, c8 = s1.shape[1], s0.shape[1]
        # s1[c, 2i + a, 2j + b] -> (i, j, a, b, c); s0[c, 4i + 2a + c', 4j + 2b + e] -> (i, j, a, b, c', e, c)
        skip_s1 = s1[0].reshape(c4, height, 2, width, 2).permute(1, 3, 2, 4, 0) + self.up1_bias
        skip_s0 = s0[0].reshape(c8, height, 2, 2, width, 2, 2).permute(1, 4, 2, 5, 3, 6, 0) + self.up2_bias
        return skip_s1.contiguous()[None], skip_s0.contiguous()[None]

    # ---------------------------------------------------------------------------------------- transformer
    @torch.no_grad()
    def transformer(
        self, state: DecoderImageState, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """tokens ``(P, T, C)`` (output tokens + sparse prompts) -> ``tokens_out (P, T, C)`` and the image tokens
        as a list of P tensors ``(L, C)``: the two outputs of transformers' ``Sam2TwoWayTransformer``."""
        tokens = tokens.to(self.dtype)
        prompts, count, channels = tokens.shape
        first = self.blocks[0]

        def first_token_to_image(query: torch.Tensor) -> torch.Tensor:
            attention = first.token_to_image
            q = attention.heads_split(F.linear(query, attention.q_weight, attention.q_bias))  # (P, H, n, d)
            if state.first_k.shape[0] == 1:  # all prompts' tokens as one query sequence over the shared image
                q = q.transpose(0, 1).reshape(1, attention.heads, prompts * count, -1)
                out = F.scaled_dot_product_attention(q, state.first_k, state.first_v, scale=attention.scaling)
                out = out[0].view(attention.heads, prompts, count, -1).transpose(0, 1)
            else:
                out = F.scaled_dot_product_attention(q, state.first_k, state.first_v, scale=attention.scaling)
            return F.linear(attention.heads_merge(out), attention.o_weight, attention.o_bias)

        queries = first.tokens_part(tokens, tokens, first_token_to_image)  # (P, T, C), all prompts at once

        # From here on the image tokens differ per prompt; one prompt at a time keeps the (L, C) activations in
        # the CPU cache and lets the allocator reuse the same few buffers.
        outputs, keys_list = [], []
        key_pe = state.key_pe[0]
        for index in range(prompts):
            image = index if state.keys.shape[0] > 1 else 0
            query, token = queries[index], tokens[index]  # (n, C)
            update = first.image_to_token.image_to_tokens_projected(
                state.first_q_t[image], query + token, query, state.keys[image]
            )
            keys = first.norms[3](update)  # (L, C)
            for block in self.blocks[1:]:
                with_pe = keys + key_pe
                attention = block.token_to_image
                query = block.tokens_part(
                    query,
                    token,
                    lambda q, attention=attention, key=with_pe, value=keys: attention.tokens_to_image(
                        q, key, value
                    ),
                )
                # keys are not needed after this update, so it is accumulated into them
                update = block.image_to_token.image_to_tokens(with_pe, query + token, query, keys)
                keys = block.norms[3](update)
            with_pe = keys + key_pe if len(self.blocks) == 1 else torch.add(keys, key_pe, out=with_pe)
            attn_out = self.final_attention.tokens_to_image(query + token, with_pe, keys)
            outputs.append(self.final_norm(query + attn_out))
            keys_list.append(keys)
        return torch.stack(outputs), keys_list

    # ------------------------------------------------------------------------------------------ upscaling
    @torch.no_grad()
    def masks(self, state: DecoderImageState, keys: list[torch.Tensor], hyper: torch.Tensor) -> torch.Tensor:
        """keys (P tensors ``(L, C)``) from :meth:`transformer`, hypernetwork outputs ``hyper (P, M, C/8)`` ->
        mask logits ``(P, M, 4h, 4w)`` float32 (= ``hyper @ upscaled`` of transformers' decoder)."""
        height, width = state.grid
        prompts, masks_per_prompt = hyper.shape[:2]
        hyper_t = hyper.to(self.dtype).transpose(-1, -2)  # (P, C/8, M)
        out = torch.empty(prompts, height, width, 16, masks_per_prompt, dtype=self.dtype, device=hyper.device)
        # level-2 bytes per embedding-grid pixel: 16 sub-pixels x C/8 channels
        pixel_bytes = 16 * self.up2_weight.shape[1] // 4 * self.up1_weight.element_size()
        rows = max(1, self.UPSCALE_CHUNK_BYTES // (pixel_bytes * width))
        # One prompt and a band of rows at a time: the band's activations stay in the CPU cache.
        for index in range(prompts):
            for top in range(0, height, rows):
                band = slice(top, min(top + rows, height))
                level1 = keys[index][top * width : band.stop * width] @ self.up1_weight  # (b w, 4 C/4)
                level1 = level1.view(-1, width, 2, 2, level1.shape[-1] // 4).add_(state.skip_s1[0, band])
                level1 = F.gelu(self.up_norm(level1))
                level2 = level1.view(-1, level1.shape[-1]) @ self.up2_weight
                level2 = level2.view(-1, width, 2, 2, 2, 2, level2.shape[-1] // 4).add_(
                    state.skip_s0[0, band]
                )
                level2 = F.gelu(level2)
                torch.matmul(
                    level2.view(-1, level2.shape[-1]),
                    hyper_t[index],
                    out=out[index, band].view(-1, masks_per_prompt),
                )
        # (P, i, j, a, b, c, e, M) -> (P, M, i, a, c, j, b, e): row 4i + 2a + c, column 4j + 2b + e
        out = out.view(prompts, height, width, 2, 2, 2, 2, masks_per_prompt).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return out.reshape(prompts, masks_per_prompt, 4 * height, 4 * width).float()
