"""Pseudo-label pipeline: images -> one JSON of hierarchical masks with granularity per image.

Per image (:func:`pseudo_label_image`): divide (MaskCut on patch features, optionally plus external masks),
keep rules, stuff pass (uncovered area -> extra instances), conquer each instance, granularity per instance
hierarchy, masks back at the image's own size.

Over a directory (:func:`run_pipeline`): ``LABELS_DIR/<stem>.json`` per image (atomic writes), ``config.json``
(the :class:`PseudoLabelConfig`), ``manifest.jsonl`` (one line appended and fsynced per finished image: the source
of truth for ``resume``), ``failures.json`` (images that could not be labelled, with the reason), optional
``viz/<stem>.png``. A run killed at any moment leaves only complete files; ``resume=True`` skips images the
manifest lists as done and recomputes the rest (deterministically, so a re-done image gets identical bytes).
Workers: in-process (1), a process pool (N, spawn), or a Dask cluster (``backend="dask"``; local by default).

Output JSON (SA-1B-like, the official UnSAMv2 pseudo-label fields)::

    {"image": {"file_name", "height", "width"},
     "annotations": [{"id", "segmentation": COCO RLE (counts str), "area", "bbox": [x, y, w, h], "score",
                      "granularity", "point_coords": [], "instance_id", "is_part", "is_divide", "is_conquer",
                      "is_stuff"}]}
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from granseg.config import Config, read_json
from granseg.errors import InputError
from granseg.pseudo.manifest import (  # noqa: F401 - part of this module's interface
    FAILURES,
    IMAGE_EXTENSIONS,
    MANIFEST,
    Manifest,
    list_images,
    read_manifest,
    write_failures,
)

CONFIG_FILE = "config.json"


@dataclasses.dataclass
class PseudoLabelConfig(Config):
    """Every knob of the engine (saved as ``config.json`` in the output directory)."""

    features: str = "classical"
    device: str = "cpu"
    classical_patch_size: int = 8
    classical_position_weight: float = 0.25  # spatial prior in the classical features (compact regions)
    work_long_side: int = 1024  # images larger than this are processed at this size; masks saved at full size
    divide_long_side: int = 384  # image resized to this for the MaskCut grid
    num_cuts: int = 4  # MaskCut masks per image
    ncut_tau: float = 0.15
    # more MaskCut runs at these affinity thresholds (more candidates; was (0.0, 0.3): 0.0 added nothing once
    # the region proposals below were on, for 20 % of the time)
    extra_taus: tuple[float, ...] = (0.3,)
    split_depth: int = 1  # also cut inside each found mask (separates touching objects)
    split_cuts: int = 3
    min_confidence: float = 0.3
    min_area_frac: float = 0.02  # the paper: 0.05 (objects of 2-5 % of the image were never instances)
    containment: float = 0.8
    external_masks: str | None = None  # dir of <stem>.json (SA-1B) or one COCO JSON
    external_only: bool = False  # use the external masks instead of MaskCut
    conquer_long_side: int = 768
    thetas: tuple[float, ...] = (0.9, 0.8, 0.7, 0.6, 0.5)
    min_patches: int = 4
    # a conquer part must also cover this fraction of its instance's pixel area (min_patches counts patches of
    # the crop upsampled to conquer_long_side: a few pixels of a small image, where every superpixel passed)
    min_part_frac: float = 0.01
    # a divide mask > containment inside an instance but larger than this fraction of the image is an instance
    # of its own nested in it (granularity 1, its own parts), not a part of the group around it (0 = off, the
    # default and DESIGN.md's rule: its nested g = 1 chains made UnSAMv2 training on the labels much worse)
    nest_min_frac: float = 0.0
    inside: float = 0.9
    nms_iou: float = 0.8
    clip_to_instance: bool = True
    max_masks_per_instance: int = 100
    # boundary refinement: snap masks to this many SLIC superpixels (0 = off; equal to conquer_superpixels:
    # the same superpixels are used)
    refine_segments: int = 1000
    # conquer from superpixels: merging starts from this many SLIC superpixels of the image (cut by the
    # instance) instead of from single patches (0 = patches, as in the paper); computed at long side <= below
    conquer_superpixels: int = 1000
    superpixel_long_side: int = 512
    # stuff pass: the area no instance covers is grouped by merging at this theta into extra instances
    # ("is_stuff": true in the JSON; kept when > min_area_frac), conquered like the others (0 = off)
    stuff_theta: float = 0.3
    # region proposals: the whole image is grouped by the same merging at each of these thetas; every
    # connected region > min_area_frac joins the MaskCut candidates (source "merge") before the keep rules
    region_thetas: tuple[float, ...] = (0.4, 0.3, 0.2)
    # featureless images / crops (appearance spread of the classical features below this, Lab units; 0 = off):
    # an image gets no MaskCut instance and no parts (only one whole-image stuff mask when the stuff pass is
    # on), an instance crop gets no conquer parts; cuts there would follow the position prior alone
    featureless_spread: float = 1.0
    # per-worker memory budget (MB; 0 = none): an image whose expected peak exceeds it is decoded and worked on
    # at a reduced size, or recorded as failed when even that does not fit (granseg.pseudo.memory)
    memory_budget_mb: int = 2048

    def validate(self) -> PseudoLabelConfig:
        check_types(self)
        if not self.thetas or any(not 0 < t <= 1 for t in self.thetas):
            raise InputError("thetas must be in (0, 1]")
        for name in (
            "divide_long_side",
            "conquer_long_side",
            "work_long_side",
            "num_cuts",
            "min_patches",
            "superpixel_long_side",
        ):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1")
        for name in ("conquer_superpixels", "refine_segments"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0 (0 = off)")
        if not 0 <= self.stuff_theta <= 1:
            raise InputError("stuff_theta must be in [0, 1] (0 = no stuff pass)")
        if any(not 0 < t <= 1 for t in self.region_thetas):
            raise InputError("region_thetas must be in (0, 1]")
        if not 0 <= self.min_part_frac < 1 or not 0 <= self.nest_min_frac < 1:
            raise InputError("min_part_frac and nest_min_frac must be in [0, 1)")
        if self.featureless_spread < 0:
            raise InputError("featureless_spread must be >= 0 (0 = off)")
        if self.memory_budget_mb < 0:
            raise InputError("memory_budget_mb must be >= 0 (0 = no budget)")
        return self


def check_types(config: Config) -> None:
    """InputError naming the first field whose value does not have its annotated type (str, bool, int, float,
    ``X | None`` and ``tuple[float, ...]`` are checked; ints are accepted where floats are)."""
    import typing

    def ok(value: Any, annotation: Any) -> bool:
        if annotation is bool:
            return isinstance(value, bool)
        if annotation is int:
            return isinstance(value, int) and not isinstance(value, bool)
        if annotation is float:
            return isinstance(value, int | float) and not isinstance(value, bool)
        if annotation is str:
            return isinstance(value, str)
        args = typing.get_args(annotation)
        if typing.get_origin(annotation) is tuple and len(args) == 2 and args[1] is Ellipsis:
            return isinstance(value, tuple | list) and all(ok(v, args[0]) for v in value)
        if type(None) in args:
            return value is None or any(ok(value, a) for a in args if a is not type(None))
        return True

    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if not ok(value, hints.get(field.name, Any)):
            raise InputError(
                f"{type(config).__name__}: {field.name} = {value!r} is not a valid {hints[field.name]}"
            )


# ---------------------------------------------------------------------------------------------- one image
_EXTRACTORS: dict[tuple, Any] = {}


def _extractor(config: PseudoLabelConfig):
    from granseg.pseudo.features import get_feature_extractor

    key = (config.features, config.device, config.classical_patch_size, config.classical_position_weight)
    if key not in _EXTRACTORS:
        options = {}
        if config.features == "classical":
            options = {
                "patch_size": config.classical_patch_size,
                "position_weight": config.classical_position_weight,
            }
        _EXTRACTORS[key] = get_feature_extractor(config.features, device=config.device, **options)
    return _EXTRACTORS[key]


def pseudo_label_image(
    image: np.ndarray, config: PseudoLabelConfig, image_path: Path | None = None, extractor=None
):
    """Masks of one ``H x W x 3`` uint8 image. Returns ``(masks K x H x W bool, fields)`` where ``fields`` is a
    list of K dicts with ``score``, ``granularity``, ``instance_id``, ``is_part``, ``is_divide``, ``is_conquer``.
    Order: by instance (largest first), the instance, then its divide parts, then its conquer parts.
    (Holds K full-size masks: :func:`process_image` keeps them at the working size instead.)"""
    height, width = image.shape[:2]
    stack, fields, _ = label_at_work_size(image, config, image_path, extractor)
    return np.stack([upsample_mask(m, height, width) for m in stack]) if len(stack) else stack.reshape(
        0, height, width
    ), fields


def upsample_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """An ``h x w`` bool mask at ``height x width`` (nearest neighbour; returned as is when the size matches)."""
    import cv2

    if mask.shape == (height, width):
        return mask
    resized = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    return resized.view(bool)  # nearest keeps the 0/1 values: a view, not a second full-size copy


def label_at_work_size(
    image: np.ndarray,
    config: PseudoLabelConfig,
    image_path: Path | None = None,
    extractor=None,
    work_long_side: int | None = None,
):
    """:func:`pseudo_label_image` without the final upsampling: ``(masks K x h x w bool, fields, work image
    h x w x 3)`` where ``h x w`` is the image shrunk to ``work_long_side`` (default ``config.work_long_side``)."""
    import cv2

    from granseg.pseudo.divide import divide, external_masks_for, merge_external_masks, select_instances
    from granseg.pseudo.features import resize_to_patch_multiple
    from granseg.pseudo.granularity import hierarchy_granularity

    extractor = extractor or _extractor(config)
    height, width = image.shape[:2]
    scale = min(1.0, (work_long_side or config.work_long_side) / max(height, width))
    work = image
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        work = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    wh, ww = work.shape[:2]
    candidates, grid, featureless = [], None, False
    if not config.external_only:
        small = resize_to_patch_multiple(work, config.divide_long_side, extractor.patch_size)
        extracted = extractor.extract(small)
        grid = extracted.features
        featureless = extracted.is_featureless(config.featureless_spread)
        if featureless:
            if config.external_masks is None:
                return (*_featureless_labels(wh, ww, config), work)
        else:
            for tau in (config.ncut_tau, *config.extra_taus):
                candidates += divide(
                    grid, (wh, ww), config.num_cuts, tau, config.split_depth, config.split_cuts
                )
    if config.external_masks is not None and image_path is not None:
        external = external_masks_for(config.external_masks, image_path, wh, ww)
        candidates = merge_external_masks(candidates, external, replace=config.external_only)
    conquer_labels = None
    if config.conquer_superpixels > 0:
        from granseg.regions.superpixels import superpixels

        conquer_labels = superpixels(work, config.conquer_superpixels, max_side=config.superpixel_long_side)
    if config.region_thetas and grid is not None and not featureless:
        from granseg.pseudo.divide import merge_regions

        candidates += merge_regions(
            grid, (wh, ww), config.region_thetas, config.min_area_frac, conquer_labels
        )
    instances = select_instances(
        candidates,
        config.min_confidence,
        config.min_area_frac,
        config.containment,
        nest_min_frac=config.nest_min_frac,
    )
    if config.stuff_theta > 0:
        from granseg.pseudo.divide import Instance, stuff_regions

        covered = np.zeros((wh, ww), dtype=bool)
        for instance in instances:
            covered |= instance.mask
        if grid is None:
            small = resize_to_patch_multiple(work, config.divide_long_side, extractor.patch_size)
            grid = extractor.extract(small).features
        stuff = stuff_regions(grid, covered, config.stuff_theta, config.min_area_frac, conquer_labels)
        stuff = [region for region in stuff if region.score > config.min_confidence]  # the instances' rule
        instances += [Instance(region.mask, region.score, region.source) for region in stuff]
    # no name here holds an unrefined stack: each copy is freed as soon as the next one exists
    stack, fields = _stack_and_refine(
        *_conquer_instances(instances, work, extractor, config, conquer_labels), work, config, conquer_labels
    )
    if not fields:
        return stack, fields, work
    granularity = hierarchy_granularity(
        [f["instance_id"] for f in fields], stack.reshape(len(stack), -1).sum(axis=1)
    )
    for field, g in zip(fields, granularity):
        field["granularity"] = round(float(g), 4)
    return stack, fields, work


def _conquer_instances(instances, work: np.ndarray, extractor, config: PseudoLabelConfig, conquer_labels):
    """Every instance, then its divide parts, then its conquer parts: ``(masks h x w bool, fields)``. Conquer
    parts of an instance that lie inside an instance nested in it belong to that one's hierarchy (dropped)."""
    from granseg.pseudo.conquer import conquer, outside_of

    masks, fields = [], []
    for instance_id, instance in enumerate(instances, start=1):
        is_stuff = instance.source == "stuff"
        divide_parts = [p.mask for p in instance.parts]
        nested = [other.mask for other in instances if other.parent == instance_id - 1]
        parts = conquer(
            work,
            instance.mask,
            extractor,
            long_side=config.conquer_long_side,
            thetas=config.thetas,
            min_patches=config.min_patches,
            inside=config.inside,
            nms_iou=config.nms_iou,
            protected=divide_parts + nested,
            clip_to_instance=config.clip_to_instance,
            superpixel_labels=conquer_labels,
            featureless_spread=config.featureless_spread,
            min_part_frac=config.min_part_frac,
        )
        parts = outside_of(parts, nested, config.containment)[: config.max_masks_per_instance]
        masks.append(instance.mask)
        fields.append(_fields(instance.score, instance_id, False, True, False, is_stuff))
        for part in instance.parts:
            masks.append(part.mask)
            fields.append(_fields(part.score, instance_id, True, True, False, is_stuff))
        for part in parts:
            masks.append(part.mask)
            fields.append(_fields(part.score, instance_id, True, False, True, is_stuff))
    return masks, fields


