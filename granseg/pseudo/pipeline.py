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

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from granseg.config import Config, read_json
from granseg.errors import GransegError, InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MANIFEST = "manifest.jsonl"
FAILURES = "failures.json"
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

    def validate(self) -> PseudoLabelConfig:
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
        if self.featureless_spread < 0:
            raise InputError("featureless_spread must be >= 0 (0 = off)")
        return self


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
    Order: by instance (largest first), the instance, then its divide parts, then its conquer parts."""
    import cv2

    from granseg.pseudo.conquer import conquer
    from granseg.pseudo.divide import divide, external_masks_for, merge_external_masks, select_instances
    from granseg.pseudo.features import resize_to_patch_multiple
    from granseg.pseudo.granularity import hierarchy_granularity

    extractor = extractor or _extractor(config)
    height, width = image.shape[:2]
    scale = min(1.0, config.work_long_side / max(height, width))
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
                return _featureless_labels(height, width, config)
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
    instances = select_instances(candidates, config.min_confidence, config.min_area_frac, config.containment)
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
    masks, fields = [], []
    for instance_id, instance in enumerate(instances, start=1):
        is_stuff = instance.source == "stuff"
        divide_parts = [p.mask for p in instance.parts]
        parts = conquer(
            work,
            instance.mask,
            extractor,
            long_side=config.conquer_long_side,
            thetas=config.thetas,
            min_patches=config.min_patches,
            inside=config.inside,
            nms_iou=config.nms_iou,
            protected=divide_parts,
            clip_to_instance=config.clip_to_instance,
            superpixel_labels=conquer_labels,
            featureless_spread=config.featureless_spread,
        )[: config.max_masks_per_instance]
        masks.append(instance.mask)
        fields.append(_fields(instance.score, instance_id, False, True, False, is_stuff))
        for part in instance.parts:
            masks.append(part.mask)
            fields.append(_fields(part.score, instance_id, True, True, False, is_stuff))
        for part in parts:
            masks.append(part.mask)
            fields.append(_fields(part.score, instance_id, True, False, True, is_stuff))
    if not masks:
        return np.zeros((0, height, width), dtype=bool), []
    stack = np.stack(masks)
    if config.refine_segments > 0:
        from granseg.regions.superpixels import snap_to_superpixels, superpixels

        if conquer_labels is not None and config.refine_segments == config.conquer_superpixels:
            refine_labels = conquer_labels  # the same superpixels: conquer parts are already unions of them
        else:
            refine_labels = superpixels(work, config.refine_segments)
        stack = snap_to_superpixels(stack, refine_labels)
        if config.clip_to_instance:  # a divide part (> 80 % inside) can be snapped past its instance
            stack = _clip_parts_to_instances(stack, fields)
        keep = _dedupe_within_instances(stack, [f["instance_id"] for f in fields], config.nms_iou)
        stack, fields = stack[keep], [fields[i] for i in keep]
    granularity = hierarchy_granularity(
        [f["instance_id"] for f in fields], stack.reshape(len(stack), -1).sum(axis=1)
    )
    for field, g in zip(fields, granularity):
        field["granularity"] = round(float(g), 4)
    if (wh, ww) != (height, width):
        stack = np.stack(
            [
                cv2.resize(m.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
                for m in stack
            ]
        )
    return stack, fields


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
    """The output JSON object for one image (see the module docstring)."""
    from granseg.io.masks import masks_to_records

    records = (
        masks_to_records(
            masks, [f["score"] for f in fields], [f["granularity"] for f in fields], extra=fields
        )
        if len(fields)
        else []
    )
    annotations = [{"id": index, **record} for index, record in enumerate(records, start=1)]
    return {"image": {"file_name": file_name, "height": height, "width": width}, "annotations": annotations}


def process_image(
    image_path: str, out_dir: str, config_dict: dict[str, Any], viz: bool = False
) -> dict[str, Any]:
    """Label one image file and write ``<out_dir>/<stem>.json`` (and the overlay) atomically.

    Never raises for a bad image: returns ``{"image", "status": "ok"|"failed", "output"|"error", ...}``. This is
    the unit of work shipped to pool / Dask workers (plain arguments, picklable)."""
    from granseg.io import atomic_write_text, load_image

    path = Path(image_path)
    out = Path(out_dir)
    config = PseudoLabelConfig.from_dict(config_dict)
    result: dict[str, Any] = {"image": path.name}
    try:
        image = load_image(path)
        masks, fields = pseudo_label_image(image, config, image_path=path)
        height, width = image.shape[:2]
        document = label_document(masks, fields, path.name, height, width)
        atomic_write_text(out / f"{path.stem}.json", json.dumps(document, separators=(",", ":")) + "\n")
        if viz:
            write_overlay(out / "viz" / f"{path.stem}.png", image, masks, [f["granularity"] for f in fields])
        result.update(status="ok", output=f"{path.stem}.json", masks=len(fields))
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # a bad image must never abort the run
        result.update(
            status="failed", error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
    return result


def write_overlay(path: Path, image: np.ndarray, masks: np.ndarray, granularity: list[float]) -> None:
    """PNG of the masks over the image, coloured by granularity (small g warm, g = 1 blue)."""
    from granseg.viz import granularity_colors, overlay_masks, save_rgb_png

    if len(masks) == 0:
        save_rgb_png(path, image)
        return
    save_rgb_png(path, overlay_masks(image, masks, colors=granularity_colors(granularity)))


# ---------------------------------------------------------------------------------------------- a directory
def list_images(images_dir: Path) -> list[Path]:
    """Image files directly in ``images_dir`` (by extension, sorted by name)."""
    if not images_dir.is_dir():
        raise InputError(f"not a directory: {images_dir}")
    return sorted(p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_manifest(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Latest manifest entry per image name; a torn last line (killed mid-append) is ignored."""
    entries: dict[str, dict[str, Any]] = {}
    path = out_dir / MANIFEST
    if not path.is_file():
        return entries
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "image" in entry:
            entries[entry["image"]] = entry
    return entries


