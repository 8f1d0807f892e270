"""The neural video session (UnSAMv2 on transformers' Sam2VideoModel memory) with tiny random weights:
memory off equals frame-by-frame image decoding, pass order and coverage, object independence, corrections and
g changes, bounded memory over a long clip, official-layout video checkpoints."""

from __future__ import annotations

import dataclasses
import resource

import numpy as np
import pytest
import torch

from granseg.io.frames import ArrayFrames
from granseg.models.unsamv2 import TINY_ARCHITECTURE, build_unsamv2, tiny_config
from granseg.models.video_config import VideoMemoryConfig, video_config_from_meta
from granseg.models.video_keys import hf_video_state_dict_to_meta
from granseg.models.video_model import UnSAMv2VideoModel, build_video_model
from granseg.predict.unsamv2 import UnSAMv2Predictor, preprocess_image, upsample_logits
from granseg.predict.video import VideoSession

H, W = 72, 96  # not square: checks the point scaling and the upsampling to the frame size


def clip(n: int, seed: int = 0) -> list[np.ndarray]:
    """A textured background with a bright square moving right (uint8 RGB, H x W)."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 120, (H, W, 3), dtype=np.uint8)
    frames = []
    for t in range(n):
        frame = background.copy()
        x = 10 + (2 * t) % (W - 30)
        frame[20:44, x : x + 20] = (230, 200, 40)
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def model():
    """Tiny UnSAMv2 with non-zero LoRA (so the merge into the video model is exercised) whose object-score head
    says "present" (SAM-2's video path replaces the masks of absent objects by -1024 logits)."""
    m = build_unsamv2(tiny_config(), seed=3)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.05)
        m.sam.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(10.0)
        m.sam.no_memory_embedding.normal_(0.0, 0.5)  # zero at init: make "no memory" visible
    return m


@pytest.fixture(scope="module")
def frames():
    return clip(8)


def logits_by_frame(session, direction="forward"):
    return [(f, {k: v.copy() for k, v in out.items()}) for f, out in session.propagate_logits(direction)]


def test_memory_disabled_equals_image_decoding(model, frames):
    session = VideoSession(model, frames, memory=VideoMemoryConfig(num_maskmem=0))
    session.add_prompt(0, [(30, 30), (70, 60)], [1, 0], granularity=0.3, obj_id=1)
    session.add_prompt(3, [(50, 25)], [1], granularity=0.8, obj_id=1)
    got = dict((f, out[1]) for f, out in logits_by_frame(session))
    assert sorted(got) == list(range(8))
    predictor = UnSAMv2Predictor(model, decoder="reference")
    for f, (points, labels) in {0: ([(30, 30), (70, 60)], [1, 0]), 3: ([(50, 25)], [1])}.items():
        predictor.set_image(frames[f])
        g = 0.3 if f == 0 else 0.8
        expected = predictor.predict(points, labels, granularity=g, return_logits=True).logits[0]
        np.testing.assert_allclose(got[f], expected, atol=2e-4)
    for f in (1, 2, 5, 7):  # no prompt, no memory: the g of the last prompt and a not-a-point
        pixels, content = preprocess_image(frames[f], 128)
        with torch.no_grad():
            out = model(pixel_values=pixels, granularity=torch.tensor([[0.3 if f < 3 else 0.8]]))
        expected = upsample_logits(out.mask_logits[0, :, 0], 128, content, (H, W))[0].numpy()
        np.testing.assert_allclose(got[f], expected, atol=2e-4)


def test_memory_changes_tracked_frames_not_prompted_ones(model, frames):
    runs = {}
    for slots in (0, 7):
        session = VideoSession(model, frames, memory=VideoMemoryConfig(num_maskmem=slots))
        session.add_prompt(0, [(30, 30)], [1], granularity=0.5)
        runs[slots] = dict((f, out[1]) for f, out in logits_by_frame(session))
    np.testing.assert_allclose(
        runs[0][0], runs[7][0], atol=1e-5
    )  # the prompted frame has no memory either way
    assert all(np.abs(runs[0][f] - runs[7][f]).max() > 1e-5 for f in range(1, 8))


def test_both_covers_every_frame_once_per_object(model, frames):
    session = VideoSession(model, frames)
    session.add_prompt(2, [(30, 30)], [1], granularity=0.4, obj_id=1)
    session.add_prompt(5, [(60, 30)], [1], granularity=0.9, obj_id=7)
    seen = []
    for frame_idx, masks in session.propagate("both"):
        assert all(m.shape == (H, W) and m.dtype == bool for m in masks.values())
        seen += [(frame_idx, obj) for obj in masks]
    assert sorted(seen) == sorted((f, obj) for f in range(8) for obj in (1, 7))
    # forward from the first prompt (object 7 joins on its prompt frame), then backward from the frame before
    # each object's first prompt
    assert seen[:9] == [(2, 1), (3, 1), (4, 1), (5, 1), (5, 7), (6, 1), (6, 7), (7, 1), (7, 7)]
    assert seen[9:] == [(4, 7), (3, 7), (2, 7), (1, 1), (1, 7), (0, 1), (0, 7)]


