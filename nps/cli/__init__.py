"""``python -m nps``: the command line.

Each subcommand lives in its own module under :mod:`nps.cli` and exposes
``register(subparsers)``, which adds a parser whose default ``func`` is
``run(args) -> int``.  Errors the user can fix (:class:`nps.errors.NPSError`)
print one line and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from nps import __version__
from nps.errors import NPSError

COMMANDS = (
    "generate", "corpora", "bench", "cache", "train_encoder", "embed", "encoder_eval",
    "train_classifier", "evaluate", "ablate", "sweep", "trace", "merge", "scale",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nps",
        description="NPS lab: white-box image generation by non-parametric sampling "
                    "(Efros-Leung windows + locality + a self-supervised representation), "
                    "with every pixel traced to the training image it came from.",
        epilog="Run `python -m nps COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"nps {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"nps.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"nps.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


class _OneLineParser(argparse.ArgumentParser):
    """argparse already exits 2 with a usage line on bad flags; keep that."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NPSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written.", file=sys.stderr)
        return 130
