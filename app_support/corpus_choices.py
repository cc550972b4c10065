"""Which folder corpora the app offers, and at which sizes and colours (no streamlit here).

The app never reads a folder path from a visitor.  The server's operator lists folders
in ``$NPS_APP_FOLDERS`` (separated by ``os.pathsep``, as in ``PATH``); each becomes a
corpus in the sidebar, where a visitor picks its image size from :data:`SIZES` and its
colour from :data:`COLOURS`.  So every folder corpus the app can load is one of
``len(SIZES) * len(COLOURS)`` canonical names per offered folder (:func:`offered`), and
:func:`app_support.limits.check_app_choices` holds every build and every uploaded record to
that list.  The sidebar keeps the folder (``sb_corpus``), the size (``sb_size``) and the
colour (``sb_colour``) apart and mirrors them in the URL as ``corpus``, ``size``, ``colour``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from nps.corpora import canonical_name, parse_corpus_name
from nps.errors import NPSError

log = logging.getLogger(__name__)

ENV = "NPS_APP_FOLDERS"
SIZES = (16, 28, 32, 48, 64)
COLOURS = ("gray", "rgb")
DEFAULT_SIZE, DEFAULT_COLOUR = 28, "gray"


def offered_folders(value: str | None = None) -> list[str]:
    """``folder:PATH`` for each existing folder in ``$NPS_APP_FOLDERS`` (or ``value``), in the order listed.

    An entry that is not a folder, or that carries options of its own (``?``: the sidebar
    chooses those), is left out with a warning in the server log.
    """
    raw = os.environ.get(ENV, "") if value is None else value
    out: list[str] = []
    for part in (p.strip() for p in raw.split(os.pathsep)):
        if not part:
            continue
        if "?" in part or not Path(part).expanduser().is_dir():
            log.warning("%s: %r is not a folder without options; left out of the app's corpora", ENV, part)
            continue
        name = f"folder:{part}"
        if name not in out:
            out.append(name)
    return out


def folder_name(base: str, size: int, colour: str) -> str:
    """The canonical corpus name of an offered folder at ``size`` and ``colour`` (what pages and records use)."""
    return canonical_name(f"{base}?size={size}&colour={colour}")


def split(name: str) -> tuple[str, int, str] | None:
    """(``folder:PATH``, size, colour) of a folder corpus name, or None for any other corpus."""
    try:
        parsed = parse_corpus_name(name)
    except NPSError:  # an unreadable name is simply not a folder corpus here
        return None
    if parsed.entry.name != "folder":
        return None
    return f"folder:{parsed.parameter}", int(parsed.options["size"]), str(parsed.options["colour"])


def offered(bases: Iterable[str]) -> list[str]:
    """Every canonical folder corpus name the controls can produce from the offered ``bases``."""
    return [folder_name(b, s, c) for b in bases for s in SIZES for c in COLOURS]


def label(name: str) -> str:
    """How the app shows a corpus: a folder by its last part (never the server's full path), with its
    size and colour when the name has options (``folder: photos, 32×32 rgb``)."""
    parts = split(name)
    if parts is None:
        return name
    base, size, colour = parts
    shown = f"folder: {Path(base.removeprefix('folder:')).name or base}"
    return shown if "?" not in name else f"{shown}, {size}×{size} {colour}"


def from_query(size: object, colour: object) -> tuple[int, str, list[str]]:
    """The size and colour a link asks for (``?size=32&colour=rgb``), falling back with a note when not offered."""
    notes = []
    out_size, out_colour = DEFAULT_SIZE, DEFAULT_COLOUR
    if size is not None:
        try:
            out_size = SIZES[SIZES.index(int(str(size)))]
        except ValueError:
            notes.append(f"image size from the link is not one of {', '.join(map(str, SIZES))}; using {DEFAULT_SIZE}.")
    if colour is not None:
        if str(colour) in COLOURS:
            out_colour = str(colour)
        else:
            notes.append(f"colour from the link is not {' or '.join(COLOURS)}; using {DEFAULT_COLOUR}.")
    return out_size, out_colour, notes
