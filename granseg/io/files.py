"""Safe file writes: atomic replacement of regular files, write-through of special files, one error type.

``atomic_write_bytes`` writes to a temporary file in the target's directory (named ``.granseg-tmp-<pid>-*``, see
:data:`TEMP_PREFIX`), fsyncs it, then ``os.replace``\\ s it over the target: a reader never sees a half-written
file and a crash leaves either the old file or the new one. Targets that are not regular files are never
replaced: a symlink is followed (its target is written, the link stays), a character device (``/dev/null``) or a
FIFO with a reader is written through, anything else (a directory, a socket, a FIFO nobody reads) is refused.

Every filesystem failure (disk full, read-only filesystem, permission denied, name too long, a parent that is a
file) becomes an :class:`~granseg.errors.OutputError` naming the path: the CLI prints it as one ``error:`` line.
Temporaries left by a killed process are removed by :func:`clean_stale_temporaries` (only ours, only those of
processes that no longer run).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from granseg.errors import OutputError

TEMP_PREFIX = ".granseg-tmp-"  # every temporary this package creates starts with this (then "<pid>-")
TEMP_SUFFIX = ".tmp"


def _default_file_mode() -> int:
    """The mode ``open()`` would give a new file (0o666 less the umask); mkstemp alone gives 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()


def output_error(path: str | Path, exc: OSError) -> OutputError:
    """One-line :class:`OutputError` for a failed write of ``path``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ENAMETOOLONG:
        reason = "file name too long"
    return OutputError(f"cannot write {path}: {reason}")


def ensure_dir(path: str | Path) -> Path:
    """``mkdir -p`` that raises :class:`OutputError` (a parent that is a file, read-only, ...)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot create folder {path}: a file of that name exists") from None
    except OSError as exc:
        raise output_error(path, exc) from None
    return path


def resolve_target(path: str | Path) -> tuple[Path, str]:
    """Where a write to ``path`` lands and how: ``(real path, kind)`` with kind ``"file"`` (absent or a regular
    file: atomic replace), ``"device"`` (character device: write through) or ``"fifo"`` (write through).
    Symlinks are followed. Raises :class:`OutputError` for directories, sockets and block devices."""
    path = Path(path)
    real = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return real, "file"
    except OSError as exc:
        raise output_error(path, exc) from None
    if stat.S_ISREG(mode):
        return real, "file"
    if stat.S_ISCHR(mode):
        return real, "device"
    if stat.S_ISFIFO(mode):
        return real, "fifo"
    kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
    raise OutputError(f"cannot write {path}: {kind}")


def temp_name(tag: str = "") -> str:
    """A prefix for a temporary of this process: ``.granseg-tmp-<pid>-<tag>``."""
    return f"{TEMP_PREFIX}{os.getpid()}-{tag}"


def write_through(real: Path, kind: str, data: bytes, shown: Path) -> None:
    """Write into an existing device or FIFO without replacing it (a FIFO without a reader is refused)."""
    flags = os.O_WRONLY | (os.O_NONBLOCK if kind == "fifo" else 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OutputError(f"cannot write {shown}: a FIFO that nobody reads") from None
        raise output_error(shown, exc) from None
    try:
        os.set_blocking(fd, True)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise output_error(shown, exc) from None
    finally:
        os.close(fd)


def write_temp(directory: Path, data: bytes, tag: str = "") -> Path:
    """``data`` in a new fsynced temporary file of ``directory`` (mode as ``open()`` would give)."""
    fd, tmp = tempfile.mkstemp(prefix=temp_name(tag), suffix=TEMP_SUFFIX, dir=directory)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parent directories are created); see the module docstring.
    Returns ``path``. Raises :class:`OutputError` on any filesystem failure."""
    path = Path(path)
    real, kind = resolve_target(path)
    if kind != "file":
        write_through(real, kind, data, path)
        return path
    ensure_dir(real.parent)
    tmp = None
    try:
        tmp = write_temp(real.parent, data)
        os.replace(tmp, real)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise output_error(path, exc) from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = None) -> Path:
    """Serialise ``obj`` to JSON (numpy scalars/arrays converted) and write it atomically."""
    return atomic_write_text(path, json_text(obj, indent))


def json_text(obj: Any, indent: int | None = None) -> str:
    """``obj`` as JSON text ending in a newline (numpy scalars/arrays and paths converted)."""
    return json.dumps(obj, indent=indent, default=_json_default) + "\n"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_owner(name: str) -> int | None:
    """The PID in a name made by :func:`temp_name`, or None for any other name."""
    if not name.startswith(TEMP_PREFIX):
        return None
    head = name[len(TEMP_PREFIX) :].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def clean_stale_temporaries(directory: str | Path) -> list[Path]:
    """Remove this package's temporaries in ``directory`` whose process no longer runs (a killed write);
    never touches other files. A pending output set (see :mod:`granseg.io.outputs`) is completed first.
    Returns the removed paths."""
    from granseg.io.outputs import recover_journals

    directory = Path(directory)
    if not directory.is_dir():
        return []
    recover_journals(directory)
    removed = []
    for entry in directory.iterdir():
        pid = temp_owner(entry.name)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        if entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
