"""How long a generation will take, before it starts: a cost model and cheaper alternatives.

The engine scores every candidate window of every sampled pixel, so a run costs

    seconds ≈ FIXED_S + SECONDS_PER_WINDOW · windows_per_pixel · pixels · n
                      + SECONDS_PER_STEP · pixels · batches

with ``windows_per_pixel`` from :meth:`nps.config.GenerationConfig.windows_per_pixel`
(the cost driver: locality shrinks positions, representation shrinks images), ``pixels``
the pixels sampled per canvas (all but the seed) and ``batches`` = ceil(n / batch_size)
(each step has a fixed Python cost per batch).

Calibration (measured once, 2026-12-01, on this project's 2-core shared machine at a load
average of about 3.5, single-threaded BLAS, warm caches, ``nps.engine.sampler.generate`` timed
around the call with the pools prebuilt):

=====================================  =====  ==============  ========  ===========
config                                 n      windows (total)  seconds   s / window
=====================================  =====  ==============  ========  ===========
mnist 1k, ssd+loc+ssl (pca, k=64)      16     1.84e7          0.47      per-sample
mnist 1k, ssd+loc+ssl (pca, k=64)      4      4.61e6          0.28      per-sample
mnist 60k, ssd+ssl (simclr, k=64) [1]  16     5.78e8          14.0      2.42e-8
mnist 1k, ssd+loc                      8      1.44e8          1.98      1.37e-8
mnist 1k, ssd (every position)         2      1.13e9          35.2      3.12e-8
mnist 60k, ssd+loc                     4      4.32e9          128.8     2.98e-8
digits, ssd (every position)           8      4.43e7          0.39      8.7e-9
=====================================  =====  ==============  ========  ===========

The two per-sample-pool rows give 1.4e-8 s per window and 3e-4 s per step and batch; a
shared pool (no representation, or a class condition: one big pool for the whole batch,
scored in chunks that leave the CPU cache) costs about 3e-8 s per window.  The window
side barely matters (w = 5 and 7 differ by 10 %), so it is not in the model.  The figures
are within a factor of about two of the measurements; on a faster or idle machine the
estimate errs long.  Cold caches add the one-off corpus embedding (:data:`EMBED_COLD_S`).

[1] Per-sample pools *without* locality (every position of each of the k pool images) are
scored by :func:`nps.engine.ssd.window_ssd_rows` (one band for all centre rows); they cost
1.7 times more per window than with locality (:data:`SECONDS_PER_WINDOW_WIDE`).  Measured
2026-12-01 20:05 (``python -m nps generate --corpus mnist --constraints ssd,ssl --n 16
--batch-size 16``, pools and embeddings cached, load average 1.4; the generate call, pools
included, peak RSS 1.1 GB); the dense band before it took 93.8 s and 5.6 GB.

The window index (``search`` exact or approx, :mod:`nps.engine.search`) has its own model,
:data:`EXACT_POINTS` and :data:`APPROX_POINTS`: seconds per sampled pixel and sample measured by
``python -m nps bench`` (see there), interpolated in the windows per pixel, plus the index's
build time where it is built on first use (:data:`INDEX_BUILD_S_PER_WINDOW`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nps.config import GenerationConfig

SECONDS_PER_WINDOW = 1.4e-8  # per-sample semantic pools (the full model)
SECONDS_PER_WINDOW_SHARED = 3.0e-8  # one shared pool: no representation, or a class condition
SECONDS_PER_WINDOW_WIDE = 2.4e-8  # per-sample pools without locality (every position of the k images)
SECONDS_PER_STEP = 3.0e-4  # per sampled pixel and batch (Python, pool bookkeeping, drawing)
FIXED_S = 0.1
SLOW_S = 5.0  # runs expected to take longer than this get an estimate and a cheaper alternative first
EMBED_COLD_S = 120.0  # embedding MNIST's 70,000 images with SimCLR once on 2 cores (cached on disk afterwards)


# The window index (``search="exact"|"approx"``, :mod:`nps.engine.search`): seconds per sampled pixel
# and sample against the candidate windows per pixel, measured 2026-12-01 by ``python -m nps bench
# --subset S --cases loc-exact,ssd-exact,loc-approx,ssd-approx --batches 4 --n-b 4 --repeats 1 --steps 96
# --partial ssd-exact,ssd-approx`` for S = 1,000 and 6,000 (load 1.4-1.9) and the 60k runs of the
# README (SSD alone: its first 96 fill steps, extrapolated), each figure in ms/image over 720 pixels;
# the smallest points from ``python -m nps ablate --quick`` (200 images, n = 32, batch 64, whole runs:
# SSD alone 2.87 s/image, SSD + locality 0.15 s/image, load 1.5).
# Pruning is sublinear in the corpus: with locality 60x the images cost 5.7x; without it, 60x cost 58x.
# Re-measured 2026-12-02 after the chunked box bounds (same command, load 1.0):
# SSD + locality 618 / 964 ms/image at 1,000 / 6,000 images (60k kept at 3,700: 4,564 in the same
# hour's bench, a noisy host); SSD alone 5,907 / 28,220 / 267,410 at 1,000 / 6,000 / 60,000.
# The local index (split weights facing the seed, nps.engine.search_splits; 2026-12-02): the 6k and 60k
# locality points scaled by its side-by-side ratio to the global tree (6,000 images: 7.0 / 8.3 s for 4
# images; 60k: 3.45 / 5.70 s/image at batch 4, interleaved in one process, load 1.0).
# Between the points the model interpolates in log-log, beyond them it extends the nearest segment.
# The 60k points and the 6k one without locality: whole runs with blank contexts searched once
# (nps.engine.search_blank), measured 2026-12-02: SSD + locality 3.12 s/image at batch 4 (bench), SSD
# alone 32 s/image at 6k and 191 s/image at 60k (n = 4, every step; figures extrapolated from the first
# 96 steps had understated SSD alone, whose outer steps cost more).
EXACT_POINTS = {  # uses locality -> ((windows per pixel, seconds per pixel and sample), ...)
    True: ((5_000, 2.1e-4), (25_000, 8.6e-4), (150_000, 1.13e-3), (1_500_000, 2.17e-3)),
    False: ((156_800, 4.0e-3), (784_000, 8.2e-3), (4_704_000, 4.44e-2), (47_040_000, 6.3e-2)),
}
# SSD alone's 60k point: 45.3 s/image (181.2 s for 4, batch 4, blank entries read from the cache) with the
# continuation hints (nps.engine.search_hints), against 94.6 without them in the same process, 2026-12-03;
# it was 0.266 (191 s/image, the blank entries' first searches included).  The smaller points predate the
# hints (not re-measured): an overestimate there.
# The 60k approximate point with locality: 1.40x the exact one, its ratio measured 2026-12-02 on the local
# index (4.84 s/image against 3.45 at batch 4; it searched each sample alone, four times the step overhead).
# Since 2026-12-03 it searches parts of 4 samples in one pass, each masked to its own probes: 1.30x in the
# same process (tools/search_ab.py --ab together, 60k, batch 4), so the 60k point is divided by 1.3.
APPROX_POINTS = {
    True: ((25_000, 1.09e-3), (150_000, 1.40e-3), (1_500_000, 3.3e-3)),
    False: ((784_000, 4.4e-3), (4_704_000, 6.2e-3), (47_040_000, 1.21e-2)),
}
INDEX_BUILD_S_PER_WINDOW = 1.2e-6  # building the index: 57 s for 60k MNIST's 47M windows (python -m nps index)


@dataclass(frozen=True)
class Estimate:
    """An expected run time.

    Attributes:
        seconds: expected wall time of the sampling (building the window index included).
        windows_per_pixel: candidate windows scored per sampled pixel (at most).
        pixels: pixels sampled per canvas.
        n: samples.
        search: how the candidates are searched: "dense" (every window scored), "exact" or
            "approx" (the window index, :data:`INDEX_STATES`).
        index_build_s: of ``seconds``, building the window index on first use.
    """

    seconds: float
    windows_per_pixel: int
    pixels: int
    n: int
    search: str = "dense"
    index_build_s: float = 0.0

    @property
    def slow(self) -> bool:
        return self.seconds > SLOW_S


#: What :func:`index_state` says of a run's window index.
INDEX_STATES = ("unused", "cached", "build", "missing")


def _index_eligible(config: GenerationConfig) -> bool:
    """Whether the run's steps could search the window index (``search`` aside): a shared pool with ``ssd``."""
    from nps.constraints import active
    from nps.engine.sampler_choice import uses_window_index
    shared = config.label is not None and active(config, "images")  # a label's pool (nps.constraints)
    return uses_window_index(config.replace(search="exact"), shared)


