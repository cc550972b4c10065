"""The bootstrap behind every metric's interval: seeded, containing its estimate, narrowing with n."""

from __future__ import annotations

import numpy as np
import pytest

from nps.errors import NPSError
from nps.metrics.bootstrap import Estimate, bootstrap, bootstrap_mean, interval, resample_counts, resample_indices


def test_counts_are_the_indices_tallied_and_seeded():
    idx = resample_indices(7, resamples=5, seed=3)
    counts = resample_counts(7, resamples=5, seed=3)
    assert counts.shape == (5, 7) and counts.sum(1).tolist() == [7] * 5
    assert np.array_equal(counts, np.stack([np.bincount(row, minlength=7) for row in idx]))
    assert np.array_equal(idx, resample_indices(7, resamples=5, seed=3))
    assert not np.array_equal(idx, resample_indices(7, resamples=5, seed=4))
    with pytest.raises(NPSError):
        resample_indices(0)


def test_mean_interval_contains_the_estimate_and_narrows_as_n_grows():
    rng = np.random.default_rng(0)
    widths = []
    for n in (50, 200, 800):
        x = rng.random(n) < 0.3
        est = bootstrap_mean(x, seed=1, bounds=(0.0, 1.0))
        assert est.low <= est.value <= est.high and est.n == n
        assert est.value == pytest.approx(x.mean())
        widths.append(est.width)
    # the width shrinks like 1/sqrt(n): 4x the samples, about half the width
    assert widths[0] > 1.5 * widths[1] > 2.25 * widths[2]
    # the 95 % interval of a Bernoulli mean is close to the normal one, 2 * 1.96 * sqrt(p(1-p)/n)
    assert widths[2] == pytest.approx(2 * 1.96 * np.sqrt(0.3 * 0.7 / 800), rel=0.2)


def test_same_seed_same_interval_other_seed_differs():
    x = np.random.default_rng(2).normal(size=100)
    a, b, c = (bootstrap_mean(x, seed=s) for s in (5, 5, 6))
    assert a == b and a != c


def test_biased_statistic_interval_is_recentred_on_the_estimate():
    # The number of distinct rows: on all n rows it is n, on every resample it is ~0.63 n,
    # so a plain percentile interval would lie entirely below the estimate.
    est = bootstrap(lambda i: float(len(np.unique(i))), 100, seed=0)
    assert est.value == 100.0 and est.low <= 100.0 <= est.high and est.width > 0
    # a constant statistic has a zero-width interval; one row cannot be resampled
    assert bootstrap(lambda i: 1.0, 10).width == 0.0
    assert bootstrap_mean(np.array([2.0])) == Estimate(2.0, 2.0, 2.0, 1)


def test_interval_is_clipped_to_bounds_and_formats():
    est = interval(0.99, np.array([0.97, 0.99, 1.0, 1.0, 1.0]), 40, bounds=(0.0, 1.0))
    assert est.high <= 1.0 and est.low <= 0.99
    assert Estimate(0.5, 0.25, 0.75, 16).format(3, pct=True) == "50.0% [25.0%, 75.0%] (n=16)"
    assert Estimate(1.0, 0.0, 2.0, 4).overlaps(Estimate(2.0, 2.0, 3.0, 4))
    assert not Estimate(1.0, 0.0, 1.5, 4).overlaps(Estimate(2.0, 1.6, 3.0, 4))
