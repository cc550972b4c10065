"""Helpers shared by the subcommands: argument types and output-path checks."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nps.errors import NPSError


def writable_path(path: str, suffix: str | None = None) -> Path:
    """Check before any work that ``path`` can be written (so no work is lost)."""
    p = Path(path)
    if suffix and p.suffix != suffix:
        raise NPSError(f"output '{p}' must end in {suffix}.")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise NPSError(f"cannot write '{p}': folder '{folder}' does not exist; create it first.")
    if not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise NPSError(f"cannot write '{p}': permission denied; choose a writable path.")
    return p


def writable_dir(path: str) -> Path:
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NPSError(f"cannot create folder '{p}' ({exc.strerror}); choose a writable path.") from None
    if not os.access(p, os.W_OK):
        raise NPSError(f"cannot write into '{p}': permission denied; choose a writable folder.")
    return p


def add_corpus_args(p: argparse.ArgumentParser, default: str = "mnist") -> None:
    p.add_argument("--corpus", default=default,
                   help="mnist, fashion-mnist, cifar10, digits or folder:PATH (default: %(default)s)")
    p.add_argument("--subset", type=int, default=None, help="use a class-stratified subset of N train images")
    p.add_argument("--data-root", default=None, help="extra folder to look for corpus files")


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
