"""One pixel's choice: the whole-corpus search dispatch, the certified threshold, the draw.

Split from :mod:`nps.engine.sampler` so that each file has one job: this one decides, for a step, which
candidate windows are kept (float32 scores from :mod:`nps.engine.sampler_scores`, near-threshold
decisions in float64 by :mod:`nps.engine.certify`, or the pruned index of :mod:`nps.engine.search` /
:mod:`nps.engine.search_approx`) and draws one per sample (:mod:`nps.engine.selection`).
:class:`StepChoice` is a base of :class:`nps.engine.sampler.Sampler`; the sampler's batch loop calls
:meth:`StepChoice._choose`, the lab's funnel and explainer :meth:`StepChoice.kept_mask`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from nps.constraints import active
from nps.corpora import Corpus
from nps.engine.certify import ChunkView, DenseView, ExactWeights, certify, direct_distance, error_scale, window_pixels
from nps.engine.sampler_pool import SemanticPools
from nps.engine.sampler_scores import StepScores
from nps.engine.sampler_setup import CandidatePool, StepGeometry
from nps.engine.search import ExactSearch, StepQuery
from nps.engine.search_hints import continuations
from nps.engine.selection import draw, draw_chunked
from nps.engine.window_cache import index_key, local_splits, window_index

if TYPE_CHECKING:  # pragma: no cover
    from nps.config import GenerationConfig

__all__ = ["StepChoice", "uses_window_index"]


def uses_window_index(config: GenerationConfig, shared_pool: bool) -> bool:
    """Whether a run with ``config`` searches the whole-corpus window index (see :meth:`StepChoice.exact_search`).

    Args:
        shared_pool: the "images" constraint gives one pool shared by the batch (a label's images).
    """
    if config.search not in ("exact", "approx") or not config.uses("ssd"):
        return False
    return not active(config, "images") or (shared_pool and not config.ssd_global_min)


class StepChoice(StepScores):
    """The deciding half of a sampler: which candidates a step keeps, and the one each sample draws."""

    corpus: Corpus
    pools: SemanticPools
    gauss_: np.ndarray  # (w,w) float64 Gaussian window
    padded_host_: torch.Tensor  # (N,C,Hp,Wp) uint8 padded corpus on the CPU (``padded_`` may be on CUDA)
    search_: ExactSearch | bool | None  # None: not looked for yet; False: looked for, no index

    def exact_search(self, build: bool | None = None) -> ExactSearch | None:
        """The pruned search over the corpus's window index, when the config asks for it and it applies.

        It applies to the appearance rule over a pool shared by the batch: the whole corpus
        (``ssd`` without ``ssl``) or a class label's images (``ssl`` with ``label``, through
        :meth:`ExactSearch.use_pool`); per-sample pools (k-NN, a batch of one) keep the dense scan, and
        so does a label pool under ``ssd_global_min`` (its threshold comes from the whole corpus's
        minimum, :mod:`nps.engine.sampling_readings`).  Its index is built on first use for small
        corpora and otherwise only used when cached (``build=True`` builds it); without one the dense
        scan runs, which makes the same draws.
        """
        cfg = self.config
        if not uses_window_index(cfg, self.pools.shared is not None):
            return None
        if self.search_ is None or (build and self.search_ is False):
            h, w = self.corpus.image_shape[:2]
            padded = self.padded_host_  # (N,C,Hp,Wp) uint8 on the CPU, whatever the device: numpy reads it
            index = window_index(self.corpus.content_hash, padded.numpy(), cfg.window, h, w, build,
                                 local_splits(cfg))
            if index is None:
                self.search_ = False
            elif cfg.search == "approx":
                from nps.engine.search_approx import approx_search
                self.search_ = approx_search(index, self.corpus.content_hash, padded, cfg, w)
            else:
                key = index_key(self.corpus.content_hash, cfg.window, padded.shape, local_splits(cfg))
                self.search_ = ExactSearch(index, padded, cfg, w, index_key=key)
        return self.search_ or None

    def _choose(self, geo: StepGeometry, cpad: torch.Tensor, pool: CandidatePool,
                u: torch.Tensor) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray, np.ndarray | None]:
        """Draw one candidate window per sample for the step (see :mod:`nps.engine.selection`).

        Args:
            cpad: (B,C,H+2h,W+2h) float32 padded canvases in [0,1].
            u: (B,) float64, each sample's uniform for this step.
        Returns:
            (source id, source y, source x) each (B,) int64, pool sizes (B,) int64, and
            (B,) bool rows where nothing passed ``max_ssd`` (None without a ceiling).
        """
        search = self.exact_search() if pool.images is None else None
        if search is not None:  # the whole corpus, or a shared pool (ascending ids: checked once per pool)
            return self._choose_exact(search, geo, cpad, pool, u)
        if pool.images is None:
            chunks = self._shared_chunks(geo, cpad, pool)
            d_min = torch.stack([c.amin((0, 1, 2)) for c in chunks]).amin(0)
            view = ChunkView(chunks)
            thr, fell_back, overrides = self.certified_threshold(geo, cpad, pool, view, d_min)
            view.apply(*overrides)
            offset, slot, count = draw_chunked(chunks, thr, u)
        else:
            d = self.distances(geo, cpad, pool)
            view = DenseView(d)
            thr, fell_back, overrides = self.certified_threshold(geo, cpad, pool, view, view.flat.amin(1))
            view.apply(*overrides)
            offset, slot, count = draw(d, thr, u)
        oy, ox = np.divmod(offset, geo.centres[3] - geo.centres[2])
        ids = pool.ids
        if ids is None:
            sid = slot.astype(np.int64)
        elif ids.shape[0] == 1:
            sid = ids[0, slot]
        else:
            sid = ids[np.arange(len(slot)), slot]
        sources = (sid, (geo.centres[0] + oy).astype(np.int64), (geo.centres[2] + ox).astype(np.int64))
        return sources, count, fell_back

    def certified_threshold(self, geo: StepGeometry, cpad: torch.Tensor, pool: CandidatePool,
                            view: DenseView | ChunkView, d_min: torch.Tensor
                            ) -> tuple[torch.Tensor, np.ndarray | None, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The step's threshold with every near-threshold float32 decision made in float64.

        See :mod:`nps.engine.certify`.  Keep ``d <= thr`` except at the overrides, entries too close
        to call for float32, decided by the definition (``view.apply`` writes them back).

        Args:
            view: the step's float32 scores; d_min: (B,) float32 their per-sample minimum.
        Returns:
            (B,) float32 threshold, the fell-back rows (None without ``max_ssd``) and the
            (b, j, keep) overrides.
        """
        C = self.train_u8.shape[3]
        w = self.config.window
        target = cpad[:, :, geo.y:geo.y + w, geo.x:geo.x + w]
        # tau only scales the error bound (which has a factor 2 of margin): float32 will do.
        tau = ((geo.gm * target * target).sum((1, 2, 3)) / geo.gm_sum).double().sqrt_()
        cy0, _, cx0, cx1 = geo.centres
        context: list[torch.Tensor] = []  # (B,K) float64, 0..255: read once, on the first exact score

        def exact(b: np.ndarray, j: np.ndarray) -> torch.Tensor:
            wts = self._exact_weights(geo)
            if not context:
                context.append(wts.context(cpad, geo.y, geo.x, w))
            o, p = view.locate(j)
            if pool.images is None:
                images = p if pool.subset is None else pool.subset.cpu().numpy()[p]
            else:
                images = pool.ids[b if pool.ids.shape[0] > 1 else np.zeros_like(b), p]
            oy, ox = np.divmod(o, cx1 - cx0)
            s = window_pixels(self._padded_np(), wts, images, cy0 + oy, cx0 + ox)
            return direct_distance(s, context[0][torch.from_numpy(b)], wts.w, wts.denom)

        out = certify(view, d_min, tau, error_scale(int(geo.known.sum()), C), C, self.config, exact)
        if self.config.ssd_global_min and self.config.uses("ssd"):  # the minimum over every window (opt-in)
            from nps.engine.sampling_readings import global_cut
            out = global_cut(self, geo, cpad, pool, view, out, tau, exact)
        return out

    def kept_mask(self, geo: StepGeometry, cpad: torch.Tensor, pool: CandidatePool, d: torch.Tensor) -> torch.Tensor:
        """(B,O*P) bool: the candidates the engine keeps, for (B,O,P) scores from :meth:`distances`.

        The same certified rule as :meth:`_choose` (the funnel and the explainer recount with it,
        so their pools are the engine's by construction); ``d`` is left unchanged.  Without an
        appearance threshold every candidate that is not excluded (+inf) is kept.
        """
        flat = d.reshape(d.shape[0], -1)
        thr, _, (b, j, keep) = self.certified_threshold(geo, cpad, pool, DenseView(d), flat.amin(1))
        mask = flat <= thr[:, None]
        if len(b):
            mask[torch.from_numpy(b), torch.from_numpy(j)] = torch.from_numpy(keep).to(mask.device)
        return mask

    def _exact_weights(self, geo: StepGeometry) -> ExactWeights:
        """The step's float64 definition (built on first use, shared by the certifier and the exact search)."""
        if geo.weights is None:
            _, channels, hp, wp = self.padded_.shape
            geo.weights = ExactWeights(self.gauss_ * geo.known, int(channels), int(hp), int(wp))
        return geo.weights

    def _padded_np(self) -> np.ndarray | torch.Tensor:
        """The padded corpus as a numpy array when it is a plain CPU tensor (else the view); never the device copy."""
        p = self.padded_host_
        plain = isinstance(p, torch.Tensor) and p.device.type == "cpu" and p.is_contiguous()
        return p.numpy() if plain else p  # (a view, never a copy of the corpus)

    def _choose_exact(self, search: ExactSearch, geo: StepGeometry, cpad: torch.Tensor, pool: CandidatePool,
                      u: torch.Tensor) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray | None]:
        """:meth:`_choose` through the pruned index (see :mod:`nps.engine.search`)."""
        if geo.query is None:
            geo.query = StepQuery(search.index, geo.centres, self._exact_weights(geo), self.corpus.image_shape[1])
        q: StepQuery = geo.query
        t = q.exact.context(cpad, geo.y, geo.x, self.config.window)  # (B,K) float64, 0..255
        B = t.shape[0]
        subset = None if pool.ids is None else pool.ids[0]  # (P,) ascending corpus ids of a shared pool
        refs = np.full(B, -1, np.int64) if pool.excluded_slot is None else pool.excluded_slot
        if subset is not None:  # the search takes the images each sample may not copy, not slots in the pool
            refs = np.where(refs >= 0, subset[np.maximum(refs, 0)], -1)
        sources = getattr(self, "sources_", None)  # (4,B,h,w) while a batch runs (Sampler._run_batch)
        hints = None
        if sources is not None and sources.shape[1] == B:
            h, w = self.corpus.image_shape[:2]
            hints = continuations(sources[:3], geo.y, geo.x, self.config.window // 2, search.index.uid, h, w)
        (sid, sy, sx), count, fell_back = search.use_pool(subset).choose(q, t, refs, u.cpu(), hints)
        return (sid, sy, sx), count, fell_back