def index_state(config: GenerationConfig, corpus) -> str:
    """Whether the window index a run of ``config`` on ``corpus`` would search is there (``search`` aside).

    Returns "unused" (per-sample pools or no appearance rule: no step searches the whole corpus),
    "cached" (in memory or in ``cache/``), "build" (the corpus is small enough to build it on first
    use) or "missing" (``python -m nps index`` builds it; until then the run takes the dense scan).
    Looks at file names only.  :func:`estimate` uses the index only for ``search`` exact or approx.
    """
    from nps.engine.window_cache import builds_on_use, index_cached, local_splits, padded_shape
    if not _index_eligible(config):
        return "unused"
    shape = padded_shape(len(corpus), corpus.image_shape, config.window)
    if index_cached(corpus.content_hash, config.window, shape, local_splits(config)):
        return "cached"
    h, w = corpus.image_shape[:2]
    return "build" if builds_on_use(len(corpus), h, w) else "missing"


def _loglog(points: tuple[tuple[float, float], ...], x: float) -> float:
    """Interpolate measured (x, y) points in log-log; one point is a constant (y per pixel and sample)."""
    if len(points) == 1:
        return points[0][1]
    lx, ly = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    i = int(np.clip(np.searchsorted(lx, math.log(max(x, 1.0))), 1, len(lx) - 1))
    slope = (ly[i] - ly[i - 1]) / (lx[i] - lx[i - 1])
    return float(math.exp(ly[i - 1] + slope * (math.log(max(x, 1.0)) - lx[i - 1])))