def _stack_and_refine(
    masks: list, fields: list[dict[str, Any]], work, config: PseudoLabelConfig, conquer_labels
):
    """``(K x h x w stack, fields)`` of the masks, snapped to superpixels, parts clipped to their instance,
    near-duplicates dropped (when ``refine_segments`` > 0)."""
    from granseg.regions.superpixels import snap_to_superpixels, superpixels

    if not masks:
        return np.zeros((0, *work.shape[:2]), dtype=bool), []
    stack = np.stack(masks)
    masks.clear()  # a fresh list from _conquer_instances: its arrays are in the stack now
    if config.refine_segments <= 0:
        return stack, fields
    if conquer_labels is not None and config.refine_segments == config.conquer_superpixels:
        refine_labels = conquer_labels  # the same superpixels: conquer parts are already unions of them
    else:
        refine_labels = superpixels(work, config.refine_segments)
    stack = snap_to_superpixels(stack, refine_labels)
    if config.clip_to_instance:  # a divide part (> 80 % inside) can be snapped past its instance
        stack = _clip_parts_to_instances(stack, fields)
    keep = _dedupe_within_instances(stack, [f["instance_id"] for f in fields], config.nms_iou)
    return stack[keep], [fields[i] for i in keep]


def _clip_parts_to_instances(stack: np.ndarray, fields: list[dict[str, Any]]) -> np.ndarray:
    """Every part ANDed with its instance mask (a part that would vanish is kept as it was), so an instance
    is the largest mask of its hierarchy (granularity 1)."""
    roots = {f["instance_id"]: i for i, f in enumerate(fields) if not f["is_part"]}
    for index, field in enumerate(fields):
        if field["is_part"]:
            clipped = stack[index] & stack[roots[field["instance_id"]]]
            if clipped.any():
                stack[index] = clipped
    return stack


