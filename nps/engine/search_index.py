"""The whole-corpus window index: de-duplicated windows per position, in k-d tree order, with boxes.

Built once per (corpus, window) and kept in ``cache/``.  For every centre position
p = cy * W + cx of the source images it holds the *unique* full windows seen at p
(their multiplicities and, per image, which unique window the image has there), so
that 44 % of MNIST's 7x7 windows, the all-zero ones, are one entry per position.

The unique windows of a position are ordered by a k-d tree (median splits on the
dimension of largest Gaussian-weighted spread) and cut into *leaves* of at most
``LEAF`` consecutive windows; ``GROUP`` consecutive leaves form a *group*.  Leaves
and groups store the per-dimension min and max of their windows (boxes), from which
:mod:`nps.engine.search` bounds the masked distance from below.

Window dimensions run (ky, kx, channel); pixels are the raw uint8 values of the
edge-padded corpus (the engine's own padding).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np

from nps.cache import cache_root, cached_arrays, content_key

log = logging.getLogger(__name__)

LEAF = 8  # windows per leaf
GROUP = 16  # leaves per group
INDEX_VERSION = 3


@dataclass
class WindowIndex:
    """Arrays of the index (see the module docstring); ``U`` = unique windows over all positions.

    Attributes:
        uid: (HW, N) int32 global unique id of image n's window at position p.
        rep: (U,) int32 lowest image id holding the unique window (where to read its pixels).
        count: (U,) int32 its multiplicity at its position.
        upos: (U,) int32 its position p.
        pos_off: (HW+1,) int64 unique ids of position p are ``pos_off[p]:pos_off[p+1]``.
        leaf_off: (L+1,) int64 unique-id boundaries of the leaves.
        leaf_lo, leaf_hi: (L,D) uint8 boxes.
        group_off: (G+1,) int64 leaf-id boundaries of the groups; group_pos_off: (HW+1,) int64.
        group_lo, group_hi: (G,D) uint8 boxes.
    """

    uid: np.ndarray
    rep: np.ndarray
    count: np.ndarray
    upos: np.ndarray
    pos_off: np.ndarray
    leaf_off: np.ndarray
    leaf_lo: np.ndarray
    leaf_hi: np.ndarray
    group_off: np.ndarray
    group_pos_off: np.ndarray
    group_lo: np.ndarray
    group_hi: np.ndarray


def _unique_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first index (U,), inverse (N,), counts (U,)) of the distinct rows of uint8 ``x`` (N,D).

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


def _kd_order(u: np.ndarray, weight: np.ndarray, leaf: int) -> tuple[np.ndarray, np.ndarray]:
    """A k-d tree order of the rows of ``u`` (n,D) uint8 and its leaf boundaries.

    Every node larger than ``leaf`` is split along the dimension of largest
    ``weight * variance`` at the value of its median: values <= it go left (< it when that
    would leave nothing on the right).  Splitting by value rather than by rank separates
    zero from non-zero pixels on zero-inflated data such as MNIST, which is what makes a
    leaf's box tight.  Ties keep the current order (stable sorts): deterministic.

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


