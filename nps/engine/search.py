"""Exact pruned search of the whole corpus: the appearance rule without scoring every window.

With ``config.search == "exact"`` (the default) a step whose candidates are every
training image (constraints without ``ssl``) is served from a :class:`WindowIndex`
(:mod:`nps.engine.search_index`) instead of a dense scan:

1. *Bound.*  Each group and leaf of unique windows has a box (per-dimension min, max),
   so ``sum gm * gap(t, box)^2 / sum gm`` bounds the masked distance of all its windows
   from below.  An upper bound on the minimum comes from the windows of each sample's
   most promising groups' best leaves; groups and leaves whose bound exceeds the threshold
   that upper bound implies are skipped (for the whole batch when every sample skips them).
   A leaf whose *upper* bound (``far`` instead of ``gap``, :func:`box_bounds`) is within the
   least threshold the minimum allows, and which cannot hold the minimum (or scores exactly
   0), is kept whole without scoring (:class:`Candidates`): on MNIST's blank backgrounds
   thousands of windows match a context exactly.
2. *Screen.*  The remaining unique windows are scored by a float64 expanded-square
   product, with a rigorous per-score error bound (any summation order).
3. *Certify.*  Wherever that bound leaves the minimum or a threshold comparison in
   doubt, the score is recomputed by the direct formula in a fixed order
   (:func:`direct_distance`).  The kept set is therefore exactly
   ``{d <= thresholds(min d)}`` for ``d`` = :func:`direct_distance`, whatever the shapes
   of the products, the pruning or the device.
4. *Draw.*  The sample's uniform picks the ``floor(u * count)``-th kept *window* (with
   multiplicity) in the engine's canonical order (centre offset, then image id), so a
   drawn unique window maps back to exactly one occurrence (:mod:`nps.engine.search_draw`).
5. *Hints.*  The windows continuing the copies of a target's known neighbours
   (:mod:`nps.engine.search_hints`) are scored first: their scores bound the minimum from above
   before any box is, so fewer boxes pass; any window's score is a valid bound, so the draws cannot change.
6. *Blank contexts.*  A sample whose known context is all zero is drawn from that context's kept set,
   searched once per (pool, band, known dimensions) by steps 1-3 and kept (:mod:`nps.engine.search_blank`):
   the same integers, so the same draw.

The brute-force float32 path (``search="brute"``) makes the same decisions (its near-threshold
float32 scores are certified in float64 too, :mod:`nps.engine.certify`); the tests compare both
record for record, on small corpora and on 2,000 MNIST images.
"""

from __future__ import annotations

import numpy as np
import torch

from nps.config import GenerationConfig
from nps.engine.certify import EXACT_BATCH, ExactWeights, direct_distance, window_pixels
from nps.engine.search_blank import BlankMemo
from nps.engine.search_bounds import as_bytes, bounds_of, ranges
from nps.engine.search_draw import KeptDraw
from nps.engine.search_hints import in_band
from nps.engine.search_index import WindowIndex
from nps.engine.search_rows import choose_in_parts, join_rows
from nps.engine.search_step import Candidates, ScoredStep
from nps.engine.selection import thresholds

# Relative error bound of a float64 product/sum of at most a few hundred terms (gamma_n with
# n <= 500 is 5.6e-14); 1e-12 leaves a wide margin.  Bounds computed in float32 get 1e-4.
SCREEN_REL = 1e-12
BOUND_REL = 1e-4
# Unique windows screened at a time: their float64 pixels are about 50 MB at K = 48 (SSD alone over
# 60k MNIST screens millions in a step; whole, they took 7 GB).
SCREEN_CHUNK = 1 << 17
SEED_GROUPS = 4  # groups per sample whose windows bound its minimum from above before the groups are pruned
SEED_LEAVES = 16  # leaves per sample whose windows tighten the upper bound on its minimum


