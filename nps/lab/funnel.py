"""The constraint funnel: which candidate windows survived at one pixel, recomputed exactly.

Given a record, a sample and a pixel, the canvas at the step that filled the pixel
is replayed from the record (a pixel never changes once filled), and the sampler's
own candidate machinery is re-run for that single step.  The final pool size
therefore equals ``record.pool_size[n, y, x]`` exactly, which the tests check.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from nps.config import GenerationConfig
from nps.constraints import FunnelContext, active, funnel_counts, mask_pool
from nps.corpora import Corpus
from nps.engine.sampler import Sampler
from nps.engine.sampler_pool import SemanticPools
from nps.engine.sampler_setup import StepGeometry, ieee_float32
from nps.engine.selection import thresholds
from nps.errors import NPSError
from nps.provenance import check_fits
from nps.record import ProvenanceRecord

EXHAUSTIVE_LIMIT = 10_000  # appearance-alone over every window of larger corpora is too slow to be interactive


@dataclass
class Funnel:
    """Counts of candidate windows at one pixel.

    Attributes:
        step: index in ``record.order`` of the pixel.
        total: every window centre of every train image (N*H*W).
        loc: windows whose centre is within R of the pixel (any image), or None if loc is off.
        ssl: windows of the semantic-pool images (any position), or None if ssl is off.
        loc_ssl: windows passing the enabled non-appearance constraints (the set SSD ranks).
        counts: {constraint name: windows it alone admits} for every enabled constraint that
            counts (:meth:`nps.constraints.Constraint.funnel_count`; ``loc`` and ``ssl`` above are
            two of them), in canonical order: the funnel's bars.
        ssd_alone: windows passing the SSD rule over every window (None if not computed).
        final: the pool the pixel was drawn from (equals ``record.pool_size``).
        d_min, threshold: the SSD minimum and the cut within ``loc_ssl``, by the engine's
            rule (:func:`nps.engine.selection.thresholds`: (1+eps) max(d_min, 0) + tol, at least
            d_min, lowered to ``max_ssd`` where some window passes it).
        centre_values: (final, C) uint8 centre pixels of the pool (the empirical distribution).
        pool_sources: (final, 3) int64 (train id, y, x) of each pool member.
        chosen: (train id, y, x) actually copied.
    """

    step: int
    total: int
    loc: int | None
    ssl: int | None
    loc_ssl: int
    ssd_alone: int | None
    final: int
    d_min: float | None
    threshold: float | None
    centre_values: np.ndarray
    pool_sources: np.ndarray
    chosen: tuple[int, int, int]
    formula: str = field(default="")
    counts: dict[str, int] = field(default_factory=dict)

    def rows(self, config: dict, final_label: str = "all enabled: the pool") -> list[tuple[str, int]]:
        """(label, count) bars from every window to the pool (:func:`nps.constraints.funnel_rows`)."""
        from nps.constraints import funnel_rows
        return funnel_rows(self.counts, config, self.total, self.loc_ssl, self.ssd_alone, self.final, final_label)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("centre_values", "pool_sources")}


def _pools_at(record: ProvenanceRecord, sampler: Sampler, n: int, step: int) -> np.ndarray | None:
    """The semantic pool the sampler used for sample n at ``step`` (reference, canvas or given)."""
    pools = sampler.pools
    ref = record.reference[n:n + 1]
    if pools.index is None:
        return pools.shared
    if pools.per_step:  # ssl_mode "window": ranked by the context of this very pixel
        img, known = record.canvas_at(n, step)
        y, x = (int(v) for v in record.order[step])
        return pools.for_step(img[None], known, ref, y, x)
    if pools.per_shell:
        shell = record.shell[step]
        first = int(np.flatnonzero(record.shell == shell)[0])
        img, known = record.canvas_at(n, first)
        return pools.for_canvases(img[None], known, ref)
    if ref[0] < 0:
        n_known = int((record.shell == 0).sum())
        img, _ = record.canvas_at(n, n_known)
        return pools.for_given(img[None], ref)
    return pools.for_references(ref)


def check_pixel_source(record: ProvenanceRecord, corpus: Corpus, n: int, y: int, x: int) -> None:
    """Raise NPSError unless pixel (y, x) of sample n equals the corpus pixel its record names.

    A trace says where a pixel came from and that this is exact; that is only true if the
    copy holds, so a damaged or foreign record is refused here rather than explained.
    """
    sid, sy, sx = (int(getattr(record, k)[n, y, x]) for k in ("source_index", "source_y", "source_x"))
    if sid < 0:
        return
    train = corpus.train if corpus.train.ndim == 4 else corpus.train[..., None]
    mine = record.images[n, y, x].reshape(-1)
    if not np.array_equal(train[sid, sy, sx].reshape(-1), mine):
        raise NPSError(f"pixel ({y}, {x}) of sample {n} is {mine.tolist()}, but its recorded source, train image "
                       f"{sid} at ({sy}, {sx}), is {train[sid, sy, sx].tolist()}; the record is damaged or was made "
                       "on other corpus files, so its provenance cannot be traced here.")


def replay_sampler(record: ProvenanceRecord, corpus: Corpus, pools: SemanticPools | None = None) -> Sampler:
    """A one-sample CPU sampler with the record's config, to replay its steps (build once, reuse).

    Raises:
        NPSError: the corpus does not match the record, or the record's config cannot be replayed.
    """
    # A record never decides where data is read from: its data_root is dropped.
    cfg = GenerationConfig.from_dict({**record.config, "data_root": None})
    if record.config.get("corpus_size") not in (None, len(corpus)):
        raise NPSError(f"the record was made on a corpus of {record.config['corpus_size']} images, "
                       f"this one has {len(corpus)}; load the same corpus and subset.")
    check_fits(record, len(corpus), corpus.image_shape, corpus.train_ids)
    try:
        return Sampler(cfg.replace(n=1, batch_size=1, device="cpu"), corpus, pools)
    except NPSError as exc:  # the flags named are the record's config, not the user's
        raise NPSError(f"the record's config cannot be replayed: {exc}") from None


@dataclass
class _Replay:
    """One step of one sample, replayed: the canvas, the candidate set and every SSD.

    Attributes:
        d: (O,P) float32 distances in the canonical candidate order, +inf for excluded slots.
        cpad: (1,C,H+2h,W+2h) float32 padded canvas in [0,1] before the step.
        img, known: the canvas before the step, (H,W[,C]) uint8 and (H,W) bool.
        pool_ids: the semantic pool (see :meth:`Sampler.candidate_pool`), None: the whole corpus.
        keep: (O*P,) bool the candidates the engine kept (:meth:`Sampler.kept_mask`).
    """

    sampler: Sampler
    step: int
    pool_ids: np.ndarray | None
    geo: StepGeometry
    cpad: torch.Tensor
    d: torch.Tensor
    img: np.ndarray
    known: np.ndarray
    keep: torch.Tensor

    def sources(self, flat_index: np.ndarray) -> np.ndarray:
        """(M,3) int64 (train id, y, x) of candidates given by their flat (O*P) index."""
        cy0, _, cx0, cx1 = self.geo.centres
        offset, slot = np.divmod(np.asarray(flat_index, np.int64), self.d.shape[1])
        oy, ox = np.divmod(offset, cx1 - cx0)
        if self.pool_ids is None:
            sid = slot
        else:
            sid = self.pool_ids[0, slot] if self.pool_ids.shape[0] == 1 else self.pool_ids[0][slot]
        return np.stack([sid, cy0 + oy, cx0 + ox], 1).astype(np.int64).reshape(-1, 3)


@ieee_float32()  # the float32 scores the certified kept set is decided from, as in Sampler.run
def _replay(record: ProvenanceRecord, corpus: Corpus, n: int, y: int, x: int,
            pools: SemanticPools | None, sampler: Sampler | None) -> _Replay:
    """Re-run the sampler's candidate machinery for the step that filled (y, x) of sample n."""
    sampler = sampler if sampler is not None else replay_sampler(record, corpus, pools)
    if not 0 <= n < len(record):
        raise NPSError(f"sample {n} is out of range; the record has {len(record)} samples.")
    h, w = record.canvas_shape
    if not (0 <= y < h and 0 <= x < w):
        raise NPSError(f"pixel ({y}, {x}) is outside the {h}x{w} canvas.")
    step = int(np.flatnonzero((record.order[:, 0] == y) & (record.order[:, 1] == x))[0])
    if record.shell[step] == 0 or record.source_index[n, y, x] < 0:
        raise NPSError(f"pixel ({y}, {x}) is a seed or given pixel: it was copied, not sampled; pick another.")
    check_pixel_source(record, corpus, n, y, x)
    pool_ids = _pools_at(record, sampler, n, step)
    img, known = record.canvas_at(n, step)
    C = corpus.channels
    half = sampler.half
    cpad = torch.zeros((1, C, h + 2 * half, w + 2 * half))
    cpad[0, :, half:half + h, half:half + w] = torch.from_numpy(img.reshape(h, w, C)).permute(2, 0, 1).float() / 255.0
    pool = sampler.candidate_pool(pool_ids, record.reference[n:n + 1], 1)
    sampler.refs_ = record.reference[n:n + 1]  # ssd_global_min leaves the reference out of its minimum
    masks = active(sampler.config, "mask")  # multi-scale: its admission, rebuilt from the record's coarse level
    pool = mask_pool(pool, [c.admit(c.replay(sampler.config, corpus, record, n, pool_ids), y, x) for c in masks])
    geo = sampler.geometry(y, x, known)
    d = sampler.distances(geo, cpad, pool)  # (1,O,P)
    return _Replay(sampler, step, pool_ids, geo, cpad, d[0], img, known, sampler.kept_mask(geo, cpad, pool, d)[0])


