"""VideoSession (weight-free path), lazy frame reading and the synthetic moving scenes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from granseg.errors import InputError
from granseg.eval.video import jaccard
from granseg.io.frames import FolderFrames, open_frames, write_clip
from granseg.predict.factory import load_predictor
from granseg.predict.video import VideoSession
from granseg.predict.video_track import FlowTrackerConfig
from granseg.synth.motion import generate_moving_scene


@pytest.fixture(scope="module")
def clip():
    return generate_moving_scene(seed=0, n_frames=24, size=112)


@pytest.fixture(scope="module")
def predictor():
    return load_predictor("hierarchy")


def _write_frames(folder, frames):
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


# --- synthetic moving scenes ------------------------------------------------------------------------------------


def test_moving_scene_masks_are_exact_and_move(clip):
    obj = clip.objects[0]
    part_a, part_b = (clip.masks[p] for p in obj.part_ids)
    whole = clip.masks[obj.node_id]
    assert not (part_a & part_b).any()
    np.testing.assert_array_equal(part_a | part_b, whole)
    front = clip.masks[clip.objects[1].node_id]
    assert not (whole & front).any(), "the front object hides the back one"
    assert whole[0].sum() > 100 and not np.array_equal(whole[0], whole[-1]), "the object moves"
    # the pixels of a visible part have that part's colour (up to noise and the moving stripes)
    colour = clip.frames[0][part_a[0]].astype(float).mean(0) / 255
    assert np.abs(colour - obj.colours[0]).max() < 0.12


def test_moving_scene_is_deterministic():
    a, b = generate_moving_scene(3, 5, 64), generate_moving_scene(3, 5, 64)
    np.testing.assert_array_equal(a.frames, b.frames)


# --- frames ------------------------------------------------------------------------------------------------------


def test_folder_frames_lazy_and_checked(tmp_path, clip):
    folder = _write_frames(tmp_path / "f", clip.frames[:4])
    frames = open_frames(folder)
    assert isinstance(frames, FolderFrames) and len(frames) == 4 and frames.size == (112, 112)
    assert len(frames._cache) == 1, "only frame 0 is read on open"
    np.testing.assert_array_equal(frames[2], clip.frames[2])
    cv2.imwrite(str(folder / "00003.png"), np.zeros((50, 60, 3), np.uint8))
    with pytest.raises(InputError, match="one size"):
        open_frames(folder)[3]
    (folder / "00002.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot be read"):
        open_frames(folder)[2]
    with pytest.raises(InputError, match="no such folder"):
        open_frames(tmp_path / "missing")
    with pytest.raises(InputError, match="no JPEG/PNG"):
        open_frames((tmp_path / "empty").mkdir() or tmp_path / "empty")


def test_video_file_round_trip(tmp_path, clip):
    path = write_clip(tmp_path / "c.mp4", iter(clip.frames[:6]), fps=5)
    frames = open_frames(path)
    assert len(frames) == 6 and frames.size == (112, 112)
    assert np.abs(frames[5].astype(int) - clip.frames[5]).mean() < 20  # lossy codec
    assert np.abs(frames[1].astype(int) - clip.frames[1]).mean() < 20  # a backward seek
    gif = write_clip(tmp_path / "c.gif", iter(clip.frames[:3]), fps=5)
    assert gif.stat().st_size > 0 and not list(tmp_path.glob(".*"))


# --- sessions ----------------------------------------------------------------------------------------------------


def test_forward_then_backward_covers_each_frame_once_per_object(clip, predictor):
    session = VideoSession(predictor, list(clip.frames[:10]))
    session.add_prompt(6, [clip.point(clip.objects[0].node_id, 6)], [1], 1.0, obj_id=1)
    session.add_prompt(3, [clip.point(clip.objects[1].node_id, 3)], [1], 1.0, obj_id=2)
    seen = {1: [], 2: []}
    for frame_idx, masks in session.propagate("both"):
        for obj, mask in masks.items():
            assert mask.shape == (112, 112) and mask.dtype == bool
            seen[obj].append(frame_idx)
    assert sorted(seen[1]) == list(range(10)) and sorted(seen[2]) == list(range(10))
    assert seen[2][:7] == list(range(3, 10)), "forward from the prompt frame first"
    order = [f for f, _ in session.propagate("backward")]
    assert order == list(range(6, -1, -1))


def test_two_adjacent_parts_do_not_leak_into_each_other(clip, predictor):
    """Two objects at once: the two parts of the front object, side by side; each follows its own part."""
    part_a, part_b = clip.objects[1].part_ids
    back = clip.objects[0].part_ids[0]
    no_motion = FlowTrackerConfig(motion_init=False)  # the motion cue would give the whole object at g = 1
    session = VideoSession(predictor, list(clip.frames), tracker_config=no_motion)
    # g = 0.5: the part (hierarchy's g = 1.0 answers the whole two-part object since the click work of issue 18)
    session.add_prompt(0, [clip.point(part_a, 0)], [1], 0.5, obj_id=1)
    session.add_prompt(0, [clip.point(part_b, 0)], [1], 0.5, obj_id=2)
    session.add_prompt(0, [clip.point(back, 0)], [1], 0.5, obj_id=3)
    ious = {1: [], 2: [], 3: []}
    for t, masks in session.propagate("forward"):
        for obj, node in ((1, part_a), (2, part_b), (3, back)):
            ious[obj].append(jaccard(clip.masks[node][t], masks[obj]))
        assert jaccard(masks[1], masks[2]) < 0.05 and jaccard(masks[1], masks[3]) < 0.05
    assert min(ious[1]) > 0.9 and min(ious[2][:12]) > 0.9, ious
    # the second (teal) part then passes over the back object's green part and grows into it (a known weakness of
    # the GrabCut step, benchmarks/results/video.md); it must not become the first part
    assert min(ious[3][:12]) > 0.9, ious[3]  # before the front object hides it


def test_motion_gives_the_whole_moving_object_at_g1(clip, predictor):
    """A click on one part at g = 1: the motion cue answers the whole object (both parts move together); since
    the click work of issue 18 the hierarchy alone does too (its single-click disk-seeded cut; before, it answered
    the part: IoU < 0.7); at g = 0.5 the motion cue is not used and the answer is the part."""
    obj = clip.objects[1]
    point = clip.point(obj.part_ids[0], 0)
    first = {}
    for name, config in (("motion", FlowTrackerConfig()), ("alone", FlowTrackerConfig(motion_init=False))):
        session = VideoSession(predictor, list(clip.frames[:8]), tracker_config=config)
        session.add_prompt(0, [point], [1], 1.0, obj_id=1)
        first[name] = next(session.propagate("forward"))[1][1]
    assert jaccard(clip.masks[obj.node_id][0], first["motion"]) > 0.85
    assert jaccard(clip.masks[obj.node_id][0], first["alone"]) > 0.85
    session = VideoSession(predictor, list(clip.frames[:8]))
    session.add_prompt(0, [point], [1], 0.5, obj_id=1)
    assert jaccard(clip.masks[obj.node_id][0], next(session.propagate("forward"))[1][1]) < 0.7


def test_tracking_beats_keeping_the_first_mask(clip, predictor):
    """Flow moves the mask: better than repeating frame 0's mask, which the motion makes wrong. (The front
    object's first part: its colour differs from everything it passes; the second part, teal, passes over the back
    object's green part and is not held this well, see benchmarks/results/video.md.)"""
    part = clip.objects[1].part_ids[0]
    session = VideoSession(predictor, list(clip.frames))
    session.add_mask(0, clip.masks[part][0], granularity=0.2)
    masks = [m[1] for _, m in session.propagate("forward")]
    tracked = np.mean([jaccard(clip.masks[part][t], masks[t]) for t in range(12, 24)])
    frozen = np.mean([jaccard(clip.masks[part][t], clip.masks[part][0]) for t in range(12, 24)])
    assert tracked > 0.8 and tracked > frozen + 0.2, (tracked, frozen)