def estimate(config: GenerationConfig, corpus_size: int, image_shape: tuple[int, ...],
             pixels: int | None = None, index: str | None = None) -> Estimate:
    """The expected sampling time of ``config`` on a corpus of ``corpus_size`` images of ``image_shape``.

    Args:
        pixels: pixels to sample per canvas (default: all but the seed patch; a completion
            passes its unknown count).
        index: the run's window index, from :func:`index_state` (callers with the corpus pass
            it); None guesses from the size alone: built on first use for small corpora, else missing.
    """
    from nps.engine.window_cache import builds_on_use
    h, w = image_shape[:2]
    if pixels is None:
        side = min(config.seed_size, h, w)
        pixels = max(h * w - side * side, 0)
    windows = config.windows_per_pixel(corpus_size, image_shape)
    batches = math.ceil(config.n / max(config.batch_size, 1))
    steps = SECONDS_PER_STEP * pixels * batches
    if not _index_eligible(config):
        index = "unused"
    elif index is None:
        index = "build" if builds_on_use(corpus_size, h, w) else "missing"
    if index not in INDEX_STATES:
        raise ValueError(f"index {index!r} is not one of {INDEX_STATES}")
    if config.search != "brute" and index in ("cached", "build"):
        points = (APPROX_POINTS if config.search == "approx" else EXACT_POINTS)[config.uses("loc")]
        build = INDEX_BUILD_S_PER_WINDOW * corpus_size * h * w if index == "build" else 0.0
        seconds = FIXED_S + build + _loglog(points, windows) * pixels * config.n + steps
        return Estimate(float(seconds), int(windows), int(pixels), int(config.n), config.search, float(build))
    shared = not config.per_sample_pools()
    per_window = SECONDS_PER_WINDOW_SHARED if shared else (
        SECONDS_PER_WINDOW if config.uses("loc") else SECONDS_PER_WINDOW_WIDE)
    seconds = FIXED_S + per_window * windows * pixels * config.n + steps
    return Estimate(float(seconds), int(windows), int(pixels), int(config.n))


