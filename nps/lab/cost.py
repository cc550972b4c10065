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
mnist 60k, ssd+ssl (simclr, k=64) [1]  16     5.78e8          82.5      1.43e-7
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

[1] Per-sample pools *without* locality (every position of each of the k pool images) cost
ten times more per window than with it (:data:`SECONDS_PER_WINDOW_WIDE`; measured, not
profiled).  Measured 2026-12-01 building the shipped lesson record ``mnist-ssd-ssl``
(``nice python -m nps lessons build``, load average 1.8 to 4); the issue's walk-through
measured 70 s for the same lesson.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nps.config import GenerationConfig

SECONDS_PER_WINDOW = 1.4e-8  # per-sample semantic pools (the full model)
SECONDS_PER_WINDOW_SHARED = 3.0e-8  # one shared pool: no representation, or a class condition
SECONDS_PER_WINDOW_WIDE = 1.4e-7  # per-sample pools without locality (every position of the k images)
SECONDS_PER_STEP = 3.0e-4  # per sampled pixel and batch (Python, pool bookkeeping, drawing)
FIXED_S = 0.1
SLOW_S = 5.0  # runs expected to take longer than this get an estimate and a cheaper alternative first
EMBED_COLD_S = 120.0  # embedding MNIST's 70,000 images with SimCLR once on 2 cores (cached on disk afterwards)


@dataclass(frozen=True)
class Estimate:
    """An expected run time.

    Attributes:
        seconds: expected wall time of the sampling.
        windows_per_pixel: candidate windows scored per sampled pixel (at most).
        pixels: pixels sampled per canvas.
        n: samples.
    """

    seconds: float
    windows_per_pixel: int
    pixels: int
    n: int

    @property
    def slow(self) -> bool:
        return self.seconds > SLOW_S


def estimate(config: GenerationConfig, corpus_size: int, image_shape: tuple[int, ...],
             pixels: int | None = None) -> Estimate:
    """The expected sampling time of ``config`` on a corpus of ``corpus_size`` images of ``image_shape``.

    Args:
        pixels: pixels to sample per canvas (default: all but the seed patch; a completion
            passes its unknown count).
    """
    h, w = image_shape[:2]
    if pixels is None:
        side = min(config.seed_size, h, w)
        pixels = max(h * w - side * side, 0)
    windows = config.windows_per_pixel(corpus_size, image_shape)
    shared = not config.per_sample_pools()
    per_window = SECONDS_PER_WINDOW_SHARED if shared else (
        SECONDS_PER_WINDOW if config.uses("loc") else SECONDS_PER_WINDOW_WIDE)
    batches = math.ceil(config.n / max(config.batch_size, 1))
    seconds = FIXED_S + per_window * windows * pixels * config.n + SECONDS_PER_STEP * pixels * batches
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
            subsets: tuple[int, ...] = (1000, 200), pixels: int | None = None) -> list[Alternative]:
    """Cheaper variants of ``config``, fastest first (only those faster than ``config`` itself).

    Offered: switching on a constraint that shrinks the windows per pixel (each registered one
    with ``speeds_up``: locality), a smaller class-stratified subset (each of ``subsets``
    smaller than the corpus), and fewer samples (4).  Each changes one thing, so the
    visitor knows what they trade.

    Args:
        pixels: pixels to sample per canvas, as for :func:`estimate` (a completion's unknown count).
    """
    from nps.constraints import registered
    base = estimate(config, corpus_size, image_shape, pixels)
    out: list[Alternative] = []
    for c in registered():
        if c.speeds_up and not config.uses(c.name):
            cfg = config.replace(constraints=(*config.constraints, c.name))
            out.append(Alternative(c.cheaper_phrase(config), {"constraints": cfg.constraints},
                                   estimate(cfg, corpus_size, image_shape, pixels)))
    for size in subsets:
        if size < corpus_size:
            out.append(Alternative(f"a {size:,}-image subset", {"subset": size},
                                   estimate(config, size, image_shape, pixels)))
            break
    if config.n > 4:
        cfg = config.replace(n=4, batch_size=min(config.batch_size, 4))
        out.append(Alternative("4 samples", {"n": 4}, estimate(cfg, corpus_size, image_shape, pixels)))
    return sorted((a for a in out if a.estimate.seconds < base.seconds), key=lambda a: a.estimate.seconds)


def estimate_line(config: GenerationConfig, corpus_size: int, image_shape: tuple[int, ...]) -> str:
    """One line for the CLI and the app: the expected time, and the cheapest alternative when slow."""
    est = estimate(config, corpus_size, image_shape)
    line = (f"estimate: {format_seconds(est.seconds)} ({est.windows_per_pixel:,} candidate windows per pixel, "
            f"{est.pixels} pixels, n = {est.n}; nps.lab.cost, calibrated on a 2-core machine)")
    if est.slow:
        alts = cheaper(config, corpus_size, image_shape)
        if alts:
            a = alts[0]
            line += f"; with {a.what}: {format_seconds(a.estimate.seconds)}"
    return line
