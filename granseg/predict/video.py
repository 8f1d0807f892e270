"""Video sessions: prompt an object (or a part) at a granularity on one frame, follow it through the clip.

>>> from granseg.models.registry import load_model
>>> session = VideoSession(load_model("hierarchy"), "clip/")      # a folder of frames, a video file or arrays
>>> session.add_prompt(0, [(320, 200)], [1], granularity=1.0, obj_id=1)
>>> session.add_prompt(0, [(100, 80)], [1], granularity=0.2, obj_id=2)
>>> for frame_idx, masks in session.propagate("forward"):
...     masks[1], masks[2]                                          # H x W bool each

Conventions: points ``(x, y)`` in pixels of the original frame; masks ``H x W`` bool; ``frame_idx`` 0-based.

Propagation (:meth:`VideoSession.propagate`):

* Each object starts on its first prompted frame and is carried frame by frame in the direction of travel. A
  frame where the object has another prompt restarts it from that prompt (a correction; it may change g).
* ``"forward"``: frames from the earliest prompt to the last frame; ``"backward"``: from the latest prompt down to
  frame 0; ``"both"``: forward, then backward from each object's first prompt, so every frame is given once per
  object. Each step yields ``(frame_idx, {obj_id: mask})`` holding the objects decided on that step: on a
  forward step the objects started at or before the frame, on a backward step those started after it.

The weight-free path (any ``BasePredictor``, e.g. ``hierarchy``) runs one :class:`FlowTracker` per object
(the first mask picked by motion, then optical flow + GrabCut; :mod:`granseg.predict.video_track`).
An UnSAMv2 / SAM-2 model (or its predictor) runs the neural path instead: SAM-2's memory attention, memory encoder
and object pointers (transformers' ``Sam2VideoModel``) with the granularity token on every frame
(:mod:`granseg.predict.video_neural`; ``memory`` sets the memory bank, e.g. ``VideoMemoryConfig(num_maskmem=0)``
disables it). Each pass of :meth:`VideoSession.propagate` starts a fresh memory bank.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from granseg.errors import InputError
from granseg.io.frames import Frames, open_frames
from granseg.predict.base import BasePredictor, parse_granularity, validate_prompts
from granseg.predict.video_track import FlowTracker, FlowTrackerConfig

DIRECTIONS = ("forward", "backward", "both")


@dataclass
class VideoPrompt:
    """Clicks on one frame for one object: points ``(N, 2)`` (x, y) px, labels ``(N,)`` in {0, 1}, g; or a
    given ``H x W`` bool ``mask`` (then the points may be empty)."""

    frame_idx: int
    points: np.ndarray
    labels: np.ndarray
    granularity: float
    mask: np.ndarray | None = None

    def start(self, tracker: FlowTracker, frame: np.ndarray, later: Sequence[np.ndarray] = ()) -> np.ndarray:
        """Start ``tracker`` on ``frame`` from this prompt (``later``: frames after it in the direction of travel,
        for the motion cue); returns the frame's ``H x W`` bool mask."""
        if self.mask is not None:
            return tracker.start_mask(frame, self.mask, self.granularity)
        return tracker.start(frame, self.points, self.labels, self.granularity, later)


def _neural_backend(predictor_or_model, memory):
    """A :class:`~granseg.predict.video_neural.NeuralVideoTracker` for an UnSAMv2 / SAM-2 model, its video model
    or its predictor; None for anything else (the weight-free path)."""
    inner = getattr(predictor_or_model, "model", predictor_or_model)
    if type(inner).__module__ not in ("granseg.models.unsamv2", "granseg.models.video_model"):
        return None
    from granseg.predict.video_neural import NeuralVideoTracker

    return NeuralVideoTracker(inner, memory)


def _as_predictor(predictor_or_model) -> BasePredictor:
    """A predictor as is, or the predictor :mod:`granseg.predict.factory` makes for a model."""
    from granseg.predict.factory import create_predictor

    if isinstance(predictor_or_model, BasePredictor):
        return predictor_or_model
    return create_predictor(predictor_or_model)


