"""Helpers shared by the subcommands: argument types and output-path checks.

Every subcommand that writes checks its output paths with :func:`writable_path` /
:func:`writable_dir` before any work, so a run is never lost to an output that cannot
be written (issue 9, item 8).  Both try a real write (a temporary file, removed at
once): permission bits say nothing when running as root or on a read-only mount.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from nps.errors import NPSError

if TYPE_CHECKING:  # pragma: no cover
    from nps.constraints import Field


def _probe(folder: Path, what: str) -> None:
    """Raise NPSError unless a file can be created (and removed) in ``folder``."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".nps-write-check.", dir=folder)
    except OSError as exc:
        raise NPSError(f"cannot write {what} ({exc.strerror or exc}); choose a writable folder.") from None
    os.close(fd)
    Path(tmp).unlink(missing_ok=True)


def writable_path(path: str, suffix: str | None = None) -> Path:
    """Check before any work that the file ``path`` can be written (so no work is lost).

    Refuses, in one line: an empty path, a wrong suffix, a path that is a folder or
    another non-file, a folder that does not exist, and a folder or file that cannot be
    written.
    """
    if not str(path).strip():
        raise NPSError("an output path is empty; give a file name.")
    p = Path(path).expanduser()
    if suffix and p.suffix != suffix:
        raise NPSError(f"output '{str(p)[:200]}' must end in {suffix}.")
    try:
        return _writable_path(p, suffix)
    except OSError as exc:  # stat() of a path too long, or in a folder that cannot be searched
        raise NPSError(f"cannot write '{str(p)[:200]}' ({exc.strerror or exc}); choose another path.") from None


def _writable_path(p: Path, suffix: str | None) -> Path:
    from nps.cache import check_name
    check_name(p)
    if p.is_dir():
        raise NPSError(f"output '{p}' is a folder; give a file name inside it (e.g. {p / ('out' + (suffix or ''))}).")
    if p.exists() and not p.is_file():
        raise NPSError(f"output '{p}' exists and is not a regular file; choose another path.")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise NPSError(f"cannot write '{p}': folder '{folder}' does not exist; create it first.")
    if p.exists() and not os.access(p, os.W_OK):
        raise NPSError(f"cannot write '{p}': permission denied; choose a writable path.")
    _probe(folder, f"'{p}'")
    return p


def writable_dir(path: str) -> Path:
    """Create the output folder ``path`` if needed and check it can be written (before any work)."""
    if not str(path).strip():
        raise NPSError("an output folder is empty; give a folder name.")
    p = Path(path).expanduser()
    try:
        if p.exists() and not p.is_dir():
            raise NPSError(f"output folder '{p}' exists and is not a folder; choose another path.")
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NPSError(f"cannot create folder '{p}' ({exc.strerror}); choose a writable path.") from None
    _probe(p, f"into '{p}'")
    return p


def positive(value: int | None, flag: str, minimum: int = 1, maximum: int | None = None) -> None:
    """Raise NPSError unless ``value`` (None: unset) is an int in minimum..maximum."""
    if value is None:
        return
    if value < minimum or (maximum is not None and value > maximum):
        hi = f"..{maximum}" if maximum is not None else " or more"
        raise NPSError(f"{flag} {value} is out of range; use {minimum}{hi}.")


def constraints_help() -> str:
    """``--constraints``'s help, from the registry: every constraint's name, title and what it does."""
    from nps.constraints import names, registered
    each = "; ".join(f"{c.name} ({c.title}): {c.help}" for c in registered())
    return (f"comma list of {', '.join(names())} (default: %(default)s): {each}; "
            "e.g. ssd (texture), ssd,loc, ssd,loc,ssl (full model)")


def field_help(f: Field, default: object = "table") -> str:
    """A field's help (:class:`nps.constraints.Field`); ``default=None`` drops the default it names."""
    text = constraints_help() if f.name == "constraints" else f.help
    if default is None:
        text = text.replace(" (default: %(default)s)", "").replace(" (default: %(default)g)", "")
    return text