def _featureless_labels(height: int, width: int, config: PseudoLabelConfig):
    """A featureless image: one whole-image stuff mask (score 0: no cut supports it) when the stuff pass is
    on, else nothing; never parts."""
    if config.stuff_theta <= 0:
        return np.zeros((0, height, width), dtype=bool), []
    return np.ones((1, height, width), dtype=bool), [_fields(0.0, 1, False, True, False, True)]


def _fields(
    score: float, instance_id: int, is_part: bool, is_divide: bool, is_conquer: bool, is_stuff: bool = False
) -> dict[str, Any]:
    return {
        "score": round(float(score), 4),
        "granularity": 1.0,
        "instance_id": instance_id,
        "is_part": is_part,
        "is_divide": is_divide,
        "is_conquer": is_conquer,
        "is_stuff": is_stuff,
    }


def _dedupe_within_instances(stack: np.ndarray, instance_ids: list[int], iou_threshold: float) -> np.ndarray:
    """Indices to keep after refinement: within one instance, a mask whose IoU with an earlier one (the
    instance first, then divide parts, then conquer parts) exceeds ``iou_threshold`` is dropped; the instance
    mask always stays."""
    from granseg.pseudo.conquer import nms_with_protected

    ids = np.asarray(instance_ids)
    keep = []
    for instance in np.unique(ids):
        members = np.flatnonzero(ids == instance)
        stride = max(1, int(np.ceil(max(stack.shape[1:]) / 256)))
        kept = nms_with_protected(stack[members[1:]], stack[members[:1]], iou_threshold, stride=stride)
        keep.extend([int(members[0])] + members[1:][kept].tolist())
    return np.asarray(sorted(keep), dtype=np.int64)


