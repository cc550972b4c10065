"""``python -m nps``: the command line.

Each subcommand lives in its own module under :mod:`nps.cli` and exposes
``register(subparsers)``, which adds a parser whose default ``func`` is
``run(args) -> int``.  Errors the user can fix (:class:`nps.errors.NPSError`)
print one line and exit 2, never a traceback; so do argparse's own errors
(bad flags, wrong types), and every ``float`` flag refuses NaN and infinities.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import sys

from nps import __version__
from nps.errors import NPSError

COMMANDS = (
    "generate", "corpora", "bench", "cache", "index", "train_encoder", "embed", "encoder_eval",
    "train_classifier", "evaluate", "ablate", "sweep", "trace", "merge", "baselines", "scale", "lessons",
)


def finite_float(text: str) -> float:
    """argparse type: a finite float (``nan``, ``inf`` and overflowing values such as 1e400 are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"'{text}' is not a finite number")
    return value


def _one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(text.split())


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, as the README promises.

    argparse prints a usage block and then the error; a user sees the one line that
    says what was wrong, with a pointer to ``--help`` for the usage.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {_one_line(message)} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _finite_floats(parser: argparse.ArgumentParser) -> None:
    """Give every ``float`` flag of ``parser`` and its subcommands the finite-float type.

    One place, so that no subcommand can forget it: no flag of this CLI means anything
    at NaN or infinity, and letting them through is how NaN weights and empty pools
    were made (issue 9).
    """
    for action in parser._actions:
        if action.type is float:
            action.type = finite_float
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _finite_floats(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m nps",
        description="NPS lab: white-box image generation by non-parametric sampling "
                    "(Efros-Leung windows + locality + a self-supervised representation), "
                    "with every pixel traced to the training image it came from.",
        epilog="Run `python -m nps COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"nps {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    # Subparsers inherit the parser class, so every subcommand's errors are one line too.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"nps.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"nps.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    _finite_floats(parser)
    return parser


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
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; no file was left half-written (outputs already finished are complete).",
              file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory; lower --n or --batch-size (or use --subset).", file=sys.stderr)
        return 2
    except Exception as exc:
        # A bug, not the user's input: still one line (the README's promise), and the
        # traceback for whoever debugs it with -v.  Exit 1, not 2, so that tests which
        # expect a handled input error (exit 2) still catch the bug.
        if args.verbose:
            raise
        print(f"error: internal error ({type(exc).__name__}: {_one_line(str(exc))}); this is a bug; "
              "rerun with -v for the traceback and report it.", file=sys.stderr)
        return 1
