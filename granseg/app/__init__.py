"""``granseg serve``: a local web app to click, slide the granularity, annotate several objects and export.

Layout (one job per module):

* :mod:`granseg.app.config`   ``AppConfig``, the server's typed settings (saved as JSON in the work folder).
* :mod:`granseg.app.images`   image sources: uploads (size/pixel limits) and a folder confined to ``--images DIR``.
* :mod:`granseg.app.engine`   the model, a small LRU of embedded images, and the bounded work queue (503 when full).
* :mod:`granseg.app.render`   masks to PNG overlays and thumbnails for the browser.
* :mod:`granseg.app.sessions` committed objects per image, autosaved atomically (a killed server loses nothing).
* :mod:`granseg.app.export`   COCO RLE JSON (granseg record format), PNG masks (zip), polygons; re-import.
* :mod:`granseg.app.jobs`     whole-image (automatic) segmentation jobs with progress.
* :mod:`granseg.app.server`   the FastAPI routes and the static front-end (plain JS + canvas, no build step).

Coordinates are ``(x, y)`` in pixels of the original image (EXIF orientation applied); masks are ``H x W`` bool.
"""

from __future__ import annotations

from granseg.app.config import AppConfig

__all__ = ["AppConfig", "create_app"]


def create_app(config: AppConfig):
    """The FastAPI application for ``config`` (imports FastAPI lazily: it is the ``[app]`` extra)."""
    from granseg.app.server import create_app as _create

    return _create(config)