def test_a_later_prompt_corrects_the_track(clip, predictor):
    nodes = clip.objects[0].part_ids[0], clip.objects[1].part_ids[0]
    session = VideoSession(predictor, list(clip.frames[:12]))
    session.add_mask(0, clip.masks[nodes[0]][0], granularity=0.2)
    session.add_mask(6, clip.masks[nodes[1]][6], granularity=0.2)  # switch to the other object's part
    masks = dict(session.propagate("forward"))
    assert jaccard(clip.masks[nodes[0]][5], masks[5][1]) > 0.7
    for t in range(6, 12):
        assert jaccard(clip.masks[nodes[1]][t], masks[t][1]) > 0.7


def test_bad_prompts(clip, predictor):
    session = VideoSession(predictor, list(clip.frames[:5]))
    with pytest.raises(InputError, match="out of range"):
        session.add_prompt(5, [(10, 10)], [1])
    with pytest.raises(InputError, match="outside"):
        session.add_prompt(0, [(500, 10)], [1])
    with pytest.raises(InputError, match="add a prompt"):
        next(session.propagate())
    session.add_prompt(0, [(10, 10)], [1])
    with pytest.raises(InputError, match="direction"):
        next(session.propagate("sideways"))


def test_memory_stays_flat_over_300_frames(predictor):
    """Frames are read lazily and each tracker keeps one mask: memory after 300 frames is what it was after 50."""
    import tracemalloc

    from granseg.io.frames import Frames

    scene = generate_moving_scene(seed=4, n_frames=300, size=48)

    class Lazy(Frames):  # a clip that is decoded on demand, like a video file
        def __len__(self):
            return 300

        def _read(self, index):
            return scene.frames[index].copy()

    session = VideoSession(predictor, Lazy(), tracker_config=FlowTrackerConfig())
    session.add_prompt(0, [scene.point(scene.objects[1].node_id, 0)], [1], 1.0, obj_id=1)
    tracemalloc.start()
    try:
        for frame_idx, _ in session.propagate("forward"):
            if frame_idx == 50:
                after_50, peak_50 = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
        after_300, peak_300 = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after_300 - after_50 < 256 * 1024, (after_50, after_300)
    assert peak_300 < 1.5 * peak_50 + 2**20, (peak_50, peak_300)
