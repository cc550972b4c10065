"""Feature-space distribution metrics with bootstrap intervals.

All take (n,D) features of the generated samples and (M,D) features of real images
(the project classifier's 128-d penultimate features, :meth:`Classifier.features`, or
Inception's 2048-d pool features, :func:`nps.metrics.inception_fid.inception_features`)
and return :class:`~nps.metrics.bootstrap.Estimate` objects (resampling unit: the
generated samples; the real set is fixed; see :mod:`nps.metrics.bootstrap`).

* **FID** (Heusel et al. 2017): :func:`nps.metrics.scores.fid_from_features` on each
  resample.
* **KID** (Bińkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel
  k(x,y) = (x.y/D + 1)^3.  Up to ``subset_size`` samples it is the two-sample
  U-statistic on all of them (exactly the mean of the subset estimator when the
  subsets hold every sample); above it, the mean over ``subsets`` random subsets of
  ``subset_size`` rows per side.  A resample with repeated rows drops the pairs of a
  row with its own copy (they would add k(x,x) as if it were a pair of distinct samples).
  Reported in the kernel's raw units (no x1000): on the classifier's features, two
  halves of the MNIST test split give about 0 +- 10, a 3-pixel shift about 120.
* **Precision / recall** (Kynkäänniemi et al. 2019): a sample is *precise* if it lies
  in the k-NN ball (radius: distance to the k-th nearest other real) of some real
  image; a real image is *recalled* if it lies in the k-NN ball of some sample
  (radii among the samples).  k = 3.
* **Density / coverage** (Naeem et al. 2020): density = (1/kn) sum_j #{real balls
  containing sample j} (1 for matching distributions, can exceed 1); coverage = share
  of real balls that contain at least one sample.  k = 5.

Both papers use equal real and sample counts (the radii depend on M); callers should
pass M = n real images.  Radii are fixed on the full sets; resamples reweight rows.
"""

from __future__ import annotations

import numpy as np

from nps.errors import NPSError
from nps.metrics.bootstrap import RESAMPLES, Estimate, interval, resample_counts
from nps.metrics.neighbours import NeighbourIndex, pairwise_within
from nps.metrics.scores import feature_stats, frechet_distance

PR_K = 3
DC_K = 5
KID_SUBSET = 1000
KID_SUBSETS = 100


def _features(a: np.ndarray, what: str, min_rows: int = 2) -> np.ndarray:
    f = np.asarray(a, np.float64)
    if f.ndim != 2 or len(f) < min_rows:
        raise NPSError(f"{what} needs (N,D) features with N >= {min_rows}, got shape {f.shape}; "
                       "generate more samples (--n).")
    return f


def fid(samples: np.ndarray, real: np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0) -> Estimate:
    """Fréchet distance of (n,D) sample features to (M,D) real features, with its interval.

    The point estimate is :func:`~nps.metrics.scores.frechet_distance`.  The resamples use
    the same formula with the real side factored once: Tr (S_r^1/2 S S_r^1/2)^1/2 equals the
    trace term of ``frechet_distance`` (similar matrices), so each resample costs one
    symmetric eigenvalue problem instead of two (``tests`` check the two agree).
    """
    s = _features(samples, "FID")
    mu_r, cov_r = feature_stats(_features(real, "FID"))
    n = len(s)
    value = frechet_distance(*feature_stats(s), mu_r, cov_r)
    if n < 3:
        return Estimate(value, value, value, n)
    vals, vecs = np.linalg.eigh((cov_r + cov_r.T) / 2)
    root_r = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    tr_r = float(np.trace(cov_r))
    reps = np.empty(resamples)
    for b, c in enumerate(resample_counts(n, resamples, seed).astype(np.float64)):
        mu = c @ s / n
        centred = s - mu
        cov = (centred.T * c) @ centred / (n - 1)  # == np.cov(s[idx], rowvar=False)
        m = root_r @ cov @ root_r
        cross = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
        diff = mu - mu_r
        reps[b] = max(diff @ diff + np.trace(cov) + tr_r - 2 * cross, 0.0)
    return interval(value, reps, n, bounds=(0.0, np.inf))


