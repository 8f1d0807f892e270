"""Meta SAM-2 <-> transformers Sam2VideoModel names for the video tensors (memory attention, memory encoder,
memory and object-pointer embeddings), tested on official-layout state dicts built from a tiny model."""

from __future__ import annotations

import pytest
import torch

from granseg.errors import CheckpointError
from granseg.models.video_keys import (
    hf_to_meta_key,
    hf_video_state_dict_to_meta,
    load_meta_video_weights,
    meta_to_hf_key,
)


def tiny_video_model(seed: int):
    from transformers import Sam2HieraDetConfig, Sam2VideoConfig, Sam2VideoModel, Sam2VisionConfig

    hiera = Sam2HieraDetConfig(
        hidden_size=8,
        embed_dim_per_stage=[8, 16, 32, 64],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        blocks_per_stage=[1, 1, 1, 1],
        global_attention_blocks=[2],
        window_positional_embedding_background_size=[2, 2],
    )
    vision = Sam2VisionConfig(
        backbone_config=hiera, backbone_channel_list=[64, 32, 16, 8], fpn_hidden_size=32
    )
    config = Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config={"hidden_size": 32},
        mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "iou_head_hidden_dim": 32},
        memory_attention_hidden_size=32,
        memory_attention_num_layers=2,
        memory_attention_feed_forward_hidden_size=64,
        memory_encoder_hidden_size=32,
        memory_encoder_output_channels=16,
        mask_downsampler_embed_dim=32,
        memory_fuser_embed_dim=32,
        memory_fuser_intermediate_dim=64,
        enable_temporal_pos_encoding_for_object_pointers=True,
        enable_occlusion_spatial_embedding=True,
    )
    torch.manual_seed(seed)
    model = Sam2VideoModel(config)
    with torch.no_grad():  # some of these start as zeros: make every tensor distinct
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.copy_(torch.randn_like(value))
    return model


# Meta SAM-2 names (sam2/modeling/*.py and the released checkpoints) that an official file holds.
OFFICIAL_NAMES = [
    "maskmem_tpos_enc",
    "no_mem_embed",
    "no_mem_pos_enc",
    "no_obj_ptr",
    "no_obj_embed_spatial",
    "obj_ptr_proj.layers.0.weight",
    "obj_ptr_proj.layers.2.bias",
    "obj_ptr_tpos_proj.weight",
    "mask_downsample.weight",
    "memory_attention.norm.weight",
    "memory_attention.layers.0.self_attn.q_proj.weight",
    "memory_attention.layers.1.cross_attn_image.k_proj.weight",
    "memory_attention.layers.1.cross_attn_image.out_proj.bias",
    "memory_attention.layers.0.linear1.weight",
    "memory_attention.layers.0.norm3.bias",
    "memory_encoder.mask_downsampler.encoder.0.weight",
    "memory_encoder.mask_downsampler.encoder.10.bias",
    "memory_encoder.mask_downsampler.encoder.12.weight",
    "memory_encoder.pix_feat_proj.weight",
    "memory_encoder.fuser.layers.0.gamma",
    "memory_encoder.fuser.layers.1.dwconv.weight",
    "memory_encoder.fuser.layers.1.norm.bias",
    "memory_encoder.fuser.layers.0.pwconv2.weight",
    "memory_encoder.out_proj.weight",
]


@pytest.fixture(scope="module")
def models():
    return tiny_video_model(0), tiny_video_model(1)


def test_official_names_cover_the_video_model(models):
    meta = hf_video_state_dict_to_meta(models[0])
    assert set(OFFICIAL_NAMES) <= set(meta), sorted(set(OFFICIAL_NAMES) - set(meta))
    assert all(not k.startswith(("object_pointer", "memory_encoder.memory_fuser")) for k in meta)
    for key in meta:
        assert hf_to_meta_key(meta_to_hf_key(key)) == key


def test_official_layout_loads_strictly(models):
    source, target = models
    official = {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(1)}  # image keys are ignored here
    official.update(hf_video_state_dict_to_meta(source))
    load_meta_video_weights(target, official)
    got, want = target.state_dict(), source.state_dict()
    for key in ("memory_attention.layers.1.cross_attn_image.o_proj.bias", "no_memory_embedding"):
        torch.testing.assert_close(got[key], want[key])
    video = [
        k for k in want if k.startswith(("memory_", "object_pointer", "no_", "occlusion", "temporal_pos"))
    ]
    assert len(video) > 60 and all(torch.equal(got[k], want[k]) for k in video)


def test_missing_extra_or_misshaped_video_keys_fail(models):
    source, target = models
    official = hf_video_state_dict_to_meta(source)
    broken = {k: v for k, v in official.items() if k != "no_obj_ptr"}
    with pytest.raises(CheckpointError, match="missing 1 video key.*no_obj_ptr"):
        load_meta_video_weights(target, broken)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_meta_video_weights(target, {**official, "no_mem_embed": torch.zeros(1, 1, 7)})
    with pytest.raises(CheckpointError, match="unexpected"):
        load_meta_video_weights(
            target, {**official, "memory_attention.layers.9.linear1.weight": torch.zeros(1)}
        )
    with pytest.raises(CheckpointError, match="activations"):
        meta_to_hf_key("memory_encoder.mask_downsampler.encoder.2.weight")