def _threshold_shown(flat: torch.Tensor, cfg: GenerationConfig) -> tuple[float | None, float | None]:
    """d_min and the rule's threshold, for the funnel's formula (the kept set is ``_Replay.keep``)."""
    if active(cfg, "threshold"):
        thr, _ = thresholds(flat.min().reshape(1), cfg)
        return float(flat.min()), float(thr[0])
    return None, None


def _formula(cfg: GenerationConfig, d_min: float | None, threshold: float | None) -> str:
    """The rule and its numbers as one line, naming ``max_ssd`` when it is the line.

    The threshold itself is :func:`nps.engine.selection.thresholds`' (the engine's), so the text
    only explains it: the adaptive line, then the ceiling where that is lower.
    """
    text = "d(s) = sum_k g_k m_k (t_k - s_k)^2 / sum_k g_k m_k,  keep d <= (1 + eps) d_min + tol"
    if d_min is None or threshold is None:
        return text + (", at most max_ssd" if cfg.max_ssd is not None else "")
    adaptive = (1.0 + cfg.eps) * max(d_min, 0.0) + cfg.tol
    text += f" = (1 + {cfg.eps:g}) x {d_min:.6g} + {cfg.tol:g} = {adaptive:.6g}"
    if cfg.max_ssd is None:
        return text
    if threshold < adaptive * (1.0 - 1e-6):  # float32 threshold against a float64 recomputation
        return text + f", lowered to max_ssd = {threshold:.6g}"
    return text + f" (max_ssd {cfg.max_ssd:g} does not cut here)"


