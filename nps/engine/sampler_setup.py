"""The engine's parts that depend on no pixel value: step geometry, candidate pools, RNG streams.

Split from :mod:`nps.engine.sampler` (which re-exports what callers use) so that each file
has one job: this one sets a run up, the sampler runs it (:mod:`nps.engine.sampler_scores` scores a
step's candidates, :mod:`nps.engine.sampler_choice` decides and draws).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from nps.corpora import Corpus
from nps.engine.ssd import BandIndex


@dataclass
class StepGeometry:
    """The value-independent part of one step: where the candidates are and how they are weighed.

    Attributes:
        y, x: the target pixel.
        centres: (y0, y1, x0, x1) half-open candidate-centre ranges (locality applied).
        relaxed: the locality radius had to grow to reach the source image.
        known: (w,w) bool known-context mask.
        gm: (w,w) float32 Gaussian x ``known``.
        gm_sum: the sum of ``gm`` (float32 arithmetic).
        index, template: the banded-matrix index and :func:`square_template` for
            per-sample pools (built on first use).
        query: the :class:`nps.engine.search.StepQuery` of a whole-corpus step (built on first use).
        weights: the step's :class:`nps.engine.certify.ExactWeights` (built on first use).
    """

    y: int
    x: int
    centres: tuple[int, int, int, int]
    relaxed: bool
    known: np.ndarray
    gm: torch.Tensor
    gm_sum: float
    index: BandIndex | None = None
    template: torch.Tensor | None = None
    query: object = None
    weights: object = None


@dataclass
class CandidatePool:
    """The candidate source images of a batch.

    Attributes:
        ids: None (the whole corpus), (1,P) int64 shared, or (B,P) int64 per sample (-1 padding).
        images: (B,L,C+1,P) float32 per-sample padded images (see :func:`with_squares`), or None
            for a shared pool.
        subset: (P,) int64 ids of a shared pool (None: the whole corpus).
        excluded: (B,P) bool slots of a per-sample pool that may not be drawn (padding, the
            sample's reference), or None.
        excluded_slot: (B,) int64 slot of each sample's reference in a shared pool (-1: absent),
            or None.
    """

    ids: np.ndarray | None
    images: torch.Tensor | None
    subset: torch.Tensor | None
    excluded: torch.Tensor | None
    excluded_slot: np.ndarray | None = None


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


def thread_count() -> int:
    """``$NPS_THREADS`` (default 1) as a thread count, or one NPSError line.

    Text crashed ``int()``; 0 and negatives were silently 1; 100000 made OpenMP abort
    the whole process.  Allowed: 1 .. max(64, 4 x cores).
    """
    from nps.errors import NPSError
    raw = os.environ.get("NPS_THREADS", "").strip() or "1"
    top = max(64, 4 * (os.cpu_count() or 1))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and 1 <= int(raw) <= top):
        raise NPSError(f"NPS_THREADS={raw[:40]!r} is not a thread count; set it to 1..{top} (1 is fastest for the "
                       "engine's small per-step ops) or unset it.")
    return int(raw)


@contextlib.contextmanager
def engine_threads() -> Iterator[None]:
    """Run the engine on ``$NPS_THREADS`` torch threads (default 1), then restore.

    Each step is a few dozen small tensor ops; with 2 threads their fork/join costs
    more than the work (measured: a 4x4 MNIST grid took 12.5 s on 2 threads and
    1.2 s on 1 on this 2-core machine).
    """
    count = thread_count()
    old = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """Run float32 matrix products in IEEE float32 (no TF32 on CUDA, no bf16 on oneDNN), then restore.

    The certified decisions (:mod:`nps.engine.certify`) bound a float32 score's error by
    ``c = 2 (K (C+1) + 16) u`` with u = 2^-24, the IEEE float32 unit roundoff.  TF32 (10-bit
    mantissa, u = 2^-11) or bf16 (u = 2^-8) products, which ``torch.set_float32_matmul_precision``
    ("high", "medium") enables on CUDA and on CPUs with AMX, would break that bound and with it
    the bit-identity of records across devices.  Only the per-backend ``fp32_precision`` settings
    are read and written: torch refuses to read its legacy flags once both APIs were used.
    """
    backends = [b for b in (torch.backends.cuda.matmul, getattr(torch.backends.mkldnn, "matmul", None))
                if b is not None and hasattr(b, "fp32_precision")]
    old = [b.fp32_precision for b in backends]
    for b in backends:
        b.fp32_precision = "ieee"
    try:
        yield
    finally:
        for b, value in zip(backends, old):
            b.fp32_precision = value


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
