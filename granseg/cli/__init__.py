"""The ``granseg`` command. One module per subcommand group under ``granseg/cli/``; each exposes
``register(subparsers, common)`` which adds its parser(s) and sets ``func`` to a callable taking the parsed
args and returning an exit code. ``common`` holds every common flag (``--model``, ``--device``, ``--quiet``,
``--debug``); a subcommand that does not use all of them takes ``common_flags(model=..., device=...)`` instead,
so that it offers only the flags it uses.

Errors: anything derived from :class:`granseg.errors.InputError` (and argument errors) prints one line
``error: ...`` on stderr and exits 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order `granseg --help` lists them. Add one line per new module.
SUBCOMMAND_MODULES = [
    "granseg.cli.segment",
    "granseg.cli.auto",
    "granseg.cli.models",
    "granseg.cli.convert",
    "granseg.cli.train",
    "granseg.cli.pseudo",
    "granseg.cli.eval",
    "granseg.cli.video",
    "granseg.cli.serve",
]


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line ``error: ...`` and exit code 2 (no usage dump)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def common_flags(model: bool = True, device: bool = True) -> argparse.ArgumentParser:
    """A parent parser with ``--quiet`` and ``--debug``, plus ``--model`` / ``--device`` when asked for."""
    parent = argparse.ArgumentParser(add_help=False)
    if model:
        parent.add_argument(
            "--model", default="auto", help="registered name or checkpoint path (default: auto)"
        )
    if device:
        parent.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parent.add_argument("--quiet", action="store_true", help="no progress bars or informational messages")
    parent.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parent


def common_parent() -> argparse.ArgumentParser:
    """Every common flag (for subcommands that run a model)."""
    return common_flags(model=True, device=True)


def build_parser() -> argparse.ArgumentParser:
    from granseg import __version__

    parser = _Parser(prog="granseg", description="Segmentation at any granularity.")
    parser.add_argument("--version", action="version", version=f"granseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for module_name in SUBCOMMAND_MODULES:
        # A fresh parent per module: argparse shares parent actions by reference, so a module's set_defaults()
        # on a common flag would otherwise change that flag's default for every subcommand.
        importlib.import_module(module_name).register(subparsers, common_parent())
    return parser


def main(argv: list[str] | None = None) -> int:
    from granseg.errors import GransegError, InputError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (InputError, OSError) as exc:  # OSError: a filesystem failure (disk full, read-only, ...)
        if getattr(args, "debug", False):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    except GransegError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def info(args: argparse.Namespace, message: str) -> None:
    """Informational line on stderr unless --quiet."""
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