def constraint_funnel(record: ProvenanceRecord, corpus: Corpus, n: int, y: int, x: int,
                      pools: SemanticPools | None = None, exhaustive: bool | None = None,
                      sampler: Sampler | None = None) -> Funnel:
    """Recompute the candidate sets at pixel (y, x) of sample n.

    Args:
        exhaustive: also count windows passing SSD alone over the whole corpus;
            default: only when the corpus has at most 10k images.
        sampler: from :func:`replay_sampler`, to replay many steps without rebuilding it.
    Raises:
        NPSError: out-of-range sample or pixel, a given/seed pixel, or a corpus that
            does not match the record.
    """
    return _funnel(_replay(record, corpus, n, y, x, pools, sampler), record, corpus, n, y, x, exhaustive)


@ieee_float32()
def _funnel(rep: _Replay, record: ProvenanceRecord, corpus: Corpus, n: int, y: int, x: int,
            exhaustive: bool | None) -> Funnel:
    sampler, geo, cpad, pool_ids = rep.sampler, rep.geo, rep.cpad, rep.pool_ids
    cfg = sampler.config
    h, w = record.canvas_shape
    refs = record.reference[n:n + 1]
    flat = rep.d.reshape(-1)
    keep = rep.keep
    d_min, threshold = _threshold_shown(flat, cfg)
    kept = torch.nonzero(keep).squeeze(1).numpy()
    sources = rep.sources(kept)
    train = corpus.train if corpus.train.ndim == 4 else corpus.train[..., None]
    centre_values = train[sources[:, 0], sources[:, 1], sources[:, 2]]
    # The reference seeds the canvas and is never a candidate (unless include_reference).
    slots = sampler.exclusions(pool_ids, refs)
    n_excluded = int(slots is not None and slots[0] >= 0)
    n_pool_images = (len(corpus) if pool_ids is None else int((pool_ids[0] >= 0).sum())) - n_excluded
    counts = funnel_counts(FunnelContext(cfg, y, x, h, w, len(corpus), n_pool_images, n_excluded))
    ssd_alone = None
    if active(cfg, "threshold") and (exhaustive if exhaustive is not None else len(corpus) <= EXHAUSTIVE_LIMIT):
        everywhere = dataclasses.replace(geo, centres=(0, h, 0, w), relaxed=False, index=None)
        whole = sampler.candidate_pool(None, refs, 1)
        ssd_alone = int(sampler.kept_mask(everywhere, cpad, whole, sampler.distances(everywhere, cpad, whole)).sum())
    formula = _formula(cfg, d_min, threshold)
    return Funnel(
        step=rep.step, total=len(corpus) * h * w,
        loc=counts.get("loc"), ssl=counts.get("ssl"), counts=counts,
        loc_ssl=int(torch.isfinite(flat).sum()), ssd_alone=ssd_alone, final=len(kept),
        d_min=d_min, threshold=threshold, centre_values=centre_values, pool_sources=sources,
        chosen=(int(record.source_index[n, y, x]), int(record.source_y[n, y, x]), int(record.source_x[n, y, x])),
        formula=formula,
    )