def _boxes(y: np.ndarray, starts: np.ndarray, most: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-segment min and max of ``y`` (n,...) for segments of at most ``most`` rows at ``starts``.

    Each segment is padded with its own last row, so one vectorised min/max serves all
    (``np.minimum.reduceat`` along axis 0 is slow for many small segments).
    """
    ends = np.append(starts[1:], len(y))
    rows = np.minimum(starts[:, None] + np.arange(most), ends[:, None] - 1)  # (S,most)
    block = y[rows]
    return block.min(1), block.max(1)


def build_index(padded: np.ndarray, window: int, height: int, width: int) -> dict[str, np.ndarray]:
    """Build the arrays of a :class:`WindowIndex`.

    Args:
        padded: (N,C,H+2h,W+2h) uint8, the engine's edge-padded corpus.
        window: w; height, width: H, W (the centre positions).
    """
    n, c = padded.shape[:2]
    g = np.exp(-((np.arange(window) - window // 2)[:, None] ** 2 + (np.arange(window) - window // 2) ** 2)
               / (2.0 * (window / 6.4) ** 2))
    g[window // 2, window // 2] = 0  # the centre is the pixel being filled: never known, never compared
    weight = np.repeat(g.ravel(), c)  # (D,) only steers the splits
    uid = np.empty((height * width, n), np.int32)
    reps, counts, upos, leaf_starts, leaf_lo, leaf_hi = [], [], [], [], [], []
    pos_off, total = [0], 0
    for p in range(height * width):
        cy, cx = divmod(p, width)
        x = np.ascontiguousarray(padded[:, :, cy:cy + window, cx:cx + window].transpose(0, 2, 3, 1)).reshape(n, -1)
        first, inverse, cnt = _unique_rows(x)
        u = x[first]
        perm, starts = _kd_order(u, weight, LEAF)
        rank = np.empty(len(perm), np.int64)
        rank[perm] = np.arange(len(perm))
        uid[p] = total + rank[inverse]
        reps.append(first[perm].astype(np.int32))
        counts.append(cnt[perm].astype(np.int32))
        upos.append(np.full(len(perm), p, np.int32))
        y = u[perm]
        leaf_starts.append(total + starts)
        lo, hi = _boxes(y, starts, LEAF)
        leaf_lo.append(lo)
        leaf_hi.append(hi)
        total += len(perm)
        pos_off.append(total)
    leaf_off = np.append(np.concatenate(leaf_starts), total).astype(np.int64)
    lo, hi = np.concatenate(leaf_lo), np.concatenate(leaf_hi)
    # Groups: GROUP consecutive leaves of one position.
    leaf_pos = np.concatenate(upos)[leaf_off[:-1]]
    leaf_pos_off = np.searchsorted(leaf_pos, np.arange(height * width + 1))
    group_starts = np.concatenate([np.arange(a, b, GROUP) for a, b in itertools.pairwise(leaf_pos_off)])
    group_off = np.append(group_starts, len(lo)).astype(np.int64)
    group_pos_off = np.searchsorted(leaf_pos[group_starts], np.arange(height * width + 1)).astype(np.int64)
    group_lo, _ = _boxes(lo, group_starts, GROUP)
    _, group_hi = _boxes(hi, group_starts, GROUP)
    return {"uid": uid, "rep": np.concatenate(reps), "count": np.concatenate(counts), "upos": np.concatenate(upos),
            "pos_off": np.asarray(pos_off, np.int64), "leaf_off": leaf_off, "leaf_lo": lo, "leaf_hi": hi,
            "group_off": group_off, "group_pos_off": group_pos_off,
            "group_lo": group_lo, "group_hi": group_hi}


_INDEXES: dict[str, WindowIndex] = {}

# Corpora with at most this many windows (N * H * W) build their index on first use (about a
# minute for 6,000 MNIST images on a busy 2-core machine); larger ones only use an index
# already in the cache (``build=True`` builds it, as the benchmark does).
BUILD_ON_USE = 5_000_000


def index_key(corpus_hash: str, window: int, shape: tuple[int, ...]) -> str:
    return content_key("window-index", INDEX_VERSION, corpus_hash, window, tuple(shape), LEAF, GROUP)


def window_index(corpus_hash: str, padded: np.ndarray, window: int, height: int, width: int,
                 build: bool | None = None) -> WindowIndex | None:
    """The (cached) :class:`WindowIndex` of a corpus; kept in memory for the last two corpora.

    Args:
        build: build it if it is not cached; None: only when the corpus is small
            (:data:`BUILD_ON_USE`).  Returns None when it is neither cached nor built.
    """
    key = index_key(corpus_hash, window, padded.shape)
    if key not in _INDEXES:
        if build is None:
            build = padded.shape[0] * height * width <= BUILD_ON_USE
        if not build and not (cache_root() / f"windowindex-{key}.npz").is_file():
            log.info("no cached window index for this corpus (%d images); using the dense scan "
                     "(the benchmark builds one)", padded.shape[0])
            return None
        arrays = cached_arrays("windowindex", key, lambda: build_index(padded, window, height, width),
                               meta={"window": window, "images": int(padded.shape[0])})
        while len(_INDEXES) >= 2:
            _INDEXES.pop(next(iter(_INDEXES)))
        _INDEXES[key] = WindowIndex(**arrays)
        log.info("window index: %d unique windows of %d", len(arrays["rep"]), arrays["uid"].size)
    return _INDEXES[key]
