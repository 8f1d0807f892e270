"""Hypersim (Roberts et al. 2021, apple/ml-hypersim) in its published layout::

    ROOT/ai_VVV_NNN/images/scene_cam_XX_final_hdf5/frame.IIII.color.hdf5               HDR RGB, H x W x 3 float
    ROOT/ai_VVV_NNN/images/scene_cam_XX_geometry_hdf5/frame.IIII.semantic_instance.hdf5 H x W int, -1 = none
    ROOT/ai_VVV_NNN/images/scene_cam_XX_geometry_hdf5/frame.IIII.semantic.hdf5          H x W int, NYU40 ids

Every HDF5 file holds one array named ``dataset``; frames are 768 x 1024 and the paper trains at 480 x 640. The
colour is tone-mapped as Hypersim's own tone-mapping script describes (scale so that the 90th percentile of the
brightness ``0.3 R + 0.59 G + 0.11 B`` lands at 0.8 after gamma 1/2.2). Labels: instance id ``k >= 0`` becomes
``k + 1``; pixels without an instance are labelled background (0). The category of an instance is the NYU40 class
most of its pixels carry. An optional split file (``metadata_images_split_scene_v1.csv`` from the Hypersim repo)
restricts the frames to one partition (``train``).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from granseg.train.gen2seg_data.base import RawSample, SkipSample, check_labels, layout_error

NYU40 = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat",
    "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel", "shower curtain", "box",
    "whiteboard", "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure",
    "otherfurniture", "otherprop",
)  # fmt: skip
EXPECTED = "ai_VVV_NNN/images/scene_cam_XX_final_hdf5/frame.IIII.color.hdf5 (+ scene_cam_XX_geometry_hdf5/)"
_FRAME = re.compile(r"^(ai_\d{3}_\d{3})/images/scene_(cam_\d{2})_final_hdf5/frame\.(\d{4})\.color\.hdf5$")


def read_hdf5(path: Path) -> np.ndarray | None:
    """The ``dataset`` array of a Hypersim HDF5 file, or None when the file is missing."""
    import h5py

    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as handle:
            return np.asarray(handle["dataset"])
    except (OSError, KeyError) as exc:
        raise SkipSample(f"unreadable HDF5 file ({type(exc).__name__})") from exc


def tonemap(color: np.ndarray, percentile: float = 90.0, target: float = 0.8, gamma: float = 1 / 2.2):
    """HDR ``H x W x 3`` float -> ``H x W x 3`` uint8 (Hypersim's tone mapping, all finite pixels valid)."""
    color = np.nan_to_num(color.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    brightness = 0.3 * color[..., 0] + 0.59 * color[..., 1] + 0.11 * color[..., 2]
    current = float(np.percentile(brightness, percentile))
    scale = 1.0 if current < 1e-4 else target ** (1.0 / gamma) / current
    mapped = np.power(np.maximum(scale * color, 0.0), gamma)
    return (np.clip(mapped, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class HypersimSource:
    """Frames of a Hypersim root (see the module docstring). ``raw(index)`` -> :class:`RawSample`."""

    def __init__(self, root: str | Path, split_csv: str | Path | None = None, split: str = "train") -> None:
        self.root = Path(root)
        frames = []
        for path in sorted(self.root.glob("ai_*/images/scene_cam_*_final_hdf5/frame.*.color.hdf5")):
            match = _FRAME.match(path.relative_to(self.root).as_posix())
            if match:
                frames.append((match.group(1), match.group(2), int(match.group(3))))
        if split_csv is not None:
            frames = [f for f in frames if f in _split_frames(Path(split_csv), split)]
        if not frames:
            raise layout_error("Hypersim", self.root, EXPECTED)
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def paths(self, index: int) -> tuple[Path, Path, Path]:
        scene, camera, frame = self.frames[int(index)]
        images = self.root / scene / "images"
        geometry = images / f"scene_{camera}_geometry_hdf5"
        return (
            images / f"scene_{camera}_final_hdf5" / f"frame.{frame:04d}.color.hdf5",
            geometry / f"frame.{frame:04d}.semantic_instance.hdf5",
            geometry / f"frame.{frame:04d}.semantic.hdf5",
        )

    def raw(self, index: int) -> RawSample:
        color_path, instance_path, semantic_path = self.paths(index)
        color = read_hdf5(color_path)
        if color is None or color.ndim != 3 or color.shape[2] != 3:
            raise SkipSample("missing or malformed colour frame")
        image = tonemap(color)
        instances = read_hdf5(instance_path)
        instances = check_labels(instances, image, instance_path.name).astype(np.int64)
        labels = np.where(instances >= 0, instances + 1, 0)
        semantic = read_hdf5(semantic_path)
        categories = {}
        if semantic is not None and semantic.shape == labels.shape:
            categories = _categories(labels, semantic.astype(np.int64))
        return RawSample(image, labels, categories, name=color_path.relative_to(self.root).as_posix())


def _categories(labels: np.ndarray, semantic: np.ndarray) -> dict[int, str]:
    """instance id -> NYU40 name of the class most of its pixels carry ("" when none is labelled). One bincount
    over (instance, class) pairs."""
    ids = np.unique(labels[labels > 0])
    inside = (labels > 0) & (semantic >= 1) & (semantic <= len(NYU40))
    rows = np.searchsorted(ids, labels[inside])
    counts = np.bincount(rows * (len(NYU40) + 1) + semantic[inside], minlength=len(ids) * (len(NYU40) + 1))
    counts = counts.reshape(len(ids), len(NYU40) + 1)
    best = counts.argmax(axis=1)
    return {
        int(instance): NYU40[int(best[k]) - 1] if counts[k, best[k]] > 0 else ""
        for k, instance in enumerate(ids)
    }


def _split_frames(path: Path, split: str) -> set[tuple[str, str, int]]:
    """Frames of one partition in Hypersim's ``metadata_images_split_scene_v1.csv`` (public release only)."""
    from granseg.errors import InputError

    if not path.is_file():
        raise InputError(f"Hypersim split file not found: {path}")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    needed = {"scene_name", "camera_name", "frame_id", "split_partition_name"}
    if not rows or not needed <= set(rows[0]):
        raise InputError(
            f"{path}: expected the columns {sorted(needed)}; found {sorted(rows[0]) if rows else []}"
        )
    return {
        (r["scene_name"], r["camera_name"], int(r["frame_id"]))
        for r in rows
        if r["split_partition_name"] == split and r.get("included_in_public_release", "True") == "True"
    }
