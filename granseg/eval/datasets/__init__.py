"""Evaluation datasets by name. ``load_dataset(name, root, **options)`` returns an :class:`EvalDataset`."""

from __future__ import annotations

from pathlib import Path

from granseg.errors import InputError
from granseg.eval.datasets.base import EvalDataset, Instance, Sample

_DATASETS = {
    "grabcut": "granseg.eval.datasets.isegm:GrabCutDataset",
    "berkeley": "granseg.eval.datasets.isegm:BerkeleyDataset",
    "davis": "granseg.eval.datasets.isegm:DavisDataset",
    "coco-mval": "granseg.eval.datasets.isegm:CocoMValDataset",
    "sbd": "granseg.eval.datasets.sbd:SBDDataset",
    "pascalpart": "granseg.eval.datasets.parts:PascalPartDataset",
    "partimagenet": "granseg.eval.datasets.parts:PartImageNetDataset",
    "coco": "granseg.eval.datasets.coco:CocoJsonDataset",
    "sa1b": "granseg.eval.datasets.coco:SA1BDataset",
    # the Gen2Seg paper's evaluation sets
    "coco-unseen": "granseg.eval.datasets.coco_unseen:CocoUnseenDataset",
    "coco-unseen-small": "granseg.eval.datasets.coco_unseen:CocoUnseenSmallDataset",
    "coco-unseen-medium": "granseg.eval.datasets.coco_unseen:CocoUnseenMediumDataset",
    "coco-unseen-large": "granseg.eval.datasets.coco_unseen:CocoUnseenLargeDataset",
    "dram": "granseg.eval.datasets.gen2seg_sets:DramDataset",
    "egohos": "granseg.eval.datasets.gen2seg_sets:EgoHosDataset",
    "ishape": "granseg.eval.datasets.gen2seg_sets:IShapeDataset",
    "pidray": "granseg.eval.datasets.gen2seg_sets:PidRayDataset",
}

DATASET_NAMES = tuple(_DATASETS)


def load_dataset(name: str, root: str | Path, **options) -> EvalDataset:
    """Open dataset ``name`` at ``root``. Options are passed to the loader (``split``, ``annotation``, ``level``)."""
    from granseg.registry_utils import resolve_target

    key = name.lower()
    if key not in _DATASETS:
        raise InputError(f"unknown dataset {name!r} (known: {', '.join(DATASET_NAMES)})")
    cls = resolve_target(_DATASETS[key])
    return cls(root, **{k: v for k, v in options.items() if v is not None})


__all__ = ["DATASET_NAMES", "EvalDataset", "Instance", "Sample", "load_dataset"]
