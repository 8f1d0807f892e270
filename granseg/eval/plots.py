"""Figures for evaluation reports without touching matplotlib's global state.

Figures are built with the object-oriented API (``matplotlib.figure.Figure`` on its own ``FigureCanvasAgg``), so
no backend is selected for the process (``matplotlib.use`` is never called) and no figure is registered with
pyplot: a caller's interactive backend and open figures are left as they were. Files are written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any


def new_figure(width: float, height: float, dpi: int = 120) -> tuple[Any, Any] | None:
    """``(figure, axes)`` of a ``width x height`` inch figure on an Agg canvas; None when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def save_figure(figure: Any, path: str | Path) -> Path:
    """Write ``figure`` as a PNG to ``path`` atomically (tight layout)."""
    from granseg.io.files import atomic_write_bytes

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())
