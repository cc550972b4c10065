"""The batched non-parametric sampler.

Generation is a pure function of (config, corpus, sample ids): sample ``i`` draws
its reference and its per-step uniforms from the RNG stream ``(config.seed, i)``,
so records of disjoint sample ids can be generated anywhere and merged.

All samples of a batch advance in lockstep along one fill order (it depends only
on the canvas, the seed box and the window).  At every step the known-pixel mask
of the context window is therefore shared by the batch, and the Gaussian-weighted
SSD of every candidate window is computed by expanding the square::

    d(s) = (sum g m s^2 - 2 sum g m t s + sum g m t^2) / sum g m

where the first two sums are convolutions (matrix products) over the gathered
candidate region.  There is no Python loop over pixels x candidates.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from nps import __version__
from nps.config import GenerationConfig
from nps.corpora import Corpus, load_corpus
from nps.errors import NPSError
from nps.fill_order import fill_order, seed_box
from nps.record import ProvenanceRecord
from nps.sampler_pool import SemanticPools, candidate_centres
from nps.ssd import window_ssd, window_ssd_shared, with_squares

log = logging.getLogger(__name__)

# Cap on (batch x candidates) scores held at once when the pool is the whole corpus.
MAX_SCORES = 1 << 25


class Stopped(NPSError):
    """The progress callback asked the run to stop."""


@dataclass
class Progress:
    """Passed to the progress callback.

    Attributes:
        step: pixels filled so far in this batch (of ``total``).
        batch, n_batches: which batch of the run.
        canvas: (B,H,W[,C]) uint8 partial canvases (unfilled pixels 0).
        known: (H,W) bool, the filled pixels.
    """

    step: int
    total: int
    batch: int
    n_batches: int
    canvas: np.ndarray
    known: np.ndarray


def gaussian_kernel(window: int, sigma: float) -> np.ndarray:
    """(w,w) float64 Gaussian weights with peak 1 at the centre."""
    r = np.arange(window) - window // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * sigma**2))
    return g


def sample_streams(seed: int, sample_ids: np.ndarray, n_train: int, steps: int,
                   reference: int | None, label_ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Reference ids (S,) int64 and per-step uniforms (S,steps) float64, one RNG per sample."""
    refs = np.empty(len(sample_ids), np.int64)
    uniforms = np.empty((len(sample_ids), steps), np.float64)
    for j, i in enumerate(sample_ids):
        rng = np.random.default_rng([int(seed), int(i)])
        r = int(rng.integers(n_train)) if label_ids is None else int(label_ids[rng.integers(len(label_ids))])
        refs[j] = r if reference is None else reference
        uniforms[j] = rng.random(steps)
    return refs, uniforms


@contextlib.contextmanager
def engine_threads() -> Iterator[None]:
    """Run the engine on ``$NPS_THREADS`` torch threads (default 1), then restore.

    Each step is a few dozen small tensor ops; with 2 threads their fork/join costs
    more than the work (measured: a 4x4 MNIST grid took 12.5 s on 2 threads and
    1.2 s on 1 on this 2-core machine).
    """
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(os.environ.get("NPS_THREADS", "1"))))
    try:
        yield
    finally:
        torch.set_num_threads(old)


_PADDED: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}


