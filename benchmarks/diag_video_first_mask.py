"""First-mask rule of the video tracker (``pick_by_motion``) on tune cases only: J of the first mask against the
ground truth, for several ``FlowTrackerConfig`` settings side by side.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 5 python benchmarks/diag_video_first_mask.py \\
        --set '{"walk_to_motion": false, "inside_recall": 0.55}' --set '{}'

Cases (never the held-out DAVIS sequences): the tune pair blackswan (start frames 0, 10, .., 40) and bmx-trees
(0, 10, .., 70), first click at the ground truth's deepest point, and synthetic moving scenes (``--seeds``, 60
frames, 160 px; back and front object at g = 1.0, start frames 0, 20, 40), each with the learned and the
handcrafted region tree (``--trees``; ``--model-set`` JSON: hierarchy overrides, e.g. ``{"tree_starts": 1}``). Per case: the predictor's masks at the ten levels and the motion mask (frames
``motion_offsets`` after the start) are computed once; each setting then picks a first mask from them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from granseg.eval.clicker import next_click
from granseg.eval.video import davis_sequences, jaccard, read_binary_mask
from granseg.io.frames import open_frames
from granseg.predict.factory import load_predictor
from granseg.predict.video_motion import motion_object
from granseg.predict.video_track import LEVELS, FlowTrackerConfig, pick_by_motion
from granseg.synth.motion import generate_moving_scene

TUNE_STARTS = {"blackswan": range(0, 41, 10), "bmx-trees": range(0, 71, 10)}


def tune_cases(data_root: Path, seeds):
    """Yield ``(tag, frame getter, n_frames, start, ground truth, click (x, y))`` for the tune cases (see the
    module docstring): DAVIS start frames with a non-empty ground truth, then the synthetic clips of ``seeds``."""
    sequences = davis_sequences(data_root)
    for name, starts in TUNE_STARTS.items():
        frame_paths, mask_paths = sequences[name]
        frames = open_frames(frame_paths[0].parent)
        for s in starts:
            gt = read_binary_mask(mask_paths[s])
            if gt.any():
                c = next_click(gt, np.zeros_like(gt, dtype=bool))
                yield f"{name}@{s}", frames.__getitem__, len(frame_paths), s, gt, (c.x, c.y)
    for seed in seeds:
        clip = generate_moving_scene(seed, 60, 160)
        for which, obj in (("back", clip.objects[0]), ("front", clip.objects[1])):
            for s in (0, 20, 40):
                gt = clip.masks[obj.node_id][s]
                if gt.sum() >= 20:
                    point = clip.point(obj.node_id, s)
                    yield f"synth{seed}-{which}@{s}", clip.frames.__getitem__, 60, s, gt, point


def _cases(data_root: Path, seeds: list[int]):
    """Yield ``(tag, frame, later frames, click (x, y), ground truth)`` for the tune cases."""
    offsets = FlowTrackerConfig().motion_offsets
    for tag, frame_at, _, s, gt, point in tune_cases(data_root, seeds):
        yield tag, frame_at(s), [frame_at(s + o) for o in offsets], point, gt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data/davis2016_val_subset"))
    parser.add_argument("--seeds", default="0,1,2,3,100,101,102")
    parser.add_argument(
        "--set", action="append", default=[], help="FlowTrackerConfig overrides (JSON), repeat"
    )
    parser.add_argument(
        "--trees", default="learned,handcrafted", help="region trees (tree_merge), comma-separated"
    )
    parser.add_argument(
        "--model-set", default="{}", help="hierarchy model overrides (JSON), e.g. '{\"tree_starts\": 1}'"
    )
    args = parser.parse_args()
    model_set = json.loads(args.model_set)
    settings = [json.loads(s) for s in args.set] or [{}]
    configs = [FlowTrackerConfig.from_dict(s) for s in settings]
    seeds = [int(s) for s in args.seeds.split(",")]
    means = {}
    for tree in args.trees.split(","):
        predictor = load_predictor("hierarchy", **{"tree_merge": tree, **model_set})
        for tag, frame, later, point, gt in _cases(args.data_root, seeds):
            predictor.set_image(frame)
            masks = predictor.predict([point], [1], granularity=list(LEVELS)).masks
            moving = motion_object(frame, later, point, configs[0].motion)
            row = []
            for k, cfg in enumerate(configs):
                picked = masks[-1] if moving is None else pick_by_motion(masks, moving, cfg, frame)[0]
                row.append(jaccard(gt, picked))
                group = (tree, "synth" if tag.startswith("synth") else tag.split("@")[0], k)
                means.setdefault(group, []).append(row[-1])
            motion_j = "-" if moving is None else f"{jaccard(gt, moving):.3f}"
            print(f"{tree:11s} {tag:20s} motion J {motion_j:5s} | " + " ".join(f"{j:.3f}" for j in row))
    print("settings:", " | ".join(json.dumps(s) for s in settings))
    for (tree, group, k), values in sorted(means.items()):
        print(
            f"{tree:11s} {group:10s} setting {k}: mean first-mask J {np.mean(values):.3f} ({len(values)} cases)"
        )


if __name__ == "__main__":
    main()
