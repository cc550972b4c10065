"""Approximate whole-corpus search (``search="approx"``, opt-in): a masked IVF over the window index.

The inverted lists are the *groups* of :class:`nps.engine.search_index.WindowIndex` (a k-d tree's
cells of about a hundred unique windows at one position; a tree quantiser rather than
k-means: the cells already exist, are position-local, and carry the boxes the exact
search bounds with).  Each list gets a centroid, the mean of its unique windows
(:func:`group_centroids`, cached beside the index).  For one step and sample:

1. *Rank.*  Every group of the step's band is ranked by the masked, Gaussian-weighted
   distance from the sample's known context ``t`` to its centroid on the known dimensions,
   ``sum_k w_k (c_k - t_k)^2 / denom`` (the step's own weights, :class:`nps.engine.certify.ExactWeights`).
2. *Probe.*  The ``nprobe`` best groups of each sample are the only ones it searches.  A part of
   the batch (``samples_together``, as in exact search) is searched in one pass over the union of
   its samples' groups, each sample masked to its own (:meth:`ApproxSearch._probes`: its bounds
   are infinite and its windows undrawable elsewhere), so a sample's draw does not depend on the
   rest of its batch: records are the same in any batch size (and as searching each sample alone).
3. *Search.*  On the windows of those groups the exact search runs unchanged
   (:meth:`nps.engine.search.ExactSearch._pruned`: box pruning, float64 screen, certification),
   so the kept set is exactly ``{d <= thresholds(min d)}`` over the windows *found*, and
   the draw is uniform over it with the exact occurrence (image, offset) recorded.

What can differ from exact search: the true minimum may lie in an unprobed group, so the
found minimum is larger; its threshold is then larger too, and the found kept set holds
windows the exact one would reject (every pixel is still a copy of a training pixel).
The *epsilon-set recall* (:class:`RecallMeter`) is the share of the exact kept windows
(with multiplicity) that the approximate kept set contains.  With ``nprobe`` at least the
number of groups of the band every group is searched and the records equal exact search's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nps.cache import cached_arrays, content_key, entry_path
from nps.config import GenerationConfig
from nps.engine.search import ExactSearch, StepQuery
from nps.engine.search_index import WindowIndex
from nps.engine.search_rows import choose_in_parts
from nps.engine.search_step import Candidates

log = logging.getLogger(__name__)

CENTROID_VERSION = 1
CENTROID_KIND = "windowcentroids"  # the cache entries' kind: windowcentroids-KEY.npz


def build_centroids(index: WindowIndex, padded: np.ndarray, window: int, width: int) -> dict[str, np.ndarray]:
    """{"centroid": (G,D) float32}: the mean of the unique windows of each group (pixels 0..255).

    Args:
        index: the corpus's window index; padded: (N,C,Hp,Wp) uint8 edge-padded corpus;
        window: w; width: W (positions are cy * W + cx).
    """
    c = padded.shape[1]
    G = len(index.group_off) - 1
    out = np.empty((G, window * window * c), np.float32)
    for p in range(len(index.pos_off) - 1):
        g0, g1 = int(index.group_pos_off[p]), int(index.group_pos_off[p + 1])
        if g0 == g1:
            continue
        cy, cx = divmod(p, width)
        u0, u1 = int(index.pos_off[p]), int(index.pos_off[p + 1])
        reps = index.rep[u0:u1]
        x = padded[reps, :, cy:cy + window, cx:cx + window].transpose(0, 2, 3, 1).reshape(len(reps), -1)
        starts = index.leaf_off[index.group_off[g0:g1]] - u0  # (g,) first unique window of each group
        sizes = np.diff(np.append(starts, u1 - u0))
        out[g0:g1] = np.add.reduceat(x.astype(np.float32), starts, axis=0) / sizes[:, None]
    return {"centroid": out}


def centroids_path(index_key: str) -> Path:
    """Where the group centroids of the index with key ``index_key`` live in the cache (whether or not they are)."""
    return entry_path(CENTROID_KIND, centroid_key(index_key))


def centroid_key(index_key: str) -> str:
    """The cache key of the group centroids (``windowcentroids-KEY.npz``) of the index with key ``index_key``."""
    return content_key("window-centroids", CENTROID_VERSION, index_key)


def group_centroids(index_key: str, index: WindowIndex, padded: np.ndarray, window: int,
                    width: int) -> np.ndarray:
    """The (cached) (G,D) float32 group centroids of the index with key ``index_key``."""
    key = centroid_key(index_key)
    arrays = cached_arrays(CENTROID_KIND, key, lambda: build_centroids(index, padded, window, width),
                           meta={"groups": int(len(index.group_off) - 1)})
    return arrays["centroid"]


def approx_search(index: WindowIndex, corpus_hash: str, padded: torch.Tensor, config: GenerationConfig,
                  width: int) -> ApproxSearch:
    """The :class:`ApproxSearch` of a corpus whose window index is ``index`` (centroids cached)."""
    from nps.engine.window_cache import index_key, local_splits

    padded_np = np.ascontiguousarray(padded.cpu().numpy())
    key = index_key(corpus_hash, config.window, padded_np.shape, local_splits(config))
    return ApproxSearch(index, padded, config, width, group_centroids(key, index, padded_np, config.window, width),
                        index_key=key)


class ApproxSearch(ExactSearch):
    """:class:`nps.engine.search.ExactSearch` restricted to each sample's ``nprobe`` nearest groups.

    Args:
        index, padded, config, width: as for :class:`~nps.engine.search.ExactSearch`.
        centroids: (G,D) float32 from :func:`group_centroids`.
    """

    # Each sample searches its own probed groups (batch-size independent records), in parts of
    # ``samples_together`` (the exact search's): one pass over the part's union, masked per sample.
    # Parts of one (each sample alone) give the same records: the benchmark's comparison.
    # Blank samples are served from their kept set too (:mod:`nps.engine.search_blank`): every all-zero
    # target ranks the groups alike, so they probe the same groups, and the set the memo searches (with
    # this class's own candidates, no reference) is each one's kept set before its reference's windows
    # come off.  The same records as without it (tests/test_search_approx.py).

    def __init__(self, index: WindowIndex, padded: torch.Tensor, config: GenerationConfig, width: int,
                 centroids: np.ndarray, index_key: str | None = None) -> None:
        super().__init__(index, padded, config, width, index_key=index_key)
        self.centroids = centroids
        c = torch.from_numpy(centroids)
        self.lifted = torch.cat([c, c * c], 1)  # (G,2D) float32: [c, c^2], the ranking's one product
        self.nprobe = int(config.nprobe)
        self.scanned = 0  # unique windows scored per search pass (a part of the batch), and those of its band
        self.banded = 0
        # The search in progress (:meth:`searching`): its probed "groups" and, where they differ between
        # samples, who probes them ("member", (g,B) bool) and the first ids of their "leaves" and "windows".
        self.probing_: dict[str, np.ndarray] | None = None

    def probed(self, q: StepQuery, t: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """The union over the (part of the) batch of each sample's ``nprobe`` nearest groups: ascending
        group ids (g,) int64, and (g,B) bool whether each sample probes each (None: every one does)."""
        if self.nprobe >= q.n_groups:
            return q.groups, None
        score = self.ranking(q, t)
        if self.live is not None:  # a shared pool (use_pool): probe only groups holding one of its windows
            score[:, torch.from_numpy(~self.live["groups"][q.groups])] = float("inf")
        best = torch.topk(score, self.nprobe, dim=1, largest=False, sorted=False).indices.numpy()  # (B,nprobe)
        picked = np.unique(best)
        if t.shape[0] == 1:
            return q.groups[picked], None
        member = np.zeros((len(picked), t.shape[0]), bool)
        member[np.searchsorted(picked, best), np.arange(t.shape[0])[:, None]] = True
        return q.groups[picked], member

    def ranking(self, q: StepQuery, t: torch.Tensor) -> torch.Tensor:
        """(B,g) float32 each sample's ranking score of the band's groups (:attr:`StepQuery.groups` order):
        its masked distance to their centroids less the sample's constant ``sum w t^2``, row by row the same
        whatever the other rows (t: (B,K) context pixels on the known dimensions)."""
        if "approx" not in q.memo:
            w_full = torch.zeros(self.lifted.shape[1] // 2, dtype=torch.float32)
            w_full[torch.from_numpy(q.dims)] = q.w32
            q.memo["approx"] = w_full
        w_full = q.memo["approx"]
        B = t.shape[0]
        # sum w (c - t)^2 = sum w c^2 - 2 sum w c t + sum w t^2; the last term ranks nothing (one per sample),
        # so score = [c, c^2] @ [-2 w t; w] with w zero on the unknown dimensions: one product per run.
        v = torch.zeros((len(w_full), B), dtype=torch.float32)
        v[torch.from_numpy(q.dims)] = (t.float() * q.w32).T.mul_(-2.0)
        v = torch.cat([v, w_full[:, None].expand(-1, B)]).T.contiguous()  # (B,2D)
        # (1,2D) x (2D,g) for each sample: the wide product (g x B with B small runs several times slower in
        # this order), one row at a time because a product's rounding may depend on its shape (one row
        # against four differed in most elements here), and a sample's ranking must not depend on its part.
        # The band's groups are a few runs of consecutive ids (one per band row): slices, not copies.
        rows = [v[b:b + 1].clone() for b in range(B)]  # each its own (aligned) block: a BLAS's rounding may
        # depend on the operand's alignment too (a row slice of v against the same row alone differed here)
        return torch.cat([torch.cat([row @ self.lifted[a:c].T for a, c in q.runs], 1) for row in rows])

    def _scored(self, q: StepQuery, t: torch.Tensor, refs: np.ndarray, hints: np.ndarray | None = None):
        self.searching(*self.probed(q, t))
        try:
            return super()._scored(q, t, refs, hints)
        finally:
            self.searching(None, None)

    def searching(self, groups: np.ndarray | None, member: np.ndarray | None) -> None:
        """Set the search in progress's probed groups (g,) ascending and who probes them (g,B) bool (None: all),
        read by :meth:`_candidates`, :meth:`_probes` and :meth:`_multiplicities`; (None, None) clears it."""
        self.probing_ = None if groups is None else {"groups": groups}
        if member is not None:  # where each probed group's leaves and windows start (ids ascending)
            leaves = self.index.group_off[groups]
            self.probing_.update(member=member, leaves=leaves, windows=self.index.leaf_off[leaves])

    def _probes(self, ids: np.ndarray, kind: str) -> torch.Tensor | None:
        """(n,B) bool: the samples whose probed groups hold each of ``ids`` ("groups", "leaves" or
        "windows": unique window ids, all of the probed groups) in the search in progress; None: every
        sample probes them all.  Each id's group is found among the probed groups' first ids (a few
        hundred), not in the index's offsets (millions)."""
        p = self.probing_
        if p is None or "member" not in p:
            return None
        return torch.from_numpy(p["member"][np.searchsorted(p[kind], ids, side="right") - 1])

    def _multiplicities(self, ids: np.ndarray, q: StepQuery, refs: np.ndarray) -> torch.Tensor:
        """As the exact search's, and none for a sample outside its probed groups (scored +inf, never kept)."""
        mult = super()._multiplicities(ids, q, refs)
        probes = self._probes(ids, "windows")
        if probes is not None:
            mult.masked_fill_(~probes, 0)
        return mult

    def _candidates(self, q: StepQuery, t: torch.Tensor, refs: np.ndarray,
                    hints: np.ndarray | None = None) -> Candidates:
        # No hints: a hint outside a sample's probes could score below its approximate minimum (the
        # least over its probes) and prune that minimum away.
        cand = self._pruned(q, t, refs, self._in_pool(self.probing_["groups"], "groups"))  # set by _scored
        cand.scored = self._in_pool(cand.scored)
        self.scanned += len(cand.scored)
        self.banded += int(q.sizes.sum())
        return cand


