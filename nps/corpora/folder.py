"""``folder:PATH[?size=S&colour=gray|rgb]``: a folder of images, one subfolder per class, at a chosen size and colour.

The options ride in the corpus name itself, so every surface that carries a corpus
name (``--corpus``, a record's ``config.corpus``, the app's sidebar) carries them too,
and a record names exactly the images it was made on:

==========  ========  ==============================================================
option      default   meaning
==========  ========  ==============================================================
``size``    28        side S every image is resized to (bilinear), 1..256: S x S canvases
``colour``  gray      ``gray``: (N,S,S) uint8, luma L = (299 R + 587 G + 114 B) / 1000 (Pillow's
                      ``convert("L")``); ``rgb``: (N,S,S,3) uint8, channels as stored
==========  ========  ==============================================================

``color`` is accepted for ``colour`` and ``grey`` for ``gray``.  The canonical
spelling (:attr:`nps.corpora.registry.CorpusName.canonical`) lists only options that differ from the defaults, in
the order above, so ``folder:P`` (all defaults) is what every earlier record says, and
``folder:P?colour=rgb&size=32`` and ``folder:P?size=32&color=rgb`` are one corpus:
``folder:P?size=32&colour=rgb``.
"""

from __future__ import annotations

from pathlib import Path

from nps.corpora.base import Corpus, frozen_corpus
from nps.corpora.image_folder import MAX_SIZE, read_image_folder
from nps.errors import NPSError

PREFIX = "folder:"
#: option -> default, in canonical order.
DEFAULTS: dict[str, object] = {"size": 28, "colour": "gray"}
COLOURS = ("gray", "rgb")
_KEY_ALIASES = {"color": "colour"}
_VALUE_ALIASES = {"grey": "gray", "rgb": "rgb", "gray": "gray"}
HOW_TO_GET_FOLDER = ("pass folder:PATH where PATH holds one subfolder of images per class; add "
                     f"?size=S (1..{MAX_SIZE}, default 28) and &colour=rgb for colour (default gray), "
                     "e.g. folder:PATH?size=32&colour=rgb.")
USAGE = f"folder corpora take size=1..{MAX_SIZE} and colour=gray|rgb, e.g. folder:PATH?size=32&colour=rgb"


def printable(text: object, limit: int = 200) -> str:
    """``text`` for a one-line message: control characters (a newline in a name) escaped, at most ``limit`` chars."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text)[:limit])


def _size(value: object, where: str) -> int:
    """The image side from ``size=`` text or an int; one NPSError line (naming "image size") otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise NPSError(f"image size {value!r} in '{where}' is not a whole number; {USAGE}.")
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            raise NPSError(f"image size '{printable(text, 40)}' in '{where}' is not a whole number; {USAGE}.")
        value = int(text)
    if not 1 <= value <= MAX_SIZE:
        raise NPSError(f"image size {value} in '{where}' is out of range; {USAGE}.")
    return value


def _colour(value: object, where: str) -> str:
    if isinstance(value, bool):  # load_corpus(color=True) from library callers
        return "rgb" if value else "gray"
    text = str(value).strip().lower()
    if text not in _VALUE_ALIASES:
        raise NPSError(f"colour '{printable(value, 40)}' in '{where}' is unknown; {USAGE}.")
    return _VALUE_ALIASES[text]


_PARSE = {"size": _size, "colour": _colour}


def parse_options(query: str, where: str) -> dict[str, object]:
    """``size=32&colour=rgb`` -> {"size": 32, "colour": "rgb"} (every option, defaults filled in).

    Raises:
        NPSError: one line for a part that is not key=value, an unknown or repeated key, or a bad value.
    """
    out = dict(DEFAULTS)
    seen: set[str] = set()
    for part in query.split("&") if query else []:
        key, eq, value = part.partition("=")
        key = _KEY_ALIASES.get(key.strip().lower(), key.strip().lower())
        if not eq:
            raise NPSError(f"corpus option '{printable(part, 40)}' in '{where}' is not key=value; {USAGE}.")
        if key not in _PARSE:
            raise NPSError(f"unknown corpus option '{printable(key, 40)}' in '{where}'; {USAGE}.")
        if key in seen:
            raise NPSError(f"corpus option '{key}' is given twice in '{where}'; give it once.")
        seen.add(key)
        out[key] = _PARSE[key](value, where)
    return out


def with_overrides(options: dict[str, object], image_size: int | None, color: bool | None,
                   where: str) -> dict[str, object]:
    """Options with ``load_corpus(image_size=, color=)`` (library callers) applied on top of the name's.

    A keyword that contradicts an option written in the name is refused rather than guessed.
    """
    out = dict(options)
    for key, value in (("size", image_size), ("colour", color)):
        if value is None:
            continue
        parsed = _PARSE[key](value, where)
        if out[key] != DEFAULTS[key] and out[key] != parsed:
            raise NPSError(f"'{where}' says {key}={out[key]} but the call asks for {key}={parsed}; give it once.")
        out[key] = parsed
    return out


def check_path(path: str) -> None:
    if not path.strip():  # Path("") is ".", the current directory: never read that by accident
        raise NPSError("--corpus folder: needs a path; give folder:PATH with one subfolder of images per class.")


def load_folder(name: str, path: str, options: dict[str, object]) -> Corpus:
    """The whole folder corpus ``name`` (canonical) read at ``options``' size and colour."""
    folder = Path(path).expanduser()
    mode = "RGB" if options["colour"] == "rgb" else "L"
    arrays, classes = read_image_folder(folder, int(options["size"]), mode)  # type: ignore[call-overload]
    return frozen_corpus(name, arrays, classes, str(folder))