def test_objects_do_not_leak(model, frames):
    alone = VideoSession(model, frames)
    alone.add_prompt(0, [(30, 30)], [1], granularity=0.4, obj_id=1)
    together = VideoSession(model, frames)
    together.add_prompt(0, [(30, 30)], [1], granularity=0.4, obj_id=1)
    together.add_prompt(0, [(70, 50), (20, 60)], [1, 0], granularity=1.0, obj_id=2)
    together.add_mask(
        4, np.pad(np.ones((10, 10), bool), ((5, H - 15), (5, W - 15))), granularity=0.2, obj_id=2
    )
    a = logits_by_frame(alone)
    b = logits_by_frame(together)
    assert [f for f, _ in a] == [f for f, _ in b]
    for (_, out_a), (_, out_b) in zip(a, b, strict=True):
        np.testing.assert_array_equal(out_a[1], out_b[1])
        assert np.abs(out_b[1] - out_b[2]).max() > 1e-5


def test_reprompt_corrects_and_changes_g(model, frames):
    runs = {}
    for g in (0.1, 0.9):
        session = VideoSession(model, frames)
        session.add_prompt(0, [(30, 30)], [1], granularity=0.5)
        session.add_prompt(3, [(50, 30)], [1], granularity=g)
        runs[g] = dict((f, out[1]) for f, out in logits_by_frame(session))
    for f in range(3):
        np.testing.assert_array_equal(runs[0.1][f], runs[0.9][f])
    assert all(np.abs(runs[0.1][f] - runs[0.9][f]).max() > 1e-5 for f in range(3, 8))
    predictor = UnSAMv2Predictor(model, decoder="reference")
    predictor.set_image(
        frames[3]
    )  # the correction frame is decoded from its prompt (SAM-2, prompts given first)
    expected = predictor.predict([(50, 30)], [1], granularity=0.9, return_logits=True).logits[0]
    np.testing.assert_allclose(runs[0.9][3], expected, atol=2e-4)


class CountingFrames(ArrayFrames):
    def __init__(self, frames):
        super().__init__(frames)
        self.reads = 0

    def _read(self, index):
        self.reads += 1
        return super()._read(index)


def test_memory_stays_flat_over_300_frames():
    small = build_unsamv2(tiny_config(sam2=dataclasses.replace(TINY_ARCHITECTURE, image_size=64)), seed=2)
    source = CountingFrames(clip(300, seed=1))
    memory = VideoMemoryConfig(num_maskmem=4, max_object_pointers=6, memory_attention_layers=1)
    session = VideoSession(small, source, memory=memory)
    session.add_prompt(0, [(30, 30)], [1], granularity=0.6, obj_id=1)
    state, rss = [], {}
    for frame_idx, _ in session.propagate("forward"):
        state.append(session.neural.last_session.state_bytes())
        if frame_idx in (60, 299):
            rss[frame_idx] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, peak so far
    assert len(state) == 300
    assert max(state[20:]) == min(state[20:]) > 0  # bank full after a few frames, then constant
    assert state[5] < state[20]
    assert rss[299] - rss[60] < 40 * 1024  # peak RSS: < 40 MB more after 240 more frames
    assert source.reads <= 300 + 4  # each frame decoded once (features of one frame cached)


def test_official_video_state_dict_loads_through_converters(model, frames, tmp_path):
    from granseg.models.checkpoints import load_model_from_path
    from granseg.models.checkpoints.convert import to_meta_state_dict

    memory = VideoMemoryConfig(num_maskmem=3, memory_attention_layers=2, max_object_pointers=4)
    reference = build_video_model(model, memory, seed=5)
    with torch.no_grad():  # several video tensors start as zeros: make them all distinct
        for key, value in reference.state_dict().items():
            if key.startswith(
                ("memory_", "no_", "object_pointer", "occlusion", "temporal_", "mask_downsample")
            ):
                value.copy_(torch.randn_like(value) * 0.2)
    video_meta = hf_video_state_dict_to_meta(reference)
    assert "maskmem_tpos_enc" in video_meta and "obj_ptr_proj.layers.0.weight" in video_meta
    assert "memory_encoder.fuser.layers.0.dwconv.weight" in video_meta
    official = {**to_meta_state_dict(model), **video_meta}
    path = tmp_path / "unsamv2_video_tiny.pt"
    torch.save({"model": official}, path)
    model.config.to_json(path.with_suffix(".json"))
    loaded = load_model_from_path(path)
    assert video_config_from_meta(loaded.passthrough).num_maskmem == 3
    session = VideoSession(loaded, frames, memory=dataclasses.replace(memory, num_maskmem=7))  # tensors win
    assert session.neural.video.num_maskmem == 3
    for key, value in reference.state_dict().items():
        assert torch.equal(session.neural.video.state_dict()[key], value), key
    expected = VideoSession(reference, frames)
    for s in (session, expected):
        s.add_prompt(1, [(30, 30)], [1], granularity=0.7)
    for (f1, a), (f2, b) in zip(
        logits_by_frame(session, "both"), logits_by_frame(expected, "both"), strict=True
    ):
        assert f1 == f2
        np.testing.assert_allclose(a[1], b[1], atol=1e-5)
    bad = dict(official)
    bad["memory_attention.layers.0.linear1.weight"] = torch.zeros(3, 3)
    torch.save({"model": bad}, path)
    from granseg.errors import CheckpointError

    with pytest.raises(CheckpointError):
        VideoSession(load_model_from_path(path), frames)