@dataclass
class RecallMeter:
    """Serve an approximate search and measure its epsilon-set recall against exact search, step by step.

    Stands in for the sampler's search (``sampler.search_ = RecallMeter(approx, exact)``): the
    draws are the approximate search's; for each (step, sample) the exact kept set is computed
    on the same partial canvas.  Recall = (exact kept windows, with multiplicity, that the
    approximate kept set holds) / (exact kept windows).
    """

    approx: ApproxSearch
    exact: ExactSearch
    found: int = 0
    total: int = 0
    per_step: list[float] = field(default_factory=list)

    @property
    def index(self) -> WindowIndex:
        return self.approx.index

    def use_pool(self, subset: np.ndarray | None) -> RecallMeter:
        """Both searches draw from ``subset`` (:meth:`nps.engine.search.ExactSearch.use_pool`); self."""
        self.approx.use_pool(subset)
        self.exact.use_pool(subset)
        return self

    def choose(self, q: StepQuery, t: torch.Tensor, refs: np.ndarray, u: torch.Tensor,
               hints: np.ndarray | None = None):
        if t.shape[0] > self.approx.samples_together:  # the approximate search's own parts (hints unused)
            return choose_in_parts(self.choose, self.approx.samples_together, q, t, refs, u)
        ids, keep, mult, fell_back = self.approx.survivors(q, t, refs)
        e_ids, e_keep, e_mult, _ = self.exact.survivors(q, t, refs)
        e_kept = torch.where(e_keep, e_mult, torch.zeros_like(e_mult)).numpy()  # (m,B)
        # Exact kept windows that are in the approximate kept set: match unique ids.
        order = np.argsort(ids)
        where = np.searchsorted(ids[order], e_ids).clip(max=len(ids) - 1)
        present = ids[order][where] == e_ids  # (m,)
        a_keep = np.zeros(e_keep.shape, bool)
        a_keep[present] = keep.numpy()[order[where[present]]]
        hit = (e_kept * a_keep).sum(0)  # (B,)
        all_ = e_kept.sum(0)
        self.found += int(hit.sum())
        self.total += int(all_.sum())
        self.per_step.extend((hit / np.maximum(all_, 1)).tolist())
        sources, count = self.approx.draw(q, ids, keep, mult, refs, u)
        return sources, count, fell_back

    @property
    def recall(self) -> float:
        """Pooled epsilon-set recall (windows with multiplicity, over every step and sample)."""
        return self.found / self.total if self.total else 1.0

    @property
    def mean_recall(self) -> float:
        """The mean over (step, sample) of each one's recall."""
        return float(np.mean(self.per_step)) if self.per_step else 1.0
