"""The model behind the app: one loaded model, a small LRU of embedded images, and a bounded work queue.

All model work runs on one worker thread (predictors are not thread-safe and the machine may have few cores).
:class:`WorkQueue` admits at most ``max_pending`` requests (running + waiting); the next one is refused at once
with :class:`Busy` (HTTP 503 + ``Retry-After``), so a burst of requests neither piles up threads nor memory.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

import granseg
from granseg.app.images import ImageStore


class Busy(Exception):
    """The work queue is full; the client should retry shortly."""


class WorkQueue:
    """A single worker thread with at most ``max_pending`` admitted calls."""

    def __init__(self, max_pending: int, name: str = "granseg-work") -> None:
        self.max_pending = max(1, int(max_pending))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending = 0
        self._lock = threading.Lock()
        self.rejected = 0
        self.served = 0

    @property
    def pending(self) -> int:
        return self._pending

    def admit(self) -> None:
        """Reserve a place or raise :class:`Busy` (call :meth:`release` when done)."""
        with self._lock:
            if self._pending >= self.max_pending:
                self.rejected += 1
                raise Busy(f"the server is busy ({self._pending} requests queued); retry shortly")
            self._pending += 1

    def release(self) -> None:
        with self._lock:
            self._pending -= 1
            self.served += 1

    async def run(self, fn, *args: Any) -> Any:
        """Run ``fn(*args)`` on the worker thread, admitted or refused at once."""
        self.admit()
        try:
            return await asyncio.wrap_future(self._executor.submit(fn, *args))
        finally:
            self.release()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class Engine:
    """One model; ``cache_images`` predictors, each holding one embedded image (least recently used dropped)."""

    def __init__(
        self, model_name: str, device: str, images: ImageStore, cache_images: int = 4, threads: int = 0
    ) -> None:
        if threads > 0:
            import torch

            torch.set_num_threads(int(threads))  # process-wide: the server runs one model request at a time
        self.model = granseg.load_model(model_name, device=device)
        self.model_name = model_name
        self.images = images
        self._cache_size = max(1, int(cache_images))
        self._predictors: OrderedDict[str, Any] = OrderedDict()
        self.warm_up_thread: threading.Thread | None = None
        self.warm_up_seconds: float | None = None  # set when the warm-up has finished
        if hasattr(self.model, "warm_up"):  # compile the click path while the user uploads (hierarchy: numba)
            self.warm_up_thread = threading.Thread(target=self._warm_up, name="granseg-warm-up", daemon=True)
            self.warm_up_thread.start()

    def _warm_up(self) -> None:
        self.warm_up_seconds = self.model.warm_up()

    def is_embedded(self, image_id: str) -> bool:
        return image_id in self._predictors

    def predictor(self, image_id: str) -> tuple[Any, float]:
        """The predictor holding ``image_id`` and the seconds spent embedding it now (0 when cached).
        Worker thread only."""
        if image_id in self._predictors:
            self._predictors.move_to_end(image_id)
            return self._predictors[image_id], 0.0
        start = time.perf_counter()
        rgb = self.images.pixels(image_id)
        if len(self._predictors) >= self._cache_size:
            _, predictor = self._predictors.popitem(last=False)  # reuse the oldest one's model state
            predictor.reset_image()
        else:
            predictor = granseg.create_predictor(self.model)
        predictor.set_image(rgb)
        self._predictors[image_id] = predictor
        return predictor, time.perf_counter() - start

    def predict(
        self,
        image_id: str,
        points: list[list[float]],
        labels: list[int],
        box: list[float] | None,
        granularity: float | str,
    ):
        """A :class:`granseg.Prediction` for the prompts (``K x H x W`` masks). Worker thread only."""
        predictor, _ = self.predictor(image_id)
        coords = np.asarray(points, dtype=np.float64).reshape(-1, 2) if points else None
        return predictor.predict(
            point_coords=coords,
            point_labels=labels if points else None,
            box=box,
            granularity=granularity,
        )
