"""UnSAMv2 model + predictor on tiny random configs (CPU).

Equivalence with transformers' ``Sam2Model``: with the granularity modules attached and LoRA B = 0 the standard
SAM-2 outputs are compared with ``atol = 1e-6`` (they are bit-identical in practice: same modules, same order of
operations). Batched vs one-by-one g uses ``atol = 1e-5`` (different GEMM batch shapes may round differently).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from granseg.models.unsamv2 import (
    GRANULARITY_TOKEN_INDEX,
    UnSAMv2Config,
    build_unsamv2,
    lora_modules,
    tiny_config,
)
from granseg.predict.base import GRANULARITY_LEVELS
from granseg.predict.factory import create_predictor

EQUIV_ATOL = 1e-6
BATCH_ATOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    return build_unsamv2(tiny_config(), seed=0)


@pytest.fixture(scope="module")
def reference(model):
    """transformers' stock Sam2Model with the same SAM-2 weights (LoRA base layers, B = 0)."""
    from transformers import Sam2Model

    ref = Sam2Model(model.config.sam2.to_hf()).eval()
    state = {
        k[len("sam.") :].replace(".base_layer", ""): v
        for k, v in model.state_dict().items()
        if k.startswith("sam.") and ".lora_" not in k
    }
    ref.load_state_dict(state, strict=True)
    return ref


@pytest.fixture(scope="module")
def pixels():
    torch.manual_seed(1)
    return torch.randn(1, 3, 128, 128)


POINTS = torch.tensor([[[[30.0, 40.0], [90.0, 70.0]]]])
LABELS = torch.tensor([[[1, 0]]])


# ------------------------------------------------------------------------------------------ granularity modules
def test_fourier_features_match_the_official_formula(model):
    g = torch.tensor([0.37, 1.0])
    features = model.granularity_encoder.fourier(g)
    assert features.shape == (2, 128)
    for k in (0, 1, 17, 63):
        f_k = 100.0 ** (k / 64)
        assert features[0, 2 * k].item() == pytest.approx(math.sin(0.37 * f_k), abs=1e-5)
        assert features[0, 2 * k + 1].item() == pytest.approx(math.cos(0.37 * f_k), abs=1e-5)
    assert not list(model.granularity_encoder.fourier.parameters())


def test_official_module_sizes_and_trainable_count_match_the_release():
    """hiera-small, 256-d: MLP 128-192-192-256, type embedding [1,256], token [1,256], hypernetwork 256-256-32,
    28 LoRA sites; the trainable set is 345,760 parameters (release: ~346K)."""
    full = build_unsamv2(UnSAMv2Config(), seed=0)
    mlp = full.granularity_encoder.mlp.mlp
    assert [tuple(mlp[i].weight.shape) for i in (0, 3, 6)] == [(192, 128), (192, 192), (256, 192)]
    assert isinstance(mlp[1], torch.nn.ReLU) and isinstance(mlp[2], torch.nn.Dropout) and mlp[2].p == 0.1
    assert tuple(full.granularity_encoder.type_embedding.shape) == (1, 256)
    assert tuple(full.granularity_head.token.weight.shape) == (1, 256)
    hyper = full.granularity_head.hypernetwork
    assert (hyper.proj_in.weight.shape, hyper.layers[0].weight.shape, hyper.proj_out.weight.shape) == (
        (256, 256),
        (256, 256),
        (32, 256),
    )
    counts = full.parameter_counts()
    assert counts["trainable"] == counts["granularity"] + counts["lora"] == 345_760
    assert counts["lora"] == 94_208
    assert 0.005 < 100 * counts["trainable"] / counts["total"] < 1.5


def test_lora_sites_and_official_init(model):
    adapted = lora_modules(model.sam.mask_decoder.transformer)
    assert len(adapted) == 28
    assert {name.rsplit(".", 1)[1] for name in adapted} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert sum(name.startswith("final_attn_token_to_image") for name in adapted) == 4
    for layer in adapted.values():
        assert layer.r["default"] == 8 and layer.scaling["default"] == 2.0
        assert layer.lora_dropout["default"].p == 0.1
        assert torch.count_nonzero(layer.lora_B["default"].weight) == 0
        assert 0.004 < layer.lora_A["default"].weight.std().item() < 0.02
    trainable = model.trainable_parameters()
    assert all(n.startswith("granularity_") or ".lora_" in n for n in trainable)
    assert not any(p.requires_grad for n, p in model.sam.named_parameters() if ".lora_" not in n)


