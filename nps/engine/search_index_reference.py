"""Plain definitions of the window index's two building blocks, kept beside the fast ones.

The cached index (``INDEX_VERSION`` 3) was first built with these (the "local" index only passes
other split weights, :mod:`nps.engine.search_splits`); :mod:`nps.engine.search_index` has faster
versions that must return the same arrays bit for bit (the k-d order, its
leaves and the order of the unique windows are all part of the cached index).  The tests
check one against the other; ``build_index(..., plain=True)`` builds with these.
"""

from __future__ import annotations

import numpy as np


def unique_rows_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain definition of :func:`nps.engine.search_index._unique_rows` (version 3 was built with it).

    Rows are hashed to int64 first (a sort of N ints instead of N rows of D bytes); the
    hash is verified and, on a collision, the exact row-wise unique is used instead.
    """
    rng = np.random.default_rng(12345)
    mult = rng.integers(1, 2**62, x.shape[1], dtype=np.int64) | 1
    with np.errstate(over="ignore"):
        h = (x.astype(np.int64) * mult).sum(1) + (x.astype(np.int64) ** 2 * mult[::-1]).sum(1)
    _, first, inverse, counts = np.unique(h, return_index=True, return_inverse=True, return_counts=True)
    if not np.array_equal(x[first[inverse]], x):  # a hash collision: exact (slow) path
        _, first, inverse, counts = np.unique(x, axis=0, return_index=True, return_inverse=True,
                                              return_counts=True)
    return first, inverse.ravel(), counts


def kd_order_reference(u: np.ndarray, weight: np.ndarray, leaf: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain definition of :func:`nps.engine.search_index._kd_order` (version 3 was built with it).

    Every node larger than ``leaf`` is split along the dimension of largest
    ``weight * variance`` at the value of its median: values <= it go left (< it when that
    would leave nothing on the right).  Splitting by value rather than by rank separates
    zero from non-zero pixels on zero-inflated data such as MNIST, which is what makes a
    leaf's box tight.  Ties keep the current order (stable sorts): deterministic.

    A node whose rows differ only where the weight is 0 (never seen on real windows)
    would make this loop spin; the fast version stops splitting it.

    Returns:
        perm (n,) int64 and leaf starts (L,) int64 into ``u[perm]``.
    """
    n = len(u)
    perm = np.arange(n)
    starts = np.array([0], np.int64)
    while True:
        sizes = np.diff(np.append(starts, n))
        split = sizes > leaf
        if not split.any():
            return perm, starts
        node = np.repeat(np.arange(len(starts)), sizes)
        # Rows are grouped by node, so per-node sums are differences of running sums (exact in float64).
        y = u[perm].astype(np.float64)
        ends = starts + sizes - 1
        total = np.cumsum(y, 0)[ends]
        squares = np.cumsum(y * y, 0)[ends]
        total[1:] -= total[:-1].copy()
        squares[1:] -= squares[:-1].copy()
        spread = (squares - total * total / sizes[:, None]) * weight  # weighted variance x count
        dim = spread.argmax(1)
        split &= spread.max(1) > 0  # rows all equal (never, for unique rows) cannot be split
        key = np.where(split[node], u[perm, dim[node]], 0).astype(np.int64)
        order = np.argsort(node * 256 + key, kind="stable")
        perm, key = perm[order], key[order]
        theta = key[starts + sizes // 2]
        cut = np.bincount(node, weights=key <= theta[node], minlength=len(starts)).astype(np.int64)
        below = np.bincount(node, weights=key < theta[node], minlength=len(starts)).astype(np.int64)
        cut = np.where(cut == sizes, below, cut)
        starts = np.sort(np.concatenate([starts, (starts + cut)[split]]))