@dataclass
class RankedCandidates:
    """The candidate windows of one step ranked by SSD, recomputed exactly (no new sampling).

    Attributes:
        funnel: the step's :class:`Funnel` (counts through the constraints).
        sources: (M,3) int64 (train id, y, x) of the best M candidates, ascending SSD (ties
            in canonical candidate order), then the drawn window if it ranks below M.
        ssd: (M,) float32 their SSDs.
        kept: (M,) bool whether each passed the threshold (is in the pool).
        rank: (M,) int64 each one's 0-based rank among every candidate.
        drawn: index into ``sources`` of the drawn window (the record's source).
        ranked_ssd: (K,) float32 every candidate's SSD in ascending order, thinned to at most
            ``curve_points`` ranks (always keeping the first, the last and the kept/rejected edge).
        ranked_at: (K,) int64 the 0-based ranks of ``ranked_ssd``.
        n_candidates: candidates the SSD ranks (= ``funnel.loc_ssl``).
    """

    funnel: Funnel
    sources: np.ndarray
    ssd: np.ndarray
    kept: np.ndarray
    rank: np.ndarray
    drawn: int
    ranked_ssd: np.ndarray
    ranked_at: np.ndarray
    n_candidates: int


def ranked_candidates(record: ProvenanceRecord, corpus: Corpus, n: int, y: int, x: int,
                      pools: SemanticPools | None = None, top: int = 48, curve_points: int = 400,
                      exhaustive: bool | None = None, sampler: Sampler | None = None) -> RankedCandidates:
    """The step that filled (y, x) of sample n: its candidates ranked by SSD and its funnel.

    The distances and the cut are the engine's (:meth:`Sampler.distances`,
    :func:`nps.engine.selection.thresholds`), so ``kept.sum()`` over every candidate equals
    ``record.pool_size[n, y, x]`` and the drawn window is always among the kept.

    Raises:
        NPSError: as :func:`constraint_funnel`.
    """
    rep = _replay(record, corpus, n, y, x, pools, sampler)
    fun = _funnel(rep, record, corpus, n, y, x, exhaustive)
    flat = rep.d.reshape(-1).numpy()
    finite = np.flatnonzero(np.isfinite(flat))
    order = finite[np.argsort(flat[finite], kind="stable")]  # ascending SSD, ties canonical
    chosen = np.asarray(fun.chosen, np.int64)
    all_sources = rep.sources(order)
    hit = np.flatnonzero((all_sources == chosen).all(1))
    if len(hit) == 0:
        raise NPSError(f"the record's source of pixel ({y}, {x}) is not among the step's candidates: "
                       "the record does not match this corpus or engine.")
    chosen_rank = int(hit[0])
    ranks = np.arange(min(top, len(order)), dtype=np.int64)
    if chosen_rank >= len(ranks):
        ranks = np.append(ranks, chosen_rank)
    ssd_sorted = flat[order].astype(np.float32)
    kept_sorted = rep.keep.numpy()[order]
    # Thin the curve on a log-spaced grid of ranks; keep the last kept and first rejected ranks.
    at = (np.arange(len(order)) if len(order) <= curve_points
          else np.unique(np.geomspace(1, len(order), curve_points).astype(np.int64) - 1))
    edge = int(kept_sorted.sum())
    at = np.unique(np.concatenate([at, [0, len(order) - 1], [edge - 1, edge] if edge < len(order) else []]))
    at = at[(at >= 0) & (at < len(order))].astype(np.int64)
    return RankedCandidates(
        funnel=fun, sources=all_sources[ranks], ssd=ssd_sorted[ranks], kept=kept_sorted[ranks], rank=ranks,
        drawn=int(np.flatnonzero(ranks == chosen_rank)[0]), ranked_ssd=ssd_sorted[at], ranked_at=at,
        n_candidates=len(order),
    )
