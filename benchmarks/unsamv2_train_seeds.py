"""Paired, multi-seed evaluation of the UnSAMv2 training benchmark: is the granularity model above its no-g twin?

`bench_unsamv2_train.py` trains one model per command and scores it on 20 report scenes (123 clicks). One pair's
difference moves by +-0.03 between training seeds, so this script re-scores already trained pairs (one granularity
model and its no-g twin per training seed) on MORE fresh report scenes, click by click, and states the uncertainty:

- per seed: mean over clicks of (g model - twin) for the issue's two metrics (part IoU at g = 0.1-0.3, the mean of
  the three; object IoU at g = 1.0), with a 95 % bootstrap interval over SCENES (clicks of one scene are
  correlated; the models fixed: this is the evaluation's sampling error only);
- over seeds: the mean of the per-seed differences with a 95 % Student-t interval over SEEDS (each seed one
  sample: training-seed variance included; this is the interval that decides "above the twin");
- the twin answers with one fixed output per metric (SAM-2's three outputs), chosen on the tune scenes
  (seeds 20000+), as in the benchmark.

Example (pairs are ``g_model_dir:twin_dir``, each a training output folder holding ``model/``)::

    OMP_NUM_THREADS=1 python benchmarks/unsamv2_train_seeds.py --label b-vs-e --scenes 100 \\
        --pair /tmp/s10/baux/run_pseudo:/tmp/s9/f2nog/run_nogpseudo --pair ... --tag s11_seeds_b_vs_e

Coordinates: clicks ``(x, y)`` in pixels of the 128 px scene; masks ``H x W`` bool.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from granseg.errors import InputError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from unsamv2_train_eval import (  # noqa: E402
    G_LEVELS,
    SMALL_G,
    _iou,
    best_fixed_output,
    click_records,
    predict_sweep,
)

RESULTS = Path(__file__).resolve().parent / "results"
REPORT_FIRST, TUNE_FIRST = 10000, 20000
METRICS = ("part IoU g=0.1-0.3", "object IoU g=1.0")


def per_click(records, sweeps, output: int) -> dict[str, np.ndarray]:
    """Per click (one value per record): part IoU averaged over g = 0.1-0.3, and object IoU at g = 1.0."""
    small = [G_LEVELS.index(g) for g in SMALL_G]
    part, obj = [], []
    for record, sweep in zip(records, sweeps):
        masks = sweep[output]
        part.append(np.mean([_iou(masks[k], record["levels"]["part"]) for k in small]))
        obj.append(_iou(masks[G_LEVELS.index(1.0)], record["levels"]["object"]))
    return {METRICS[0]: np.asarray(part), METRICS[1]: np.asarray(obj)}


def model_clicks(path: str, records, tune_records) -> tuple[dict[str, np.ndarray], str]:
    """A trained model's per-click metrics on ``records``; a no-g model answers each metric with its fixed output."""
    from granseg.models.registry import load_model

    model = load_model(str(Path(path) / "model"), device="cpu")
    sweeps = predict_sweep(model, records)
    if model.config.granularity:
        return per_click(records, sweeps, 0), "g"
    index = best_fixed_output(tune_records, predict_sweep(model, tune_records))
    chosen = {"part": index["part"], "object": index["object"]}
    values = {
        METRICS[0]: per_click(records, sweeps, chosen["part"])[METRICS[0]],
        METRICS[1]: per_click(records, sweeps, chosen["object"])[METRICS[1]],
    }
    return values, f"outputs {chosen['part']} / {chosen['object']}"


def scene_bootstrap(diff: np.ndarray, scenes: np.ndarray, rounds: int, seed: int = 0) -> tuple[float, float]:
    """95 % interval of the mean of ``diff`` (one value per click) resampling whole scenes with replacement."""
    rng = np.random.default_rng(seed)
    ids = np.unique(scenes)
    sums = np.array([diff[scenes == s].sum() for s in ids])
    counts = np.array([(scenes == s).sum() for s in ids])
    draws = rng.integers(0, len(ids), size=(rounds, len(ids)))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def t_interval(values: np.ndarray) -> tuple[float, float]:
    """95 % Student-t interval of the mean of ``values`` (one per training seed)."""
    from scipy.stats import t

    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    half = t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return float(values.mean() - half), float(values.mean() + half)


def evaluate(
    pairs: list[tuple[str, str]], first: int, scenes: int, tune_scenes: int, rounds: int, rows=()
) -> dict:
    """Score ``pairs`` click by click; ``rows``: pairs already scored on the same scenes (``--include``), kept
    as they are and counted in the summary."""
    records = click_records(range(first, first + scenes))
    tune_records = click_records(range(TUNE_FIRST, TUNE_FIRST + tune_scenes))
    scene_of = np.asarray([r["seed"] for r in records])
    rows = list(rows)
    for g_path, twin_path in pairs:
        g_values, _ = model_clicks(g_path, records, tune_records)
        twin_values, twin_outputs = model_clicks(twin_path, records, tune_records)
        row = {"g model": g_path, "twin": twin_path, "twin outputs": twin_outputs}
        for metric in METRICS:
            diff = g_values[metric] - twin_values[metric]
            row[metric] = {
                "g": float(g_values[metric].mean()),
                "twin": float(twin_values[metric].mean()),
                "diff": float(diff.mean()),
                "diff scene 95%": scene_bootstrap(diff, scene_of, rounds),
            }
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {}
    for metric in METRICS:
        diffs = np.asarray([row[metric]["diff"] for row in rows])
        summary[metric] = {
            "g mean": float(np.mean([row[metric]["g"] for row in rows])),
            "twin mean": float(np.mean([row[metric]["twin"] for row in rows])),
            "diff mean": float(diffs.mean()),
            "diff seed 95%": t_interval(diffs),
            "seeds above": int((diffs > 0).sum()),
            "seeds": len(diffs),
        }
    return {"clicks": len(records), "first": first, "scenes": scenes, "pairs": rows, "summary": summary}


