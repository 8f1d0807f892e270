"""Whole-image ("automatic") segmentation jobs with progress, on their own worker thread.

A job runs :class:`granseg.AutomaticSegmenter` at one g with a dedicated predictor. For a grid of
``points_per_side**2`` positive clicks it counts the prompts answered so the browser can show progress; a model
with a region tree (``hierarchy``, ``source="auto"``) reads its masks from the tree in one step (``total`` 1);
``source="partition"`` (``hierarchy`` only) gives the regions of its whole-image partition at g instead (one cut of
the tree: every pixel in one region, ``HierarchyPredictor.partition``). At most
``max_jobs`` jobs run or wait at once (more raise :class:`TooManyJobs`, HTTP 429); the last few finished jobs are
kept for their results.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import granseg
from granseg.app.images import NotFoundError

KEEP_FINISHED = 8


class TooManyJobs(Exception):
    """A whole-image job is already running or waiting."""


class Cancelled(Exception):
    pass


class _CountingPredictor:
    """Wraps a predictor: counts ``predict`` calls into the job and stops when the job is cancelled."""

    def __init__(self, predictor: Any, job: dict[str, Any]) -> None:
        self._predictor = predictor
        self._job = job

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        if self._job["cancel"]:
            raise Cancelled()
        out = self._predictor.predict(*args, **kwargs)
        self._job["done"] += 1
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._predictor, name)


class AutoJobs:
    def __init__(self, model: Any, images: Any, max_jobs: int = 1) -> None:
        self.model = model
        self.images = images
        self.max_jobs = max(1, int(max_jobs))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="granseg-auto")
        self._jobs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._predictor = None

    def start(
        self, image_id: str, granularity: float, points_per_side: int, source: str = "auto"
    ) -> dict[str, Any]:
        with self._lock:
            active = [j for j in self._jobs.values() if j["state"] in ("queued", "running")]
            if len(active) >= self.max_jobs:
                raise TooManyJobs("a whole-image job is already running; wait for it or cancel it")
            job = {
                "id": str(next(self._ids)),
                "image_id": image_id,
                "granularity": float(granularity),
                "points_per_side": int(points_per_side),
                "source": source,
                "state": "queued",
                "done": 0,
                "total": int(points_per_side) ** 2,
                "cancel": False,
                "records": [],
                "error": None,
                "seconds": None,
            }
            self._jobs[job["id"]] = job
            finished = [k for k, j in self._jobs.items() if j["state"] not in ("queued", "running")]
            for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:
                del self._jobs[key]
        self._executor.submit(self._run, job)
        return job

    def _run(self, job: dict[str, Any]) -> None:
        start = time.perf_counter()
        job["state"] = "running"
        try:
            if self._predictor is None:
                self._predictor = granseg.create_predictor(self.model)
            if job["source"] == "partition":
                job["records"] = self._partition(job)
                job["state"] = "done"
                job["seconds"] = round(time.perf_counter() - start, 3)
                return
            config = granseg.AutomaticConfig(
                points_per_side=job["points_per_side"],
                granularities=(job["granularity"],),
                source=job["source"],
            )
            reads_tree = granseg.AutomaticSegmenter(self._predictor, config).reads_tree()
            if reads_tree:  # one readout of the region tree, nothing to count per prompt
                job["total"] = 1
                segmenter = granseg.AutomaticSegmenter(self._predictor, config)
            else:
                segmenter = granseg.AutomaticSegmenter(_CountingPredictor(self._predictor, job), config)
            job["records"] = segmenter.generate(self.images.pixels(job["image_id"]), quiet=True)
            if reads_tree:
                job["done"] = 1
            job["state"] = "done"
        except Cancelled:
            job["state"] = "cancelled"
        except Exception as exc:  # reported to the browser; the server keeps running
            job["state"] = "error"
            job["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        job["seconds"] = round(time.perf_counter() - start, 3)

    def _partition(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        """The regions of the predictor's whole-image partition at the job's g, largest first (one step)."""
        from granseg.errors import InputError
        from granseg.io.masks import label_map_to_records

        if not hasattr(self._predictor, "partition"):
            raise InputError("source 'partition' needs a model with a region tree (hierarchy)")
        job["total"] = 1
        self._predictor.set_image(self.images.pixels(job["image_id"]))
        labels = self._predictor.partition(job["granularity"])[0]
        job["done"] = 1
        return label_map_to_records(labels, job["granularity"])

    def get(self, job_id: str) -> dict[str, Any]:
        job = self._jobs.get(str(job_id))
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self.get(job_id)
        job["cancel"] = True
        return job

    def shutdown(self) -> None:
        for job in self._jobs.values():
            job["cancel"] = True
        self._executor.shutdown(wait=False, cancel_futures=True)
