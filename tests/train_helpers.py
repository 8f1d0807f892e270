"""Shared helpers for the UnSAMv2 training tests: a tiny random-init training config on a few synthetic scenes."""

from __future__ import annotations

from granseg.models.unsamv2 import tiny_config


def tiny_train_config_dict(tmp_path, name="run", max_masks=4, correction_clicks=2, **changes) -> dict:
    """A 4-step ``unsamv2`` config (tiny SAM-2, random init, 3 synthetic 96 px scenes) writing to ``tmp_path/name``;
    ``changes`` override top-level keys."""
    data = {
        "task": "unsamv2",
        "output_dir": str(tmp_path / name),
        "model": tiny_config().to_dict(),
        "init_from": None,
        "data": {
            "sources": [{"kind": "synth", "num_scenes": 3, "synth": {"size": 96, "num_objects": [1, 2]}}],
            "max_masks": max_masks,
        },
        "steps": 4,
        "batch_size": 1,
        "warmup_steps": 1,
        "lr": 1e-3,
        "log_every": 1,
        "save_every": 100,
        "correction_clicks": correction_clicks,
    }
    data.update(changes)
    return data
