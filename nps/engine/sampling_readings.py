"""Two readings of the paper's sampling rule (issue 12, part 4), as engine options, off by default.

The third reading, (i) the representation constraint as an adaptive threshold (1+eps)*min
over the re-embedded canvas, uncapped by k, is ``ssl_mode="canvas"`` with ``ssl_eps`` and
``ssl_cap`` (:func:`nps.retrieval.semantic_pool`); it needs nothing here.

**(ii) A window-level embedding of the context** (``ssl_mode="window"``).  Instead of one
image-level embedding per sample, the semantic pool is re-ranked at every step from the
context window itself.  A PCA of w x w windows (the context's size) is fitted once on
:data:`FIT_WINDOWS` windows drawn at random positions of random train images (seed 0):
basis E (C*w*w, d) float64, d = :data:`DIMS`.  At step (y, x), with the step's known mask m
(w x w, shared by the batch), context t_b and train image i's window s_i at the same centre
(y, x) (edge-padded as the engine pads), the distance is

    D(b, i) = || E_m^T (t_b - s_i) ||^2,     E_m = the rows of E on the known pixels,

the squared distance of the masked windows in the window PCA (unknown pixels, as in the
canvas mode, count as 0 on both sides).  The pool of sample b is its k images of least D
(the reference left out), ties broken by the lower id, sorted ascending.  Cost per step: one
(N,K) x (K,d) product and an (N,B) distance table.  Only the window *at* the position is
ranked (not the locality ball around it), which keeps the cost one product per step.

**(iii) The SSD minimum over every window** (``ssd_global_min``).  The appearance threshold
is taken from the minimum over every window of every train image in the locality band
(the sample's reference left out), not inside the semantic pool:

    g_b = min over all images i != ref_b and centres c in the band of d(t_b, window(i, c))
    keep (b, candidate j of the pool)  <=>  d_j <= thr(g_b)          (thr: the appearance rule)

where some pool window passes; elsewhere the pool's own rule applies and the pixel is
marked relaxed (as ``max_ssd`` falls back).  g comes from the whole-corpus exact search
(:class:`nps.engine.search.ExactSearch`, used as it is: its candidate pruning and float64 screen,
the first half of :meth:`~nps.engine.search.ExactSearch.choose`), so it is the float64 definition;
the comparisons of pool windows against thr(g) are certified the way
:func:`nps.engine.certify.certify` certifies its own (float32 where safe, the definition where
too close to call).  Every pixel is still a copy of one training pixel of the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from nps.engine.sampler import Sampler
    from nps.engine.sampler_setup import CandidatePool, StepGeometry

#: Principal components of the window embedding (ii).
DIMS = 16
#: Windows the window PCA is fitted on (ii).
FIT_WINDOWS = 20_000
#: Distances of (ii) are rounded to this grid, so that equal windows tie exactly (then the lower id wins).
GRID = 1e-9


@dataclass(eq=False)
class WindowEmbedding:
    """Reading (ii): the PCA of w x w windows, and the per-step ranking of train images by it.

    Attributes:
        basis: (C*w*w, d) float64 principal axes, channel-major (c, dy, dx) like the padded corpus.
        padded: (N,C,H+2h,W+2h) uint8 edge-padded train images (the engine's).
        window: w.  key: cache key of the pools (corpus content, w, d).
    """

    basis: torch.Tensor
    padded: torch.Tensor
    window: int
    key: str
    kind: str = "window"  # the record's ``pool_index``

    @classmethod
    def fit(cls, corpus: Any, window: int) -> WindowEmbedding:
        """Fit the window PCA on ``corpus`` (deterministic: seed 0)."""
        from nps.cache import content_key
        from nps.engine.sampler_setup import padded_corpus
        half = window // 2
        padded = padded_corpus(corpus, half)[1]  # (N,C,Hp,Wp) uint8, shared with the engine
        n, ch, hp, wp = padded.shape
        h, w = hp - 2 * half, wp - 2 * half
        rng = np.random.default_rng(0)
        m = min(FIT_WINDOWS, n * h * w)
        img, cy, cx = rng.integers(n, size=m), rng.integers(h, size=m), rng.integers(w, size=m)
        dy, dx = np.meshgrid(np.arange(window), np.arange(window), indexing="ij")
        p = padded.numpy()
        win = p[img[:, None, None, None], np.arange(ch)[None, :, None, None],
                (cy[:, None, None, None] + dy[None, None]), (cx[:, None, None, None] + dx[None, None])]
        x = win.reshape(m, -1).astype(np.float64) / 255.0  # (m, C*w*w)
        x -= x.mean(0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        basis = torch.from_numpy(np.ascontiguousarray(vt[:min(DIMS, vt.shape[0])].T))
        return cls(basis, padded, window, content_key("window-embedding", corpus.content_hash, window, DIMS,
                                                      FIT_WINDOWS))

    def pixels_major(self) -> np.ndarray:
        """(C*Hp*Wp, N) uint8: the padded corpus pixel-major, so a step's K window pixels are K contiguous rows."""
        if getattr(self, "major_", None) is None:
            self.major_ = np.ascontiguousarray(self.padded.numpy().reshape(self.padded.shape[0], -1).T)
        return self.major_

    def distances(self, canvases: np.ndarray, known: np.ndarray, y: int, x: int) -> torch.Tensor:
        """(B,N) float64 D(b, i) for filling (y, x) of canvases (B,H,W[,C]) uint8 with ``known`` (H,W) bool."""
        w, half = self.window, self.window // 2
        can = np.asarray(canvases)
        can = can[..., None] if can.ndim == 3 else can
        B, ch = can.shape[0], can.shape[3]
        m = np.pad(np.asarray(known, bool), half)[y:y + w, x:x + w].ravel()  # (w*w,) the context's known pixels
        cp = np.pad(can, ((0, 0), (half, half), (half, half), (0, 0)))  # unknown and outside: 0
        t = cp[:, y:y + w, x:x + w, :].transpose(0, 3, 1, 2).reshape(B, ch, w * w)[:, :, m]
        _, _, hp, wp = self.padded.shape
        dy, dx = np.divmod(np.flatnonzero(m), w)
        rows = (np.arange(ch)[:, None] * (hp * wp) + (y + dy) * wp + (x + dx)).ravel()  # (K,) channel-major
        e = self.basis.reshape(ch, w * w, -1)[:, torch.from_numpy(m), :].reshape(-1, self.basis.shape[1])  # (K,d)
        major = self.pixels_major()
        if getattr(self, "buffer_", None) is None:  # one (C*w*w, N) float64 buffer: a step's rows are its top K
            self.buffer_ = np.empty((ch * w * w, major.shape[1]), np.float64)
        for i, r in enumerate(rows):  # row by row, no temporary of a step-dependent size (it fragments the heap)
            self.buffer_[i] = major[r]
        es = torch.from_numpy(self.buffer_[:len(rows)]).T @ (e / 255.0)  # (N,d)
        et = torch.from_numpy(t.reshape(B, -1).astype(np.float64) / 255.0) @ e  # (B,d)
        d = (es * es).sum(1)[None, :] - 2.0 * (et @ es.T) + (et * et).sum(1)[:, None]
        return torch.round(d.clamp_(min=0.0) / GRID) * GRID

    def trim(self) -> None:
        """Hand freed heap pages back to the system (glibc; elsewhere nothing).

        Every step of the window mode frees a pool's tensors and scores whose sizes change with
        the step, and glibc's heap keeps the freed pages: measured on MNIST, RSS grew 5.5 MB per
        step (1.1 GB to 4.7 GB over one 8-sample run) and stays flat with this call per step.
        """
        import ctypes
        import ctypes.util
        if getattr(self, "libc_", None) is None:
            name = ctypes.util.find_library("c")
            try:
                libc = ctypes.CDLL(name) if name else False
                self.libc_ = libc if libc and hasattr(libc, "malloc_trim") else False
            except OSError:
                self.libc_ = False
        if self.libc_:
            self.libc_.malloc_trim(0)

    def pools(self, canvases: np.ndarray, known: np.ndarray, y: int, x: int, k: int,
              exclude: np.ndarray | None) -> np.ndarray:
        """(B,k') int64 ids of each sample's k least-D images (``exclude`` (B,) left out), ascending."""
        self.trim()
        d = self.distances(canvases, known, y, x)
        B, n = d.shape
        if exclude is not None:
            rows = np.flatnonzero(np.asarray(exclude) >= 0)
            d[torch.from_numpy(rows), torch.from_numpy(np.asarray(exclude)[rows])] = float("inf")
        kk = min(k, n - (0 if exclude is None or (np.asarray(exclude) < 0).all() else 1))
        kth = torch.topk(d, kk, dim=1, largest=False).values[:, -1:]  # (B,1)
        less, tie = d < kth, d == kth
        take = less | (tie & (tie.cumsum(1) <= kk - less.sum(1, keepdim=True)))  # ties: the lower ids
        return torch.nonzero(take)[:, 1].reshape(B, kk).numpy().astype(np.int64)


def plain_window_pool(padded: np.ndarray, basis: np.ndarray, canvas: np.ndarray, known: np.ndarray, y: int, x: int,
                      window: int, k: int, exclude: int) -> np.ndarray:
    """:meth:`WindowEmbedding.pools` for one sample by the definition: a loop over images (tests).

    Args:
        padded: (N,C,Hp,Wp) uint8; basis: (C*w*w, d) float64; canvas: (H,W[,C]) uint8.
    """
    w, half = window, window // 2
    c = canvas[..., None] if canvas.ndim == 2 else canvas
    m = np.pad(known, half)[y:y + w, x:x + w]
    cp = np.pad(c, ((half, half), (half, half), (0, 0)))[y:y + w, x:x + w, :].transpose(2, 0, 1)  # (C,w,w)
    t = np.where(m[None], cp, 0).astype(np.float64).ravel() / 255.0
    dist = []
    for i in range(len(padded)):
        s = np.where(m[None], padded[i, :, y:y + w, x:x + w], 0).astype(np.float64).ravel() / 255.0
        dist.append(float(((t - s) @ basis) @ ((t - s) @ basis)) if i != exclude else np.inf)
    order = np.lexsort((np.arange(len(dist)), np.round(np.asarray(dist) / GRID)))
    return np.sort(order[:k])


# ---------------------------------------------------------------------------- reading (iii)
def _search(sampler: Sampler) -> Any:
    """The sampler's whole-corpus :class:`~nps.engine.search.ExactSearch` (its window index built on first use)."""
    if getattr(sampler, "global_search_", None) is None:
        from nps.engine.search import ExactSearch
        from nps.engine.window_cache import local_splits, window_index
        h, w = sampler.corpus.image_shape[:2]
        padded = sampler.padded_host_  # the CPU copy (padded_ may be on CUDA)
        index = window_index(sampler.corpus.content_hash, padded.numpy(), sampler.config.window, h, w, True,
                             local_splits(sampler.config))
        sampler.global_search_ = ExactSearch(index, padded, sampler.config, w)
    return sampler.global_search_


def global_minimum(sampler: Sampler, geo: StepGeometry, cpad: torch.Tensor, refs: np.ndarray) -> torch.Tensor:
    """(B,) float64 g_b: the least SSD (the definition) over every window of every train image in the band.

    Args:
        cpad: (B,C,H+2h,W+2h) float32 padded canvases in [0,1]; refs: (B,) int64 images left out (-1: none).
    """
    from nps.engine.search import StepQuery
    search = _search(sampler)
    if geo.query is None:
        geo.query = StepQuery(search.index, geo.centres, sampler._exact_weights(geo), sampler.corpus.image_shape[1])
    q = geo.query
    t = q.exact.context(cpad, geo.y, geo.x, sampler.config.window)  # (B,K) float64, 0..255
    return search.minimum(q, t, refs)


def global_cut(sampler: Sampler, geo: StepGeometry, cpad: torch.Tensor, pool: CandidatePool, view: Any,
               pooled: tuple[torch.Tensor, np.ndarray | None, tuple[np.ndarray, np.ndarray, np.ndarray]],
               tau: torch.Tensor, exact: Any) -> tuple[torch.Tensor, np.ndarray, tuple[np.ndarray, np.ndarray,
                                                                                     np.ndarray]]:
    """The step's certified decision under reading (iii), from the pool's own (``pooled``, :func:`certify`).

    Rows with a pool window under thr(g) keep exactly the pool windows under it; the others keep
    ``pooled``'s decision and are reported as fallen back (relaxed).

    Args:
        view: the step's float32 scores (:class:`nps.engine.certify.ScoreView`); tau: (B,) float64.
        exact: the float64 definition of (b, j) entries (the certifier's).
    Returns:
        as :func:`nps.engine.certify.certify`: (B,) float32 thresholds, (B,) bool fell-back rows, overrides.
    """
    from nps.engine.certify import EXACT_BATCH, _down32, _on, _up32, error_scale, score_bound
    from nps.engine.selection import thresholds
    thr1, fell1, (b1, j1, k1) = pooled
    cfg, C = sampler.config, sampler.train_u8.shape[3]
    refs = getattr(sampler, "refs_", None)
    B = thr1.shape[0]
    refs = np.full(B, -1, np.int64) if refs is None or cfg.include_reference else np.asarray(refs, np.int64)
    g = global_minimum(sampler, geo, cpad, refs)
    thr_g = thresholds(g, cfg)[0].numpy()  # float64: the rule on the definition's minimum
    c, tau_np, device = error_scale(int(geo.known.sum()), C), tau.cpu().numpy(), thr1.device
    lo = _down32(thr_g - score_bound(thr_g, tau_np, c, C))
    hi = _up32(thr_g + 2.0 * score_bound(thr_g, tau_np, c, C))
    lo_t, hi_t = _on(lo, device), _on(hi, device)
    none = torch.full((B,), float("-inf"), dtype=torch.float32, device=device)
    kept = view.count_between(none, lo_t).cpu().numpy().astype(np.int64)  # surely under thr(g)
    rows = np.flatnonzero(view.count_between(lo_t, hi_t).cpu().numpy() > 0)
    b = j = np.zeros(0, np.int64)
    keep = np.zeros(0, bool)
    if len(rows):
        b, j, _ = view.entries(none, lo_t, hi_t, rows)
        values = np.concatenate([np.zeros(0)] + [exact(b[s:s + EXACT_BATCH], j[s:s + EXACT_BATCH]).cpu().numpy()
                                                 for s in range(0, len(b), EXACT_BATCH)])
        keep = values <= thr_g[b]
        kept += np.bincount(b[keep], minlength=B)
    ok = kept > 0
    thr = torch.where(_on(ok, device), lo_t, thr1)
    first, second = ~ok[b1], ok[b]
    overrides = (np.concatenate([b1[first], b[second]]), np.concatenate([j1[first], j[second]]),
                 np.concatenate([k1[first], keep[second]]))
    fell = ~ok if fell1 is None else (~ok | fell1)
    return thr, fell, overrides