class StepQuery:
    """The value-independent part of one step for the index: band, known dimensions, weights.

    Args:
        index: the corpus's :class:`WindowIndex`.
        centres: (y0, y1, x0, x1) half-open centre ranges of the step.
        exact: the step's :class:`nps.engine.certify.ExactWeights` (the definition, shared with the certifier).
        width: W (positions are cy * W + cx).
    """

    def __init__(self, index: WindowIndex, centres: tuple[int, int, int, int], exact: ExactWeights,
                 width: int) -> None:
        y0, y1, x0, x1 = centres
        self.positions = np.array([cy * width + cx for cy in range(y0, y1) for cx in range(x0, x1)], np.int64)
        self.sizes = index.pos_off[self.positions + 1] - index.pos_off[self.positions]  # (O,) unique windows each
        self.exact = exact
        self.dims, self.w, self.denom = exact.dims, exact.w, exact.denom
        self.w32 = self.w.float()
        # The band's groups as runs of consecutive ids (one per band row; group ids follow positions), not
        # an array: a step of SSD alone holds every group of the corpus (282k for 60k MNIST), and the
        # sampler keeps a query for each of its 720 steps (1.6 GB of int64 as arrays).
        first = index.group_pos_off[self.positions]
        last = index.group_pos_off[self.positions + 1]
        cut = np.flatnonzero(first[1:] != last[:-1]) + 1
        self.runs = [(int(first[a]), int(last[b - 1])) for a, b in zip(np.r_[0, cut], np.r_[cut, len(first)])]
        self.n_groups = int((last - first).sum())
        # Canonical slot of each band position, by position id (-1: outside the band).
        self.slot = np.full(index.uid.shape[0], -1, np.int64)
        self.slot[self.positions] = np.arange(len(self.positions))
        self.memo: dict[str, object] = {}  # per-step arrays a search derives once (nps.engine.search_approx)

    @property
    def groups(self) -> np.ndarray:
        """(g,) int64 ascending ids of the band's groups (made on each call, from :attr:`runs`)."""
        return np.concatenate([np.arange(a, b) for a, b in self.runs])


def _row_parts(n: int) -> list[slice]:
    """Slices of :data:`SCREEN_CHUNK` rows covering ``range(n)`` (none for n = 0)."""
    return [slice(a, min(a + SCREEN_CHUNK, n)) for a in range(0, n, SCREEN_CHUNK)]