def label_document(masks: np.ndarray, fields: list[dict[str, Any]], file_name: str, height: int, width: int):
    """The output JSON object for one image (see the module docstring). ``masks`` (K x h x w bool) may be at a
    smaller size than ``height x width``: each is upsampled on its own while it is encoded."""
    from granseg.io.masks import masks_to_records

    annotations = []
    for index, (mask, field) in enumerate(zip(masks, fields), start=1):
        full = upsample_mask(mask, height, width)
        (record,) = masks_to_records(full[None], [field["score"]], [field["granularity"]], extra=[field])
        annotations.append({"id": index, **record})
        del full
    return {"image": {"file_name": file_name, "height": height, "width": width}, "annotations": annotations}


def process_image(
    image_path: str, out_dir: str, config_dict: dict[str, Any], viz: bool = False
) -> dict[str, Any]:
    """Label one image file and write ``<out_dir>/<stem>.json`` (and the overlay) atomically.

    Never raises for a bad image, nor for one that runs out of memory: returns ``{"image", "status": "ok" |
    "failed", "output" | "error", ...}`` (``work_long_side`` when the memory budget reduced it). This is the
    unit of work shipped to pool / Dask workers (plain arguments, picklable)."""
    path = Path(image_path)
    config = PseudoLabelConfig.from_dict(config_dict)
    result: dict[str, Any] = {"image": path.name}
    try:
        result.update(_label_file(path, Path(out_dir), config, viz))
    except KeyboardInterrupt:
        raise
    except MemoryError:
        result.update(
            status="failed", error="MemoryError: out of memory (lower memory_budget_mb or --workers)"
        )
    except Exception as exc:  # a bad image must never abort the run
        result.update(
            status="failed", error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
    return result


def _label_file(path: Path, out: Path, config: PseudoLabelConfig, viz: bool) -> dict[str, Any]:
    """Decode (within the memory budget), label and write one image; see :func:`process_image`."""
    from granseg.io import atomic_write_text, load_image
    from granseg.io.images import read_image_size
    from granseg.pseudo.memory import plan_memory

    height, width = read_image_size(path)
    plan = plan_memory(height, width, config.work_long_side, config.memory_budget_mb)
    image = load_image(path, reduce_long_side=plan.decode_long_side)
    masks, fields, work = label_at_work_size(image, config, path, work_long_side=plan.work_long_side)
    del image
    document = label_document(masks, fields, path.name, height, width)
    atomic_write_text(out / f"{path.stem}.json", json.dumps(document, separators=(",", ":")) + "\n")
    del document
    if viz:
        write_overlay(out / "viz" / f"{path.stem}.png", work, masks, [f["granularity"] for f in fields])
    reduced = {} if plan.decode_long_side is None else {"work_long_side": plan.work_long_side}
    return {"status": "ok", "output": f"{path.stem}.json", "masks": len(fields), **reduced}


def write_overlay(path: Path, image: np.ndarray, masks: np.ndarray, granularity: list[float]) -> None:
    """PNG of the masks over the image, coloured by granularity (small g warm, g = 1 blue); written at the
    working size (``work_long_side``), not the photo's."""
    from granseg.viz import granularity_colors, overlay_masks, save_rgb_png

    if len(masks) == 0:
        save_rgb_png(path, image)
        return
    save_rgb_png(path, overlay_masks(image, masks, colors=granularity_colors(granularity)))


# ---------------------------------------------------------------------------------------------- a directory
def _prepare_output(out_dir: Path, config: PseudoLabelConfig, resume: bool) -> dict[str, dict[str, Any]]:
    """Check ``out_dir`` (locked by the caller) against ``config`` / ``resume``, remove the temporaries of
    killed runs (only this package's, see :func:`granseg.io.files.clean_stale_temporaries`), save the config;
    returns the manifest entries to trust."""
    from granseg.io.files import clean_stale_temporaries

    config_path = out_dir / CONFIG_FILE
    manifest = read_manifest(out_dir)
    if config_path.is_file():
        saved = read_json(config_path, "PseudoLabelConfig")
        previous = PseudoLabelConfig.from_dict(saved)
        missing = sorted({f.name for f in dataclasses.fields(PseudoLabelConfig)} - set(saved))
        if resume and missing:
            raise InputError(
                f"{config_path} was written by an earlier engine version (no {', '.join(missing)}): resuming "
                "would label the remaining images with a different engine; finish the run with that version "
                "or start a new --out"
            )
        if not resume and manifest:
            raise InputError(
                f"{out_dir} already holds pseudo-labels: pass --resume to continue, or use a new --out"
            )
        if resume and previous != config:
            raise InputError(
                f"{out_dir} was made with a different configuration ({config_path}); use the same options"
            )
    elif resume and manifest:
        raise InputError(f"{out_dir} has a manifest but no {CONFIG_FILE}; cannot resume safely")
    clean_stale_temporaries(out_dir)  # atomic writes cut short by a kill
    clean_stale_temporaries(out_dir / "viz")
    config.to_json(config_path)
    return manifest if resume else {}


def run_pipeline(
    images_dir: str | Path,
    out_dir: str | Path,
    config: PseudoLabelConfig | None = None,
    workers: int = 1,
    resume: bool = False,
    viz: bool = False,
    backend: str = "processes",
    scheduler: str | None = None,
    quiet: bool = True,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Label every image of ``images_dir`` into ``out_dir``; see the module docstring.

    ``backend``: "processes" (``workers`` == 1 runs in this process) or "dask" (a ``LocalCluster`` with
    ``workers`` single-threaded processes, or the cluster at ``scheduler``). Returns a summary dict
    (``total``, ``done``, ``skipped``, ``failed``, ``failures``)."""
    from granseg.io.files import ensure_dir
    from granseg.pseudo.lock import OutputLock

    config = (config or PseudoLabelConfig()).validate()
    images_dir, out_dir = Path(images_dir), Path(out_dir)
    if workers < 1:
        raise InputError("--workers must be >= 1")
    if backend not in ("processes", "dask"):
        raise InputError(f"unknown backend {backend!r}; use 'processes' or 'dask'")
    images = list_images(images_dir)
    ensure_dir(out_dir)
    with OutputLock(out_dir):  # one run per output folder
        previous = _prepare_output(out_dir, config, resume)
        return _run_locked(
            images, out_dir, config, previous, viz, quiet, on_result, (workers, backend, scheduler)
        )


def _run_locked(images, out_dir, config, previous, viz, quiet, on_result, execution) -> dict[str, Any]:
    """:func:`run_pipeline` once ``out_dir`` is locked and checked; ``execution`` = (workers, backend,
    scheduler)."""
    from granseg.pseudo.workers import execute
    from granseg.utils.progress import progress

    done = {
        name for name, e in previous.items() if e.get("status") == "ok" and (out_dir / e["output"]).is_file()
    }
    stems: dict[str, str] = {}
    todo, failures = [], []
    for path in images:
        if path.stem in stems:
            failures.append({"image": path.name, "error": f"same output name as {stems[path.stem]}"})
            continue
        stems[path.stem] = path.name
        if path.name not in done:
            todo.append(path)
    manifest = Manifest(out_dir / MANIFEST)
    summary = {
        "total": len(images),
        "skipped": len(images) - len(todo) - len(failures),
        "done": 0,
        "failed": 0,
    }
    config_dict = config.to_dict()
    tasks = [(str(p), str(out_dir), config_dict, viz) for p in todo]
    try:
        results = execute(tasks, *execution)
        for result in progress(results, desc="pseudo-label", total=len(tasks), quiet=quiet):
            manifest.append(result)
            if result["status"] == "ok":
                summary["done"] += 1
            else:
                failures.append({"image": result["image"], "error": result["error"]})
            if on_result is not None:
                on_result(result)
    finally:
        manifest.close()
        write_failures(out_dir, failures)
    summary["failed"] = len(failures)
    summary["failures"] = failures
    return summary


def print_summary(summary: dict[str, Any], out_dir: Path, stream=None) -> None:
    print(
        f"pseudo-label: {summary['done']} labelled, {summary['skipped']} already done, {summary['failed']} failed "
        f"(of {summary['total']}) -> {out_dir}",
        file=stream or sys.stderr,
    )
