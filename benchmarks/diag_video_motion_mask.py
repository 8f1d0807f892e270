"""Motion mask of the video tracker's first frame (``motion_object``) on tune cases only: J of the motion mask
against the ground truth, for several ``MotionConfig`` settings side by side.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 5 python benchmarks/diag_video_motion_mask.py '{}' '{"min_votes": 2}'

Each argument is a JSON object of ``MotionConfig`` overrides, plus an optional ``"offsets"`` (the later frames,
default ``FlowTrackerConfig().motion_offsets``). Cases (never the held-out DAVIS sequences): the tune pair
blackswan (start frames 0, 10, .., 40) and bmx-trees (0, 10, .., 70), click at the ground truth's deepest point,
and synthetic moving scenes (seeds 0-3, 100-102, 60 frames, 160 px; back and front object, start frames 0, 20,
40). "none": no motion mask (the point does not move, or the later frames are past the clip's end); it counts
as J 0 in the mean.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from granseg.eval.video import jaccard
from granseg.predict.video_motion import MotionConfig, motion_object
from granseg.predict.video_track import FlowTrackerConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diag_video_first_mask import tune_cases  # noqa: E402

SEEDS = (0, 1, 2, 3, 100, 101, 102)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="+", help="MotionConfig overrides (JSON), one per column")
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data/davis2016_val_subset"))
    args = parser.parse_args()
    settings = [json.loads(text) for text in args.settings]
    default_offsets = FlowTrackerConfig().motion_offsets
    offsets = [tuple(s.pop("offsets", default_offsets)) for s in settings]
    configs = [MotionConfig.from_dict(s) for s in settings]
    scores: list[list[float]] = [[] for _ in settings]
    for tag, frame_at, n_frames, start, gt, point in tune_cases(args.data_root, SEEDS):
        row = []
        for k, (config, later) in enumerate(zip(configs, offsets, strict=True)):
            mask = None
            if start + max(later) < n_frames:
                mask = motion_object(frame_at(start), [frame_at(start + o) for o in later], point, config)
            score = 0.0 if mask is None else jaccard(gt, mask)
            scores[k].append(score)
            row.append("none " if mask is None else f"{score:.3f}")
        print(f"{tag:22s}", " ".join(row), flush=True)
    print(f"{'mean':22s}", " ".join(f"{np.mean(s):.3f}" for s in scores))


if __name__ == "__main__":
    main()
