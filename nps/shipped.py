"""Where trained weights live, which file is used, and the checksum manifest of the shipped ones.

A light module (no torch), so that choosing the default encoder can ask whether
weights ship without loading anything.

Lookup order for the weights of a kind ("simclr", "classifier") and a corpus, when
no explicit file is given (an explicit file, such as ``encoder-eval --weights``,
bypasses the lookup):

1. **shipped**: ``nps/weights/<kind>-<corpus>.safetensors``, tracked in git and listed
   with its sha256 in ``nps/weights/MANIFEST.json``.  It is verified before use (hashed
   once per process per file version); a mismatch is an error that says how to restore
   the file, never a silent fall-through to the next entry.
2. **trained**: ``<cache>/weights/<kind>-<corpus>.safetensors``, where
   ``train-encoder``/``train-classifier`` (and the app's Train button) write by default.
   Shipped weights win while they exist, so a quick training run never changes what the
   defaults (and every record made with them) mean; ``--replace-shipped`` installs a
   trained file as the shipped one and updates the manifest.
3. **absent** (the classifier for ``digits`` is then trained on the fly and cached).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from nps.errors import NPSError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST_NAME = "MANIFEST.json"
MANIFEST_FORMAT = "nps-weights-manifest-1"
_PROJECT = Path(__file__).resolve().parents[1]
_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def _file_name(kind: str, corpus_name: str) -> str:
    safe = corpus_name.replace("/", "_").replace(":", "_")
    return f"{kind}-{safe}.safetensors"


def shipped_weights(kind: str, corpus_name: str) -> Path:
    """The path of the shipped ``kind`` ("simclr", "classifier") weights for a corpus, present or not."""
    return WEIGHTS_DIR / _file_name(kind, corpus_name)


def trained_weights(kind: str, corpus_name: str) -> Path:
    """Where user-trained weights for a corpus go by default: ``<cache>/weights/<kind>-<corpus>.safetensors``."""
    from nps.cache import cache_root
    return cache_root() / "weights" / _file_name(kind, corpus_name)


def is_shipped_path(path: Path) -> bool:
    """Whether ``path`` lies in the shipped-weights folder (only ``--replace-shipped`` writes there)."""
    try:
        return Path(path).resolve().parent == WEIGHTS_DIR.resolve()
    except OSError:
        return False


def _shown(path: Path) -> str:
    """``nps/weights/NAME`` for files of this checkout (what ``git checkout --`` takes), else the path."""
    try:
        return str(Path(path).resolve().relative_to(_PROJECT))
    except ValueError:
        return str(path)


def file_digest(path: Path) -> str:
    """sha256 (hex) of a file, computed once per process per version of the file (inode, size, times)."""
    from nps.cache import file_sha256
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_sha256(Path(path))
    return _DIGESTS[key]


def read_manifest() -> dict[str, dict]:
    """``{file name: {"sha256": hex, "bytes": n}}`` from ``nps/weights/MANIFEST.json`` ({} if it is absent).

    Raises:
        NPSError: the manifest exists but is not one this version wrote.
    """
    return read_manifest_file(WEIGHTS_DIR / MANIFEST_NAME, MANIFEST_FORMAT, "weights manifest")


def read_manifest_file(path: Path, fmt: str, what: str) -> dict[str, dict]:
    """The ``files`` table of a shipped-files manifest (weights, lesson records); {} if it is absent.

    Every entry must be a dict with a ``sha256`` string; the document's ``format`` must be ``fmt``.

    Raises:
        NPSError: the manifest exists but is damaged (one line naming it and how to restore it).
    """
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
        files = doc["files"]
        if doc.get("format") != fmt or not isinstance(files, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in files.values()):
            raise ValueError("unexpected layout")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:  # deep nesting: RecursionError
        raise NPSError(f"the {what} '{_shown(path)}' is damaged ({exc}); restore it with "
                       f"`git checkout -- {_shown(path)}`.") from None
    return files


def verify_shipped(path: Path) -> None:
    """Check a file in the shipped folder against its sha256 in the manifest.

    Raises:
        NPSError: the file is not listed, or its content changed; the line names the file
            and how to restore it.
    """
    path = Path(path)
    files = read_manifest()
    manifest = WEIGHTS_DIR / MANIFEST_NAME
    entry = files.get(path.name)
    if entry is None:
        if not manifest.is_file():
            raise NPSError(f"the weights manifest '{_shown(manifest)}' is missing, so '{_shown(path)}' cannot be "
                           f"verified; restore it with `git checkout -- {_shown(manifest)}`.")
        raise NPSError(f"'{_shown(path)}' is not listed in {manifest.name}, so it is not a shipped file; move it "
                       "to the cache's weights/ folder to use it as trained weights, or delete it.")
    if file_digest(path) != entry["sha256"]:
        kind, rest = ([*path.name.split("-", 1), ""])[:2]
        retrain = {"simclr": "train-encoder", "baseline": f"baselines train --model {rest.split('-', 1)[0]}"}.get(
            kind, "train-classifier")
        raise NPSError(f"shipped weights '{_shown(path)}' do not match their sha256 in {manifest.name} (changed or "
                       f"damaged); restore them with `git checkout -- {_shown(path)}` or retrain with "
                       f"`python -m nps {retrain} --replace-shipped`.")


@dataclass(frozen=True)
class WeightsChoice:
    """The weights file the lookup picked: ``origin`` is "shipped" (verified) or "trained"."""

    path: Path
    origin: str


def locate_weights(kind: str, corpus_name: str) -> WeightsChoice | None:
    """The weights to use for ``kind`` on a corpus, in the lookup order of the module docstring.

    Returns None when neither a shipped nor a trained file exists.
    Raises:
        NPSError: a shipped file fails verification (see :func:`verify_shipped`).
    """
    shipped = shipped_weights(kind, corpus_name)
    if shipped.is_file():
        verify_shipped(shipped)
        return WeightsChoice(shipped, "shipped")
    trained = trained_weights(kind, corpus_name)
    if trained.is_file():
        return WeightsChoice(trained, "trained")
    return None


#: files meant for the repository, readable by all
SHIPPED_MODE = 0o644


def _copy_atomic(src: Path, dst: Path) -> None:
    from nps.cache import atomic_write
    with open(src, "rb") as f:
        atomic_write(dst, lambda out: shutil.copyfileobj(f, out), SHIPPED_MODE)


def write_manifest(files: dict[str, dict]) -> Path:
    """Write ``nps/weights/MANIFEST.json`` atomically (sorted, one entry per file)."""
    path = WEIGHTS_DIR / MANIFEST_NAME
    from nps.cache import write_text
    write_text(path, json.dumps({"format": MANIFEST_FORMAT, "files": dict(sorted(files.items()))},
                                indent=2, sort_keys=True) + "\n", SHIPPED_MODE)
    return path


def manifest_entry(path: Path) -> dict:
    """The manifest entry of a file: its sha256 and size."""
    from nps.cache import file_sha256
    return {"sha256": file_sha256(Path(path)), "bytes": Path(path).stat().st_size}


def install_shipped(kind: str, corpus_name: str, src: Path) -> Path:
    """Make ``src`` (and the ``.json`` report beside it) the shipped weights, and update the manifest.

    Only ``--replace-shipped`` calls this.  The weights are copied last-moment, after
    training and evaluation, so an interrupted run leaves the old shipped file in place.
    """
    dst = shipped_weights(kind, corpus_name)
    files = read_manifest()
    pairs = [(Path(src), dst)]
    if Path(src).with_suffix(".json").is_file():
        pairs.append((Path(src).with_suffix(".json"), dst.with_suffix(".json")))
    try:
        for a, b in pairs:
            _copy_atomic(a, b)
            files[b.name] = manifest_entry(b)
        write_manifest(files)
    except OSError as exc:
        raise NPSError(f"cannot replace the shipped weights in '{_shown(WEIGHTS_DIR)}' ({exc.strerror or exc}); "
                       f"the trained file stays at {src}.") from None
    return dst