class ExactSearch(KeptDraw):
    """Serve the whole-corpus steps of one sampler from its corpus's :class:`WindowIndex`.

    Args:
        index: the index; padded: (N,C,Hp,Wp) uint8 padded corpus; config: the generation.
        prune: False scores every unique window (the certified brute force, for tests).
        accept: False scores every window of the leaves that survive pruning (no leaf is kept
            unscored; for tests and the benchmark's comparison).
        index_key: the index's cache key, under which the blank contexts' kept sets are kept between
            processes (:mod:`nps.engine.blank_disk`); None: in this process only.
    """

    def __init__(self, index: WindowIndex, padded: torch.Tensor, config: GenerationConfig, width: int,
                 prune: bool = True, accept: bool = True, index_key: str | None = None) -> None:
        self.index, self.config, self.prune, self.accept = index, config, prune, accept
        self.padded_np = np.ascontiguousarray(padded.cpu().numpy())  # (N,C,Hp,Wp)
        self.width = width
        self.window = config.window
        # The images drawn from (:meth:`use_pool`): each unique window's multiplicity among them (U,), the
        # images (N,) bool, and the "groups" (G,) / "leaves" (L,) bool holding one of their windows; None: all.
        self.count: np.ndarray = index.count
        self.images: np.ndarray | None = None
        self.live: dict[str, np.ndarray] | None = None
        self.pools: dict[bytes, tuple] = {}  # per-subset arrays (nps.engine.search_pool.pool_counts)
        self.pool_key = b""
        self.blank = BlankMemo(self, index_key) if self.memo_blank else None

    def use_pool(self, subset: np.ndarray | None) -> ExactSearch:
        """Draw from the images ``subset`` ((P,) int64 ascending corpus ids; None: all) from now on; self."""
        from nps.engine.search_pool import pool_counts, pool_key
        self.count, self.images, self.live = pool_counts(self, subset)
        self.pool_key = pool_key(subset)
        return self

    def _windows(self, ids: np.ndarray, q: StepQuery) -> torch.Tensor:
        """(n,K) float64 pixels (0..255) of unique windows ``ids``, read at each one's representative image."""
        ix = self.index
        cy, cx = np.divmod(ix.upos[ids].astype(np.int64), self.width)
        return window_pixels(self.padded_np, q.exact, ix.rep[ids], cy, cx)

    def _candidates(self, q: StepQuery, t: torch.Tensor, refs: np.ndarray,
                    hints: np.ndarray | None = None) -> Candidates:
        """Every window that may lie within the threshold of some sample (see :class:`Candidates`);
        ``hints`` (B,J) int64 unique-window ids (-1: none) from :func:`nps.engine.search_hints.continuations`,
        or None."""
        ix = self.index
        if not self.prune:
            return Candidates.scoring(ranges(ix.pos_off[q.positions], ix.pos_off[q.positions + 1]), len(refs))
        cand = self._pruned(q, t, refs, self._in_pool(q.groups, "groups"), hints)
        cand.scored = self._in_pool(cand.scored)  # (accepted windows the pool lacks have no occurrence to keep)
        return cand

    def _in_pool(self, ids: np.ndarray, kind: str = "windows") -> np.ndarray:
        """``ids`` (unique windows, "leaves" or "groups") that hold a window of the pool (:meth:`use_pool`)."""
        if self.images is None:
            return ids
        return ids[self.count[ids] > 0] if kind == "windows" else ids[self.live[kind][ids]]

    def _pruned(self, q: StepQuery, t: torch.Tensor, refs: np.ndarray, groups: np.ndarray,
                hints: np.ndarray | None = None) -> Candidates:
        """The :class:`Candidates` among ``groups`` (ascending group ids of the band), for the threshold
        of the windows of ``groups`` alone.  ``hints``: (B,J) windows whose scores bound the minimum
        first (those of the band only: ``groups`` is the whole band, for the exact search)."""
        ix = self.index
        upper_min = torch.full((len(refs),), float("inf"), dtype=torch.float64)
        hinted = in_band(hints, ix.upos, q.slot)
        if len(hinted):  # any drawable window bounds every sample's minimum (undrawable ones score +inf)
            upper_min, _ = self._upper(hinted, q, t, refs, upper_min)
        tb = as_bytes(t)  # the targets once for the three bounds below (uint8 where they are bytes)
        lb = bounds_of(ix.group_lo, ix.group_hi, groups, q.dims, tb, q.w32) / q.denom
        searched = self._probes(groups, "groups")  # (g,B) bool: the groups each sample searches (None: all)
        if searched is not None:
            lb.masked_fill_(~searched, float("inf"))
        # An upper bound on each sample's minimum: the windows of its most promising groups.
        top = torch.topk(lb, min(SEED_GROUPS, len(groups)), dim=0, largest=False).indices  # (k,B)
        best = np.unique(groups[top.numpy()])
        upper_min, limit = self._upper(ranges(ix.leaf_off[ix.group_off[best]], ix.leaf_off[ix.group_off[best + 1]]),
                                       q, t, refs, upper_min)
        # The most promising groups pass (their bound is below the upper bound), so none of these is empty.
        passed = lb * (1.0 - BOUND_REL) <= limit
        groups = groups[(passed if searched is None else passed & searched).any(1).numpy()]
        leaves = self._in_pool(ranges(ix.group_off[groups], ix.group_off[groups + 1]), "leaves")
        llb = bounds_of(ix.leaf_lo, ix.leaf_hi, leaves, q.dims, tb, q.w32) / q.denom
        searched = self._probes(leaves, "leaves")  # (l,B) likewise for the leaves
        if searched is not None:
            llb.masked_fill_(~searched, float("inf"))
        # A tighter upper bound on the minimum from each sample's most promising leaves (any window's
        # score bounds the minimum from above; the threshold rule is monotone in the minimum).
        top = torch.topk(llb, min(SEED_LEAVES, len(leaves)), dim=0, largest=False).indices  # (k,B)
        best = np.unique(leaves[top.numpy()])
        upper_min, limit = self._upper(ranges(ix.leaf_off[best], ix.leaf_off[best + 1]), q, t, refs, upper_min)
        alive = llb * (1.0 - BOUND_REL) <= limit  # (l,B) the leaves each sample cannot rule out
        if searched is not None:  # (an infinite limit passes an infinite bound: a sample searches its own only)
            alive &= searched
        live = alive.any(1).numpy()
        if not self.accept:
            return Candidates.scoring(ranges(ix.leaf_off[leaves[live]], ix.leaf_off[leaves[live] + 1]), len(refs))
        leaves, alive = leaves[live], alive[live]
        low = llb[live].double() * (1.0 - BOUND_REL)  # (l,B) certified lower bounds
        # Whole leaves kept unscored: every window provably within the threshold (its box's upper bound
        # below the least threshold the minimum allows, :meth:`Candidates` explains), and provably not
        # the minimum (its lower bound above the minimum's upper bound) or exactly zero.  The minimum
        # lies in a live leaf, so it is at least the least live lower bound.
        least = low.masked_fill(~alive, float("inf")).amin(0).clamp(min=0.0)
        least_thr, _ = thresholds(least, self.config)
        # Only a leaf whose lower bound is within that threshold for every sample that keeps it can be
        # kept whole (upper >= lower): its upper bound is computed for those alone (few, on most steps).
        maybe = ((low <= least_thr) | ~alive).all(1)
        lub = torch.full(alive.shape, float("inf"), dtype=torch.float32)
        if maybe.any():  # their rows are read again (the leaves' rows are not kept: millions on SSD alone)
            ids = leaves[maybe.numpy()]
            lub[maybe] = bounds_of(ix.leaf_lo, ix.leaf_hi, ids, q.dims, tb, q.w32, upper=True) / q.denom
        zero = lub == 0  # lo = hi = t on every known dimension: each window scores exactly 0
        accept = alive & (lub.double() * (1.0 + BOUND_REL) <= least_thr) & ((low > upper_min) | zero)
        need = (alive & ~accept).any(1)
        take = accept.any(1) & ~need
        sizes = torch.from_numpy(ix.leaf_off[leaves + 1] - ix.leaf_off[leaves])
        need, take = need.numpy(), take.numpy()
        return Candidates(scored=ranges(ix.leaf_off[leaves[need]], ix.leaf_off[leaves[need] + 1]),
                          accepted=ranges(ix.leaf_off[leaves[take]], ix.leaf_off[leaves[take] + 1]),
                          kept=accept[take].repeat_interleave(sizes[take], 0),
                          zero=(zero & accept)[take].repeat_interleave(sizes[take], 0))

    def _probes(self, ids: np.ndarray, kind: str) -> torch.Tensor | None:
        """(n,B) bool: which samples search each of the "groups" or "leaves" ``ids``; None: every sample
        searches every one (the exact search; :class:`nps.engine.search_approx.ApproxSearch` probes)."""
        return None

    def _upper(self, seed: np.ndarray, q: StepQuery, t: torch.Tensor, refs: np.ndarray,
               upper_min: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tighten each sample's upper bound on its minimum with the windows ``seed`` (any window's score
        bounds the minimum from above) and return it, (B,) float64, with the pruning limit it implies
        (B,) float32 (the threshold rule is monotone in the minimum, so the threshold is below it)."""
        d, err, _, _ = self._screen(seed, q, t, refs)
        upper_min = torch.minimum((d + err).amin(0), upper_min)
        upper, _ = thresholds(upper_min, self.config)
        return upper_min, (upper * (1.0 + BOUND_REL)).float()

    def _multiplicities(self, ids: np.ndarray, q: StepQuery, refs: np.ndarray) -> torch.Tensor:
        """(n,B) int32 the occurrences of unique windows ``ids`` each sample may draw (its reference's
        own window at each band position loses one).

        int32, built column by column: a blank step of SSD alone over 60k MNIST accepts 5M windows, whose
        (n,B) int64 multiplicities and temporaries took 0.6 GB (an occurrence count is at most N).
        """
        ix = self.index
        mult = np.repeat(self.count[ids].astype(np.int32)[:, None], len(refs), 1)
        has_ref = np.flatnonzero(refs >= 0)
        if len(has_ref):
            slots = q.slot[ix.upos[ids]]  # (n,) each window's band slot
            for b in has_ref:
                mult[:, b] -= ix.uid[q.positions, refs[b]][slots] == ids  # (O,) the reference's own windows
        return torch.from_numpy(mult)

    def _screen(self, ids: np.ndarray, q: StepQuery, t: torch.Tensor,
                refs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Float64 scores (n,B), their error bounds (n,B), multiplicities (n,B) int32, pixels (n,K).

        Windows a sample may not draw (no image of the pool holds them, or its reference is their only
        occurrence there) score +inf.
        """
        s = self._windows(ids, q)  # (n,K)
        ws = s * q.w
        a = (ws * s).sum(1, keepdim=True)  # sum w s^2
        cross = torch.mm(ws, t.T).mul_(-2.0)  # -2 sum w s t, (n,B)
        tt = ((t * t) @ q.w)[None, :]
        d = (a + cross + tt) / q.denom
        err = (a - cross + tt).mul_(SCREEN_REL / q.denom)
        mult = self._multiplicities(ids, q, refs)
        d = d.masked_fill(mult == 0, float("inf"))
        return d, err, mult, s

    #: Samples searched together.  A group or leaf is skipped only when every sample of the batch
    #: skips it and the batch scores the union of its samples' candidates, so large batches do far
    #: more work per sample (60k MNIST, SSD + locality: 5 ms per pixel and sample at batch 4, about
    #: 100 ms at batch 64); :meth:`choose` searches the batch in parts of this many samples.
    samples_together: int = 4
    #: Serve all-zero contexts from their kept set, searched once per step shape (:mod:`nps.engine.search_blank`).
    memo_blank: bool = True

    def choose(self, q: StepQuery, t: torch.Tensor, refs: np.ndarray, u: torch.Tensor,
               hints: np.ndarray | None = None) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray,
                                                          np.ndarray | None]:
        """One step for the batch (in parts of :attr:`samples_together` samples).

        Args:
            q: the step's :class:`StepQuery`.
            t: (B,K) float64 context pixels (0..255) on ``q.dims``.
            refs: (B,) int64 images each sample may not copy (-1: none).
            u: (B,) float64 uniforms.
            hints: (B,J) int64 windows likely to score low (:mod:`nps.engine.search_hints`), or None.
        Returns:
            (source id, y, x) each (B,) int64, kept-window counts (B,) int64, and the
            fell-back rows of :func:`thresholds` (None without ``max_ssd``).
        """
        blank = self.blank.rows(q, t) if self.blank is not None else np.zeros(t.shape[0], bool)
        if blank.any():  # all-zero contexts: their kept set is searched once (nps.engine.search_blank)
            rest = None if blank.all() else self.choose(q, t[~blank], refs[~blank], u[~blank],
                                                         None if hints is None else hints[~blank])
            return join_rows(blank, self.blank.choose(q, refs[blank], u[blank]), rest)
        if t.shape[0] > self.samples_together:
            return choose_in_parts(self.choose, self.samples_together, q, t, refs, u, hints)
        ids, keep, mult, fell_back = self.survivors(q, t, refs, hints)
        sources, count = self.draw(q, ids, keep, mult, refs, u)
        return sources, count, fell_back

    def survivors(self, q: StepQuery, t: torch.Tensor, refs: np.ndarray, hints: np.ndarray | None = None
                  ) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, np.ndarray | None]:
        """The step's kept set: unique ids (n,) int64 considered, keep (n,B) bool, multiplicities (n,B)
        int32 (the reference's own occurrence removed) and the fell-back rows (see :meth:`choose`)."""
        return self._kept(self._scored(q, t, refs, hints), q, t)

    def _kept(self, step: ScoredStep, q: StepQuery,
              t: torch.Tensor) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, np.ndarray | None]:
        """:meth:`survivors` of a screened step."""
        d, err = step.d, step.err
        thr, fell_back = thresholds(step.d_min, self.config)
        keep = torch.empty(d.shape, dtype=torch.bool)
        for p in _row_parts(len(d)):  # (n,B) temporaries a part at a time (n reaches millions)
            dp, ep = d[p], err[p]
            kp = (dp + ep) <= thr
            doubt = ((dp - ep) <= thr) & ~kp
            if doubt.any():
                pixels = None if step.pixels is None else step.pixels[p]
                kp |= doubt & (self._recompute(dp, doubt, pixels, t, q, step.cand.scored[p]) <= thr)
            keep[p] = kp
        cand = step.cand
        ids = np.concatenate([cand.scored, cand.accepted])
        keep = torch.cat([keep, cand.kept & (step.accepted_mult > 0)])
        return ids, keep, torch.cat([step.mult, step.accepted_mult]), fell_back

    def minimum(self, q: StepQuery, t: torch.Tensor, refs: np.ndarray) -> torch.Tensor:
        """(B,) float64 the least :func:`direct_distance` over every window of the band each sample may draw."""
        return self._scored(q, t, refs).d_min

    def _scored(self, q: StepQuery, t: torch.Tensor, refs: np.ndarray,
                hints: np.ndarray | None = None) -> ScoredStep:
        """The candidates' screen and the certified minimum (see :class:`ScoredStep`)."""
        cand = self._candidates(q, t, refs, hints)
        ids = cand.scored
        if len(ids) <= SCREEN_CHUNK:
            d, err, mult, s = self._screen(ids, q, t, refs)
        else:  # keep the (n,B) scores only; the few doubtful windows' pixels are read again to recompute them
            d = torch.empty((len(ids), len(refs)), dtype=torch.float64)
            err, mult, s = torch.empty_like(d), torch.empty(d.shape, dtype=torch.int32), None
            for p in _row_parts(len(ids)):
                d[p], err[p], mult[p] = self._screen(ids[p], q, t, refs)[:3]
        # The minimum: only windows whose interval reaches below the least upper end can hold it.
        d_min = torch.full((len(refs),), float("inf"), dtype=torch.float64)
        if len(ids):
            upper = torch.stack([(d[p] + err[p]).amin(0) for p in _row_parts(len(ids))]).amin(0)  # (B,)
            for p in _row_parts(len(ids)):
                doubt = (d[p] - err[p]) <= upper
                exact = self._recompute(d[p], doubt, None if s is None else s[p], t, q, ids[p])
                d_min = torch.minimum(d_min, exact.masked_fill(~doubt, float("inf")).amin(0))
        accepted_mult = self._multiplicities(cand.accepted, q, refs)
        # A drawable window of an exactly-zero leaf is a minimum (scores are never negative).
        d_min = d_min.masked_fill((cand.zero & (accepted_mult > 0)).any(0), 0.0)
        return ScoredStep(cand, d, err, mult, s, d_min, accepted_mult)

    def _recompute(self, d: torch.Tensor, doubt: torch.Tensor, s: torch.Tensor | None, t: torch.Tensor,
                   q: StepQuery, ids: np.ndarray) -> torch.Tensor:
        """``d`` with the doubtful (n,B) entries replaced by :func:`direct_distance`.

        ``s`` (n,K) holds the windows' pixels, or is None: then they are read again (``ids``), a batch
        of :data:`nps.engine.certify.EXACT_BATCH` entries at a time (a step may hold millions of exact
        matches in doubt).
        """
        out = d.clone()
        rows, cols = torch.nonzero(doubt & torch.isfinite(d), as_tuple=True)
        for a in range(0, len(rows), EXACT_BATCH):
            r, c = rows[a:a + EXACT_BATCH], cols[a:a + EXACT_BATCH]
            pixels = s[r] if s is not None else self._windows(ids[r.numpy()], q)
            out[r, c] = direct_distance(pixels, t[c], q.w, q.denom)
        return out