def padded_corpus(corpus: Corpus, half: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The train split as (N,H,W,C) uint8 and edge-padded (N,C,H+2h,W+2h) uint8 tensors.

    Windows that reach past a source image compare against its replicated border
    (documented in the README); candidate centres always lie inside it.  Kept for the
    last few (corpus, half) pairs: the app and the funnel build many samplers.
    """
    key = (corpus.content_hash, half)
    if key not in _PADDED:
        train = np.asarray(corpus.train)
        if train.ndim == 3:
            train = train[..., None]
        padded = np.pad(train, ((0, 0), (half, half), (half, half), (0, 0)), mode="edge")
        while len(_PADDED) >= 4:
            _PADDED.pop(next(iter(_PADDED)))
        _PADDED[key] = (torch.from_numpy(train.copy()),
                        torch.from_numpy(np.ascontiguousarray(padded.transpose(0, 3, 1, 2))))
    return _PADDED[key]


class Sampler:
    """Run a :class:`GenerationConfig` over a corpus.

    Args:
        config: the generation.
        corpus: the corpus (loaded from ``config`` when None).
        pools: semantic pools (built from ``config`` when None; only used with ``ssl``).
    """

    def __init__(self, config: GenerationConfig, corpus: Corpus | None = None,
                 pools: SemanticPools | None = None, given: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.config = config
        self.corpus = corpus if corpus is not None else load_corpus(
            config.corpus, config.subset, config.data_root)
        c = self.corpus
        labels = set(np.unique(c.train_labels).tolist())
        config.check(len(c), c.image_shape, labels)
        if config.device.startswith("cuda") and not torch.cuda.is_available():
            raise NPSError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu.")
        self.device = torch.device(config.device)
        self.pools = pools if pools is not None else SemanticPools.build(config, c)
        h, w = c.image_shape[:2]
        self.half = config.window // 2
        if given is None:
            y0, x0, y1, x1 = seed_box(h, w, config.seed_size)
            self.known0 = np.zeros((h, w), bool)
            self.known0[y0:y1, x0:x1] = True
            self.given_image = None
        else:
            # Completion: the user's pixels are the known region; there is no seed patch.
            image, known = given
            self.given_image, self.known0 = np.asarray(image, np.uint8), np.asarray(known, bool).copy()
        self.order_, self.shell_ = fill_order(self.known0, config.window)
        self.gauss_ = gaussian_kernel(config.window, config.sigma_)
        train_u8, padded = padded_corpus(c, self.half)
        self.train_u8 = train_u8  # (N,H,W,C) uint8, for exact copies
        self.padded_ = padded.to(self.device)  # (N,C,Hp,Wp) uint8
        self.width_ = int(self.padded_.shape[-1])

    # ------------------------------------------------------------------ public
    def run(self, sample_ids: np.ndarray | None = None,
            progress: Callable[[Progress], bool | None] | None = None) -> ProvenanceRecord:
        with engine_threads():
            return self._run(sample_ids, progress)

    def _run(self, sample_ids: np.ndarray | None,
             progress: Callable[[Progress], bool | None] | None) -> ProvenanceRecord:
        cfg, c = self.config, self.corpus
        ids = np.arange(cfg.n, dtype=np.int64) if sample_ids is None else np.asarray(sample_ids, np.int64)
        label_ids = np.flatnonzero(c.train_labels == cfg.label) if cfg.label is not None else None
        refs, uniforms = sample_streams(cfg.seed, ids, len(c), len(self.order_), cfg.reference, label_ids)
        if self.given_image is not None:
            refs[:] = -1
        parts = []
        n_batches = (len(ids) + cfg.batch_size - 1) // cfg.batch_size
        for b in range(n_batches):
            rows = slice(b * cfg.batch_size, (b + 1) * cfg.batch_size)
            parts.append(self._run_batch(refs[rows], uniforms[rows], b, n_batches, progress))
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        ky, kx = np.nonzero(self.known0)
        order = np.concatenate([np.stack([ky, kx], 1), self.order_]).astype(np.int64)
        shell = np.concatenate([np.zeros(len(ky), np.int64), self.shell_])
        config = cfg.to_dict()
        config.update(corpus_size=len(c), image_shape=list(c.image_shape), version=__version__,
                      pool_key=self.pools.key)
        return ProvenanceRecord(reference=refs, order=order, config=config, sample_id=ids, shell=shell, **out)

    # ------------------------------------------------------------------ one batch
    def _run_batch(self, refs: np.ndarray, uniforms: np.ndarray, batch: int, n_batches: int,
                   progress: Callable[[Progress], bool | None] | None) -> dict[str, np.ndarray]:
        B = len(refs)
        h, w = self.corpus.image_shape[:2]
        C = self.train_u8.shape[3]
        half = self.half
        canvas = torch.zeros((B, h, w, C), dtype=torch.uint8)
        # The float, padded copy the SSD reads; unknown and out-of-canvas pixels are masked by gm.
        cpad = torch.zeros((B, C, h + 2 * half, w + 2 * half), dtype=torch.float32, device=self.device)
        src = np.full((4, B, h, w), -1, np.int64)  # index, y, x, label
        pool_size = np.ones((B, h, w), np.int64)
        relaxed = np.zeros((B, h, w), bool)
        known = self.known0.copy()
        ky, kx = np.nonzero(known)
        if self.given_image is None:
            seed = self.train_u8[torch.from_numpy(refs)][:, ky, kx]  # (B,S,C)
            src[0][:, ky, kx] = refs[:, None]
            src[1][:, ky, kx] = ky
            src[2][:, ky, kx] = kx
            src[3][:, ky, kx] = self.corpus.train_labels[refs][:, None]
            pool_ids = self.pools.for_references(refs)
        else:
            given = torch.from_numpy(self.given_image.reshape(h, w, C).copy())
            seed = given[ky, kx][None].expand(B, -1, -1)
            pool_size[:, ky, kx] = 0
        canvas[:, ky, kx] = seed
        cpad[:, :, ky + half, kx + half] = seed.permute(0, 2, 1).float().to(self.device) / 255.0
        if self.given_image is not None:
            pool_ids = self.pools.for_given(self._images(canvas), refs)
        pool_pad = self._gather_pool(pool_ids, B)
        current_shell = 0
        total = len(self.order_)
        for step, ((y, x), shell) in enumerate(zip(self.order_, self.shell_)):
            y, x = int(y), int(x)
            if shell != current_shell:
                current_shell = int(shell)
                if self.pools.per_shell:
                    pool_ids = self.pools.for_canvases(self._images(canvas), known, refs)
                    pool_pad = self._gather_pool(pool_ids, B)
            (sid, sy, sx), count, row_relaxed = self._step(y, x, cpad, known, pool_ids, pool_pad,
                                                           uniforms[:, step])
            pixel = self.train_u8[torch.from_numpy(sid), torch.from_numpy(sy), torch.from_numpy(sx)]  # (B,C)
            canvas[:, y, x] = pixel
            cpad[:, :, y + half, x + half] = pixel.float().to(self.device) / 255.0
            src[0][:, y, x], src[1][:, y, x], src[2][:, y, x] = sid, sy, sx
            src[3][:, y, x] = self.corpus.train_labels[sid]
            pool_size[:, y, x] = count
            relaxed[:, y, x] = row_relaxed
            known[y, x] = True
            if progress is not None and (step % 16 == 15 or step == total - 1):
                info = Progress(step + 1, total, batch, n_batches, self._images(canvas).copy(), known.copy())
                if progress(info) is False:
                    raise Stopped("stopped at your request; no record was written.")
        return {"images": self._images(canvas).copy(), "source_index": src[0], "source_y": src[1],
                "source_x": src[2], "source_label": src[3], "pool_size": pool_size, "relaxed": relaxed}

    @staticmethod
    def _images(canvas: torch.Tensor) -> np.ndarray:
        return canvas.squeeze(-1).numpy() if canvas.shape[-1] == 1 else canvas.numpy()

    def _gather_pool(self, pool_ids: np.ndarray | None, batch: int) -> torch.Tensor | None:
        """(B,L,C+1,P) float32 padded pool images (see :func:`with_squares`), else None."""
        if pool_ids is None or (pool_ids.shape[0] == 1 and batch > 1):
            return None
        ids = torch.from_numpy(np.where(pool_ids >= 0, pool_ids, 0)).to(self.device)
        pool = self.padded_[ids].flatten(3).permute(0, 3, 2, 1).float() / 255.0  # (B,L,C,P)
        return with_squares(pool, 2).contiguous()

    # ------------------------------------------------------------------ one pixel
    def _step(self, y: int, x: int, cpad: torch.Tensor, known: np.ndarray, pool_ids: np.ndarray | None,
              pool_pad: torch.Tensor | None,
              u: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
        """Fill pixel (y, x) of every canvas in the batch.

        Returns:
            (source id, source y, source x) each (B,) int64; pool sizes (B,) int64; relaxed (B,) bool.
        """
        cfg = self.config
        h, w = known.shape
        radius = cfg.radius if cfg.uses("loc") else None
        (cy0, cy1, cx0, cx1), was_relaxed = candidate_centres(y, x, h, w, radius)
        d = self._distances(y, x, cpad, known, pool_ids, pool_pad, (cy0, cy1, cx0, cx1))  # (B,P,ny,nx)
        B = d.shape[0]
        flat = d.reshape(B, -1)
        row_relaxed = np.full(B, was_relaxed)
        if cfg.uses("ssd"):
            dmin = flat.min(1, keepdim=True).values
            keep = flat <= dmin * (1.0 + cfg.eps) + cfg.tol
            if cfg.max_ssd is not None:
                # EL's absolute ceiling; where nothing passes it, fall back to the adaptive rule.
                capped = keep & (flat <= cfg.max_ssd)
                empty = capped.sum(1) == 0
                keep = torch.where(empty[:, None], keep, capped)
                row_relaxed |= empty.cpu().numpy()
        else:
            keep = torch.isfinite(flat)
        # The j-th kept candidate in canonical (centre offset, pool slot) order, j = floor(u * count).
        # nonzero() lists kept candidates row by row in that order, so one pass finds them all.
        rows, cols = torch.nonzero(keep, as_tuple=True)
        count = torch.bincount(rows, minlength=B).cpu().numpy()
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        j = np.floor(u * count).astype(np.int64)
        pick = cols[torch.from_numpy(start + j).to(cols.device)].cpu().numpy()
        nx = cx1 - cx0
        offset, slot = np.divmod(pick, d.shape[2])
        oy, ox = np.divmod(offset, nx)
        if pool_ids is None:
            sid = slot.astype(np.int64)
        elif pool_ids.shape[0] == 1:
            sid = pool_ids[0, slot]
        else:
            sid = pool_ids[np.arange(B), slot]
        return (sid, (cy0 + oy).astype(np.int64), (cx0 + ox).astype(np.int64)), count, row_relaxed

    def _distances(self, y: int, x: int, cpad: torch.Tensor, known: np.ndarray, pool_ids: np.ndarray | None,
                   pool_pad: torch.Tensor | None, centres: tuple[int, int, int, int]) -> torch.Tensor:
        """Normalised Gaussian-weighted SSD of every candidate window.

        Returns:
            (B,O,P) float32 for O = ny*nx candidate centres (row-major) and P pool images,
            the canonical candidate order; +inf for padding slots of an adaptive pool.
        """
        cfg, half = self.config, self.half
        cy0, cy1, cx0, cx1 = centres
        ny, nx = cy1 - cy0, cx1 - cx0
        m = np.pad(known, half)[y:y + cfg.window, x:x + cfg.window]
        gm = torch.from_numpy(self.gauss_ * m).float().to(self.device)
        target = cpad[:, :, y:y + cfg.window, x:x + cfg.window]  # (B,C,w,w)
        origin = (cy0, cx0)  # padded coordinates of the window of the first centre
        if pool_pad is None:
            subset = None if pool_ids is None else torch.from_numpy(pool_ids[0]).to(self.device)
            return self._distances_shared(target, gm, origin, ny, nx, subset)
        d = window_ssd(pool_pad, self.width_, origin, target, gm, ny, nx)
        if (pool_ids < 0).any():
            d = d.masked_fill(torch.from_numpy(pool_ids < 0).to(self.device)[:, None, :], float("inf"))
        return d

    def _distances_shared(self, target: torch.Tensor, gm: torch.Tensor, origin: tuple[int, int], ny: int, nx: int,
                          subset: torch.Tensor | None) -> torch.Tensor:
        """As :meth:`_distances` when one pool (``subset`` ids, or the whole corpus) serves the batch."""
        B = target.shape[0]
        N = self.padded_.shape[0] if subset is None else len(subset)
        w = self.config.window
        chunk = max(1, MAX_SCORES // max(1, B * ny * nx))
        out = []
        for s in range(0, N, chunk):
            rows = slice(s, s + chunk) if subset is None else subset[s:s + chunk]
            region = self.padded_[rows, :, origin[0]:origin[0] + ny + w - 1, origin[1]:origin[1] + nx + w - 1]
            out.append(window_ssd_shared(region.float() / 255.0, target, gm))
        return out[0] if len(out) == 1 else torch.cat(out, 2)  # (B,O,N)


def complete(config: GenerationConfig, corpus: Corpus | None, image: np.ndarray, known: np.ndarray, *,
             sample_ids: np.ndarray | None = None, progress: Callable[[Progress], bool | None] | None = None,
             pools: SemanticPools | None = None) -> ProvenanceRecord:
    """Efros-Leung hole filling: synthesise the unknown pixels of ``image`` from the corpus.

    Args:
        image: (H,W) or (H,W,C) uint8, the corpus image shape; values under ``~known`` are ignored.
        known: (H,W) bool, True for the pixels to keep.
    Returns:
        a record whose given pixels have ``source_index == -1`` and ``pool_size == 0``;
        ``reference`` is -1.  With ``ssl`` the semantic pool is the k-NN of the masked input.
    """
    corpus = corpus if corpus is not None else load_corpus(config.corpus, config.subset, config.data_root)
    image, known = np.asarray(image), np.asarray(known, bool)
    if image.shape != corpus.image_shape or image.dtype != np.uint8:
        raise NPSError(f"the image must be uint8 of shape {corpus.image_shape} to match corpus '{corpus.name}', "
                       f"got {image.dtype} {image.shape}; resize it first.")
    if known.shape != corpus.image_shape[:2]:
        raise NPSError(f"the mask must have shape {corpus.image_shape[:2]}, got {known.shape}.")
    if not known.any():
        raise NPSError("the mask keeps no pixel; mark some pixels as known so there is something to grow from.")
    if known.all():
        raise NPSError("the mask keeps every pixel; mark a region as unknown to fill it.")
    return Sampler(config, corpus, pools, given=(image, known)).run(sample_ids, progress)


def generate(config: GenerationConfig, corpus: Corpus | None = None, *, sample_ids: np.ndarray | None = None,
             progress: Callable[[Progress], bool | None] | None = None,
             pools: SemanticPools | None = None) -> ProvenanceRecord:
    """Generate ``config.n`` samples (or the given ``sample_ids``) with full provenance.

    Args:
        config: the generation (validated here; bad values raise NPSError).
        corpus: the training corpus; loaded from ``config`` when None.
        sample_ids: (S,) int64 sample indices to generate (default ``arange(config.n)``);
            disjoint id sets give records that :func:`nps.record.merge` joins exactly.
        progress: called every 16 steps; return False to stop (raises :class:`Stopped`).
        pools: prebuilt :class:`SemanticPools` (reuse across calls, e.g. in the app).
    Returns:
        a :class:`ProvenanceRecord` with N = len(sample_ids) samples.
    """
    torch.manual_seed(config.seed)  # nothing in the engine draws from torch, but be explicit
    return Sampler(config, corpus, pools).run(sample_ids, progress)