def included_rows(paths: list[str], first: int, scenes: int, tune_scenes: int) -> list[dict]:
    """The scored pairs of earlier results (their JSON files), refused unless they used the same scenes."""
    rows = []
    for path in paths:
        earlier = json.loads(Path(path).read_text())
        if (earlier["first"], earlier["scenes"], earlier["tune_scenes"]) != (first, scenes, tune_scenes):
            raise InputError(f"{path} was scored on other scenes than --first/--scenes/--tune-scenes")
        rows += earlier["pairs"]
    return rows


def write_markdown(result: dict, path: Path) -> None:
    lines = [
        f"# UnSAMv2 training: {result['label']}, paired over training seeds (benchmarks/unsamv2_train_seeds.py)",
        "",
        f"Date {result['date']}, machine {result['machine']}. Command: `{result['command']}`",
        "",
        f"{result['clicks']} clicks (one per GT part of objects with >= 2 parts) on {result['scenes']} fresh report "
        f"scenes (seeds {result['first']}-{result['first'] + result['scenes'] - 1}); the twin's fixed output per metric "
        f"chosen on {result['tune_scenes']} tune scenes (seeds {TUNE_FIRST}+). Part IoU: the mean of g = 0.1, 0.2, "
        "0.3. Scene interval: 95 % bootstrap over scenes, models fixed (evaluation sampling only). Seed interval: "
        "95 % Student-t over the per-seed differences (training-seed variance included).",
        "",
        "| pair | twin outputs | part: g / twin / diff [scene 95 %] | object: g / twin / diff [scene 95 %] |",
        "|---|---|---|---|",
    ]
    for row in result["pairs"]:
        cells = []
        for metric in METRICS:
            m = row[metric]
            low, high = m["diff scene 95%"]
            cells.append(f"{m['g']:.3f} / {m['twin']:.3f} / {m['diff']:+.3f} [{low:+.3f}, {high:+.3f}]")
        lines.append(
            f"| `{row['g model']}` vs `{row['twin']}` | {row['twin outputs']} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "| metric | g model (mean of seeds) | twin | diff | seed 95 % | seeds above |",
        "|---|---|---|---|---|---|",
    ]
    for metric, s in result["summary"].items():
        low, high = s["diff seed 95%"]
        lines.append(
            f"| {metric} | {s['g mean']:.3f} | {s['twin mean']:.3f} | {s['diff mean']:+.3f} | "
            f"[{low:+.3f}, {high:+.3f}] | {s['seeds above']} of {s['seeds']} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pair", action="append", default=[], help="G_RUN_DIR:TWIN_RUN_DIR (repeat per seed)"
    )
    parser.add_argument(
        "--include", action="append", default=[], help="an earlier result JSON on the same scenes (its pairs)"
    )
    parser.add_argument("--label", required=True, help="what the pairs are, for the report title")
    parser.add_argument(
        "--first", type=int, default=REPORT_FIRST, help="first report scene seed (10000-19999)"
    )
    parser.add_argument("--scenes", type=int, default=100, help="fresh report scenes (seeds FIRST+)")
    parser.add_argument("--tune-scenes", type=int, default=8, help="scenes choosing the twin's fixed outputs")
    parser.add_argument("--bootstrap", type=int, default=10000)
    parser.add_argument("--tag", required=True, help="<out>/<tag>.md and .json")
    parser.add_argument(
        "--out", default=str(RESULTS), help="folder of the report (default benchmarks/results)"
    )
    args = parser.parse_args(argv)
    if not args.pair and not args.include:
        parser.error("give at least one --pair or --include")
    pairs = [tuple(p.split(":", 1)) for p in args.pair]
    started = time.time()
    try:
        earlier = included_rows(args.include, args.first, args.scenes, args.tune_scenes)
    except InputError as error:
        parser.error(str(error))
    result = evaluate(pairs, args.first, args.scenes, args.tune_scenes, args.bootstrap, earlier)
    threads = os.environ.get("OMP_NUM_THREADS", "?")
    result.update(
        label=args.label,
        tune_scenes=args.tune_scenes,
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        machine=f"{platform.machine()} {os.cpu_count()} cores, torch threads {threads}",
        command=f"OMP_NUM_THREADS={threads} python benchmarks/unsamv2_train_seeds.py "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        seconds=time.time() - started,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_markdown(result, out / f"{args.tag}.md")
    (out / f"{args.tag}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
