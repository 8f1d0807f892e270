"""Where pseudo-label work runs: in this process, a spawned process pool, or a Dask cluster.

Pool workers die with their parent: on Linux each asks the kernel for SIGKILL when the parent dies
(``prctl(PR_SET_PDEATHSIG)``), and everywhere a watchdog thread exits the worker once its parent PID changes
(the parent was killed and the worker re-parented). So a parent killed by SIGKILL, SIGTERM or the OOM killer
leaves no idle workers behind (and multiprocessing's resource tracker, whose pipe they held, exits too).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from granseg.errors import GransegError, InputError

PR_SET_PDEATHSIG = 1
WATCHDOG_SECONDS = 1.0


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: end this worker when the process ``parent_pid`` ends (see the module docstring)."""
    import signal

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the request above took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watchdog").start()


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(WATCHDOG_SECONDS)
        if os.getppid() != parent_pid:
            os._exit(1)


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


def execute(
    tasks: list[tuple], workers: int, backend: str, scheduler: str | None
) -> Iterator[dict[str, Any]]:
    """Yield ``process_image`` results in completion order, keeping at most ``2 * workers`` tasks in flight."""
    if backend == "dask":
        yield from execute_dask(tasks, workers, scheduler)
        return
    from granseg.pseudo.pipeline import process_image

    if workers == 1:
        for task in tasks:
            yield process_image(*task)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    with _single_threaded_children():
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=die_with_parent,
            initargs=(os.getpid(),),
        )
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


def execute_dask(tasks: list[tuple], workers: int, scheduler: str | None) -> Iterator[dict[str, Any]]:
    from granseg.pseudo.pipeline import process_image

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