class _Manifest:
    """Append-only JSONL; each line is written with one ``write`` and fsynced."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            with open(path, "ab") as handle:  # terminate a line torn by a kill
                handle.write(b"\n")
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, entry: dict[str, Any]) -> None:
        os.write(self.fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


@contextlib.contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Child processes inherit one BLAS/OpenMP thread each (N workers on N cores, deterministic sums)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update({n: "1" for n in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _prepare_output(out_dir: Path, config: PseudoLabelConfig, resume: bool) -> dict[str, dict[str, Any]]:
    out_dir.mkdir(parents=True, exist_ok=True)
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
    for debris in out_dir.glob(".*.tmp"):  # temp files of atomic writes cut short by a kill
        debris.unlink(missing_ok=True)
    for debris in (out_dir / "viz").glob(".*.tmp"):
        debris.unlink(missing_ok=True)
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
    from granseg.utils.progress import progress

    config = (config or PseudoLabelConfig()).validate()
    images_dir, out_dir = Path(images_dir), Path(out_dir)
    if workers < 1:
        raise InputError("--workers must be >= 1")
    if backend not in ("processes", "dask"):
        raise InputError(f"unknown backend {backend!r}; use 'processes' or 'dask'")
    images = list_images(images_dir)
    previous = _prepare_output(out_dir, config, resume)
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
    manifest = _Manifest(out_dir / MANIFEST)
    summary = {
        "total": len(images),
        "skipped": len(images) - len(todo) - len(failures),
        "done": 0,
        "failed": 0,
    }
    config_dict = config.to_dict()
    tasks = [(str(p), str(out_dir), config_dict, viz) for p in todo]
    try:
        results = _execute(tasks, workers, backend, scheduler)
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
        _write_failures(out_dir, failures)
    summary["failed"] = len(failures)
    summary["failures"] = failures
    return summary


def _write_failures(out_dir: Path, failures: list[dict[str, Any]]) -> None:
    from granseg.io import atomic_write_json

    atomic_write_json(out_dir / FAILURES, sorted(failures, key=lambda f: f["image"]), indent=1)


def _execute(
    tasks: list[tuple], workers: int, backend: str, scheduler: str | None
) -> Iterator[dict[str, Any]]:
    """Yield ``process_image`` results in completion order, keeping at most ``2 * workers`` tasks in flight."""
    if backend == "dask":
        yield from _execute_dask(tasks, workers, scheduler)
        return
    if workers == 1:
        for task in tasks:
            yield process_image(*task)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    with _single_threaded_children():
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    pending = set()
    queue = iter(tasks)
    try:
        while True:
            while len(pending) < 2 * workers:
                task = next(queue, None)
                if task is None:
                    break
                pending.add(pool.submit(process_image, *task))
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
    except BrokenProcessPool:
        raise GransegError("a worker process died; finished images are saved, rerun with --resume") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _execute_dask(tasks: list[tuple], workers: int, scheduler: str | None) -> Iterator[dict[str, Any]]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InputError("the dask backend needs the [dist] extra: pip install 'granseg[dist]'") from None
    cluster = None
    with _single_threaded_children():
        if scheduler is None:
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                host="127.0.0.1",
            )
        client = Client(cluster if cluster is not None else scheduler)
    try:
        queue = iter(tasks)
        window = 2 * max(workers, len(client.scheduler_info().get("workers", {})) or 1)
        futures = as_completed()
        for task in [t for _, t in zip(range(window), queue)]:
            futures.add(client.submit(process_image, *task, pure=False))
        for future in futures:
            yield future.result()
            future.release()
            task = next(queue, None)
            if task is not None:
                futures.add(client.submit(process_image, *task, pure=False))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def print_summary(summary: dict[str, Any], out_dir: Path, stream=None) -> None:
    print(
        f"pseudo-label: {summary['done']} labelled, {summary['skipped']} already done, {summary['failed']} failed "
        f"(of {summary['total']}) -> {out_dir}",
        file=stream or sys.stderr,
    )
