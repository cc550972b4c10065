"""The draw of the exact search (:class:`nps.engine.search.ExactSearch`): a kept set to one source window.

Each sample's uniform ``u`` picks the ``j = floor(u * count) + 1``-th kept window (with multiplicity)
in the engine's canonical order: band slot (centre offset) first, then image id.  So

1. :meth:`KeptDraw.locate` sums the kept occurrences per slot (O,B) and finds the slot holding the
   j-th one and its rank r within the slot;
2. :meth:`KeptDraw.source` turns (slot, r) into the image: the r-th image, by id, whose window at that
   position is kept (the sample's reference and images outside the pool excluded).

A drawn unique window thus maps back to exactly one occurrence, and the blank-context memo
(:mod:`nps.engine.search_blank`) draws through the same two methods.
"""

from __future__ import annotations

import numpy as np
import torch

from nps.engine.selection import _picks

# Kept unique windows at the drawn position up to which the images are found by comparing ids (one (N,)
# pass each) rather than through the mask (near-copy contexts of SSD alone keep one or two).
FEW_KEPT = 2


class KeptDraw:
    """The draw half of :class:`nps.engine.search.ExactSearch` (it sets ``index``, ``width``, ``images``)."""

    def draw(self, q, ids: np.ndarray, keep: torch.Tensor, mult: torch.Tensor, refs: np.ndarray,
             u: torch.Tensor) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
        """Each sample's ``floor(u * count)``-th kept window (canonical order) of a kept set from
        :meth:`~nps.engine.search.ExactSearch.survivors` (ids (n,) int64, keep (n,B) bool, mult (n,B)
        int32) for the step's :class:`~nps.engine.search.StepQuery` ``q``: ((source id, y, x) each (B,)
        int64, kept-window counts (B,) int64)."""
        ix = self.index
        B = keep.shape[1]
        kept = torch.where(keep, mult, torch.zeros_like(mult))  # (n,B) windows kept per unique
        upos = ix.upos[ids]
        slot = torch.from_numpy(q.slot[upos])
        # (O,B): int32 like ``mult`` (at most N occurrences per position), then int64 for the ranks.
        per_offset = torch.zeros((len(q.positions), B), dtype=kept.dtype).index_add_(0, slot, kept).long()
        del kept, slot
        count, offset, rank = self.locate(per_offset, u)
        sid = np.empty(B, np.int64)
        for b in range(B):
            p = int(q.positions[offset[b]])
            here = keep[:, b].numpy() & (upos == p)
            allowed = np.zeros(ix.pos_off[p + 1] - ix.pos_off[p], bool)
            allowed[ids[here] - ix.pos_off[p]] = True
            sid[b] = self.source(p, allowed, refs[b], rank[b])
        cy, cx = np.divmod(q.positions[offset], self.width)
        return (sid, cy.astype(np.int64), cx.astype(np.int64)), count.numpy()

    @staticmethod
    def locate(per_offset: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Where each sample's draw falls, from its kept windows per band slot (O,B) int64: the kept
        counts (B,) int64, the slot (B,) int64 holding its ``floor(u * count)``-th kept window and that
        window's 1-based rank among the slot's (B,) int64."""
        count = per_offset.sum(0)
        j = _picks(u, count)
        upto = per_offset.cumsum(0)
        offset = (upto < j[None, :]).sum(0)  # the offset holding the j-th kept window
        rank = (j - (upto.gather(0, offset[None])[0] - per_offset.gather(0, offset[None])[0])).numpy()
        return count, offset.numpy(), rank

    def source(self, p: int, allowed: np.ndarray, ref: int, rank: int) -> int:
        """The image holding the ``rank``-th (1-based, by image id) kept window at position ``p``, given
        ``allowed`` (U_p,) bool over the position's unique windows; ``ref`` (-1: none) may not be drawn."""
        ix = self.index
        row, first = ix.uid[p], int(ix.pos_off[p])  # (N,) int32 each image's unique window at p
        kept = np.flatnonzero(allowed)
        if len(kept) <= FEW_KEPT:  # compare the ids: 4x faster than reading the mask per image (60k MNIST)
            images = row == first + int(kept[0]) if len(kept) else np.zeros(len(row), bool)
            for k in kept[1:]:
                images |= row == first + int(k)
        else:  # (N,) images whose window at p is kept (np.take: 1.6x faster than indexing)
            images = np.take(allowed, row - first)
        if self.images is not None:
            images &= self.images
        if ref >= 0:
            images[ref] = False
        return int(np.flatnonzero(images)[rank - 1])
