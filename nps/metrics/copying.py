"""Memorisation and reference copying, in pixel space, with bootstrap intervals.

**Space: raw pixels**, L2 over intensities scaled to [0,1] (784-d on MNIST).  NPS copies
pixels, so a memorised sample is literally a training image's pixels; pixel distance
needs no network (a learned feature space can call two different images close, or
one image and its shifted copy far), and a copy is at distance exactly 0.

* **Memorisation** (:func:`memorisation_share`): the threshold tau is the 1st
  percentile of the nearest-train distances of real test images (a seeded subset of
  the test split, :data:`THRESHOLD_IMAGES`), so by construction about 1 % of *real*
  images fall below it; the metric is the share of samples whose nearest training
  image is closer than tau.  An exact copy (distance 0) is always below it.
* **Reference copying** (:func:`reference_copying`): for each sample with a reference
  r, d_own = |x - train[r]| and d_other = distance to the nearest training image other
  than r.  Reported: the share of samples whose nearest training image is their own
  reference (d_own <= d_other) and the ratio d_own / d_other (quantiles; a ratio below 1
  means the sample is closer to its reference than to anything else).

Neighbour search: :class:`nps.metrics.neighbours.NeighbourIndex` (faiss IndexFlatL2,
exact, chunked; 60k x 784 float32 is 188 MB).  Bootstrap: over samples, see
:mod:`nps.metrics.bootstrap`.
"""

from __future__ import annotations

import logging

import numpy as np

from nps.errors import NPSError
from nps.metrics.bootstrap import RESAMPLES, Estimate, bootstrap, bootstrap_mean
from nps.metrics.neighbours import NeighbourIndex

log = logging.getLogger(__name__)

#: Test images whose nearest-train distances define the memorisation threshold.
THRESHOLD_IMAGES = 1000
#: Percentile of those distances below which a sample counts as memorised.
PERCENTILE = 1.0


def pixels(images: np.ndarray) -> np.ndarray:
    """(N,H,W[,C]) uint8 -> (N,H*W*C) float32 in [0,1]."""
    images = np.asarray(images)
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def nearest_train_distance(images: np.ndarray, index: NeighbourIndex) -> tuple[np.ndarray, np.ndarray]:
    """(N,) float64 pixel distance of each image to its nearest training image, and (N,) int64 its row."""
    d, i = index.search(pixels(images), 1)
    return d[:, 0], i[:, 0]


def memorisation_threshold(corpus, index: NeighbourIndex | None = None, rows: np.ndarray | None = None,
                           percentile: float = PERCENTILE) -> tuple[float, int]:
    """tau: the ``percentile``-th percentile of test-to-train nearest pixel distances.

    Args:
        corpus: the run's corpus (its train split is the memory, its test split the real images).
        index: a :class:`NeighbourIndex` over ``pixels(corpus.train)`` (built if None).
        rows: test rows to use (default: a seeded subset of :data:`THRESHOLD_IMAGES`).
    Returns:
        (tau, number of test images used).  Cached in ``cache/`` per corpus and rows.
    """
    from nps.cache import cached_arrays, content_key
    if rows is None:
        rows = np.sort(np.random.default_rng(0).permutation(len(corpus.test))[:THRESHOLD_IMAGES])
    rows = np.asarray(rows, np.int64)
    key = content_key("memo-threshold", corpus.content_hash, rows)

    def build() -> dict[str, np.ndarray]:
        idx = index if index is not None else NeighbourIndex(pixels(corpus.train))
        return {"distances": nearest_train_distance(corpus.test[rows], idx)[0]}

    d = cached_arrays("memo-threshold", key, build, meta={"corpus": corpus.name, "n": len(rows)})["distances"]
    return float(np.percentile(d, percentile)), len(rows)


def memorisation_share(distances: np.ndarray, tau: float, *, resamples: int = RESAMPLES,
                       seed: int = 0) -> Estimate:
    """Share of samples whose (N,) nearest-train distance is below ``tau`` (exact copies always are)."""
    d = np.asarray(distances, np.float64)
    return bootstrap_mean((d < tau) | (d == 0), resamples=resamples, seed=seed, bounds=(0.0, 1.0))


def reference_copying(images: np.ndarray, references: np.ndarray, train: np.ndarray,
                      index: NeighbourIndex | None = None, *, resamples: int = RESAMPLES,
                      seed: int = 0) -> dict | None:
    """Distance to the own reference against the nearest other training image.

    Args:
        images: (N,H,W[,C]) uint8 samples.
        references: (N,) int64 train row of each sample's reference (-1: none, skipped).
        train: (M,H,W[,C]) uint8 training images the references point into.
        index: a :class:`NeighbourIndex` over ``pixels(train)`` (built if None).
    Returns:
        None if no sample has a reference, else dict with ``own_nearest`` (Estimate: share
        whose nearest training image is the reference), ``median_ratio`` (Estimate of the
        median of d_own / d_other), ``ratio_quantiles`` {"10","50","90"}, ``ratios`` (N',)
        float64 and ``n``.
    """
    ref = np.asarray(references, np.int64)
    has = ref >= 0
    if not has.any():
        return None
    if ref[has].max() >= len(train):
        raise NPSError(f"reference id {int(ref[has].max())} is outside the {len(train)} training images; "
                       "evaluate against the corpus (and --subset) the record was made from.")
    if len(train) < 2:
        raise NPSError("reference copying needs at least 2 training images.")
    x = pixels(np.asarray(images)[has])
    r = ref[has]
    index = index if index is not None else NeighbourIndex(pixels(train))
    d, i = index.search(x, 2)
    own = np.sqrt(((x.astype(np.float64) - pixels(train[r]).astype(np.float64)) ** 2).sum(1))
    # nearest *other*: the first neighbour unless it is the reference itself (exact duplicates
    # of the reference elsewhere in train count as other images, as they are)
    other = np.where(i[:, 0] == r, d[:, 1], d[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(other > 0, own / other, np.where(own == 0, 1.0, np.inf))
    own_nearest = own <= other
    q = np.quantile(ratio, [0.1, 0.5, 0.9])
    return {
        "own_nearest": bootstrap_mean(own_nearest, resamples=resamples, seed=seed, bounds=(0.0, 1.0)),
        "median_ratio": bootstrap(lambda i: float(np.median(ratio[i])), len(ratio), resamples=resamples,
                                  seed=seed, bounds=(0.0, np.inf)),
        "ratio_quantiles": {"10": float(q[0]), "50": float(q[1]), "90": float(q[2])},
        "ratios": ratio,
        "n": len(ratio),
    }