# --------------------------------------------------------------------------------- equivalence with transformers
@pytest.mark.parametrize("multimask", [True, False])
def test_standard_outputs_equal_transformers_sam2(model, reference, pixels, multimask):
    with torch.no_grad():
        expected = reference(
            pixel_values=pixels, input_points=POINTS, input_labels=LABELS, multimask_output=multimask
        )
        embeddings = model.embed_image(pixels)
        got = model(
            image_embeddings=embeddings, input_points=POINTS, input_labels=LABELS, multimask_output=multimask
        )
    for ours, theirs in zip(embeddings, expected.image_embeddings):
        torch.testing.assert_close(ours, theirs, atol=EQUIV_ATOL, rtol=0)
    assert got.mask_logits.shape == (1, 1, 3 if multimask else 1, 32, 32)
    torch.testing.assert_close(got.mask_logits, expected.pred_masks, atol=EQUIV_ATOL, rtol=0)
    torch.testing.assert_close(got.iou_scores, expected.iou_scores, atol=EQUIV_ATOL, rtol=0)
    torch.testing.assert_close(got.object_score_logits, expected.object_score_logits, atol=EQUIV_ATOL, rtol=0)


def test_box_and_mask_prompts_equal_transformers_sam2(model, reference, pixels):
    boxes = torch.tensor([[[10.0, 20.0, 100.0, 110.0]]])
    masks = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        expected = reference(
            pixel_values=pixels,
            input_points=POINTS,
            input_labels=LABELS,
            input_boxes=boxes,
            input_masks=masks,
        )
        got = model(
            pixel_values=pixels,
            input_points=POINTS,
            input_labels=LABELS,
            input_boxes=boxes,
            input_masks=masks,
        )
    torch.testing.assert_close(got.mask_logits, expected.pred_masks, atol=EQUIV_ATOL, rtol=0)


# ------------------------------------------------------------------------------------------------ token order
def test_prompt_and_output_token_order(model, pixels):
    g = torch.tensor([[0.3]])
    with torch.no_grad():
        sparse, _ = model.encode_prompts(POINTS, LABELS, None, None, g)
        assert sparse.shape == (1, 1, 2 + 1 + 1, 32)  # 2 points, padding point, granularity
        torch.testing.assert_close(sparse[0, 0, -1], model.granularity_encoder(g)[0, 0])
        torch.testing.assert_close(sparse[0, 0, 2], model.sam.prompt_encoder.not_a_point_embed.weight[0])
        boxed, _ = model.encode_prompts(POINTS, LABELS, torch.tensor([[[5.0, 5.0, 60.0, 60.0]]]), None, g)
        assert boxed.shape[2] == 2 + 3 + 1  # points, box corners + padding, granularity last

        captured = {}
        # the first two-way block's self-attention sees the full token sequence (no positional term)
        hook = model.sam.mask_decoder.transformer.layers[0].self_attn.register_forward_hook(
            lambda module, args, kwargs, out: captured.update(tokens=kwargs["query"]),
            with_kwargs=True,
        )
        try:
            model(pixel_values=pixels, input_points=POINTS, input_labels=LABELS, granularity=g)
        finally:
            hook.remove()
    tokens = captured["tokens"][0, 0]
    decoder = model.sam.mask_decoder
    torch.testing.assert_close(tokens[0], decoder.obj_score_token.weight[0])
    torch.testing.assert_close(tokens[1], decoder.iou_token.weight[0])
    torch.testing.assert_close(tokens[2:6], decoder.mask_tokens.weight)
    torch.testing.assert_close(tokens[GRANULARITY_TOKEN_INDEX], model.granularity_head.token.weight[0])
    torch.testing.assert_close(tokens[7:], sparse[0, 0])


def test_official_iou_is_frozen_head_channel_zero_and_dedicated_head_is_optional(pixels):
    official = build_unsamv2(tiny_config(), seed=3)
    dedicated = build_unsamv2(tiny_config(dedicated_iou_head=True), seed=3)
    assert official.granularity_head.iou_head is None and dedicated.granularity_head.iou_head is not None
    head = official.sam.mask_decoder.iou_prediction_head
    assert not any(p.requires_grad for p in head.parameters())  # frozen
    seen = []
    handle = head.register_forward_hook(lambda module, args, output: seen.append(output))
    g = torch.tensor([[0.5]])
    with torch.no_grad():
        out = official(pixel_values=pixels, input_points=POINTS, input_labels=LABELS, granularity=g)
    handle.remove()
    assert len(seen) == 1 and seen[0].shape[-1] == 4  # SAM-2's head: one IoU per mask token
    torch.testing.assert_close(out.iou_scores, seen[0][..., :1], atol=0, rtol=0)  # channel 0, as released
    with torch.no_grad():
        out = dedicated(pixel_values=pixels, input_points=POINTS, input_labels=LABELS, granularity=g)
    assert out.iou_scores.shape == (1, 1, 1) and 0 <= out.iou_scores.item() <= 1
    assert any(p.requires_grad for p in dedicated.granularity_head.iou_head.parameters())