class VideoSession:
    """Prompts per object, then :meth:`propagate` (a generator). See the module docstring."""

    def __init__(
        self,
        predictor_or_model,
        frames: str | Sequence[np.ndarray] | Frames,
        tracker_config: FlowTrackerConfig | None = None,
        memory=None,
    ) -> None:
        """``memory``: a :class:`~granseg.models.video_config.VideoMemoryConfig` for the neural path (None: the
        checkpoint's, else SAM-2.1's defaults); ignored by the weight-free path."""
        self.neural = _neural_backend(predictor_or_model, memory)
        self.predictor = None if self.neural is not None else _as_predictor(predictor_or_model)
        self.frames = open_frames(frames)
        self.tracker_config = tracker_config or FlowTrackerConfig()
        self.prompts: dict[int, dict[int, VideoPrompt]] = {}  # obj_id -> frame_idx -> prompt

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.prompts)

    def add_prompt(
        self,
        frame_idx: int,
        points,
        labels=None,
        granularity: float = 1.0,
        obj_id: int = 1,
    ) -> None:
        """Clicks for ``obj_id`` on ``frame_idx`` at one granularity; replaces an earlier prompt on that frame."""
        n = len(self.frames)
        if not isinstance(frame_idx, int | np.integer) or not 0 <= frame_idx < n:
            raise InputError(f"prompt frame {frame_idx} is out of range: the clip has frames 0..{n - 1}")
        height, width = self.frames.size
        pts, labs, _ = validate_prompts(points, labels, None, height, width)
        levels = parse_granularity(granularity)
        if levels.size != 1:
            raise InputError("a video prompt takes one granularity")
        self.prompts.setdefault(int(obj_id), {})[int(frame_idx)] = VideoPrompt(
            int(frame_idx), pts, labs, float(levels[0])
        )

    def add_mask(self, frame_idx: int, mask: np.ndarray, granularity: float = 1.0, obj_id: int = 1) -> None:
        """Start (or correct) ``obj_id`` on ``frame_idx`` from an ``H x W`` bool mask (e.g. a first-frame
        annotation, as in DAVIS semi-supervised evaluation)."""
        n = len(self.frames)
        if not isinstance(frame_idx, int | np.integer) or not 0 <= frame_idx < n:
            raise InputError(f"mask frame {frame_idx} is out of range: the clip has frames 0..{n - 1}")
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != self.frames.size:
            raise InputError(
                f"mask is {mask.shape[1]}x{mask.shape[0]}, frames are {self.frames.size[1]}x"
                f"{self.frames.size[0]}"
            )
        if not mask.any():
            raise InputError("the mask is empty")
        level = float(parse_granularity(granularity)[0])
        empty = np.zeros((0, 2))
        self.prompts.setdefault(int(obj_id), {})[int(frame_idx)] = VideoPrompt(
            int(frame_idx), empty, np.zeros(0, dtype=np.int64), level, mask
        )

    def propagate(self, direction: str = "forward") -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Yield ``(frame_idx, {obj_id: H x W bool})``; see the module docstring for the order."""
        for order, joins in self._passes(direction):
            if self.neural is None:
                yield from self._run(order, joins)
                continue
            threshold = self.neural.mask_threshold
            for frame_idx, logits in self.neural.run(self.frames, self.prompts, order, joins):
                yield frame_idx, {obj: value > threshold for obj, value in logits.items()}

    def propagate_logits(self, direction: str = "forward") -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Neural path only: as :meth:`propagate` with ``H x W`` float32 mask logits instead of masks."""
        if self.neural is None:
            raise InputError("mask logits need a neural model (UnSAMv2 / SAM-2)")
        for order, joins in self._passes(direction):
            yield from self.neural.run(self.frames, self.prompts, order, joins)

    def _passes(self, direction: str) -> list[tuple[range, dict[int, int]]]:
        """The passes of ``direction``: ``(frames in order, {obj_id: frame the object joins on})``."""
        if direction not in DIRECTIONS:
            raise InputError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        if not self.prompts:
            raise InputError("add a prompt before propagating")
        n = len(self.frames)
        starts = {obj: min(p) for obj, p in self.prompts.items()}
        passes = []
        if direction in ("forward", "both"):
            passes.append((range(min(starts.values()), n), starts))
        if direction == "backward":
            last = {obj: max(p) for obj, p in self.prompts.items()}
            passes.append((range(max(last.values()), -1, -1), last))
        elif direction == "both":
            before = {obj: s - 1 for obj, s in starts.items()}  # seeded from the prompt one frame later
            passes.append((range(max(before.values()), -1, -1), before))
        return passes

    def _run(self, order: range, joins: dict[int, int]) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """One pass over ``order``; each object joins on frame ``joins[obj]``, from its prompt there or (backward
        pass of "both") from its prompt on the frame before in the direction of travel."""
        trackers: dict[int, FlowTracker] = {}
        step = 1 if order.step > 0 else -1
        for frame_idx in order:
            frame = self.frames[frame_idx]
            out: dict[int, np.ndarray] = {}
            for obj in self.object_ids:
                prompt = self.prompts[obj].get(frame_idx)
                if obj not in trackers:
                    if frame_idx != joins[obj]:
                        continue
                    trackers[obj] = FlowTracker(self.predictor, self.tracker_config)
                    if prompt is None:
                        seed = self.prompts[obj][frame_idx - step]
                        seed.start(trackers[obj], self.frames[seed.frame_idx])
                if prompt is not None:
                    out[obj] = prompt.start(trackers[obj], frame, self._later(frame_idx, step))
                else:
                    out[obj] = trackers[obj].step(frame)
            if out:
                yield frame_idx, out

    def _later(self, frame_idx: int, step: int) -> list[np.ndarray]:
        """The frames ``motion_offsets`` after ``frame_idx`` in the direction ``step`` (+1 / -1) that exist."""
        offsets = self.tracker_config.motion_offsets if self.tracker_config.motion_init else ()
        indices = [frame_idx + step * k for k in offsets]
        return [self.frames[i] for i in indices if 0 <= i < len(self.frames)]
