"""DAVIS J&F of the video paths, with frames per second and peak memory (one method per process).

    PYTHONPATH=$PWD nice -n 5 python benchmarks/bench_video.py --method track --out /tmp/track.json
    PYTHONPATH=$PWD nice -n 5 python benchmarks/bench_video.py --method reclick --out /tmp/reclick.json

Methods: ``track`` (VideoSession: first mask by motion + hierarchy, then flow + GrabCut), ``track-nomotion``
(the same, first mask = the hierarchy's answer at the click), ``reclick`` (the older baseline: re-click each
frame at the previous mask's deepest point), ``flow-only`` (the first mask moved by optical flow alone: a floor), ``neural`` (the
UnSAMv2 video session on transformers' Sam2VideoModel memory, ``--neural-model``, default the tiny random-weight
model: a correctness run, not a quality claim; ``--architecture small`` builds random weights of the released
hiera-small size for its speed and memory), ``neural-nomem`` (the same with the memory disabled: frame-by-frame
decoding from the first click, the reference it should beat once trained).
First click: the RITM first click on frame 0's ground truth (its deepest interior point); g = 1.0.
fps counts decoding + tracking (not scoring), by wall clock and by the process's CPU time (``cpu_fps``:
frames per CPU-second, what one dedicated core would give; OMP_NUM_THREADS=1); peak memory is the process's max RSS (``ru_maxrss``).
The JSON also holds ``first_frame_J`` and ``per_frame_J`` (J of every frame, per sequence: where a track drifts).
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


def run(
    method: str, data_root: Path, sequences: list[str] | None, overrides: dict, first: str, model_set: dict
) -> dict:
    predictor = load_predictor("hierarchy", **model_set)
    config = FlowTrackerConfig.from_dict(overrides)
    if method == "track-nomotion":
        config.motion_init = False
    if method == "flow-only":
        config.refine = "none"
    per_sequence, first_j, per_frame_j, seconds, cpu_seconds, frames_done = {}, {}, {}, 0.0, 0.0, 0
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
        per_frame_j[name] = [round(jaccard(g, p), 3) for g, p in zip(gts, preds, strict=True)]
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
        "per_frame_J": per_frame_j,
        "fps": frames_done / seconds,
        "cpu_fps": frames_done / cpu_seconds,
        "frames": frames_done,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_neural(
    method: str, data_root: Path, sequences: list[str] | None, architecture: str, max_frames: int | None
) -> dict:
    """The neural session (first click on frame 0's ground truth, g = 1.0, forward) with random weights
    (``max_frames``: only the first frames of each sequence, for timing the large architectures)."""
    import dataclasses

    import numpy as np

    from granseg.eval.clicker import next_click
    from granseg.models.unsamv2 import SAM2_ARCHITECTURES, build_unsamv2, tiny_config
    from granseg.models.video_config import VideoMemoryConfig
    from granseg.models.video_model import build_video_model
    from granseg.predict.video import VideoSession

    config = tiny_config()
    if architecture != "tiny":
        config = dataclasses.replace(
            config, name=f"random-{architecture}", sam2=SAM2_ARCHITECTURES[architecture]
        )
    memory = VideoMemoryConfig(num_maskmem=0) if method == "neural-nomem" else VideoMemoryConfig()
    video = build_video_model(build_unsamv2(config), memory)
    per_sequence, seconds, frames_done = {}, 0.0, 0
    for name, (frame_paths, mask_paths) in davis_sequences(data_root).items():
        if sequences and name not in sequences:
            continue
        frame_paths, mask_paths = frame_paths[:max_frames], mask_paths[:max_frames]
        gts = [read_binary_mask(m) for m in mask_paths]
        click = next_click(gts[0], np.zeros_like(gts[0], dtype=bool))
        session = VideoSession(video, open_frames(frame_paths))
        session.add_prompt(0, [(click.x, click.y)], [1], granularity=1.0, obj_id=1)
        start = time.perf_counter()
        preds = [masks[1] for _, masks in session.propagate("forward")]
        seconds += time.perf_counter() - start
        frames_done += len(preds)
        per_sequence[name] = score_sequence(gts, preds)
    held = {k: v for k, v in per_sequence.items() if k not in TUNE}
    return {
        "method": method,
        "first": "click",
        "config": {"model": config.to_dict(), "memory": memory.to_dict(), "max_frames": max_frames},
        "all": summarize_sequences(per_sequence),
        "tune": None,
        "held_out": summarize_sequences(held) if held else None,
        "fps": frames_done / seconds,
        "frames": frames_done,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_synthetic(
    seeds: list[int],
    n_frames: int,
    size: int,
    model_set: dict | None = None,
    overrides: dict | None = None,
    baseline: bool = True,
) -> dict:
    """Per-frame IoU of a part (g = 0.2) and of an object (g = 1.0) on synthetic moving scenes, for the tracker
    and the re-click baseline, one click on frame 0 at the node's deepest point (``model_set``: hierarchy
    model overrides, as ``--model-set``; ``overrides``: FlowTrackerConfig overrides, as ``--set``; ``baseline``
    False: the tracker only, as ``--no-baseline``)."""
    import numpy as np

    from granseg.eval.video import jaccard
    from granseg.predict.video import VideoSession
    from granseg.synth.motion import generate_moving_scene

    predictor = load_predictor("hierarchy", **(model_set or {}))
    config = FlowTrackerConfig.from_dict(overrides or {})
    rows = []
    for seed in seeds:
        clip = generate_moving_scene(seed, n_frames, size)
        for which, obj in (("back", clip.objects[0]), ("front", clip.objects[1])):
            for kind, node, g in (("part", obj.part_ids[0], 0.2), ("object", obj.node_id, 1.0)):
                gts = clip.masks[node]
                session = VideoSession(predictor, list(clip.frames), tracker_config=config)
                session.add_prompt(0, [clip.point(node, 0)], [1], g, obj_id=1)
                start = time.perf_counter()
                tracked = [m[1] for _, m in session.propagate("forward")]
                seconds = time.perf_counter() - start
                runs = [("track", tracked)]
                if baseline:
                    runs.append(("reclick", propagate_with_clicks(predictor, list(clip.frames), gts[0], g)))
                for method, preds in runs:
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
    return {
        "seeds": seeds,
        "n_frames": n_frames,
        "size": size,
        "model_set": model_set or {},
        "config": config.to_dict(),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--method",
        default="track",
        choices=["track", "track-nomotion", "reclick", "flow-only", "neural", "neural-nomem"],
    )
    parser.add_argument(
        "--architecture", default="tiny", help="neural: tiny or a SAM-2 size (random weights)"
    )
    parser.add_argument(
        "--max-frames", type=int, default=None, help="neural: first N frames of each sequence"
    )
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data/davis2016_val_subset"))
    parser.add_argument("--sequences", default=None, help="comma-separated (default: all)")
    parser.add_argument("--set", default="{}", help="FlowTrackerConfig overrides as JSON")
    parser.add_argument(
        "--model-set",
        default="{}",
        help='hierarchy model overrides as JSON, e.g. {"tree_merge": "handcrafted"}',
    )
    parser.add_argument("--first", default="click", choices=["click", "mask"], help="first-frame prompt")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--synthetic", default=None, help="seeds (e.g. 100-104): synthetic clips, not DAVIS")
    parser.add_argument(
        "--no-baseline", action="store_true", help="synthetic: the tracker only (no re-click baseline)"
    )
    args = parser.parse_args()
    if args.synthetic:
        lo, _, hi = args.synthetic.partition("-")
        seeds = list(range(int(lo), int(hi or lo) + 1))
        result = run_synthetic(
            seeds, 60, 160, json.loads(args.model_set), json.loads(args.set), baseline=not args.no_baseline
        )
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
    if args.method.startswith("neural"):
        result = run_neural(args.method, args.data_root, sequences, args.architecture, args.max_frames)
    else:
        result = run(
            args.method,
            args.data_root,
            sequences,
            json.loads(args.set),
            args.first,
            json.loads(args.model_set),
        )
    line = {k: round(v["J&F"], 3) for k, v in result["all"]["per_sequence"].items()}
    print(
        f"{args.method}/{args.first} J&F {result['all']['J&F']:.3f} (J {result['all']['J']:.3f} F {result['all']['F']:.3f}) "
        f"fps {result['fps']:.2f} (cpu {result.get('cpu_fps', float('nan')):.2f}) "
        f"peak {result['peak_rss_mb']:.0f} MB {line} "
        f"frame-0 J { ({k: round(v, 2) for k, v in result.get('first_frame_J', {}).items()}) }"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
