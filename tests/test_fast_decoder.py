"""The fast decoder (granseg.models.fast_decoder) against transformers' modules on the same weights.

Two decoder sizes: SAM-2's real decoder (width 256, 8 heads, head dim 16 -> the re-associated attention runs for
up to 15 tokens) on a tiny image encoder, and the tiny test config (head dim 8 -> always the direct order). LoRA B
is made non-zero so that the merged-LoRA path is part of what is compared. Tolerance: max |logit difference|
<= 1e-5 x (1 + max |logit|) (float32 rounding of a different summation order; measured ~1e-7 relative).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from granseg.models.fast_decoder import FastMaskDecoder
from granseg.models.lora import lora_modules
from granseg.models.unsamv2 import TINY_ARCHITECTURE, build_unsamv2, tiny_config
from granseg.predict.embedding_cache import prune_cache
from granseg.predict.unsamv2 import UnSAMv2Predictor

# SAM-2's decoder (hidden 256, MLP 2048, 8 heads) behind the tiny Hiera encoder: 8 x 8 embedding grid.
REAL_DECODER = dataclasses.replace(
    TINY_ARCHITECTURE, hidden_size=256, decoder_mlp_dim=2048, decoder_heads=8, iou_head_hidden_dim=256
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(architecture, granularity=True):
    config = tiny_config(sam2=architecture)
    if not granularity:
        config = dataclasses.replace(config, granularity=False, lora=None)
    model = build_unsamv2(config, seed=0)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.05, generator=generator)
            elif name.startswith("sam.mask_decoder.") and ("bias" in name or "norm" in name):
                # the default init has zero biases and unit norms, which would hide mistakes in bias handling
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model


@pytest.fixture(scope="module", params=["real-decoder", "tiny-decoder"])
def model(request):
    return _model(REAL_DECODER if request.param == "real-decoder" else TINY_ARCHITECTURE)


def _close(reference: torch.Tensor, fast: torch.Tensor) -> bool:
    return (reference - fast).abs().max().item() <= 1e-5 * (1 + reference.abs().max().item())


def _decode_both(model, points, labels, boxes=None, mask_logits=None, granularity=None):
    torch.manual_seed(3)
    with torch.inference_mode():
        embeddings = model.embed_image(torch.randn(1, 3, 128, 128))
        positional = model.image_positional_embeddings()
        sparse, dense = model.encode_prompts(points, labels, boxes, mask_logits, granularity)
        with_g = granularity is not None
        reference = model.decode(embeddings, sparse, dense, with_g, True, positional)
        engine = model.fast_decoder(refresh=True)  # the tests change weights between calls
        state = engine.image_state(embeddings, dense, positional)
        fast = model.decode(embeddings, sparse, dense, with_g, True, positional, fast_state=state)
    return reference, fast


@pytest.mark.parametrize("num_points", [1, 3, 12])
def test_granularity_sweep_equals_transformers_modules(model, num_points):
    """1 and 3 points use the re-associated attention with the real decoder; 12 points switch to the direct
    order (8 heads x 20 tokens >= 128); the tiny decoder always uses the direct order."""
    generator = torch.Generator().manual_seed(num_points)
    prompts = 4
    points = torch.rand(1, prompts, num_points, 2, generator=generator) * 128
    labels = torch.randint(0, 2, (1, prompts, num_points), generator=generator)
    granularity = torch.linspace(0.1, 1.0, prompts)[None]
    reference, fast = _decode_both(model, points, labels, granularity=granularity)
    assert fast.mask_logits.shape == reference.mask_logits.shape == (1, prompts, 1, 32, 32)
    assert reference.mask_logits.abs().max() > 0
    assert _close(reference.mask_logits, fast.mask_logits)
    assert _close(reference.iou_scores, fast.iou_scores)
    assert _close(reference.object_score_logits, fast.object_score_logits)
    assert _close(reference.output_tokens, fast.output_tokens)


@pytest.mark.parametrize("mask_prompts", [1, 3])
def test_box_and_mask_prompts_equal_transformers_modules(model, mask_prompts):
    """A box, and a dense mask prompt shared by all levels (1) or one per level (3)."""
    generator = torch.Generator().manual_seed(7)
    points = torch.tensor([[[[40.0, 50.0]]]]).expand(1, 3, 1, 2)
    labels = torch.ones(1, 3, 1, dtype=torch.long)
    boxes = torch.tensor([[[10.0, 20.0, 100.0, 90.0]]]).expand(1, 3, 4)
    mask_logits = torch.randn(mask_prompts, 1, 32, 32, generator=generator)
    granularity = torch.tensor([[0.2, 0.5, 0.9]])
    reference, fast = _decode_both(model, points, labels, boxes, mask_logits, granularity)
    assert _close(reference.mask_logits, fast.mask_logits)
    assert _close(reference.iou_scores, fast.iou_scores)


def test_plain_sam2_multimask_equals_transformers_modules():
    model = _model(REAL_DECODER, granularity=False)
    points = torch.tensor([[[[40.0, 50.0], [90.0, 30.0]]]])
    labels = torch.tensor([[[1, 0]]])
    reference, fast = _decode_both(model, points, labels)
    assert fast.mask_logits.shape == reference.mask_logits.shape == (1, 1, 3, 32, 32)
    assert _close(reference.mask_logits, fast.mask_logits)
    assert _close(reference.iou_scores, fast.iou_scores)


def test_upscaling_bands_do_not_change_the_result(monkeypatch):
    """Any band height (1 row, a few rows, the whole grid) gives the same masks."""
    model = _model(REAL_DECODER)
    points, labels = torch.tensor([[[[40.0, 50.0]]]]), torch.ones(1, 1, 1, dtype=torch.long)
    granularity = torch.tensor([[0.5]])
    results = []
    for band_bytes in (1, 3 * 16 * 32 * 4 * 8, 2**30):
        monkeypatch.setattr(FastMaskDecoder, "UPSCALE_CHUNK_BYTES", band_bytes)
        results.append(_decode_both(model, points, labels, granularity=granularity)[1].mask_logits)
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])


def _image(height=90, width=150):
    rng = np.random.default_rng(0)
    image = np.zeros((height, width, 3), np.uint8)
    image[20:70, 30:110] = (200, 60, 40)
    return (image + rng.integers(0, 30, image.shape)).astype(np.uint8)


def test_predictor_fast_and_reference_decoders_agree():
    model = _model(REAL_DECODER)
    fast, reference = UnSAMv2Predictor(model), UnSAMv2Predictor(model, decoder="reference")
    for predictor in (fast, reference):
        predictor.set_image(_image())
    first = [p.predict([[50, 40]], [1], granularity="all") for p in (fast, reference)]
    assert _close(torch.from_numpy(first[1].low_res_logits), torch.from_numpy(first[0].low_res_logits))
    # the next click with the previous logits as mask prompt (one per level)
    second = [
        p.predict([[50, 40], [120, 80]], [1, 0], granularity="all", mask_input=first[1].low_res_logits)
        for p in (fast, reference)
    ]
    assert _close(torch.from_numpy(second[1].low_res_logits), torch.from_numpy(second[0].low_res_logits))
    np.testing.assert_allclose(second[0].scores, second[1].scores, atol=1e-5)


def test_bfloat16_decoder_is_close_and_refresh_tracks_weights():
    model = _model(REAL_DECODER)
    exact, half = UnSAMv2Predictor(model), UnSAMv2Predictor(model, decoder_dtype="bfloat16")
    for predictor in (exact, half):
        predictor.set_image(_image())
    a = exact.predict([[50, 40]], [1], granularity="all").low_res_logits
    b = half.predict([[50, 40]], [1], granularity="all").low_res_logits
    assert b.dtype == np.float32
    correlation = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert correlation > 0.99 and np.abs(a - b).max() > 0  # close, and really computed in bfloat16
    bias = model.sam.mask_decoder.upscale_conv2.bias  # (conv1 is followed by a LayerNorm)
    with torch.no_grad():  # a change of the snapshotted decoder weights is seen only after refresh()
        bias.add_(1.0)
    stale = exact.predict([[50, 40]], [1], granularity="all").low_res_logits
    np.testing.assert_array_equal(stale, a)
    exact.refresh()
    assert np.abs(exact.predict([[50, 40]], [1], granularity="all").low_res_logits - a).max() > 1e-4
    with torch.no_grad():
        bias.sub_(1.0)


def test_predictor_rejects_unknown_decoder_options():
    from granseg.errors import InputError

    model = _model(TINY_ARCHITECTURE)
    with pytest.raises(InputError, match="decoder must be"):
        UnSAMv2Predictor(model, decoder="turbo")
    with pytest.raises(InputError, match="decoder_dtype"):
        UnSAMv2Predictor(model, decoder_dtype="float16")
    with pytest.raises(InputError, match="needs decoder='fast'"):
        UnSAMv2Predictor(model, decoder="reference", decoder_dtype="bfloat16")


def test_fast_decoder_weights_are_the_lora_merged_weights():
    """The fast decoder reads peft-merged projections (W + alpha / r * B @ A), not peft's base weights."""
    model = _model(REAL_DECODER)
    engine = FastMaskDecoder(model)
    for name, layer in lora_modules(model.sam.mask_decoder.transformer).items():
        block, attention, projection = (
            name.rsplit(".", 2) if name.startswith("layers.") else (None, *name.split("."))
        )
        delta = layer.lora_B["default"].weight @ layer.lora_A["default"].weight
        expected = layer.base_layer.weight + layer.scaling["default"] * delta
        if block is None:
            target = engine.final_attention
        else:
            names = {"self_attn": "self_attn", "cross_attn_token_to_image": "token_to_image"}
            names["cross_attn_image_to_token"] = "image_to_token"
            target = getattr(engine.blocks[int(block.split(".")[1])], names[attention])
        got = getattr(target, projection[0] + "_weight")
        assert not torch.equal(got, layer.base_layer.weight)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