def _poly_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _mmd2_weighted(k_ss: np.ndarray, k_sr_rowmean: np.ndarray, rr_term: float, counts: np.ndarray) -> np.ndarray:
    """Unbiased MMD^2 for each row of (B,n) counts over the sample rows.

    The sample-sample term averages k over ordered pairs of distinct rows (a row and its
    own repeat excluded); the cross term weights each sample's mean kernel to the reals.
    """
    c = np.asarray(counts, np.float64)
    diag = np.diag(k_ss)
    pair_sum = np.einsum("bi,ij,bj->b", c, k_ss, c) - (c * c) @ diag
    pairs = c.sum(1) ** 2 - (c * c).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ss = pair_sum / pairs
    cross = c @ k_sr_rowmean / c.sum(1)
    return ss + rr_term - 2.0 * cross


def _kid_once(s: np.ndarray, r: np.ndarray, counts: np.ndarray) -> np.ndarray:
    k_rr = _poly_kernel(r, r)
    m = len(r)
    rr = (k_rr.sum() - np.trace(k_rr)) / (m * (m - 1))
    return _mmd2_weighted(_poly_kernel(s, s), _poly_kernel(s, r).mean(1), float(rr), counts)


def kid(samples: np.ndarray, real: np.ndarray, *, subset_size: int = KID_SUBSET, subsets: int = KID_SUBSETS,
        resamples: int = RESAMPLES, seed: int = 0) -> Estimate:
    """Kernel Inception Distance (unbiased MMD^2, cubic polynomial kernel), with its interval.

    Args:
        samples: (n,D) sample features, n >= 2.
        real: (M,D) real features, M >= 2.
        subset_size, subsets: the subset estimator used above ``subset_size`` rows per side.
    Returns:
        an :class:`Estimate` (can be slightly negative: the estimator is unbiased).
    """
    s, r = _features(samples, "KID"), _features(real, "KID")
    n = len(s)
    boot = resample_counts(n, resamples, seed)
    if n <= subset_size and len(r) <= subset_size:
        value = float(_kid_once(s, r, np.ones((1, n)))[0])
        return interval(value, _kid_once(s, r, boot), n)
    rng = np.random.default_rng(seed)
    m = min(subset_size, n, len(r))
    vals, reps = [], []
    for _ in range(subsets):
        si = np.sort(rng.choice(n, m, replace=False))
        ri = np.sort(rng.choice(len(r), m, replace=False))
        vals.append(_kid_once(s[si], r[ri], np.ones((1, m)))[0])
        # the resample's weight on the subset's rows (rows absent from the resample weigh 0)
        reps.append(_kid_once(s[si], r[ri], boot[:, si]))
    with np.errstate(invalid="ignore"):
        return interval(float(np.mean(vals)), np.nanmean(np.stack(reps), 0), n)


def prdc(samples: np.ndarray, real: np.ndarray, *, pr_k: int = PR_K, dc_k: int = DC_K,
         resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Estimate]:
    """Improved precision and recall (k = ``pr_k``), density and coverage (k = ``dc_k``).

    Args:
        samples: (n,D) sample features.
        real: (M,D) real features (M = n is the papers' protocol).
    Returns:
        {"precision", "recall", "density", "coverage"} -> :class:`Estimate`.
    """
    k_max = max(pr_k, dc_k)
    s = _features(samples, "precision/recall", pr_k + 1)
    r = _features(real, "precision/recall", k_max + 1)
    r_pr = NeighbourIndex(r).kth_radius(pr_k)  # (M,) real k-NN radii
    r_dc = NeighbourIndex(r).kth_radius(dc_k)
    s_pr = NeighbourIndex(s).kth_radius(pr_k)  # (n,) sample k-NN radii, for recall
    in_real_pr = pairwise_within(s, r, r_pr)  # (n,M): sample j inside real ball i
    in_real_dc = pairwise_within(s, r, r_dc)
    real_in_s = pairwise_within(r, s, s_pr).T  # (n,M): real i inside sample ball j
    n = len(s)
    ones = np.ones((1, n))
    boot = resample_counts(n, resamples, seed).astype(np.float64)

    def stats(c: np.ndarray) -> dict[str, np.ndarray]:
        present = (c > 0).astype(np.float64)
        return {
            "precision": c @ in_real_pr.any(1) / c.sum(1),
            "recall": (present @ real_in_s > 0).mean(1),
            "density": c @ in_real_dc.sum(1) / (dc_k * c.sum(1)),
            "coverage": (present @ in_real_dc > 0).mean(1),
        }

    point, reps = stats(ones), stats(boot)
    return {k: interval(float(point[k][0]), reps[k], n, bounds=(0.0, np.inf if k == "density" else 1.0))
            for k in point}
