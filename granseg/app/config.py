"""Settings of the web app (``granseg serve``)."""

from __future__ import annotations

from dataclasses import dataclass

from granseg.config import Config


@dataclass
class AppConfig(Config):
    """Typed settings; every limit here is enforced by the server.

    model:            registered name or checkpoint path (``auto``: same resolution as the other subcommands).
    device:           ``auto``, ``cpu``, ``cuda`` or ``mps``.
    workdir:          folder for uploaded images, autosaved objects and exports (``$GRANSEG_HOME/app`` if empty).
    images_dir:       optional folder the browser may list and open (nothing outside it is reachable).
    max_upload_bytes: largest accepted upload (413 above it).
    max_pixels:       largest accepted image, width x height (checked from the header before decoding).
    cache_images:     embedded images kept ready (each holds one predictor's image state).
    max_pending:      compute requests admitted at once (running + waiting); more get 503 with Retry-After.
    max_jobs:         whole-image jobs running or waiting at once; more get 429.
    threads:          torch intra-op threads for the model (0: torch's default). 1 is much faster on a busy
                      machine (measured: benchmarks/results/app.md).
    """

    model: str = "auto"
    device: str = "auto"
    workdir: str = ""
    images_dir: str | None = None
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 40_000_000
    cache_images: int = 4
    max_pending: int = 16
    max_jobs: int = 1
    threads: int = 0