def test_fast_decoder_is_a_module_the_model_holds():
    """Its weights are buffers (state_dict, .to()), outside the model's own state_dict; the model reuses it."""
    model = _model(TINY_ARCHITECTURE)
    decoder = model.fast_decoder()
    assert model.fast_decoder() is decoder
    assert isinstance(decoder, torch.nn.Module)
    state = decoder.state_dict()
    assert "up1_weight" in state and "blocks.0.self_attn.q_weight" in state
    assert not any("fast" in key or "up1_weight" in key for key in model.state_dict())
    assert model.fast_decoder(refresh=True) is not decoder
    model.to("meta")  # .to() on the model reaches the decoder it holds
    assert model.fast_decoder().up1_weight.device.type == "meta"


def test_weights_are_a_snapshot_and_a_one_block_transformer_works():
    model = _model(REAL_DECODER, granularity=False)
    engine = model.fast_decoder()
    before = engine.up1_bias.clone()
    with torch.no_grad():
        model.sam.mask_decoder.upscale_conv1.bias.add_(1.0)
        model.sam.mask_decoder.transformer.layers[0].self_attn.q_proj.weight.add_(1.0)
    assert torch.equal(engine.up1_bias, before)
    assert not torch.equal(
        engine.blocks[0].self_attn.q_weight,
        model.sam.mask_decoder.transformer.layers[0].self_attn.q_proj.weight,
    )
    # a decoder with a single two-way block (no later block) still runs and matches the modules
    del model.sam.mask_decoder.transformer.layers[1:]
    reference, fast = _decode_both(
        model, torch.tensor([[[[40.0, 50.0]]]]), torch.ones(1, 1, 1, dtype=torch.long)
    )
    assert _close(reference.mask_logits, fast.mask_logits)


def test_embedding_cache_keeps_the_most_recently_used_entries(tmp_path):
    import os
    import time

    model = _model(TINY_ARCHITECTURE)
    predictor = UnSAMv2Predictor(model, cache_dir=tmp_path)
    images = [_image() + i for i in range(3)]
    for image in images:
        predictor.set_image(image)
    files = sorted(tmp_path.glob("*.safetensors"), key=lambda p: p.stat().st_mtime)
    assert len(files) == 3
    size = files[0].stat().st_size
    now = time.time()
    for age, path in zip((30, 20, 10), files):  # distinct, ordered modification times
        os.utime(path, (now - age, now - age))
    predictor.set_image(images[0])  # a cache hit marks the first entry as recently used
    deleted = prune_cache(tmp_path, max_bytes=2 * size)
    assert deleted == [files[1]]
    limited = UnSAMv2Predictor(model, cache_dir=tmp_path, cache_max_bytes=size)
    limited.set_image(_image() + 7)  # writes a new entry and keeps only it
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
