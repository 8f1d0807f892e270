"""Evaluation of the UnSAMv2 training benchmark (benchmarks/bench_unsamv2_train.py): one click inside a GT part of
the synthetic scenes, the trained model asked at the ten g levels, IoU with the GT part / object / nearest level.

Coordinates: clicks ``(x, y)`` in pixels of the 128 px scene; masks ``H x W`` bool.
"""

from __future__ import annotations

import numpy as np

G_LEVELS = tuple(round(0.1 * i, 1) for i in range(1, 11))
SMALL_G = (0.1, 0.2, 0.3)
IMAGE_SIZE = 128


def synth_config():
    from granseg.synth import SynthConfig

    return SynthConfig(size=IMAGE_SIZE)


def click_records(seeds) -> list[dict]:
    """One record per GT part of objects with >= 2 parts: click (x, y), GT masks of its levels."""
    from granseg.synth import generate_scene

    records = []
    for seed in seeds:
        scene = generate_scene(seed, synth_config())
        for obj, part, (x, y) in part_clicks(scene):
            sub = scene.node_at(x, y, "subpart")
            records.append(
                {
                    "seed": seed,
                    "image": scene.image,
                    "click": (x, y),
                    "levels": {
                        "sub-part": None if sub is None else sub.mask,
                        "part": part.mask,
                        "object": obj.mask,
                    },
                    "g": {  # the exact GT granularity of each level (DESIGN.md formula, per object)
                        "sub-part": None if sub is None else sub.granularity,
                        "part": part.granularity,
                        "object": obj.granularity,
                    },
                }
            )
    return records


def part_clicks(scene):
    """The evaluation's clicks in one synthetic scene: ``(object node, part node, (x, y))`` for each part of every
    object with >= 2 parts, the click at the part's pixel farthest from its boundary (``point_inside``)."""
    for obj in scene.objects():
        parts = scene.children(obj.id)
        if len(parts) < 2:
            continue
        for part in parts:
            yield obj, part, part.point_inside()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def nearest_level(record: dict, g: float) -> np.ndarray:
    """The GT mask at the click whose exact g is nearest to the requested ``g`` (sub-part / part / object)."""
    levels = [level for level, value in record["g"].items() if value is not None]
    return record["levels"][min(levels, key=lambda level: abs(record["g"][level] - g))]


def predict_sweep(model, records) -> list[np.ndarray]:
    """Per record: ``(K, 11, H, W)`` bool masks (K = 1 for a granularity model, 3 for plain SAM-2): g = 0.1 ...
    1.0, then the clicked part's own GT g."""
    from granseg.predict.unsamv2 import UnSAMv2Predictor

    predictor = UnSAMv2Predictor(model.eval(), decoder="reference")
    out, current = [], None
    for record in records:
        if current is not record["seed"]:
            predictor.set_image(record["image"])
            current = record["seed"]
        point = np.asarray([record["click"]], dtype=np.float64)
        if model.config.granularity:
            requested = [*G_LEVELS, float(record["g"]["part"])]
            out.append(predictor.predict(point, [1], granularity=requested).masks[None])
        else:  # every one of SAM-2's three outputs (g picks among them; here each is one fixed output)
            masks = []
            for g in (0.1, 0.5, 1.0):  # sam2_mask_index_for_granularity: 0, 1, 2
                masks.append(predictor.predict(point, [1], granularity=[g]).masks[0])
            out.append(np.repeat(np.stack(masks)[:, None], len(G_LEVELS) + 1, axis=1))
    return out


def score(records, sweeps, output: int) -> dict:
    """Metrics of one output index (0 for granularity models)."""
    from scipy.stats import spearmanr

    levels = ("sub-part", "part", "object")
    curves = {level: [[] for _ in G_LEVELS] for level in levels}
    pairs_g, pairs_area, per_click = [], [], []
    nearest = [[] for _ in SMALL_G]
    own_g = []
    for record, sweep in zip(records, sweeps):
        masks, own = sweep[output][: len(G_LEVELS)], sweep[output][len(G_LEVELS)]
        own_g.append(_iou(own, record["levels"]["part"]))
        for k, g in enumerate(SMALL_G):
            nearest[k].append(_iou(masks[G_LEVELS.index(g)], nearest_level(record, g)))
        object_area = record["levels"]["object"].sum()
        areas = masks.reshape(len(G_LEVELS), -1).sum(1) / object_area
        for level in levels:
            gt = record["levels"][level]
            if gt is not None:
                for k in range(len(G_LEVELS)):
                    curves[level][k].append(_iou(masks[k], gt))
        pairs_g += list(G_LEVELS)
        pairs_area += list(areas)
        if np.ptp(areas) > 0:
            per_click.append(spearmanr(G_LEVELS, areas).statistic)
        else:
            per_click.append(0.0)
    mean = {level: [float(np.mean(v)) if v else float("nan") for v in curves[level]] for level in levels}
    pooled = spearmanr(pairs_g, pairs_area).statistic
    return {
        "part IoU g=0.1": mean["part"][0],
        "part IoU g=0.2": mean["part"][1],
        "part IoU g=0.3": mean["part"][2],
        "object IoU g=1.0": mean["object"][9],
        **{f"nearest-level IoU g={g}": float(np.mean(v)) for g, v in zip(SMALL_G, nearest)},
        "part IoU at its own g": float(np.mean(own_g)),
        "Spearman pooled": float(0.0 if np.isnan(pooled) else pooled),
        "Spearman per click": float(np.mean(per_click)),
        "curves": mean,
    }


# metric groups of the plain SAM-2: one fixed output per group, chosen on the tune split by the group's mean
FIXED_GROUPS = {
    "part": ["part IoU g=0.1", "part IoU g=0.2", "part IoU g=0.3"],
    "object": ["object IoU g=1.0"],
    "nearest": [f"nearest-level IoU g={g}" for g in SMALL_G],
    "own": ["part IoU at its own g"],
}


def best_fixed_output(tune_records, tune_sweeps) -> dict[str, int]:
    """The plain SAM-2's fixed output index per metric group (FIXED_GROUPS), each chosen on the tune split."""
    scores = [score(tune_records, tune_sweeps, k) for k in range(3)]
    return {
        group: int(np.argmax([np.mean([s[m] for m in metrics]) for s in scores]))
        for group, metrics in FIXED_GROUPS.items()
    }
