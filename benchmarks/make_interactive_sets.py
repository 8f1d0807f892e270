"""Build click-evaluation sets (paired ``img/`` + ``gt/`` folders, the ``davis`` dataset layout of
``granseg eval interactive``) from BSDS500 val human segmentations and DAVIS-2016 frames.

    .venv/bin/python benchmarks/make_interactive_sets.py --out runs/isets [--davis-step 10] [--davis-per-seq 5]
    .venv/bin/python benchmarks/make_interactive_sets.py --out runs/isets --only bsds --rank 2 \
        --ids @/path/bsds_tune.txt --exclude @benchmarks/results/eval/bsds_objects_report_ids.txt

* ``bsds_objects``: one object per BSDS500 val image: the largest segment of the first annotator that covers 3 % to
  50 % of the image and touches at most two image borders (so not the sky or the ground); images without one
  are skipped. Sample ids are the BSDS ids (sorted: the first half tunes, the second half reports).
  ``--rank k`` takes the k-th largest such segment instead (a second object of the same images, written to
  ``bsds_objects<k>``; images with fewer than k such segments are skipped); ``--ids`` / ``--exclude`` keep or
  drop BSDS ids (``@FILE`` one a line, or comma-separated).
* ``davis_frames``: every ``--davis-step``-th frame of each DAVIS sequence (at most ``--davis-per-seq``), its
  annotation binarised; sample ids ``<sequence>_<frame>``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def bsds_object(segmentation: np.ndarray, rank: int = 1) -> np.ndarray | None:
    """The chosen object mask (H x W bool) of one human segmentation (H x W int labels), or None.

    The ``rank``-th largest segment (1: the largest; ties by label) covering 3 % to 50 % of the image and
    touching at most two image borders; None where fewer than ``rank`` segments qualify.
    """
    area = segmentation.size
    candidates = []
    for label in np.unique(segmentation).tolist():
        mask = segmentation == label
        fraction = mask.sum() / area
        borders = int(mask[0].any()) + int(mask[-1].any()) + int(mask[:, 0].any()) + int(mask[:, -1].any())
        if 0.03 <= fraction <= 0.5 and borders <= 2:
            candidates.append((-int(mask.sum()), label, mask))
    candidates.sort(key=lambda c: (c[0], c[1]))
    return candidates[rank - 1][2] if len(candidates) >= rank else None


def read_ids(spec: str | None) -> set[str] | None:
    """Sample ids from ``@FILE`` (one a line) or a comma-separated list; None for None."""
    from granseg.cli.eval import parse_id_list

    ids = parse_id_list(spec)
    return None if ids is None else set(ids)


def build_bsds(out: Path, rank: int = 1, ids: set[str] | None = None, exclude: set[str] | None = None) -> int:
    """Write one object per BSDS500 val image (``bsds_object(..., rank)``) as ``img/`` + ``gt/``; the count."""
    from granseg.eval.datasets.bsds import read_bsds_ground_truth

    root = DATA / "bsds500"
    (out / "img").mkdir(parents=True, exist_ok=True)
    (out / "gt").mkdir(parents=True, exist_ok=True)
    count = 0
    for image_path in sorted((root / "images" / "val").glob("*.jpg")):
        if (ids is not None and image_path.stem not in ids) or (exclude and image_path.stem in exclude):
            continue
        _, segmentations = read_bsds_ground_truth(root / "groundTruth" / "val" / f"{image_path.stem}.mat")
        mask = bsds_object(segmentations[0], rank)
        if mask is None:
            continue
        (out / "img" / image_path.name).write_bytes(image_path.read_bytes())
        cv2.imwrite(str(out / "gt" / f"{image_path.stem}.png"), mask.astype(np.uint8) * 255)
        count += 1
    return count


def build_davis(out: Path, step: int, per_sequence: int) -> int:
    root = DATA / "davis2016_val_subset"
    (out / "img").mkdir(parents=True, exist_ok=True)
    (out / "gt").mkdir(parents=True, exist_ok=True)
    count = 0
    for sequence in sorted(p for p in (root / "JPEGImages" / "480p").iterdir() if p.is_dir()):
        frames = sorted(sequence.glob("*.jpg"))[::step][:per_sequence]
        for frame in frames:
            annotation = root / "Annotations" / "480p" / sequence.name / f"{frame.stem}.png"
            mask = cv2.imread(str(annotation), cv2.IMREAD_GRAYSCALE)
            if mask is None or not (mask > 0).any():
                continue
            stem = f"{sequence.name}_{frame.stem}"
            (out / "img" / f"{stem}.jpg").write_bytes(frame.read_bytes())
            cv2.imwrite(str(out / "gt" / f"{stem}.png"), (mask > 0).astype(np.uint8) * 255)
            count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--davis-step", type=int, default=10)
    parser.add_argument("--davis-per-seq", type=int, default=5)
    parser.add_argument("--only", choices=["bsds", "davis"], default=None)
    parser.add_argument("--rank", type=int, default=1, help="BSDS: the k-th largest qualifying segment")
    parser.add_argument("--ids", default=None, help="BSDS ids to keep (@FILE or comma-separated)")
    parser.add_argument("--exclude", default=None, help="BSDS ids to drop (@FILE or comma-separated)")
    args = parser.parse_args()
    if args.only != "davis":
        name = "bsds_objects" if args.rank == 1 else f"bsds_objects{args.rank}"
        count = build_bsds(args.out / name, args.rank, read_ids(args.ids), read_ids(args.exclude))
        print(f"{name}:", count)
    if args.only != "bsds":
        print("davis_frames:", build_davis(args.out / "davis_frames", args.davis_step, args.davis_per_seq))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