def add_field_arg(p: argparse.ArgumentParser | argparse._ArgumentGroup, f: Field, **override: object) -> None:
    """Add the flag of one GenerationConfig field (:data:`nps.config.FIELDS`) to a parser or group.

    Its type, default, choices and help come from the field; ``override`` replaces any
    keyword (e.g. ``default=None`` for a command whose default means "the engine's").
    """
    kw: dict = {"default": ",".join(f.default) if f.kind == "tuple" else f.default}
    if f.kind == "bool":
        kw["action"] = "store_true" if not f.default else argparse.BooleanOptionalAction
    elif f.kind in ("int", "float"):
        kw["type"] = int if f.kind == "int" else float  # floats become finite_float (nps.cli)
    if f.choices is not None:
        kw["choices"] = f.choices
    if f.metavar:
        kw["metavar"] = f.metavar
    kw.update(override)
    kw["help"] = override.get("help") or field_help(f, kw["default"])
    p.add_argument(f.cli_flag, **kw)


def add_corpus_args(p: argparse.ArgumentParser, default: str = "mnist") -> None:
    """--corpus, --subset and --data-root (:data:`nps.config.FIELDS`)."""
    from nps.config import FIELDS
    from nps.corpora import ENTRIES  # the registry: a new corpus shows up here by itself
    add_field_arg(p, FIELDS["corpus"], default=default,
                  help=f"{', '.join(e.pattern for e in ENTRIES.values())}; a folder may add ?size=S (1..256, "
                       "default 28) and &colour=rgb (default gray), e.g. folder:PATH?size=32&colour=rgb "
                       "(`python -m nps corpora` lists them) (default: %(default)s)")
    add_field_arg(p, FIELDS["subset"])
    add_field_arg(p, FIELDS["data_root"])


def add_device_arg(p: argparse.ArgumentParser) -> None:
    from nps.config import FIELDS
    add_field_arg(p, FIELDS["device"])


def add_record_corpus_args(p: argparse.ArgumentParser) -> None:
    """--corpus and --data-root for commands that read a record's corpus (evaluate, trace)."""
    p.add_argument("--corpus", default=None,
                   help="the corpus to check the record against (default: the record's named corpus); required "
                        "for a folder:PATH corpus, which a record alone never opens")
    p.add_argument("--data-root", default=None,
                   help="extra folder to look for corpus files (also $NPS_DATA_ROOT); a record's own data_root "
                        "is never used")


def record_corpus(record, corpus_flag: str | None, data_root: str | None):
    """The corpus a record was generated from (its name and subset), read from the user's roots only.

    A record never decides where data is read from (issue 9, item 1): its ``data_root``
    is ignored (the roots are ``--data-root`` and ``$NPS_DATA_ROOT``), and its corpus name
    may only pick one of the plain named corpora; a parameterised one (``folder:PATH``,
    whose size and colour options come with it, or ``mnist-deformed:N``) is opened only
    when the user passes the same corpus (in any spelling) with ``--corpus``.

    Raises:
        NPSError: the record names a folder the user did not pass, an unknown corpus, or a
            corpus that does not match the record (size, canvas, ids).
    """
    from nps.corpora import load_corpus, parse_corpus_name
    from nps.provenance import check_fits
    name = record.config.get("corpus")
    if not isinstance(name, str) or not name.strip():
        raise NPSError("the record names no corpus; pass --corpus NAME to say which one it was made on.")
    name = name.strip()  # load_corpus's reading of it (older records kept "digits " as given)
    try:
        parsed = parse_corpus_name(name)
    except NPSError as exc:
        raise NPSError(f"the record's corpus is not one this build reads: {exc}") from None
    # One corpus has several spellings (folder:P?colour=rgb&size=32 is folder:P?size=32&colour=rgb).
    if corpus_flag is not None and parse_corpus_name(corpus_flag).canonical != parsed.canonical:
        raise NPSError(f"--corpus '{corpus_flag}' is not the record's corpus '{name:.200}'; drop --corpus or "
                       "pass the record's own corpus name.")
    if parsed.entry.parameter is not None and corpus_flag is None:  # folder:PATH, mnist-deformed:N
        what = "which folder is read" if parsed.entry.user_path else "what is built"
        raise NPSError(f"the record was made on '{name:.200}'; a record never chooses {what}, so "
                       "pass --corpus with that name to read it if you trust it.")
    corpus = load_corpus(name, subset=record.config.get("subset"), data_root=data_root)
    size = record.config.get("corpus_size")
    if size is not None and size != len(corpus):
        raise NPSError(f"the record was made on a corpus of {size} images but '{name:.200}' here has "
                       f"{len(corpus)}; use the same corpus files (and --data-root) it was made from.")
    check_fits(record, len(corpus), corpus.image_shape, corpus.train_ids)
    return corpus
