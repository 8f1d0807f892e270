"""``granseg serve``: the local web app (click, slide g, annotate several objects, export). Needs ``[app]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "serve",
        parents=[common],
        help="local web app: click, slide the granularity, annotate objects, export (needs granseg[app])",
        description=(
            "Serve the annotation app on http://HOST:PORT (127.0.0.1 by default: only this computer can reach it). "
            "Committed objects are autosaved in --workdir; see docs/app.md."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, local only)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument(
        "--images", type=Path, default=None, metavar="DIR", help="folder to browse (confined)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="uploads, autosaved objects (default $GRANSEG_HOME/app)"
    )
    parser.add_argument("--max-upload-mb", type=float, default=25.0, help="largest upload (default 25 MB)")
    parser.add_argument("--max-pixels", type=int, default=40_000_000, help="largest image (default 40 MP)")
    parser.add_argument("--max-pending", type=int, default=16, help="queued model requests before 503")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads for the model (default: torch's; 1 on a busy machine)",
    )
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    """An :class:`~granseg.app.AppConfig` from the parsed flags (checked; InputError on bad values)."""
    from granseg.app.config import AppConfig
    from granseg.errors import InputError

    if args.images is not None and not args.images.is_dir():
        raise InputError(f"--images {args.images} is not a folder")
    if not 0 <= args.port <= 65535:
        raise InputError("--port must be between 0 and 65535")
    if args.max_upload_mb <= 0 or args.max_pixels <= 0 or args.max_pending < 1 or args.threads < 0:
        raise InputError("--max-upload-mb, --max-pixels, --max-pending and --threads must be positive")
    return AppConfig(
        model=args.model,
        device=args.device,
        workdir="" if args.workdir is None else str(args.workdir),
        images_dir=None if args.images is None else str(args.images.resolve()),
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=args.max_pixels,
        max_pending=args.max_pending,
        threads=args.threads,
    )


def run(args: argparse.Namespace) -> int:
    from granseg.cli import info
    from granseg.errors import InputError

    try:
        import uvicorn

        from granseg.app import create_app
    except ImportError as exc:
        raise InputError(
            f"granseg serve needs the [app] extra: pip install 'granseg[app]' ({exc.name} missing)"
        ) from None
    config = build_config(args)
    if config.model == "auto":
        from granseg.models.registry import resolve_auto

        config.model, reason = resolve_auto()
        info(args, f"model: {reason}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: binding {args.host}: other computers on the network can reach this app (no login)",
            file=sys.stderr,
        )
    app = create_app(config)
    port = args.port if args.port else "<free port: see uvicorn's line below>"
    info(args, f"granseg serve: http://{args.host}:{port}/  (Ctrl+C stops; objects autosave)")
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning" if args.quiet else "info",
        limit_concurrency=256,
        timeout_keep_alive=5,
    )
    return 0