# ------------------------------------------------------------------------------------------- granularity effect
def test_changing_g_changes_the_logits(model, pixels):
    with torch.no_grad():
        embeddings = model.embed_image(pixels)
        low = model(
            image_embeddings=embeddings,
            input_points=POINTS,
            input_labels=LABELS,
            granularity=torch.tensor([[0.1]]),
        )
        high = model(
            image_embeddings=embeddings,
            input_points=POINTS,
            input_labels=LABELS,
            granularity=torch.tensor([[1.0]]),
        )
    assert low.mask_logits.shape == (1, 1, 1, 32, 32)
    assert (low.mask_logits - high.mask_logits).abs().max() > 1e-4


def test_batched_sweep_equals_one_by_one(model, pixels):
    levels = torch.tensor([GRANULARITY_LEVELS])
    with torch.no_grad():
        embeddings = model.embed_image(pixels)
        batched = model(
            image_embeddings=embeddings,
            input_points=POINTS.expand(1, 10, -1, -1),
            input_labels=LABELS.expand(1, 10, -1),
            granularity=levels,
        )
        singles = [
            model(
                image_embeddings=embeddings,
                input_points=POINTS,
                input_labels=LABELS,
                granularity=levels[:, i : i + 1],
            )
            for i in range(10)
        ]
    for i, single in enumerate(singles):
        torch.testing.assert_close(
            batched.mask_logits[:, i : i + 1], single.mask_logits, atol=BATCH_ATOL, rtol=0
        )
        torch.testing.assert_close(
            batched.iou_scores[:, i : i + 1], single.iou_scores, atol=BATCH_ATOL, rtol=0
        )