def format_seconds(seconds: float) -> str:
    """A rough duration: "under a second", "about 8 s", "about 3 min", "about 2.5 h"."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Alternative:
    """A cheaper run: what changes, the changed fields, and its estimate.

    Attributes:
        what: one phrase ("a 1,000-image subset").
        changes: :class:`GenerationConfig` field values (``subset`` included).
        estimate: the expected time with those changes.
    """

    what: str
    changes: dict
    estimate: Estimate


def cheaper(config: GenerationConfig, corpus_size: int, image_shape: tuple[int, ...],
            subsets: tuple[int, ...] = (1000, 200), pixels: int | None = None,
            index: str | None = None) -> list[Alternative]:
    """Cheaper variants of ``config``, fastest first (only those faster than ``config`` itself).

    Offered: the exact window-index search where the index is there or builds on use (the same
    draws as the dense scan), switching on a constraint that shrinks the windows per pixel (each
    registered one with ``speeds_up``: locality), a smaller class-stratified subset (each of
    ``subsets`` smaller than the corpus), and fewer samples (4).  Each changes one thing, so the
    visitor knows what they trade.

    Args:
        pixels: pixels to sample per canvas, as for :func:`estimate` (a completion's unknown count).
        index: the corpus's window index, from :func:`index_state` (as for :func:`estimate`).
    """
    from nps.constraints import registered
    base = estimate(config, corpus_size, image_shape, pixels, index)
    out: list[Alternative] = []
    if config.search == "brute" and index in ("cached", "build"):
        cfg = config.replace(search="exact")
        out.append(Alternative("the exact index search (the same draws)", {"search": "exact"},
                               estimate(cfg, corpus_size, image_shape, pixels, index)))
    for c in registered():
        if c.speeds_up and not config.uses(c.name):
            cfg = config.replace(constraints=(*config.constraints, c.name))
            out.append(Alternative(c.cheaper_phrase(config), {"constraints": cfg.constraints},
                                   estimate(cfg, corpus_size, image_shape, pixels, index)))
    for size in subsets:
        if size < corpus_size:  # another corpus: its index is guessed from its size
            out.append(Alternative(f"a {size:,}-image subset", {"subset": size},
                                   estimate(config, size, image_shape, pixels)))
            break
    if config.n > 4:
        cfg = config.replace(n=4, batch_size=min(config.batch_size, 4))
        out.append(Alternative("4 samples", {"n": 4}, estimate(cfg, corpus_size, image_shape, pixels, index)))
    return sorted((a for a in out if a.estimate.seconds < base.seconds), key=lambda a: a.estimate.seconds)


SEARCH_WORDS = {"dense": "candidate windows per pixel", "exact": "candidate windows per pixel, pruned by the window "
                "index", "approx": "candidate windows per pixel, approximate index search"}


def estimate_line(config: GenerationConfig, corpus_size: int, image_shape: tuple[int, ...],
                  index: str | None = None) -> str:
    """One line for the CLI and the app: the expected time, and the cheapest alternative when slow.

    Args:
        index: the corpus's window index, from :func:`index_state` (as for :func:`estimate`).
    """
    est = estimate(config, corpus_size, image_shape, index=index)
    build = f", building the window index {format_seconds(est.index_build_s)}" if est.index_build_s >= 1 else ""
    line = (f"estimate: {format_seconds(est.seconds)} ({est.windows_per_pixel:,} {SEARCH_WORDS[est.search]}, "
            f"{est.pixels} pixels, n = {est.n}{build}; nps.lab.cost, calibrated on a 2-core machine)")
    if est.slow:
        alts = cheaper(config, corpus_size, image_shape, index=index)
        if alts:
            a = alts[0]
            line += f"; with {a.what}: {format_seconds(a.estimate.seconds)}"
    return line
