"""Blank contexts searched once: the kept set of an all-zero context, kept per (pool, band, known dimensions).

A sample whose known context is all zero (its canvas grows onto the background: most samples of the
outer shells, and half of SSD alone's samples in most steps) keeps every window that is (nearly) zero
on the known dimensions.  Without locality that is 28M of 47M windows over all 60k MNIST images, 5M
unique ones scored or accepted, 8.5 s of a 4-sample step.  That kept set depends only on the band, the
known dimensions (48 shapes over SSD alone's 720 steps, whose bands are all the whole image; with
locality each step has its own band) and the pool, and on the sample only through its reference, which
removes at most one occurrence per band position.  So it is searched once per (pool, band, known
dimensions), by the search's own code with no reference
(:meth:`nps.engine.search.ExactSearch.survivors`), and kept as

- ``per_offset`` (O,) int64: its occurrences at each band position;
- ``bits``: one bit per unique window of the band (packed), set where the window is kept.

A blank sample then needs only its reference's O windows' bits (each one set removes one occurrence
at its position) and, at the drawn position, that position's bits: the same integers as
:meth:`~nps.engine.search_draw.KeptDraw.draw` computes, so the same draw, bit for bit.

It applies when the all-zero context's minimum is exactly 0 and more occurrences score 0 (those of
leaves kept whole as exactly zero, a lower bound) than there are band positions: removing the
reference's windows cannot then move the minimum, so every blank sample has the same threshold.
Otherwise (small corpora, pools without blank windows) blank samples take the usual path.

The entries are shared by every search of the process over the same index object (:data:`STORE`),
keyed further by everything of the config but what only the samples differ in (n, seed, batch,
reference): a second generation with the same settings (the app's next grid, the benchmark's timed
rounds, ``ablate``'s repeated rows) finds them searched.  Each one is the same exact kept set whoever
searched it, so sharing changes no draw.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import weakref
from dataclasses import dataclass

import numpy as np
import torch

# Memory the process's memo may hold (bits and counts), over all indexes and configs; the oldest entries
# go first.  60k MNIST: SSD alone held 44 entries, 138 MB; SSD + locality 671 entries, 56 MB (n = 16).
MEMO_BYTES = 256 << 20


@dataclass(frozen=True)
class BlankKept:
    """The kept set of an all-zero context for one (pool, band, known dimensions), with no reference.

    Attributes:
        per_offset: (O,) int64 kept occurrences at each band slot.
        bits: (ceil(M/8),) uint8 packed bits over the band's M unique windows (band slot order).
        band_start: (O+1,) int64 first bit of each band slot.
        fell_back: (1,) bool or None, as :func:`~nps.engine.selection.thresholds` returns it.
    """

    per_offset: np.ndarray
    bits: np.ndarray
    band_start: np.ndarray
    fell_back: np.ndarray | None

    @property
    def nbytes(self) -> int:
        return self.per_offset.nbytes + self.bits.nbytes + self.band_start.nbytes

    def fits(self, sizes: np.ndarray) -> bool:
        """Whether this set is laid out over a band whose positions hold ``sizes`` (O,) unique windows
        (an entry read from the cache is checked against the step that reads it)."""
        return len(self.per_offset) == len(sizes) and np.array_equal(np.diff(self.band_start), sizes)

    def kept(self, slot: np.ndarray, local: np.ndarray) -> np.ndarray:
        """(n,) bool: whether unique window ``local`` (offset from its position's first id) at band ``slot`` is kept."""
        i = self.band_start[slot] + local
        return ((self.bits[i >> 3] >> (7 - (i & 7))) & 1).astype(bool)

    def kept_at(self, slot: int) -> np.ndarray:
        """(U_p,) bool the kept mask of the unique windows at band slot ``slot``."""
        a, b = int(self.band_start[slot]), int(self.band_start[slot + 1])
        return np.unpackbits(self.bits[a >> 3:(b + 7) >> 3])[a & 7:(a & 7) + b - a].astype(bool)


class BlankStore:
    """The process's :class:`BlankKept` entries (None: the memo does not apply), oldest first, within
    :data:`MEMO_BYTES`.  Keys start with a token of the index object (:meth:`token`) and a digest of
    the config (:func:`config_scope`).  Thread-safe (the app serves several visitors in one process)."""

    def __init__(self) -> None:
        self.entries: dict[tuple, BlankKept | None] = {}
        self.held = 0
        self._lock = threading.Lock()
        self._tokens: dict[int, tuple[weakref.ref, int]] = {}
        self._next = itertools.count()
        self.disk = True  # read and write the cache's copies (nps.engine.blank_disk); False: this process only
        self._read: set[str] = set()  # the cache entries read so far

    def token(self, index) -> int:
        """A number for the index object, never reused while it lives (ids of dead objects are; the
        weak reference tells them apart).  Entries of a dropped index age out under the bound."""
        with self._lock:
            held = self._tokens.get(id(index))
            if held is None or held[0]() is not index:
                held = (weakref.ref(index), next(self._next))
                self._tokens[id(index)] = held
            return held[1]

    def get(self, key: tuple) -> tuple[bool, BlankKept | None]:
        with self._lock:
            return (key in self.entries), self.entries.get(key)

    def first_read(self, disk_key: str) -> bool:
        """Whether the cache entry ``disk_key`` is yet to be read by this process (and mark it read)."""
        with self._lock:
            fresh = self.disk and disk_key not in self._read
            self._read.add(disk_key)
            return fresh

    def put(self, key: tuple, found: BlankKept | None, replace: bool = False) -> None:
        with self._lock:
            if key in self.entries:  # another thread searched it meanwhile (the same set)
                if not replace:
                    return
                old = self.entries.pop(key)
                self.held -= 0 if old is None else old.nbytes
            while found is not None and self.entries and self.held + found.nbytes > MEMO_BYTES:
                old = self.entries.pop(next(iter(self.entries)))
                self.held -= 0 if old is None else old.nbytes
            self.entries[key] = found
            self.held += 0 if found is None else found.nbytes

    def clear(self) -> None:
        """Forget every entry (tests; the next search of each key runs again)."""
        with self._lock:
            self.entries.clear()
            self.held = 0
            self._read.clear()


STORE = BlankStore()


def config_scope(config) -> bytes:
    """16 bytes naming what of ``config`` a blank kept set may depend on: all of it but the fields
    only the samples differ in (n, seed, batch size, reference, where the data lives)."""
    same = config.replace(n=1, seed=0, batch_size=1, reference=None, include_reference=False, data_root=None)
    return hashlib.blake2b(repr(same).encode(), digest_size=16).digest()


class BlankMemo:
    """The :class:`BlankKept` sets one :class:`~nps.engine.search.ExactSearch` reads, from :data:`STORE`."""

    def __init__(self, search, index_key: str | None = None) -> None:
        from nps.engine.blank_disk import scope_key
        self.search = search
        # The search's flags are in the key too: their kept sets are equal, and the tests compare them.
        self.scope = (STORE.token(search.index), config_scope(search.config), type(search).__name__,
                      search.prune, search.accept)
        # The scope's cache entry (None: an index that is not cached, e.g. a test's own).
        self.disk_key = None if index_key is None else scope_key(index_key, *self.scope[1:])
        self.served = 0  # samples drawn here (for tests and the benchmark)
        self.searched = 0  # entries this memo searched (the others were in the store or the cache)
        self.unsaved = 0  # of those, the ones not yet in the cache entry

    @property
    def entries(self) -> dict[bytes, BlankKept | None]:
        """This search's entries in the store, by (pool key + band digest)."""
        n = len(self.scope)
        return {k[n]: e for k, e in list(STORE.entries.items()) if k[:n] == self.scope}

    def rows(self, q, t: torch.Tensor) -> np.ndarray:
        """(B,) bool the samples served here: an all-zero context where the memo applies."""
        blank = (t == 0).all(1).numpy() if t.shape[1] else np.ones(t.shape[0], bool)
        if not blank.any():
            return blank
        return blank if self.entry(q) is not None else np.zeros(t.shape[0], bool)

    def entry(self, q) -> BlankKept | None:
        key = self._key(q)
        there, found = STORE.get(key)
        if not there and self.disk_key is not None and STORE.first_read(self.disk_key):
            self._read_cache()
            there, found = STORE.get(key)
        if there and found is not None and not found.fits(q.sizes):
            there = False  # laid out for another band: search it again (and replace it)
        if not there:
            found = self._search(q)
            self.searched += 1
            self.unsaved += 1
            STORE.put(key, found, replace=True)
        return found

    def _read_cache(self) -> None:
        from nps.engine.blank_disk import load
        for k, e in load(self.disk_key).items():
            STORE.put((*self.scope, k), e)

    def save(self) -> bool:
        """Store this scope's entries in the cache when this memo searched new ones; whether it wrote.
        (The sampler calls it at the end of each run.)"""
        if not self.unsaved or self.disk_key is None or not STORE.disk:
            return False
        from nps.engine.blank_disk import save
        self.unsaved = 0
        return save(self.disk_key, self.entries)

    def _key(self, q) -> tuple:
        if "blank-key" not in q.memo:
            q.memo["blank-key"] = hashlib.blake2b(q.positions.tobytes() + b"|" + q.dims.tobytes(),
                                                  digest_size=16).digest()
        return (*self.scope, self.search.pool_key + q.memo["blank-key"])

    def _search(self, q) -> BlankKept | None:
        """The kept set of the all-zero context by the search's own code, or None where it does not apply."""
        s, ix = self.search, self.search.index
        t = torch.zeros((1, len(q.dims)), dtype=torch.float64)
        none = np.full(1, -1, np.int64)
        step = s._scored(q, t, none)
        zeros = int(step.accepted_mult[:, 0][step.cand.zero[:, 0]].sum())
        if float(step.d_min[0]) != 0.0 or zeros <= len(q.positions):
            return None
        ids, keep, mult, fell_back = s._kept(step, q, t)
        keep = keep[:, 0].numpy() & (mult[:, 0].numpy() > 0)
        ids = ids[keep]
        slot = q.slot[ix.upos[ids]]
        # (float64 weights sum integers below 2^53 exactly)
        per_offset = np.bincount(slot, weights=s.count[ids], minlength=len(q.positions)).astype(np.int64)
        band_start = np.concatenate([[0], np.cumsum(q.sizes)]).astype(np.int64)
        mask = np.zeros(int(band_start[-1]), bool)
        mask[band_start[slot] + ids - ix.pos_off[ix.upos[ids]]] = True
        return BlankKept(per_offset, np.packbits(mask), band_start, fell_back)

    def choose(self, q, refs: np.ndarray, u: torch.Tensor) -> tuple[tuple[np.ndarray, ...], np.ndarray,
                                                                     np.ndarray | None]:
        """The draws of blank samples (see :meth:`nps.engine.search.ExactSearch.choose`)."""
        s, ix = self.search, self.search.index
        e = self.entry(q)
        B, O = len(refs), len(q.positions)
        per_offset = torch.from_numpy(np.repeat(e.per_offset[:, None], B, 1))  # (O,B) int64
        for b in np.flatnonzero(refs >= 0):  # the reference's own kept windows: one occurrence each
            local = ix.uid[q.positions, refs[b]].astype(np.int64) - ix.pos_off[q.positions]
            per_offset[:, b] -= torch.from_numpy(e.kept(np.arange(O), local).astype(np.int64))
        count, offset, rank = s.locate(per_offset, u)
        sid = np.array([s.source(int(q.positions[offset[b]]), e.kept_at(int(offset[b])), refs[b], rank[b])
                        for b in range(B)], np.int64)
        cy, cx = np.divmod(q.positions[offset], s.width)
        fell = None if e.fell_back is None else np.repeat(e.fell_back, B)
        self.served += B
        return (sid, cy.astype(np.int64), cx.astype(np.int64)), count.numpy(), fell
