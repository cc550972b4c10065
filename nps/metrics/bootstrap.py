"""Seeded bootstrap confidence intervals and the one result type of every metric.

Protocol (the same for every metric of :mod:`nps.metrics.distribution` and
:mod:`nps.metrics.copying`):

* **Resampling unit: the generated samples.**  Each resample draws n rows of the
  sample set with replacement; the real reference set (test images, training
  images) is held fixed, so the interval measures how much the figure would move
  with another draw of n samples from the same generator, which is what tells two
  configurations apart.  Neighbour radii and kernel matrices are computed once on
  the full sets; a resample only reweights rows (see :func:`resample_counts`).
* **Number of resamples:** :data:`RESAMPLES` (500) by default.
* **Seed:** ``numpy.random.default_rng(seed)``; the same seed gives the same
  resamples, hence bit-identical intervals.
* **Interval:** the central 95 % percentile interval of the bootstrap distribution,
  shifted so that its median sits on the point estimate.  A resample holds about
  63 % distinct rows, so statistics that depend on the *set* of samples (FID,
  KID, recall, coverage) are biased in the resamples (FID up, coverage down);
  the shift removes that bias from the interval's location while keeping its
  width, and guarantees ``low <= value <= high``.  For means of per-sample values
  (precision, density, memorisation) the shift is negligible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nps.errors import NPSError

#: Default number of bootstrap resamples.
RESAMPLES = 500
#: Default confidence level of the intervals.
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A metric's point estimate with its bootstrap interval.

    Attributes:
        value: the estimate on all n samples.
        low, high: the interval bounds (``low <= value <= high``); equal to ``value``
            when n is too small to resample.
        n: number of generated samples (the resampling unit) it was computed on.
    """

    value: float
    low: float
    high: float
    n: int

    @property
    def width(self) -> float:
        return self.high - self.low

    def overlaps(self, other: Estimate) -> bool:
        """Whether the two intervals share a point (then the figures do not separate)."""
        return not (self.high < other.low or other.high < self.low)

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}

    def format(self, digits: int = 3, pct: bool = False) -> str:
        """``0.812 [0.770, 0.851] (n=256)``; percentages with ``pct``."""
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return f"— (n={self.n})"
        f = (lambda v: f"{100 * v:.{max(digits - 2, 0)}f}%") if pct else (lambda v: f"{v:.{digits}f}")
        return f"{f(self.value)} [{f(self.low)}, {f(self.high)}] (n={self.n})"


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, n) int64 row indices drawn with replacement from ``range(n)``."""
    if n < 1:
        raise NPSError("a bootstrap needs at least one sample.")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n), dtype=np.int64)


def resample_counts(n: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, n) int64: how often each sample row occurs in each resample (rows sum to n).

    Same resamples as :func:`resample_indices` with the same seed.
    """
    idx = resample_indices(n, resamples, seed)
    offset = (np.arange(resamples, dtype=np.int64) * n)[:, None]
    return np.bincount((idx + offset).ravel(), minlength=resamples * n).reshape(resamples, n)


def interval(value: float, replicates: np.ndarray, n: int, level: float = LEVEL,
             bounds: tuple[float, float] = (-math.inf, math.inf)) -> Estimate:
    """The :class:`Estimate` of ``value`` from its (B,) bootstrap replicates (median-centred percentile).

    Args:
        value: the point estimate on all samples.
        replicates: (B,) float, the statistic on each resample (NaNs are dropped).
        n: sample count to report.
        bounds: the metric's natural range; the interval is clipped to it.
    """
    rep = np.asarray(replicates, np.float64)
    rep = rep[np.isfinite(rep)]
    value = float(value)
    if len(rep) == 0 or not math.isfinite(value):
        return Estimate(value, value, value, int(n))
    alpha = (1.0 - level) / 2.0
    lo, med, hi = np.quantile(rep, [alpha, 0.5, 1.0 - alpha])
    shift = med - value  # the bootstrap's own bias (see module docstring)
    low = float(np.clip(lo - shift, *bounds))
    high = float(np.clip(hi - shift, *bounds))
    return Estimate(value, min(low, value), max(high, value), int(n))


def bootstrap(statistic: Callable[[np.ndarray], float], n: int, *, resamples: int = RESAMPLES, seed: int = 0,
              level: float = LEVEL, bounds: tuple[float, float] = (-math.inf, math.inf)) -> Estimate:
    """Bootstrap a statistic of the sample rows.

    Args:
        statistic: maps (n,) int64 row indices (with repeats) to a float; called once
            with ``arange(n)`` for the point estimate and once per resample.
        n: number of sample rows.
    """
    value = statistic(np.arange(n, dtype=np.int64))
    if n < 2:
        return Estimate(float(value), float(value), float(value), n)
    reps = np.array([statistic(i) for i in resample_indices(n, resamples, seed)], np.float64)
    return interval(value, reps, n, level, bounds)


def bootstrap_mean(values: np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL,
                   bounds: tuple[float, float] = (-math.inf, math.inf)) -> Estimate:
    """Bootstrap the mean of (n,) per-sample values (vectorised)."""
    v = np.asarray(values, np.float64)
    n = len(v)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    if n < 2:
        return Estimate(float(v[0]), float(v[0]), float(v[0]), 1)
    counts = resample_counts(n, resamples, seed)
    return interval(float(v.mean()), counts @ v / n, n, level, bounds)
