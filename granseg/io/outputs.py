"""All-or-nothing output sets: the files one command writes appear together or not at all.

Usage (the CLI's ``segment`` and ``auto``)::

    outputs = OutputSet(inputs=[image_path])
    outputs.reserve(mask_path)          # checked now, before any work: refused with OutputError when it is the
    outputs.reserve(overlay_path)       # input image (also via a symlink / hard link), a folder, reserved twice,
    ...                                 # under a file, or a name too long
    outputs.put(mask_path, png_bytes)   # kept in memory
    outputs.commit()                    # written as one unit

``commit`` writes every file to a fsynced temporary next to its target (``.granseg-tmp-<pid>-*``), then writes a
journal (the list of renames, itself renamed into place), then renames the temporaries over their targets and
deletes the journal. A kill before the journal exists leaves only temporaries (removed by the next run, see
:func:`granseg.io.files.clean_stale_temporaries`); a kill during the renames leaves a journal that the next run
completes (:func:`recover_journals`). Either way no partial set stays behind. ``"-"`` as a path means standard
output (written last, after the files). Special targets (``/dev/null``, a FIFO) are written through, never
replaced; symlinks are followed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from granseg.errors import OutputError
from granseg.io.files import (
    TEMP_PREFIX,
    ensure_dir,
    output_error,
    pid_alive,
    resolve_target,
    temp_name,
    temp_owner,
    write_temp,
    write_through,
)

STDOUT = "-"
NAME_MAX = 255
_JOURNAL_TAG = "journal-"


def is_stdout(path: str | Path | None) -> bool:
    return path is not None and str(path) == STDOUT


class OutputSet:
    """The files of one command; see the module docstring. Paths are as the user gave them."""

    def __init__(self, inputs: list[str | Path] = ()) -> None:
        self._inputs = [Path(p) for p in inputs]
        self._targets: dict[str, tuple[Path, str, Path]] = {}  # key -> (real path, kind, path as given)
        self._data: dict[str, bytes] = {}

    @staticmethod
    def _key(path: str | Path) -> str:
        return STDOUT if is_stdout(path) else os.path.realpath(path)

    def reserve(self, path: str | Path) -> None:
        """Check that ``path`` can be one of this set's outputs; raises :class:`OutputError` when not."""
        key = self._key(path)
        if key in self._targets:
            raise OutputError(f"two outputs would be written to {path}")
        if key == STDOUT:
            self._targets[key] = (Path(STDOUT), "stdout", Path(STDOUT))
            return
        path = Path(path)
        if len(os.fsencode(path.name)) > NAME_MAX:
            raise OutputError(f"cannot write {path}: file name too long")
        for source in self._inputs:
            if _same_file(path, source):
                raise OutputError(f"output {path} is the input image {source}: refusing to overwrite it")
        real, kind = resolve_target(path)
        if kind == "file":
            _check_parent(real)
        self._targets[key] = (real, kind, path)

    def put(self, path: str | Path, data: bytes) -> None:
        """Keep ``data`` for ``path`` (reserved now if it was not)."""
        key = self._key(path)
        if key not in self._targets:
            self.reserve(path)
        self._data[key] = bytes(data)

    def commit(self) -> list[Path]:
        """Write every file given to :meth:`put` as one unit; returns the paths as given (files first, then
        standard output). Raises :class:`OutputError`, leaving no new file, when a write fails."""
        files = [(k, *self._targets[k]) for k in self._data if self._targets[k][1] == "file"]
        staged: list[tuple[Path, Path, Path]] = []  # (temporary, real target, path as given)
        journal = None
        try:
            for key, real, _, shown in files:
                ensure_dir(real.parent)
                try:
                    staged.append((write_temp(real.parent, self._data[key]), real, shown))
                except OSError as exc:
                    raise output_error(shown, exc) from None
            if len(staged) > 1:
                journal = _write_journal(staged[0][1].parent, [(t, r) for t, r, _ in staged])
            for tmp, real, shown in staged:
                try:
                    os.replace(tmp, real)
                except OSError as exc:
                    raise output_error(shown, exc) from None
        except BaseException:
            for tmp, _, _ in staged:
                tmp.unlink(missing_ok=True)
            raise
        finally:
            if journal is not None:
                journal.unlink(missing_ok=True)
        written = [shown for _, _, shown in staged]
        for key, (real, kind, shown) in self._targets.items():
            if key in self._data and kind in ("device", "fifo"):
                write_through(real, kind, self._data[key], shown)
                written.append(shown)
        if STDOUT in self._data:
            sys.stdout.buffer.write(self._data[STDOUT])
            sys.stdout.buffer.flush()
            written.append(Path(STDOUT))
        return written


def _same_file(a: Path, b: Path) -> bool:
    """``a`` and ``b`` name one file: same real path, or the same inode (a hard link)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_parent(real: Path) -> None:
    """The nearest existing ancestor of ``real`` must be a writable folder."""
    parent = real.parent
    while not parent.exists() and parent != parent.parent:
        if parent.is_symlink():
            break
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {real}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {real}: permission denied in {parent}")


def _write_journal(directory: Path, renames: list[tuple[Path, Path]]) -> Path:
    """The pending renames as JSON, renamed into place (so it is either absent or complete)."""
    import secrets

    text = json.dumps({"renames": [[str(t), str(r)] for t, r in renames]}) + "\n"
    tmp = write_temp(directory, text.encode(), tag="j")
    journal = directory / f"{temp_name(_JOURNAL_TAG)}{secrets.token_hex(4)}.json"
    os.replace(tmp, journal)
    return journal


def recover_journals(directory: str | Path) -> list[Path]:
    """Complete the output sets whose process was killed during its renames (journals in ``directory`` of a
    process that no longer runs). Returns the files completed."""
    completed = []
    for journal in Path(directory).glob(f"{TEMP_PREFIX}*-{_JOURNAL_TAG}*.json"):
        pid = temp_owner(journal.name)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        try:
            renames = json.loads(journal.read_text())["renames"]
        except (OSError, ValueError, KeyError, TypeError):
            renames = []
        for tmp, real in renames:
            tmp_path = Path(tmp)
            if tmp_path.is_file() and temp_owner(tmp_path.name) == pid:
                os.replace(tmp_path, real)
                completed.append(Path(real))
        journal.unlink(missing_ok=True)
    return completed


def format_granularity(g: float) -> str:
    """``g`` as written in file names: up to 4 decimals, at least one (0.1 -> "0.1", 0.95 -> "0.95", 1 -> "1.0")."""
    text = f"{float(g):.4f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def level_path(out: str | Path, g: float) -> Path:
    """``NAME_g<g>.EXT`` next to ``out`` (``masks.png``, 0.95 -> ``masks_g0.95.png``)."""
    out = Path(out)
    return out.with_name(f"{out.stem}_g{format_granularity(g)}{out.suffix}")
