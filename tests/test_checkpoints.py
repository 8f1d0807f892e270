"""Checkpoint layouts: official UnSAMv2 / Meta SAM-2 / Hugging Face / package; safety and strictness.

The official-layout state dict is generated here from the official key names and shapes (docs/unsamv2.md) and the
Meta SAM-2 module structure, written independently of granseg.models.checkpoints' name map.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch

from granseg.errors import CheckpointError
from granseg.models import checkpoints
from granseg.models.unsamv2 import TINY_ARCHITECTURE, build_unsamv2, lora_modules, tiny_config
from granseg.predict.factory import create_predictor

LORA_RANK = 8


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def official_state_dict(
    arch=TINY_ARCHITECTURE, lora=True, granularity=True, seed=0
) -> dict[str, torch.Tensor]:
    """Meta SAM-2 names + UnSAMv2 granularity keys + unmerged LoRA on all 28 decoder attention projections."""
    generator = torch.Generator().manual_seed(seed)
    shapes: dict[str, tuple[int, ...]] = {}
    c = arch.hidden_size
    dims = [arch.embed_dim * 2**i for i in range(4)]
    trunk = "image_encoder.trunk."
    shapes[trunk + "pos_embed"] = (1, arch.embed_dim, *arch.window_pos_embed_background)
    shapes[trunk + "pos_embed_window"] = (
        1,
        arch.embed_dim,
        arch.window_size_per_stage[0],
        arch.window_size_per_stage[0],
    )
    shapes[trunk + "patch_embed.proj.weight"] = (arch.embed_dim, 3, 7, 7)
    shapes[trunk + "patch_embed.proj.bias"] = (arch.embed_dim,)
    block = 0
    for stage, count in enumerate(arch.blocks_per_stage):
        for index in range(count):
            dim_in = dims[stage - 1] if stage > 0 and index == 0 else dims[stage]
            out = dims[stage]
            p = f"{trunk}blocks.{block}."
            shapes.update({p + "norm1.weight": (dim_in,), p + "norm1.bias": (dim_in,)})
            shapes.update({p + "attn.qkv.weight": (3 * out, dim_in), p + "attn.qkv.bias": (3 * out,)})
            shapes.update({p + "attn.proj.weight": (out, out), p + "attn.proj.bias": (out,)})
            shapes.update({p + "norm2.weight": (out,), p + "norm2.bias": (out,)})
            shapes.update({p + "mlp.layers.0.weight": (4 * out, out), p + "mlp.layers.0.bias": (4 * out,)})
            shapes.update({p + "mlp.layers.1.weight": (out, 4 * out), p + "mlp.layers.1.bias": (out,)})
            if dim_in != out:
                shapes.update({p + "proj.weight": (out, dim_in), p + "proj.bias": (out,)})
            block += 1
    for j, channels in enumerate(dims[::-1]):
        shapes[f"image_encoder.neck.convs.{j}.conv.weight"] = (c, channels, 1, 1)
        shapes[f"image_encoder.neck.convs.{j}.conv.bias"] = (c,)
    pe = "sam_prompt_encoder."
    shapes[pe + "pe_layer.positional_encoding_gaussian_matrix"] = (2, c // 2)
    for i in range(4):
        shapes[f"{pe}point_embeddings.{i}.weight"] = (1, c)
    shapes[pe + "not_a_point_embed.weight"] = (1, c)
    shapes[pe + "no_mask_embed.weight"] = (1, c)
    m = arch.mask_input_channels
    for key, shape in {
        "0.weight": (m // 4, 1, 2, 2), "0.bias": (m // 4,), "1.weight": (m // 4,), "1.bias": (m // 4,),
        "3.weight": (m, m // 4, 2, 2), "3.bias": (m,), "4.weight": (m,), "4.bias": (m,),
        "6.weight": (c, m, 1, 1), "6.bias": (c,),
    }.items():  # fmt: skip
        shapes[pe + "mask_downscaling." + key] = shape
    md = "sam_mask_decoder."
    shapes.update(
        {
            md + "iou_token.weight": (1, c),
            md + "mask_tokens.weight": (4, c),
            md + "obj_score_token.weight": (1, c),
        }
    )
    attention_sites = []
    for layer in range(2):
        t = f"{md}transformer.layers.{layer}."
        attention_sites.append((t + "self_attn.", c))
        attention_sites.append((t + "cross_attn_token_to_image.", c // 2))
        attention_sites.append((t + "cross_attn_image_to_token.", c // 2))
        for n in range(1, 5):
            shapes.update({f"{t}norm{n}.weight": (c,), f"{t}norm{n}.bias": (c,)})
        shapes.update(
            {
                t + "mlp.layers.0.weight": (arch.decoder_mlp_dim, c),
                t + "mlp.layers.0.bias": (arch.decoder_mlp_dim,),
            }
        )
        shapes.update({t + "mlp.layers.1.weight": (c, arch.decoder_mlp_dim), t + "mlp.layers.1.bias": (c,)})
    attention_sites.append((md + "transformer.final_attn_token_to_image.", c // 2))
    shapes.update(
        {md + "transformer.norm_final_attn.weight": (c,), md + "transformer.norm_final_attn.bias": (c,)}
    )
    lora_sites = []
    for prefix, internal in attention_sites:
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w_shape = (c, internal) if proj == "out_proj" else (internal, c)
            shapes[f"{prefix}{proj}.weight"] = w_shape
            shapes[f"{prefix}{proj}.bias"] = (w_shape[0],)
            lora_sites.append((f"{prefix}{proj}", w_shape))
    shapes.update(
        {md + "output_upscaling.0.weight": (c, c // 4, 2, 2), md + "output_upscaling.0.bias": (c // 4,)}
    )
    shapes.update({md + "output_upscaling.1.weight": (c // 4,), md + "output_upscaling.1.bias": (c // 4,)})
    shapes.update(
        {md + "output_upscaling.3.weight": (c // 4, c // 8, 2, 2), md + "output_upscaling.3.bias": (c // 8,)}
    )
    shapes.update({md + "conv_s0.weight": (c // 8, c, 1, 1), md + "conv_s0.bias": (c // 8,)})
    shapes.update({md + "conv_s1.weight": (c // 4, c, 1, 1), md + "conv_s1.bias": (c // 4,)})

    def mlp3(prefix, dims3):
        for i, (o, n) in enumerate(dims3):
            shapes[f"{prefix}layers.{i}.weight"] = (o, n)
            shapes[f"{prefix}layers.{i}.bias"] = (o,)

    for i in range(4):
        mlp3(f"{md}output_hypernetworks_mlps.{i}.", [(c, c), (c, c), (c // 8, c)])
    h = arch.iou_head_hidden_dim
    mlp3(md + "iou_prediction_head.", [(h, c), (h, h), (4, h)])
    mlp3(md + "pred_obj_score_head.", [(c, c), (c, c), (1, c)])
    shapes["no_mem_embed"] = (1, 1, c)
    # video-only tensors of the full SAM-2 checkpoint
    shapes["memory_attention.layers.0.self_attn.q_proj.weight"] = (c, c)
    shapes["maskmem_tpos_enc"] = (7, 1, 1, 64)
    if granularity:
        shapes[pe + "granularity_embedding.weight"] = (1, c)
        for i, (o, n) in zip((0, 3, 6), [(192, 128), (192, 192), (c, 192)]):
            shapes[f"{pe}fourier_embedder.mlp.mlp.{i}.weight"] = (o, n)
            shapes[f"{pe}fourier_embedder.mlp.mlp.{i}.bias"] = (o,)
        shapes[md + "gra_token.weight"] = (1, c)
        mlp3(md + "gra_output_token_mlp.", [(c, c), (c, c), (c // 8, c)])
    if lora:
        assert len(lora_sites) == 28
        for site, (out, inp) in lora_sites:
            shapes[f"{site}.original_layer.weight"] = shapes.pop(f"{site}.weight")
            shapes[f"{site}.original_layer.bias"] = shapes.pop(f"{site}.bias")
            shapes[f"{site}.lora_A"] = (LORA_RANK, inp)
            shapes[f"{site}.lora_B"] = (out, LORA_RANK)
    return {k: torch.randn(s, generator=generator) * 0.1 for k, s in shapes.items()}


@pytest.fixture(scope="module")
def official():
    return official_state_dict()


@pytest.fixture()
def official_file(tmp_path, official):
    path = tmp_path / "unsamv2_tiny.pt"
    torch.save({"model": official}, path)
    tiny_config(name="unsamv2_tiny").to_json(path.with_suffix(".json"))
    return path


POINTS = torch.tensor([[[[30.0, 40.0]]]])
LABELS = torch.tensor([[[1]]])


def _logits(model, g=0.4):
    torch.manual_seed(0)
    pixels = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        return model(
            pixel_values=pixels, input_points=POINTS, input_labels=LABELS, granularity=torch.tensor([[g]])
        ).mask_logits


# ------------------------------------------------------------------------------------------------ official
def test_official_layout_loads_strictly_with_every_value_in_place(official_file, official):
    model, report = checkpoints.load_with_report(official_file)
    assert report.ok and model.config.granularity and model.config.lora.rank == LORA_RANK
    assert sorted(model.passthrough) == [
        "maskmem_tpos_enc",
        "memory_attention.layers.0.self_attn.q_proj.weight",
    ]
    sam = model.sam
    md = "sam_mask_decoder."
    checks = {
        "image_encoder.trunk.blocks.1.mlp.layers.1.weight": sam.vision_encoder.backbone.blocks[
            1
        ].mlp.proj_out.weight,
        "image_encoder.neck.convs.2.conv.weight": sam.vision_encoder.neck.convs[2].weight,
        "sam_prompt_encoder.mask_downscaling.4.bias": sam.prompt_encoder.mask_embed.layer_norm2.bias,
        md + "output_hypernetworks_mlps.2.layers.0.weight": sam.mask_decoder.output_hypernetworks_mlps[
            2
        ].proj_in.weight,
        md + "output_hypernetworks_mlps.2.layers.1.weight": sam.mask_decoder.output_hypernetworks_mlps[2]
        .layers[0]
        .weight,
        md + "iou_prediction_head.layers.2.bias": sam.mask_decoder.iou_prediction_head.proj_out.bias,
        md + "output_upscaling.3.weight": sam.mask_decoder.upscale_conv2.weight,
        md + "transformer.layers.1.norm3.weight": sam.mask_decoder.transformer.layers[1].layer_norm3.weight,
        "sam_prompt_encoder.fourier_embedder.mlp.mlp.3.weight": model.granularity_encoder.mlp.mlp[3].weight,
        "sam_prompt_encoder.granularity_embedding.weight": model.granularity_encoder.type_embedding,
        md + "gra_token.weight": model.granularity_head.token.weight,
        md + "gra_output_token_mlp.layers.1.bias": model.granularity_head.hypernetwork.layers[0].bias,
        "no_mem_embed": sam.no_memory_embedding,
    }
    for key, tensor in checks.items():
        assert torch.equal(official[key], tensor.detach()), key
    attn = sam.mask_decoder.transformer.layers[0].cross_attn_image_to_token.o_proj
    site = md + "transformer.layers.0.cross_attn_image_to_token.out_proj"
    assert torch.equal(attn.base_layer.weight, official[site + ".original_layer.weight"])
    assert torch.equal(attn.lora_A["default"].weight, official[site + ".lora_A"])
    assert torch.equal(attn.lora_B["default"].weight, official[site + ".lora_B"])
    for i in range(4):
        assert torch.equal(
            sam.prompt_encoder.point_embed.weight[i],
            official[f"sam_prompt_encoder.point_embeddings.{i}.weight"][0],
        )
    pe = official["sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"]
    assert torch.equal(sam.shared_image_embedding.positional_embedding, pe)
    # exporting gives back exactly the official dict
    exported = checkpoints.to_meta_state_dict(model)
    assert set(exported) == set(official)
    assert all(torch.equal(exported[k], official[k]) for k in official)


def test_released_sizes_are_recognised_from_shapes():
    fake = {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(96, 3, 7, 7)}
    fake.update({f"image_encoder.trunk.blocks.{i}.norm1.weight": torch.zeros(1) for i in range(16)})
    fake["sam_mask_decoder.gra_token.weight"] = torch.zeros(1, 256)
    fake["sam_mask_decoder.transformer.layers.0.self_attn.q_proj.lora_A"] = torch.zeros(8, 256)
    config = checkpoints.infer_meta_config(fake, "x")
    assert config.sam2.global_attention_blocks == (7, 10, 13) and config.granularity and config.lora.rank == 8
    fake.update({f"image_encoder.trunk.blocks.{i}.norm1.weight": torch.zeros(1) for i in range(16, 48)})
    fake["image_encoder.trunk.patch_embed.proj.weight"] = torch.zeros(144, 3, 7, 7)
    assert checkpoints.infer_meta_config(fake, "x").sam2.blocks_per_stage == (2, 6, 36, 4)


def test_plain_meta_sam2_file_loads_as_plain_sam2(tmp_path):
    plain = official_state_dict(lora=False, granularity=False, seed=2)
    path = tmp_path / "sam2_tiny.pt"
    torch.save({"model": plain}, path)
    config = tiny_config(name="sam2_tiny", granularity=False, lora=None)
    model = checkpoints.load_model_from_path(path, config=config)
    assert model.granularity_encoder is None and not lora_modules(model)
    exported = checkpoints.to_meta_state_dict(model)
    assert set(exported) == set(plain) and all(torch.equal(exported[k], plain[k]) for k in plain)


# --------------------------------------------------------------------------------------------- round trips
def test_convert_save_load_round_trip_is_exact(official_file, tmp_path):
    model = checkpoints.load_model_from_path(official_file)
    package = checkpoints.save_package(model, tmp_path / "pkg.safetensors")
    assert package.with_suffix(".json").is_file()
    again = checkpoints.load_model_from_path(package)
    a, b = model.state_dict(), again.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert again.passthrough.keys() == model.passthrough.keys()
    assert torch.equal(_logits(model), _logits(again))
    back = checkpoints.save_meta(again, tmp_path / "back.pt")
    original = torch.load(official_file, weights_only=True)["model"]
    reloaded = torch.load(back, weights_only=True)["model"]
    assert set(original) == set(reloaded) and all(torch.equal(original[k], reloaded[k]) for k in original)


def test_merged_lora_export_equals_unmerged_output(official_file, tmp_path):
    model = checkpoints.load_model_from_path(official_file)  # official B is non-zero here
    merged_pkg = checkpoints.load_model_from_path(
        checkpoints.save_package(model, tmp_path / "m.safetensors", merge_lora=True)
    )
    merged_meta_path = checkpoints.save_meta(model, tmp_path / "m.pt", merge_lora=True)
    merged_meta_sd = torch.load(merged_meta_path, weights_only=True)["model"]
    assert not any(".lora_" in k or "original_layer" in k for k in merged_meta_sd)
    merged_meta = checkpoints.load_model_from_path(merged_meta_path, config=tiny_config(name="m", lora=None))
    reference = _logits(model)
    for merged in (merged_pkg, merged_meta):
        assert merged.config.lora is None and not lora_modules(merged)
        torch.testing.assert_close(_logits(merged), reference, atol=1e-5, rtol=1e-5)


def test_hugging_face_folder_loads_and_matches_transformers(tmp_path):
    from transformers import Sam2Model

    torch.manual_seed(4)
    reference = Sam2Model(TINY_ARCHITECTURE.to_hf()).eval()
    with torch.no_grad():
        reference.shared_image_embedding.positional_embedding.copy_(
            reference.prompt_encoder.shared_embedding.positional_embedding
        )
    reference.save_pretrained(tmp_path / "hf")
    model = checkpoints.load_model_from_path(tmp_path / "hf")
    assert not model.config.granularity and model.config.sam2 == TINY_ARCHITECTURE
    pixels = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        ours = model(pixel_values=pixels, input_points=POINTS, input_labels=LABELS)
        theirs = reference(pixel_values=pixels, input_points=POINTS, input_labels=LABELS)
    torch.testing.assert_close(ours.mask_logits, theirs.pred_masks, atol=1e-6, rtol=0)
    (tmp_path / "hf" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights were not downloaded") as error:
        checkpoints.load_model_from_path(tmp_path / "hf")
    # the pinned huggingface_hub installs `hf` (its `huggingface-cli` is gone)
    assert "`hf download facebook/sam2.1-hiera-small --local-dir DIR`" in str(error.value)
    assert "huggingface-cli" not in str(error.value)


def _hf_sam2(tmp_path, seed: int):
    from transformers import Sam2Model

    torch.manual_seed(seed)
    model = Sam2Model(TINY_ARCHITECTURE.to_hf()).eval()
    with torch.no_grad():
        model.shared_image_embedding.positional_embedding.copy_(
            model.prompt_encoder.shared_embedding.positional_embedding
        )
    return model


def test_named_safetensors_beside_a_hf_config_loads_that_file(tmp_path):
    """dir/other.safetensors with dir/config.json: the weights of other.safetensors, not dir/model.safetensors."""
    from safetensors.torch import save_file

    _hf_sam2(tmp_path, seed=4).save_pretrained(tmp_path / "hf")
    other = _hf_sam2(tmp_path, seed=5)
    save_file(
        {k: v.contiguous() for k, v in other.state_dict().items()}, str(tmp_path / "hf" / "other.safetensors")
    )
    loaded = checkpoints.load_model_from_path(tmp_path / "hf" / "other.safetensors")
    pixels = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        ours = loaded(pixel_values=pixels, input_points=POINTS, input_labels=LABELS)
        theirs = other(pixel_values=pixels, input_points=POINTS, input_labels=LABELS)
    torch.testing.assert_close(ours.mask_logits, theirs.pred_masks, atol=1e-6, rtol=0)


def _fake_hub_snapshot(cache, repo: str, revision: str, age: float) -> Path:
    """A huggingface_hub cache entry (models--org--name/snapshots/REV/config.json) with a given mtime."""
    import os
    import time

    snapshot = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    stamp = time.time() - age
    os.utime(snapshot, (stamp, stamp))
    return snapshot


def test_hf_cache_is_looked_up_through_huggingface_hub(tmp_path, monkeypatch):
    """The snapshot `refs/main` points to is used (huggingface_hub's look-up), not the newest folder by mtime."""
    import huggingface_hub.constants

    monkeypatch.setenv("GRANSEG_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = "facebook/sam2.1-hiera-tiny"
    main = _fake_hub_snapshot(tmp_path / "hub", repo, "a" * 40, age=3600)
    _fake_hub_snapshot(tmp_path / "hub", repo, "b" * 40, age=0)  # newer, but not what main points to
    refs = tmp_path / "hub" / f"models--{repo.replace('/', '--')}" / "refs"
    refs.mkdir()
    (refs / "main").write_text("a" * 40)
    candidates = checkpoints.weight_candidates("sam2.1-hiera-tiny")
    snapshots = [c for c in candidates if "snapshots" in str(c)]
    assert snapshots == [main]
    assert checkpoints.weight_candidates("sam2-hiera-large")[-1].parent == tmp_path / "home" / "checkpoints"


def test_cli_convert_both_ways(official_file, tmp_path, capsys):
    from granseg.cli import main

    out = tmp_path / "cli.safetensors"
    assert main(["convert", str(official_file), str(out), "--quiet"]) == 0
    assert out.is_file() and out.with_suffix(".json").is_file()
    back = tmp_path / "cli_back.pt"
    assert main(["convert", str(out), str(back), "--quiet"]) == 0
    original = torch.load(official_file, weights_only=True)["model"]
    reloaded = torch.load(back, weights_only=True)["model"]
    assert all(torch.equal(original[k], reloaded[k]) for k in original) and set(original) == set(reloaded)
    assert main(["convert", str(official_file), str(out), "--quiet"]) == 2  # exists, no --force
    assert "exists" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- bad checkpoints
def _write_official(tmp_path, state, name="bad.pt"):
    path = tmp_path / name
    torch.save({"model": state}, path)
    tiny_config(name="bad").to_json(path.with_suffix(".json"))
    return path


def test_wrong_shape_is_reported_with_key_and_shapes(tmp_path, official):
    state = dict(official)
    key = "sam_mask_decoder.gra_token.weight"
    state[key] = torch.zeros(2, 32)
    with pytest.raises(CheckpointError) as info:
        checkpoints.load_model_from_path(_write_official(tmp_path, state))
    first_line = str(info.value).splitlines()[0]
    assert (
        "wrong shape" in first_line
        and key in first_line
        and "[2, 32]" in first_line
        and "[1, 32]" in first_line
    )


def test_missing_and_unexpected_keys_are_reported(tmp_path, official):
    state = dict(official)
    del state["sam_mask_decoder.transformer.final_attn_token_to_image.v_proj.lora_B"]
    state["sam_mask_decoder.surprise.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        checkpoints.load_model_from_path(_write_official(tmp_path, state))
    message = str(info.value)
    assert "1 missing" in message and "final_attn_token_to_image.v_proj.lora_B" in message
    assert "1 unexpected" in message and "sam_mask_decoder.surprise.weight" in message


def test_missing_key_in_package_file_is_reported(tmp_path):
    from safetensors.torch import save_file

    model = build_unsamv2(tiny_config(), seed=0)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "granularity_head.token.weight"}
    path = tmp_path / "p.safetensors"
    save_file(state, str(path))
    model.config.to_json(path.with_suffix(".json"))
    with pytest.raises(CheckpointError, match="granularity_head.token.weight"):
        checkpoints.load_model_from_path(path)


class _Payload:
    """Unpickling this calls ``open(marker, 'w')``: a file appears if the loader executes pickled code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["torch_zip", "raw_pickle"])
def test_pickle_with_code_is_refused_and_never_executed(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if writer == "torch_zip":
        torch.save({"model": {"x": torch.zeros(1)}, "payload": _Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"model": _Payload(marker)}))
    with pytest.raises(CheckpointError, match="refusing to load"):
        checkpoints.load_model_from_path(path)
    assert not marker.exists()


def test_corrupt_and_foreign_files_fail_clearly(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00not a safetensors file")
    with pytest.raises(CheckpointError, match="safetensors"):
        checkpoints.load_model_from_path(junk)
    foreign = tmp_path / "resnet.pt"
    torch.save({"model": {"conv1.weight": torch.zeros(1)}}, foreign)
    with pytest.raises(CheckpointError, match="not a SAM-2 checkpoint"):
        checkpoints.load_model_from_path(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        checkpoints.load_model_from_path(tmp_path / "nope.pt")


def test_cli_reports_bad_checkpoint_in_one_line(tmp_path, capsys):
    from granseg.cli import main

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    assert main(["convert", str(path), str(tmp_path / "o.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(r"error: refusing to load", err[0])
    assert not marker.exists()


def test_registered_name_uses_local_weights_when_present(tmp_path, monkeypatch):
    """`unsamv2-hiera-small` is found in $GRANSEG_HOME/checkpoints (here a tiny stand-in with its config)."""
    from granseg.models.registry import checkpoint_dir, load_model

    monkeypatch.setenv("GRANSEG_HOME", str(tmp_path))
    saved = build_unsamv2(tiny_config(name="stand-in"), seed=6)
    checkpoint_dir().mkdir(parents=True)
    checkpoints.save_package(saved, checkpoint_dir() / "unsamv2-hiera-small.safetensors")
    loaded = load_model("unsamv2-hiera-small", device="cpu", resize_mode="longest_side_pad")
    assert loaded.config.resize_mode == "longest_side_pad" and loaded.config.sam2 == TINY_ARCHITECTURE
    assert torch.equal(_logits(loaded), _logits(saved))


def test_gen2seg_folders_are_dispatched_to_their_loader(tmp_path):
    from granseg.models import gen2seg
    from granseg.models.registry import load_model

    gen2seg.build_tiny(backbone="mae").save_pretrained(tmp_path / "g2s")
    loaded = load_model(str(tmp_path / "g2s"), device="cpu")
    assert isinstance(loaded, gen2seg.Gen2SegModel)


def test_official_checkpoint_predicts_the_same_with_fast_and_reference_decoders(official_file):
    """The official layout (non-zero LoRA, all biases random) through the default predictor equals the predictor
    running transformers' modules, for a g-sweep and a follow-up click with the previous logits."""
    import numpy as np

    model = checkpoints.load_model_from_path(official_file)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(90, 150, 3), dtype=np.uint8)
    fast = create_predictor(model)
    reference = create_predictor(model, decoder="reference")
    outputs = []
    for predictor in (fast, reference):
        predictor.set_image(image)
        first = predictor.predict([[50, 40]], [1], granularity="all")
        second = predictor.predict(
            [[50, 40], [120, 70]], [1, 0], granularity="all", mask_input=first.low_res_logits
        )
        outputs.append((first.low_res_logits, second.low_res_logits, second.scores))
    for got, want in zip(outputs[0], outputs[1]):
        np.testing.assert_allclose(got, want, atol=1e-5 * (1 + np.abs(want).max()))