# Shapes of the video tensors in Meta's released SAM-2.1 hiera-small / UnSAMv2 checkpoints.
OFFICIAL_SMALL_SHAPES = {
    "maskmem_tpos_enc": (7, 1, 1, 64),
    "no_mem_embed": (1, 1, 256),
    "no_mem_pos_enc": (1, 1, 256),
    "no_obj_ptr": (1, 256),
    "no_obj_embed_spatial": (1, 64),
    "mask_downsample.weight": (1, 1, 4, 4),
    "obj_ptr_proj.layers.0.weight": (256, 256),
    "obj_ptr_proj.layers.2.weight": (256, 256),
    "obj_ptr_tpos_proj.weight": (64, 256),
    "memory_attention.layers.3.self_attn.q_proj.weight": (256, 256),
    "memory_attention.layers.0.cross_attn_image.k_proj.weight": (256, 64),
    "memory_attention.layers.0.cross_attn_image.v_proj.weight": (256, 64),
    "memory_attention.layers.0.linear1.weight": (2048, 256),
    "memory_attention.norm.weight": (256,),
    "memory_encoder.mask_downsampler.encoder.0.weight": (4, 1, 3, 3),
    "memory_encoder.mask_downsampler.encoder.9.weight": (256, 64, 3, 3),
    "memory_encoder.mask_downsampler.encoder.12.weight": (256, 256, 1, 1),
    "memory_encoder.pix_feat_proj.weight": (256, 256, 1, 1),
    "memory_encoder.fuser.layers.1.dwconv.weight": (256, 1, 7, 7),
    "memory_encoder.fuser.layers.0.pwconv1.weight": (1024, 256),
    "memory_encoder.fuser.layers.0.gamma": (256,),
    "memory_encoder.out_proj.weight": (64, 256, 1, 1),
}


def test_default_memory_has_the_official_hiera_small_video_shapes():
    from granseg.models.unsamv2_config import SAM2_ARCHITECTURES

    with torch.device("meta"):
        video = UnSAMv2VideoModel(VideoMemoryConfig().to_hf(SAM2_ARCHITECTURES["small"]))
    shapes = {k: tuple(v.shape) for k, v in hf_video_state_dict_to_meta(video).items()}
    for key, shape in OFFICIAL_SMALL_SHAPES.items():
        assert shapes[key] == shape, key
    assert len([k for k in shapes if k.startswith("memory_attention.layers.")]) == 4 * 26


def test_plain_sam2_video_runs_without_granularity(frames):
    sam2 = build_unsamv2(tiny_config(name="sam2-tiny", granularity=False, lora=None), seed=1)
    session = VideoSession(sam2, frames)
    session.add_prompt(0, [(30, 30)], [1], granularity=0.2)
    out = list(session.propagate("forward"))
    assert [f for f, _ in out] == list(range(8)) and all(m[1].shape == (H, W) for _, m in out)


def test_cli_video_runs_the_neural_session(tmp_path, frames, capsys):
    import cv2

    from granseg.cli import main
    from granseg.io.images import load_image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames[:5]):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    argv = [
        "video",
        str(folder),
        "--model",
        "unsamv2-tiny-random",
        "--point",
        "30,30",
        "--granularity",
        "0.4",
    ]
    code = main([*argv, "--obj", "70,50;g=1.0;f=2", "--direction", "both", "--out", str(out), "--quiet"])
    capsys.readouterr()
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [f"f{i:03d}.png" for i in range(5)]
    session = VideoSession(build_unsamv2(tiny_config()), str(folder))  # what the CLI's model is
    session.add_prompt(0, [(30, 30)], [1], granularity=0.4, obj_id=1)
    first = dict(session.propagate("forward"))
    label = load_image(out / "f004.png")[..., 0]
    assert label.shape == (H, W)
    assert np.array_equal(label == 1, first[4][1] & (label != 2))
