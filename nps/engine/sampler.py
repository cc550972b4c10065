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

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from nps import __version__
from nps.config import GenerationConfig
from nps.constraints import active, mask_pool, step_centres
from nps.corpora import Corpus, load_corpus
from nps.engine.fill_order import fill_order, seed_box
from nps.engine.sampler_choice import StepChoice
from nps.engine.sampler_pool import SemanticPools
from nps.engine.sampler_setup import (
    CandidatePool,
    StepGeometry,
    engine_threads,
    gaussian_kernel,
    ieee_float32,
    padded_corpus,
    sample_streams,
)
from nps.engine.search import ExactSearch
from nps.engine.ssd import with_squares
from nps.errors import NPSError
from nps.memory import release_freed
from nps.record import ENGINE_VERSION, ProvenanceRecord

__all__ = ["Progress", "Sampler", "Stopped", "complete", "gaussian_kernel", "generate", "sample_streams"]

log = logging.getLogger(__name__)


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


class Sampler(StepChoice):
    """Run a :class:`GenerationConfig` over a corpus.

    This module sets the run up and loops over batches and steps; each step's candidate scores come
    from :class:`~nps.engine.sampler_scores.StepScores` and its choice (search dispatch, certified
    threshold, draw) from :class:`~nps.engine.sampler_choice.StepChoice`, the bases.

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
        from nps.engine.store_view import gathers_on_demand, sampler_arrays  # a stored corpus: gather pool rows only
        lazy = gathers_on_demand(c, self.pools.index is not None)
        train_u8, padded = (sampler_arrays if lazy else padded_corpus)(c, self.half)
        self.train_u8 = train_u8  # (N,H,W,C) uint8, for exact copies
        self.padded_ = padded.to(self.device)  # (N,C,Hp,Wp) uint8
        # The same on the CPU (the same object there): the window index, the pruned search and the float64
        # certifier read pixels with numpy, so on CUDA they read this copy, never the device's.
        self.padded_host_ = padded
        self.width_ = int(self.padded_.shape[-1])
        self.geometry_: list[StepGeometry] | None = None
        self.search_: ExactSearch | bool | None = None  # False: looked for, no index

    # ------------------------------------------------------------------ public
    def run(self, sample_ids: np.ndarray | None = None,
            progress: Callable[[Progress], bool | None] | None = None) -> ProvenanceRecord:
        try:
            with engine_threads(), ieee_float32():
                return self._run(sample_ids, progress)
        finally:  # a stopped run keeps what it searched too
            memo = getattr(self.search_, "blank", None)
            if memo is not None:
                try:
                    memo.save()
                except Exception as exc:  # a cache write must never cost the finished record
                    log.warning("could not store the blank-context kept sets (%s: %s)", type(exc).__name__, exc)

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
            parts.append(self._run_batch(refs[rows], uniforms[rows], b, n_batches, progress, ids[rows]))
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        ky, kx = np.nonzero(self.known0)
        order = np.concatenate([np.stack([ky, kx], 1), self.order_]).astype(np.int64)
        shell = np.concatenate([np.zeros(len(ky), np.int64), self.shell_])
        config = cfg.to_dict()
        config.update(corpus_size=len(c), image_shape=list(c.image_shape), version=__version__,
                      engine=ENGINE_VERSION, pool_key=self.pools.key,
                      pool_index=getattr(self.pools.index, "kind", None))  # flat (exact) or ivf
        # --subset N equal to the corpus size loads the whole corpus (no row map of its own); the record of
        # a --subset run still carries one (the identity), as the record contract requires of every subset run.
        ids_map = c.train_ids if c.train_ids is not None or cfg.subset is None else np.arange(len(c), dtype=np.int64)
        return ProvenanceRecord(reference=refs, order=order, config=config, sample_id=ids, shell=shell,
                                train_ids=ids_map, **out)

    # ------------------------------------------------------------------ geometry
    def geometry(self, y: int, x: int, known: np.ndarray) -> StepGeometry:
        """Everything about filling (y, x) with ``known`` (H,W) bool that does not depend on pixel values."""
        cfg, half = self.config, self.half
        h, w = known.shape
        centres, relaxed = step_centres(cfg, y, x, h, w)  # every "centres" constraint (nps.constraints)
        m = np.pad(known, half)[y:y + cfg.window, x:x + cfg.window]
        gm = self.gauss_ * m
        return StepGeometry(y, x, centres, relaxed, m, torch.from_numpy(gm).float().to(self.device),
                            float(torch.from_numpy(gm).float().sum()))

    def _geometries(self) -> list[StepGeometry]:
        """The geometry of every step of the fill order (computed once per sampler)."""
        if self.geometry_ is None:
            known = self.known0.copy()
            self.geometry_ = []
            for y, x in self.order_:
                self.geometry_.append(self.geometry(int(y), int(x), known))
                known[y, x] = True
        return self.geometry_

    def prepare(self) -> Sampler:
        """Precompute every step's geometry and band index now rather than in the first run.

        Runs do this lazily; benchmarks call it so that set-up is not timed as sampling.
        """
        for geo in self._geometries():
            if self.pools.index is not None and not self.spans_width(geo):
                self._band_index(geo)
        return self

    def exclusions(self, pool_ids: np.ndarray | None, refs: np.ndarray) -> np.ndarray | None:
        """(B,) int64 slot of each sample's own reference in its pool row (-1: absent), or None if none is.

        The reference seeds the canvas and is never a source beyond the seed, in every
        constraint set (unless ``include_reference``), so that ablations compare like with
        like: otherwise SSD alone would recover the reference from its own seed.  This is
        the one place that decides it, for every kind of pool (the whole corpus, a shared
        label pool, per-sample pools, which are built without the reference already).

        Args:
            pool_ids: None (the whole corpus), or (1,P) / (B,P) int64 ids with -1 padding.
            refs: (B,) int64 references (-1: none, as in completion).
        """
        refs = np.asarray(refs, np.int64)
        if self.config.include_reference or (refs < 0).all():
            return None
        if pool_ids is None:
            slot = refs.copy()
        else:
            hit = np.broadcast_to(pool_ids, (len(refs), pool_ids.shape[1])) == refs[:, None]
            slot = np.where(hit.any(1), hit.argmax(1), -1)
        return slot if (slot >= 0).any() else None

    # ------------------------------------------------------------------ one batch
    def _run_batch(self, refs: np.ndarray, uniforms: np.ndarray, batch: int, n_batches: int,
                   progress: Callable[[Progress], bool | None] | None,
                   sample_ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
        B = len(refs)
        h, w = self.corpus.image_shape[:2]
        C = self.train_u8.shape[3]
        half = self.half
        geometries = self._geometries()
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
        pool = self.candidate_pool(pool_ids, refs, B)
        # "mask" constraints (nps.constraints: multi-scale) prepare their state per batch and admit
        # pool slots per step; none is enabled in the built-in sets, so their path is untouched.
        masks = [(c, c.prepare(self.config, self.corpus, sample_ids, refs, pool_ids))
                 for c in active(self.config, "mask")]
        u_all = torch.from_numpy(uniforms).to(self.device)
        labels = self.corpus.train_labels
        self.refs_ = refs  # the references the whole-corpus minimum of ssd_global_min leaves out
        self.sources_ = src  # each pixel's source so far: the exact search's hints (nps.engine.search_hints)
        current_shell = 0
        total = len(self.order_)
        for step, (geo, shell) in enumerate(zip(geometries, self.shell_)):
            y, x = geo.y, geo.x
            if shell != current_shell:
                current_shell = int(shell)
                if self.pools.per_shell:
                    pool_ids = self.pools.for_canvases(self._images(canvas), known, refs)
                    pool = self.candidate_pool(pool_ids, refs, B)
            if self.pools.per_step:  # ssl_mode "window": the pool is ranked by the context of this pixel
                pool_ids = self.pools.for_step(self._images(canvas), known, refs, y, x)
                pool = self.candidate_pool(pool_ids, refs, B)
            step_pool = mask_pool(pool, [c.admit(state, y, x) for c, state in masks]) if masks else pool
            (sid, sy, sx), count, fell_back = self._choose(geo, cpad, step_pool, u_all[:, step])
            pixel = self.train_u8[torch.from_numpy(sid), torch.from_numpy(sy), torch.from_numpy(sx)]  # (B,C)
            canvas[:, y, x] = pixel
            cpad[:, :, y + half, x + half] = pixel.to(self.device, torch.float32).div_(255.0)
            src[0][:, y, x], src[1][:, y, x], src[2][:, y, x] = sid, sy, sx
            src[3][:, y, x] = labels[sid]
            pool_size[:, y, x] = count
            relaxed[:, y, x] = geo.relaxed if fell_back is None else (fell_back | geo.relaxed)
            known[y, x] = True
            if step % 16 == 15:
                release_freed()  # glibc keeps a step's freed temporaries otherwise (nps.memory)
            if progress is not None and (step % 16 == 15 or step == total - 1):
                info = Progress(step + 1, total, batch, n_batches, self._images(canvas).copy(), known.copy())
                if progress(info) is False:
                    raise Stopped("stopped at your request; no record was written.")
        self.sources_ = None
        out = {"images": self._images(canvas).copy(), "source_index": src[0], "source_y": src[1],
               "source_x": src[2], "source_label": src[3], "pool_size": pool_size, "relaxed": relaxed}
        for c, state in masks:
            out.update(c.record_arrays(state))
        return out

    @staticmethod
    def _images(canvas: torch.Tensor) -> np.ndarray:
        return canvas.squeeze(-1).numpy() if canvas.shape[-1] == 1 else canvas.numpy()

    def candidate_pool(self, pool_ids: np.ndarray | None, refs: np.ndarray, batch: int) -> CandidatePool:
        """The batch's candidate images for the steps to come."""
        slots = self.exclusions(pool_ids, refs)
        if pool_ids is None or (pool_ids.shape[0] == 1 and batch > 1):
            subset = None if pool_ids is None else torch.from_numpy(pool_ids[0]).to(self.device)
            return CandidatePool(pool_ids, None, subset, None, slots)
        ids = torch.from_numpy(np.where(pool_ids >= 0, pool_ids, 0)).to(self.device)
        images = self.padded_[ids].flatten(3).permute(0, 3, 2, 1).float() / 255.0  # (B,L,C,P)
        excluded = pool_ids < 0
        if slots is not None:
            rows = np.flatnonzero(slots >= 0)
            excluded = excluded.copy()
            excluded[rows, slots[rows]] = True
        mask = torch.from_numpy(excluded).to(self.device) if excluded.any() else None
        return CandidatePool(pool_ids, with_squares(images, 2).contiguous(), None, mask, None)





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