def test_nonzero_lora_changes_output_and_merge_preserves_it(pixels):
    from granseg.models.checkpoints import merge_lora

    lora_model = build_unsamv2(tiny_config(), seed=5)
    g = torch.tensor([[0.6]])
    with torch.no_grad():
        before = lora_model(
            pixel_values=pixels, input_points=POINTS, input_labels=LABELS, granularity=g
        ).mask_logits
        for layer in lora_modules(lora_model).values():
            layer.lora_B["default"].weight.normal_(std=0.2)
        after = lora_model(
            pixel_values=pixels, input_points=POINTS, input_labels=LABELS, granularity=g
        ).mask_logits
        merged = merge_lora(lora_model)
        merged_out = merged(
            pixel_values=pixels, input_points=POINTS, input_labels=LABELS, granularity=g
        ).mask_logits
    assert (before - after).abs().max() > 1e-4
    assert merged.config.lora is None and not lora_modules(merged)
    torch.testing.assert_close(merged_out, after, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------------- predictor
def _image(height=90, width=150, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    image[20:60, 30:100] = (200, 40, 40)
    return image


def test_preprocess_resizes_long_side_pads_and_normalises():
    from granseg.predict.unsamv2 import IMAGENET_MEAN, IMAGENET_STD, preprocess_image

    image = np.full((50, 100, 3), 255, dtype=np.uint8)
    pixels, content = preprocess_image(image, 128, mode="longest_side_pad")
    assert pixels.shape == (1, 3, 128, 128) and content == (64, 128)
    expected = (1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert pixels[0, 0, :64].sub(expected).abs().max() < 1e-5
    assert pixels[0, :, 64:].abs().max() == 0  # padding
    squashed, content = preprocess_image(image, 128, mode="squash")
    assert content == (128, 128) and squashed[0, 0].sub(expected).abs().max() < 1e-5


def test_predictor_sweep_is_one_decoder_call_and_feeds_back(model, monkeypatch):
    predictor = create_predictor(model)
    image = _image()
    predictor.set_image(image)
    calls = []
    original = model.decode
    monkeypatch.setattr(model, "decode", lambda *a, **k: calls.append(1) or original(*a, **k))
    prediction = predictor.predict([[50, 40]], [1], granularity="all")
    assert len(calls) == 1
    assert prediction.masks.shape == (10, 90, 150) and prediction.masks.dtype == bool
    assert prediction.scores.shape == (10,) and prediction.low_res_logits.shape == (10, 32, 32)
    np.testing.assert_allclose(prediction.granularity, GRANULARITY_LEVELS)
    single = predictor.predict([[50, 40]], [1], granularity=0.3)
    np.testing.assert_allclose(single.low_res_logits[0], prediction.low_res_logits[2], atol=BATCH_ATOL)
    fed = predictor.predict([[50, 40]], [1], granularity="all", mask_input=prediction.low_res_logits)
    assert np.abs(fed.low_res_logits - prediction.low_res_logits).max() > 1e-4
    boxed = predictor.predict(box=[10, 10, 120, 80], granularity=[0.2, 0.9])
    assert boxed.masks.shape == (2, 90, 150)


def test_sam2_and_unsamv2_models_squash_by_default():
    """Meta's SAM-2 and transformers' Sam2ImageProcessor resize to S x S ignoring the aspect ratio; so do we."""
    from granseg.models.unsamv2 import named_config

    for name in ("unsamv2-hiera-small", "sam2-hiera-tiny", "sam2.1-hiera-large", "unsamv2-tiny-random"):
        assert named_config(name).resize_mode == "squash", name
    assert UnSAMv2Config().resize_mode == "squash"


def test_predictor_feeds_the_squashed_image_to_the_encoder(model, monkeypatch):
    import cv2

    from granseg.predict.unsamv2 import IMAGENET_MEAN, IMAGENET_STD

    seen = []
    original = model.embed_image
    monkeypatch.setattr(model, "embed_image", lambda pixels: seen.append(pixels) or original(pixels))
    image = _image(64, 96)
    create_predictor(model).set_image(image)
    resized = cv2.resize(image, (128, 128), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    expected = (resized - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    np.testing.assert_allclose(seen[0][0].permute(1, 2, 0).numpy(), expected, atol=1e-5)


# 64 x 96 image in the 128 px frame: squashed to 128 x 128, or 85 x 128 content + padding.
FRAMES = {"squash": (128 / 96, 128 / 64), "longest_side_pad": (128 / 96, 85 / 64)}


@pytest.mark.parametrize("mode", sorted(FRAMES))
def test_predictor_points_are_scaled_into_the_model_frame(mode):
    """Clicks scale per axis by content / original size (as SAM) in both resize modes, on a non-square image."""
    model = build_unsamv2(tiny_config(resize_mode=mode), seed=0)
    predictor = create_predictor(model)
    predictor.set_image(_image(64, 96))
    got = predictor.predict([[40, 20], [10, 50]], [1, 0], granularity=0.5).low_res_logits
    sx, sy = FRAMES[mode]
    with torch.no_grad():
        expected = model(
            image_embeddings=predictor.image_embeddings,
            input_points=torch.tensor([[[[40 * sx, 20 * sy], [10 * sx, 50 * sy]]]]),
            input_labels=torch.tensor([[[1, 0]]]),
            granularity=torch.tensor([[0.5]]),
        ).mask_logits
    np.testing.assert_allclose(got[0], expected[0, 0, 0].numpy(), atol=1e-5)


@pytest.mark.parametrize("mode", sorted(FRAMES))
def test_low_res_logits_map_back_onto_the_original_pixels(mode):
    """A rectangle drawn in the model frame where the click mapping puts it comes back, after the mask
    post-processing, on the same original pixels (64 x 96 image, both resize modes)."""
    from granseg.predict.unsamv2 import resized_shape, upsample_logits

    height, width, size = 64, 96, 128
    content = resized_shape(height, width, size, mode)
    assert content == (round(height * FRAMES[mode][1]), size)
    x0, y0, x1, y1 = 24, 16, 72, 48  # original pixels, [x0, x1) x [y0, y1)
    sx, sy = FRAMES[mode]
    low = torch.full((1, size // 4, size // 4), -10.0)
    scale = 4  # low-res cell = 4 x 4 model-frame pixels
    low[
        0, round(y0 * sy / scale) : round(y1 * sy / scale), round(x0 * sx / scale) : round(x1 * sx / scale)
    ] = 10.0
    mask = (upsample_logits(low, size, content, (height, width)) > 0)[0].numpy()
    truth = np.zeros((height, width), bool)
    truth[y0:y1, x0:x1] = True
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert mask.shape == (height, width) and iou > 0.9


def test_embedding_cache_round_trip(model, tmp_path, monkeypatch):
    predictor = create_predictor(model, cache_dir=tmp_path)
    image = _image(seed=4)
    predictor.set_image(image)
    first = [f.clone() for f in predictor.image_embeddings]
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    fresh = create_predictor(model, cache_dir=tmp_path)
    monkeypatch.setattr(model, "embed_image", lambda *_: pytest.fail("cache miss"))
    fresh.set_image(image)
    for a, b in zip(first, fresh.image_embeddings):
        assert torch.equal(a, b)
    other = create_predictor(build_unsamv2(tiny_config(), seed=9), cache_dir=tmp_path)
    assert other.model_fingerprint() != fresh.model_fingerprint()


def test_plain_sam2_config_predicts_by_picking_its_masks():
    plain = build_unsamv2(tiny_config(name="sam2-tiny-random", granularity=False, lora=None), seed=2)
    assert plain.granularity_encoder is None and plain.parameter_counts()["trainable"] == 0
    predictor = create_predictor(plain)
    predictor.set_image(_image())
    prediction = predictor.predict([[50, 40]], [1], granularity=[0.1, 0.5, 1.0])
    assert prediction.masks.shape == (3, 90, 150)
    assert not np.allclose(prediction.low_res_logits[0], prediction.low_res_logits[2])


def test_cli_segment_runs_end_to_end(tmp_path):
    import cv2

    from granseg.cli import main
    from granseg.io.images import load_image  # noqa: F401  (the CLI's own decoder reads the PNG)

    image_path = tmp_path / "scene.png"
    cv2.imwrite(str(image_path), _image()[:, :, ::-1])
    out = tmp_path / "masks.json"
    code = main(
        [
            "segment",
            str(image_path),
            "--point",
            "50,40",
            "--granularity",
            "all",
            "--model",
            "unsamv2-tiny-random",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    import json

    records = json.loads(out.read_text())
    assert len(records) == 10 and {r["granularity"] for r in records} == set(GRANULARITY_LEVELS)


def test_cli_segment_uses_the_embedding_cache_and_decoder_options(tmp_path, monkeypatch):
    import cv2

    from granseg.cli import main

    image_path = tmp_path / "scene.png"
    cv2.imwrite(str(image_path), _image()[:, :, ::-1])
    cache = tmp_path / "cache"
    base = ["segment", str(image_path), "--point", "50,40", "--model", "unsamv2-tiny-random", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "a.png"), "--embedding-cache", str(cache)]) == 0
    assert len(list(cache.glob("*.safetensors"))) == 1
    embedded = []
    monkeypatch.setattr(
        "granseg.models.unsamv2.UnSAMv2Model.embed_image",
        lambda self, pixels: (
            embedded.append(1)
            or __import__("traceback").print_stack()
            or pytest.fail("embedded again despite the cache")
        ),
    )
    assert main([*base, "--out", str(tmp_path / "b.png"), "--embedding-cache", str(cache)]) == 0
    assert not embedded
    first, second = cv2.imread(str(tmp_path / "a.png"), 0), cv2.imread(str(tmp_path / "b.png"), 0)
    np.testing.assert_array_equal(first, second)
    monkeypatch.undo()
    assert (
        main([*base, "--out", str(tmp_path / "c.png"), "--decoder-dtype", "bfloat16", "--no-embedding-cache"])
        == 0
    )
    hierarchy = ["segment", str(image_path), "--point", "50,40", "--model", "hierarchy", "--quiet"]
    assert main([*hierarchy, "--out", str(tmp_path / "d.png"), "--decoder-dtype", "bfloat16"]) == 2


def test_named_model_without_weights_fails_clearly():
    from granseg.errors import CheckpointError
    from granseg.models.registry import load_model

    with pytest.raises(CheckpointError, match="never downloads"):
        load_model("unsamv2-hiera-small", device="cpu")
    with pytest.raises(CheckpointError, match="facebook/sam2.1-hiera-large"):
        load_model("facebook/sam2.1-hiera-large", device="cpu")


def test_cli_segment_rejects_a_non_positive_cache_limit(tmp_path):
    import cv2

    from granseg.cli import main

    image_path = tmp_path / "scene.png"
    cv2.imwrite(str(image_path), _image()[:, :, ::-1])
    argv = ["segment", str(image_path), "--point", "50,40", "--model", "unsamv2-tiny-random", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "a.png"), "--embedding-cache-gb", "0"]) == 2
    assert not (tmp_path / "a.png").exists()
