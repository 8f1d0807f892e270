"""Progress bars on stderr: shown on a terminal, hidden when stderr is not a TTY or when ``quiet``."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def progress(
    iterable: Iterable[T], desc: str = "", total: int | None = None, quiet: bool = False
) -> Iterable[T]:
    from tqdm.auto import tqdm

    disable = quiet or not sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, disable=disable, file=sys.stderr, dynamic_ncols=True)
