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
:meth:`~nps.engine.search.ExactSearch.draw` computes, so the same draw, bit for bit.

It applies when the all-zero context's minimum is exactly 0 and more occurrences score 0 (those of
leaves kept whole as exactly zero, a lower bound) than there are band positions: removing the
reference's windows cannot then move the minimum, so every blank sample has the same threshold.
Otherwise (small corpora, pools without blank windows) blank samples take the usual path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

# Memory the memo may hold (bits and counts); the oldest entries go first.  60k MNIST: SSD alone held
# 44 entries, 138 MB; SSD + locality 671 entries, 56 MB (n = 16).
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

    def kept(self, slot: np.ndarray, local: np.ndarray) -> np.ndarray:
        """(n,) bool: whether unique window ``local`` (offset from its position's first id) at band ``slot`` is kept."""
        i = self.band_start[slot] + local
        return ((self.bits[i >> 3] >> (7 - (i & 7))) & 1).astype(bool)

    def kept_at(self, slot: int) -> np.ndarray:
        """(U_p,) bool the kept mask of the unique windows at band slot ``slot``."""
        a, b = int(self.band_start[slot]), int(self.band_start[slot + 1])
        return np.unpackbits(self.bits[a >> 3:(b + 7) >> 3])[a & 7:(a & 7) + b - a].astype(bool)


class BlankMemo:
    """The :class:`BlankKept` sets of one :class:`~nps.engine.search.ExactSearch` (None: does not apply)."""

    def __init__(self, search) -> None:
        self.search = search
        self.entries: dict[bytes, BlankKept | None] = {}
        self.held = 0
        self.served = 0  # samples drawn here (for tests and the benchmark)

    def rows(self, q, t: torch.Tensor) -> np.ndarray:
        """(B,) bool the samples served here: an all-zero context where the memo applies."""
        blank = (t == 0).all(1).numpy() if t.shape[1] else np.ones(t.shape[0], bool)
        if not blank.any():
            return blank
        return blank if self.entry(q) is not None else np.zeros(t.shape[0], bool)

    def entry(self, q) -> BlankKept | None:
        key = self._key(q)
        if key not in self.entries:
            found = self._search(q)
            while found is not None and self.entries and self.held + found.nbytes > MEMO_BYTES:
                old = self.entries.pop(next(iter(self.entries)))
                self.held -= 0 if old is None else old.nbytes
            self.entries[key] = found
            self.held += 0 if found is None else found.nbytes
        return self.entries[key]

    def _key(self, q) -> bytes:
        if "blank-key" not in q.memo:
            q.memo["blank-key"] = hashlib.blake2b(q.positions.tobytes() + b"|" + q.dims.tobytes(),
                                                  digest_size=16).digest()
        return self.search.pool_key + q.memo["blank-key"]

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
        sizes = ix.pos_off[q.positions + 1] - ix.pos_off[q.positions]
        band_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
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
