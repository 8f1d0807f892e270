"""One run per output folder: an exclusive ``flock`` on ``LABELS_DIR/.granseg.lock`` holding the owner's PID.

A second run into the same folder stops at once with an error naming the holder's PID. The kernel releases the
lock when the holder exits, however it exits (a crash, SIGKILL, the OOM killer), so a stale lock file never
blocks a later run; the file itself stays (it is empty of meaning without the lock). Worker processes do not
inherit the lock (they are spawned, not forked, and the descriptor is close-on-exec).
"""

from __future__ import annotations

import os
from pathlib import Path

from granseg.errors import InputError

LOCK_FILE = ".granseg.lock"


class OutputLock:
    """``with OutputLock(out_dir): ...``; raises :class:`InputError` when another process holds the folder."""

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> OutputLock:
        import fcntl

        from granseg.io.files import output_error

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise output_error(self.path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise InputError(
                f"{self.path.parent} is in use by another granseg run (PID {holder}); wait for it to finish "
                "or use another --out"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()
