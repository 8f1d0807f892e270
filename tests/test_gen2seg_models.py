"""Gen2Seg backbones on tiny random configs: MAE without masking, one-step SD, DINO + VAE, layouts, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from granseg.errors import CheckpointError, InputError
from granseg.models import gen2seg as g2s

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_mae():
    return g2s.build_tiny(backbone="mae", image_size=32)


@pytest.fixture(scope="module")
def tiny_sd():
    return g2s.build_tiny(backbone="sd", image_size=32)


def test_mae_keeps_every_patch_in_order(tiny_mae):
    net = tiny_mae.network
    pixels = torch.randn(2, 3, 32, 32)
    num_patches = (32 // net.patch_size) ** 2
    identity = torch.arange(num_patches, dtype=torch.float32).expand(2, -1)
    encoded = net.mae.vit(pixels, noise=identity)
    assert encoded.last_hidden_state.shape[1] == num_patches + 1  # nothing masked (+ CLS)
    assert torch.equal(encoded.mask, torch.zeros(2, num_patches))
    assert torch.equal(encoded.ids_restore, torch.arange(num_patches).expand(2, -1))
    with torch.no_grad():
        ours = net(pixels)
        # the reference forward with the same noise, then the public unpatchify
        reference = net.mae.unpatchify(net.mae(pixels, noise=identity).logits, (32, 32))
        # random noise only permutes tokens; the decoder restores the order: same image up to rounding
        shuffled = net.mae.unpatchify(net.mae(pixels, noise=torch.rand(2, num_patches)).logits, (32, 32))
    assert ours.shape == (2, 3, 32, 32)
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(ours, shuffled, atol=1e-4, rtol=1e-4)
    # unpatchify is the inverse of patchify: patch k of the decoder output lands at row k // n, column k % n
    image = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(net.mae.unpatchify(net.mae.patchify(image), (32, 32)), image)


def test_mae_trains_end_to_end(tiny_mae):
    net = tiny_mae.network
    net.train()
    net.zero_grad()
    net(torch.randn(1, 3, 32, 32)).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    net.eval()
    assert missing == []  # encoder and decoder both receive gradients


def test_sd_one_step_is_v_prediction_at_999(tiny_sd):
    net = tiny_sd.network
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    assert net.alpha_bar == pytest.approx(torch.cumprod(1 - betas, 0)[999].item(), rel=1e-5)
    pixels = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        latent = net.vae.encode(pixels).latent_dist.mode() * net.vae.config.scaling_factor
        velocity = net.unet(latent, 999, encoder_hidden_states=net.empty_prompt_embedding).sample
        clean = net.alpha_bar**0.5 * latent - (1 - net.alpha_bar) ** 0.5 * velocity
        expected = net.vae.decode(clean / net.vae.config.scaling_factor).sample
        torch.testing.assert_close(net(pixels), expected)
        torch.testing.assert_close(net(pixels), net(pixels))  # deterministic


def test_sd_vae_frozen_but_gradients_flow_through_decoder(tiny_sd):
    net = tiny_sd.network
    net.train()
    assert not net.vae.training
    net.zero_grad()
    net(torch.rand(1, 3, 32, 32) * 2 - 1).square().mean().backward()
    assert all(not p.requires_grad and p.grad is None for p in net.vae.parameters())
    assert all(p.grad is not None for p in net.unet.parameters() if p.requires_grad)
    assert any(p.grad.abs().sum() > 0 for p in net.unet.parameters() if p.grad is not None)
    net.eval()


def test_dino_vae_baseline_shapes_and_frozen_vae():
    model = g2s.build_tiny(backbone="dino-vae", image_size=32)
    net = model.network
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 3, 32, 32)
    out.mean().backward()
    assert net.to_latent.weight.grad is not None
    assert all(p.grad is None for p in net.vae.parameters())


@pytest.mark.parametrize("backbone", ["mae", "sd", "dino-vae"])
def test_save_and_load_round_trip(tmp_path, backbone):
    model = g2s.build_tiny(backbone=backbone, image_size=32, seed=3)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = g2s.load_gen2seg(tmp_path / "ckpt")
    assert loaded.config == model.config
    image = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    features = model.feature_image(image)
    assert features.shape == (20, 24, 3) and features.dtype == np.float32
    assert 0.0 <= features.min() and features.max() <= 1.0
    np.testing.assert_allclose(loaded.feature_image(image), features, atol=1e-5)


def test_facebook_vit_mae_layout_loads_with_mask_ratio_zero(tmp_path):
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    arch = g2s.TINY_ARCHITECTURES["mae"]["mae"]
    ViTMAEForPreTraining(ViTMAEConfig(image_size=48, mask_ratio=0.75, **arch)).save_pretrained(tmp_path)
    model = g2s.load_gen2seg(tmp_path)
    assert model.config.backbone == "mae" and model.config.image_size == 48
    assert model.network.mae.config.mask_ratio == 0.0
    assert model.feature_image(np.zeros((50, 60, 3), np.uint8)).shape == (50, 60, 3)


def _write_sd_layout(root, with_embedding=True):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file

    arch = g2s.TINY_ARCHITECTURES["sd"]
    UNet2DConditionModel(cross_attention_dim=16, **arch["unet"]).save_pretrained(root / "unet")
    AutoencoderKL(**arch["vae"]).save_pretrained(root / "vae")
    (root / "scheduler").mkdir()
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(g2s.SD2_SCHEDULER))
    index = {"unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    (root / "model_index.json").write_text(json.dumps(index))
    if with_embedding:
        save_file({"embedding": torch.randn(1, 77, 16)}, str(root / g2s.EMPTY_PROMPT_FILE))


def test_gen2seg_sd_pipeline_layout(tmp_path):
    _write_sd_layout(tmp_path)
    model = g2s.load_gen2seg(tmp_path, image_size=32)
    assert model.config.backbone == "sd"
    assert model.network.empty_prompt_embedding.shape == (1, 77, 16)
    assert model.feature_image(np.zeros((40, 40, 3), np.uint8)).shape == (40, 40, 3)


def test_sd_layout_without_prompt_embedding_is_a_checkpoint_error(tmp_path):
    _write_sd_layout(tmp_path, with_embedding=False)
    with pytest.raises(CheckpointError, match="empty-prompt"):
        g2s.load_gen2seg(tmp_path, image_size=32)


def test_wrong_family_and_missing_weights_are_clear_errors(tmp_path, monkeypatch):
    from transformers import Dinov2Config, Dinov2Model

    Dinov2Model(Dinov2Config(**g2s.TINY_ARCHITECTURES["dino-vae"]["dino"])).save_pretrained(tmp_path / "dino")
    with pytest.raises(CheckpointError, match="not a Gen2Seg"):
        g2s.load_gen2seg(tmp_path / "dino")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError):
        g2s.load_gen2seg(tmp_path / "empty")
    monkeypatch.setenv("GRANSEG_HOME", str(tmp_path / "home"))
    from granseg.models.registry import load_model

    with pytest.raises(CheckpointError, match="reachomk/gen2seg-mae-h"):
        load_model("gen2seg-mae-h", device="cpu")
    with pytest.raises(CheckpointError, match="reachomk/gen2seg-sd"):
        load_model("gen2seg-sd", device="cpu")


def test_image_smaller_than_patch_is_an_input_error(tiny_mae):
    with pytest.raises(InputError, match="patch size"):
        tiny_mae.feature_image(np.zeros((5, 40, 3), np.uint8))
    with pytest.raises(InputError):
        g2s.Gen2SegConfig(backbone="vit")


def test_registry_tiny_model_predicts(tiny_mae):
    from granseg.models.registry import load_model
    from granseg.predict.factory import create_predictor

    model = load_model("gen2seg-mae-tiny", device="cpu")
    predictor = create_predictor(model)
    predictor.set_image(np.random.default_rng(0).integers(0, 256, (24, 30, 3), dtype=np.uint8))
    prediction = predictor.predict([[10, 12]], granularity="all")
    assert prediction.masks.shape == (10, 24, 30)
    assert prediction.masks[0, 12, 10]  # the clicked pixel is in its own mask


def test_edges_cli_runs_on_a_gen2seg_feature_image(tmp_path):
    from pathlib import Path

    from granseg.cli import main

    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "bsds500"
    if not data.is_dir():
        pytest.skip("shared BSDS500 subset not present")
    argv = [
        "eval",
        "edges",
        "--model",
        "gen2seg-mae-tiny",
        "--device",
        "cpu",
        "--quiet",
        "--data-root",
        str(data),
    ]
    argv += ["--max-images", "1", "--thresholds", "5", "--out", str(tmp_path / "edges")]
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "edges" / "metrics.json").read_text())
    assert metrics  # the harness scored the Sobel + NMS map of the tiny model's feature image


def test_is_gen2seg_checkpoint(tmp_path, tiny_mae):
    tiny_mae.save_pretrained(tmp_path / "ours")
    _write_sd_layout(tmp_path / "sd")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "sam2"}')
    assert g2s.is_gen2seg_checkpoint(tmp_path / "ours") and g2s.is_gen2seg_checkpoint(tmp_path / "sd")
    assert not g2s.is_gen2seg_checkpoint(tmp_path / "other")
    assert not g2s.is_gen2seg_checkpoint(tmp_path / "missing")
