"""DAVIS J&F of the video paths, with frames per second and peak memory (one method per process).

    PYTHONPATH=$PWD nice -n 5 python benchmarks/bench_video.py --method track --out /tmp/track.json
    PYTHONPATH=$PWD nice -n 5 python benchmarks/bench_video.py --method reclick --out /tmp/reclick.json

Methods: ``track`` (VideoSession: first mask by motion + hierarchy, then flow + GrabCut), ``track-nomotion``
(the same, first mask = the hierarchy's answer at the click), ``reclick`` (the older baseline: re-click each
frame at the previous mask's deepest point), ``flow-only`` (the first mask moved by optical flow alone: a floor).
First click: the RITM first click on frame 0's ground truth (its deepest interior point); g = 1.0.
fps counts decoding + tracking (not scoring), by wall clock and by the process's CPU time (``cpu_fps``:
frames per CPU-second, what one dedicated core would give; OMP_NUM_THREADS=1); peak memory is the process's max RSS (``ru_maxrss``).
``--synthetic 100-104``: synthetic moving scenes instead (per-frame IoU of a part at g = 0.2 and of an object at
g = 1.0 over 60 frames, tracker and re-click baseline).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from granseg.eval.video import (
    davis_sequences,
    jaccard,
    propagate_with_clicks,
    propagate_with_session,
    read_binary_mask,
    score_sequence,
    summarize_sequences,
)
from granseg.io.frames import open_frames
from granseg.predict.factory import load_predictor
from granseg.predict.video_track import FlowTrackerConfig

TUNE = ("blackswan", "bmx-trees")  # the alphabetically first two; the other three are held out


def run(method: str, data_root: Path, sequences: list[str] | None, overrides: dict, first: str) -> dict:
    predictor = load_predictor("hierarchy")
    config = FlowTrackerConfig.from_dict({**FlowTrackerConfig().to_dict(), **overrides})
    if method == "track-nomotion":
        config.motion_init = False
    if method == "flow-only":
        config.refine = "none"
    per_sequence, first_j, seconds, cpu_seconds, frames_done = {}, {}, 0.0, 0.0, 0
    for name, (frame_paths, mask_paths) in davis_sequences(data_root).items():
        if sequences and name not in sequences:
            continue
        gts = [read_binary_mask(m) for m in mask_paths]
        frames = open_frames(frame_paths[0].parent)
        start, cpu_start = time.perf_counter(), time.process_time()
        if method == "reclick":
            preds = propagate_with_clicks(predictor, list(frames), gts[0], 1.0)
        else:
            preds = propagate_with_session(predictor, frames, gts[0], 1.0, tracker_config=config, first=first)
        seconds += time.perf_counter() - start
        cpu_seconds += time.process_time() - cpu_start
        frames_done += len(preds)
        per_sequence[name] = score_sequence(gts, preds)
        first_j[name] = jaccard(gts[0], preds[0])
    summary = summarize_sequences(per_sequence)
    held = {k: v for k, v in per_sequence.items() if k not in TUNE}
    tune = {k: v for k, v in per_sequence.items() if k in TUNE}
    return {
        "method": method,
        "first": first,
        "config": config.to_dict(),
        "all": summary,
        "tune": summarize_sequences(tune) if tune else None,
        "held_out": summarize_sequences(held) if held else None,
        "first_frame_J": first_j,
        "fps": frames_done / seconds,
        "cpu_fps": frames_done / cpu_seconds,
        "frames": frames_done,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_synthetic(seeds: list[int], n_frames: int, size: int) -> dict:
    """Per-frame IoU of a part (g = 0.2) and of an object (g = 1.0) on synthetic moving scenes, for the tracker
    and the re-click baseline, one click on frame 0 at the node's deepest point."""
    import numpy as np

    from granseg.eval.video import jaccard
    from granseg.predict.video import VideoSession
    from granseg.synth.motion import generate_moving_scene

    predictor = load_predictor("hierarchy")
    rows = []
    for seed in seeds:
        clip = generate_moving_scene(seed, n_frames, size)
        for which, obj in (("back", clip.objects[0]), ("front", clip.objects[1])):
            for kind, node, g in (("part", obj.part_ids[0], 0.2), ("object", obj.node_id, 1.0)):
                gts = clip.masks[node]
                session = VideoSession(predictor, list(clip.frames))
                session.add_prompt(0, [clip.point(node, 0)], [1], g, obj_id=1)
                start = time.perf_counter()
                tracked = [m[1] for _, m in session.propagate("forward")]
                seconds = time.perf_counter() - start
                reclick = propagate_with_clicks(predictor, list(clip.frames), gts[0], g)
                for method, preds in (("track", tracked), ("reclick", reclick)):
                    ious = [jaccard(gts[t], preds[t]) for t in range(n_frames)]
                    rows.append(
                        {
                            "seed": seed,
                            "object": which,
                            "node": kind,
                            "g": g,
                            "method": method,
                            "mean": float(np.mean(ious)),
                            "first": ious[0],
                            "mid": ious[n_frames // 2],
                            "last": ious[-1],
                            "min": float(np.min(ious)),
                            "fps": n_frames / seconds if method == "track" else None,
                            "ious": ious,
                        }
                    )
    return {"seeds": seeds, "n_frames": n_frames, "size": size, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--method", default="track", choices=["track", "track-nomotion", "reclick", "flow-only"]
    )
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data/davis2016_val_subset"))
    parser.add_argument("--sequences", default=None, help="comma-separated (default: all)")
    parser.add_argument("--set", default="{}", help="FlowTrackerConfig overrides as JSON")
    parser.add_argument("--first", default="click", choices=["click", "mask"], help="first-frame prompt")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--synthetic", default=None, help="seeds (e.g. 100-104): synthetic clips, not DAVIS")
    args = parser.parse_args()
    if args.synthetic:
        lo, _, hi = args.synthetic.partition("-")
        result = run_synthetic(list(range(int(lo), int(hi or lo) + 1)), 60, 160)
        for row in result["rows"]:
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if k != "ious"})
        for node in ("part", "object"):
            means = {
                method: sum(r["mean"] for r in rows) / len(rows)
                for method in ("track", "reclick")
                if (rows := [r for r in result["rows"] if r["node"] == node and r["method"] == method])
            }
            print(f"mean over clips, {node}: " + ", ".join(f"{m} {v:.3f}" for m, v in means.items()))
        if args.out:
            args.out.write_text(json.dumps(result, indent=1))
        return
    sequences = args.sequences.split(",") if args.sequences else None
    result = run(args.method, args.data_root, sequences, json.loads(args.set), args.first)
    line = {k: round(v["J&F"], 3) for k, v in result["all"]["per_sequence"].items()}
    print(
        f"{args.method}/{args.first} J&F {result['all']['J&F']:.3f} (J {result['all']['J']:.3f} F {result['all']['F']:.3f}) "
        f"fps {result['fps']:.2f} (cpu {result['cpu_fps']:.2f}) peak {result['peak_rss_mb']:.0f} MB {line} "
        f"frame-0 J { ({k: round(v, 2) for k, v in result['first_frame_J'].items()}) }"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
