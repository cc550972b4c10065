"""The whole-corpus window index: de-duplicated windows per position, in k-d tree order, with boxes.

Built once per (corpus, window) and kept in ``cache/``.  For every centre position
p = cy * W + cx of the source images it holds the *unique* full windows seen at p
(their multiplicities and, per image, which unique window the image has there), so
that 44 % of MNIST's 7x7 windows, the all-zero ones, are one entry per position.

The unique windows of a position are ordered by a k-d tree (median splits on the
dimension of largest weighted spread, the weights favouring the dimensions the queries of that
position know, :mod:`nps.engine.search_splits`) and cut into *leaves* of at most
``LEAF`` consecutive windows; ``GROUP`` consecutive leaves form a *group*.  Leaves
and groups store the per-dimension min and max of their windows (boxes), from which
:mod:`nps.engine.search` bounds the masked distance from below.

Window dimensions run (ky, kx, channel); pixels are the raw uint8 values of the
edge-padded corpus (the engine's own padding).
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass

import numpy as np

from nps.engine.search_index_reference import kd_order_reference, unique_rows_reference
from nps.engine.search_splits import split_weights

log = logging.getLogger(__name__)

LEAF = 8  # windows per leaf
GROUP = 16  # leaves per group
INDEX_VERSION = 3  # the arrays' layout and the global tree; the local splits add their own key part


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
    """(first index (U,), inverse (N,), counts (U,)) of the distinct rows of uint8 ``x`` (N,D), all int64.

    Rows are hashed to int64 first, h = sum_d x_d m_d + x_d^2 m'_d (mod 2^64, fixed odd
    m), and the uniques come in ascending hash order; the hash is verified and, on a
    collision (31 of MNIST's 784 positions at 60k images), the uniques come in
    lexicographic row order instead (:func:`_lexicographic_unique`).  ``first`` is the
    lowest row holding each unique.  Same results as
    :func:`~nps.engine.search_index_reference.unique_rows_reference`
    (the row order of the uniques steers the k-d order's ties, so it is part of the index).
    """
    mult, mult_rev = _hash_multipliers(x.shape[1])
    x64 = x.astype(np.int64)
    h = x64 @ mult  # integer products wrap mod 2^64, so this equals the row sums in any order
    np.multiply(x64, x64, out=x64)
    h += x64 @ mult_rev
    _, first, inverse, counts = np.unique(h, return_index=True, return_inverse=True, return_counts=True)
    if not np.array_equal(x[first[inverse]], x):  # a hash collision: exact path
        return _lexicographic_unique(x)
    return first, inverse.ravel(), counts


def _hash_multipliers(d: int) -> tuple[np.ndarray, np.ndarray]:
    """(D,) int64 odd multipliers of the row hash and the same reversed (contiguous)."""
    mult = np.random.default_rng(12345).integers(1, 2**62, d, dtype=np.int64) | 1
    return mult, np.ascontiguousarray(mult[::-1])


def _lexicographic_unique(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(x, axis=0, return_index/inverse/counts)`` of uint8 ``x`` (N,D), 8x faster.

    A stable lexicographic sort (``np.lexsort``: one radix pass per column) orders the
    rows as ``np.unique``'s stable sort of the rows as structs does, so ``first`` is the
    lowest row of each unique as there.
    """
    n = len(x)
    order = np.lexsort(x.T[::-1])  # the last key is the primary one: column 0 first
    s = x[order]
    new = np.empty(n, bool)
    new[:1] = True
    np.any(s[1:] != s[:-1], axis=1, out=new[1:])
    starts = np.flatnonzero(new)
    inverse = np.empty(n, np.int64)
    inverse[order] = np.cumsum(new) - 1
    return order[starts], inverse, np.diff(np.append(starts, n))


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + z)`` over (starts, sizes) (K,) int64, sizes > 0: (sum z,) int64."""
    ends = np.cumsum(sizes)
    step = np.ones(int(ends[-1]), np.int64)
    step[0] = starts[0]
    step[ends[:-1]] = starts[1:] - (starts[:-1] + sizes[:-1] - 1)
    return np.cumsum(step)


def _segment_sums(cols: np.ndarray, starts: np.ndarray, wide: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-segment sum_i y_i and sum_i y_i^2: (K,D) float64 each; ``cols`` (D,m) uint8, segments at ``starts``.

    Sums of uint8 values (int32) and of their squares (uint16 summed in uint32; both in 64
    bits when ``wide``, i.e. segments may exceed 2^32 / 255^2 = 66,051 rows)
    are exact integers, so their float64 values equal those of any other exact summation.
    Columns are contiguous: ``reduceat`` along the last axis is several times faster.
    """
    s1 = np.add.reduceat(cols, starts, axis=1, dtype=np.int64 if wide else np.int32)
    q = cols.astype(np.uint16)
    q *= q
    s2 = np.add.reduceat(q, starts, axis=1, dtype=np.uint64 if wide else np.uint32)
    return s1.T.astype(np.float64), s2.T.astype(np.float64)


def _stable_node_order(key: np.ndarray, node: np.ndarray, k: int) -> np.ndarray:
    """The stable argsort of (node, key): (m,) int64; key (m,) int64 in 0..255, node (m,) nondecreasing in 0..k-1.

    numpy's stable sort is a radix sort for 8- and 16-bit integers: one pass on the
    16-bit composite for k <= 256 nodes, else one pass on the key then one on the node.
    """
    if k <= 256:
        return np.argsort((node * 256 + key).astype(np.uint16), kind="stable")
    if k <= 65536:
        by_key = np.argsort(key.astype(np.uint8), kind="stable")
        return by_key[np.argsort(node.astype(np.uint16)[by_key], kind="stable")]
    return np.argsort(node * 256 + key, kind="stable")


def _kd_order(u: np.ndarray, weight: np.ndarray, leaf: int) -> tuple[np.ndarray, np.ndarray]:
    """A k-d tree order of the rows of ``u`` (n,D) uint8 and its leaf boundaries.

    Every node larger than ``leaf`` is split along the dimension of largest
    ``weight * variance`` at the value of its median: values <= it go left (< it when that
    would leave nothing on the right).  Splitting by value rather than by rank separates
    zero from non-zero pixels on zero-inflated data such as MNIST, which is what makes a
    leaf's box tight.  Ties keep the current order (stable sorts): deterministic.

    Level by level over the nodes still to split only (:func:`~nps.engine.search_index_reference.kd_order_reference` is
    the plain definition, re-summing every row of every node in float64 each level; this
    returns the same arrays).  A node's spread is ``(S2 - S1^2 / size) * weight`` from its
    per-dimension sums S1 = sum y, S2 = sum y^2, exact integers carried as float64, so
    the split dimension is the same bit for bit.  Of two children only the smaller is
    summed; the other's sums are its parent's minus those (exact).  The median and the
    cut come from binary searches in the sorted (node, value) keys.

    Returns:
        perm (n,) int64 and leaf starts (L,) int64 into ``u[perm]``.
    """
    n, d = u.shape
    perm = np.arange(n)
    if n <= leaf:
        return perm, np.array([0], np.int64)
    wide = n * 255**2 >= 2**32  # sums of squares over a node may not fit 32 bits
    cols = np.ascontiguousarray(u.T)  # (D,n) uint8
    flat = cols.ravel()
    rows = perm.copy()  # (m,) rows of u in the nodes still to split, in the current order
    gstart = np.zeros(1, np.int64)  # (k,) those nodes' starts in perm
    size = np.array([n], np.int64)  # (k,)
    s1, s2 = _segment_sums(cols, np.zeros(1, np.int64), wide)  # (k,D) float64
    starts = []
    while True:
        k = len(size)
        lstart = np.cumsum(size) - size  # (k,) starts in rows
        spread = (s2 - s1 * s1 / size[:, None]) * weight  # the reference's expression: the same bits
        dim = spread.argmax(1)
        ok = spread.max(1) > 0  # rows all equal (never, for unique rows) cannot be split
        node = np.repeat(np.arange(k), size)
        key = flat[dim[node] * n + rows].astype(np.int64)
        key[~ok[node]] = 0
        order = _stable_node_order(key, node, k)
        rows = rows[order]
        comp = (node * 256 + key)[order]  # sorted
        theta = comp[lstart + size // 2]
        cut = np.searchsorted(comp, theta, "right") - lstart  # values <= the median go left
        below = np.searchsorted(comp, theta, "left") - lstart
        cut = np.where(ok, np.where(cut == size, below, cut), size)
        csize = np.stack([cut, size - cut], 1).ravel()  # (2k,) children: left, right
        cglobal = np.stack([gstart, gstart + cut], 1).ravel()
        clocal = np.stack([lstart, lstart + cut], 1).ravel()
        active = (csize > leaf) & np.repeat(ok, 2)
        final = (csize > 0) & ~active
        if final.any():
            perm[_ranges(cglobal[final], csize[final])] = rows[_ranges(clocal[final], csize[final])]
            starts.append(cglobal[final])
        if not active.any():
            return perm, np.sort(np.concatenate(starts))
        parents = np.flatnonzero(active.reshape(k, 2).any(1))
        right = (cut[parents] > size[parents] - cut[parents]).astype(np.int64)  # the smaller child
        small, large = 2 * parents + right, 2 * parents + 1 - right
        a1, a2 = _segment_sums(np.take(cols, rows[_ranges(clocal[small], csize[small])], axis=1),
                               np.cumsum(csize[small]) - csize[small], wide)
        c1, c2 = np.empty((2 * k, d)), np.empty((2 * k, d))
        c1[small], c2[small] = a1, a2
        c1[large], c2[large] = s1[parents] - a1, s2[parents] - a2
        keep = np.flatnonzero(active)
        rows = rows[_ranges(clocal[keep], csize[keep])]
        gstart, size, s1, s2 = cglobal[keep], csize[keep], c1[keep], c2[keep]


def _boxes(y: np.ndarray, starts: np.ndarray, most: int, block: int = 32768) -> tuple[np.ndarray, np.ndarray]:
    """Per-segment min and max of ``y`` (n,...) for segments of at most ``most`` rows at ``starts``.

    Each segment is padded with its own last row, so one vectorised min/max serves all
    (``np.minimum.reduceat`` along axis 0 is slow for many small segments); ``block``
    segments at a time, so the padded copy stays small (the 60k MNIST index has 282k groups).
    """
    ends = np.append(starts[1:], len(y))
    lo = np.empty((len(starts), *y.shape[1:]), y.dtype)
    hi = np.empty_like(lo)
    for a in range(0, len(starts), block):
        rows = np.minimum(starts[a:a + block, None] + np.arange(most), ends[a:a + block, None] - 1)  # (S,most)
        padded = y[rows]
        lo[a:a + block], hi[a:a + block] = padded.min(1), padded.max(1)
    return lo, hi


class _Rows:
    """An append-only array of rows (one dtype, one row shape) kept in chunks of >= 64 MiB.

    Chunks that large are their own memory maps (glibc's threshold is at most 32 MiB), so
    :meth:`joined` returns them to the system one by one as it copies them out: the
    index's per-position pieces (~0.9 GB at 60k MNIST images) are never held twice, and
    no freed heap is left resident behind them.
    """

    def __init__(self, dtype: type, row: tuple[int, ...] = (), chunk_bytes: int = 64 << 20) -> None:
        self.dtype, self.row = np.dtype(dtype), row
        self.chunk_rows = max(1, chunk_bytes // (self.dtype.itemsize * int(np.prod(row, dtype=np.int64))))
        self.chunks: list[np.ndarray] = []
        self.used = 0  # rows used in the last chunk
        self.total = 0

    def append(self, a: np.ndarray) -> None:
        while len(a):
            if not self.chunks or self.used == len(self.chunks[-1]):
                self.chunks.append(np.empty((max(self.chunk_rows, len(a)), *self.row), self.dtype))
                self.used = 0
            take = min(len(a), len(self.chunks[-1]) - self.used)
            self.chunks[-1][self.used:self.used + take] = a[:take]
            self.used, self.total, a = self.used + take, self.total + take, a[take:]

    def joined(self) -> np.ndarray:
        """(total, *row) all rows in order; empties the store."""
        out = np.empty((self.total, *self.row), self.dtype)
        at = 0
        while self.chunks:
            chunk = self.chunks.pop(0)
            rows = self.used if not self.chunks else len(chunk)
            out[at:at + rows] = chunk[:rows]
            at += rows
            del chunk
        self.used = self.total = 0
        return out


def build_index(padded: np.ndarray, window: int, height: int, width: int,
                plain: bool = False, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Build the arrays of a :class:`WindowIndex`; logs its progress every tenth of the positions.

    About 6 s for 6,000 MNIST images and 57 s for all 60,000 (784 positions, 25M unique
    windows) on a 2-core machine at load 2; peak RSS about 1.0 GB above the corpus.

    Args:
        padded: (N,C,H+2h,W+2h) uint8, the engine's edge-padded corpus.
        window: w; height, width: H, W (the centre positions).
        plain: use the plain definitions (:mod:`nps.engine.search_index_reference`); for
            tests and benchmarks, the arrays are the same.
        weights: (H*W, D) float64 split weights per position (default: the local ones of
            :func:`nps.engine.search_splits.split_weights`); they steer only the splits.
    """
    unique_rows, kd_order = (unique_rows_reference, kd_order_reference) if plain else (_unique_rows, _kd_order)
    n, c = padded.shape[:2]
    positions, start = height * width, time.perf_counter()
    if weights is None:
        weights = split_weights(height, width, window, c)
    uid = np.empty((height * width, n), np.int32)
    d = window * window * c
    reps, counts, leaf_starts = _Rows(np.int32), _Rows(np.int32), _Rows(np.int64)
    leaf_lo, leaf_hi = _Rows(np.uint8, (d,)), _Rows(np.uint8, (d,))
    pos_off, total = [0], 0
    for p in range(positions):
        cy, cx = divmod(p, width)
        x = np.ascontiguousarray(padded[:, :, cy:cy + window, cx:cx + window].transpose(0, 2, 3, 1)).reshape(n, -1)
        first, inverse, cnt = unique_rows(x)
        u = x[first]
        perm, starts = kd_order(u, weights[p], LEAF)
        rank = np.empty(len(perm), np.int64)
        rank[perm] = np.arange(len(perm))
        uid[p] = total + rank[inverse]
        reps.append(first[perm].astype(np.int32))
        counts.append(cnt[perm].astype(np.int32))
        y = u[perm]
        leaf_starts.append(total + starts)
        lo, hi = _boxes(y, starts, LEAF)
        leaf_lo.append(lo)
        leaf_hi.append(hi)
        total += len(perm)
        pos_off.append(total)
        if (p + 1) * 10 // positions > p * 10 // positions:
            log.info("window index of %d images: %d of %d positions, %d unique windows, %.0f s",
                     n, p + 1, positions, total, time.perf_counter() - start)
    pos_off_ = np.asarray(pos_off, np.int64)
    out = {"uid": uid, "rep": reps.joined(), "count": counts.joined(),
           "upos": np.repeat(np.arange(positions, dtype=np.int32), np.diff(pos_off_)), "pos_off": pos_off_}
    leaf_off = np.append(leaf_starts.joined(), total).astype(np.int64)
    lo, hi = leaf_lo.joined(), leaf_hi.joined()
    # Groups: GROUP consecutive leaves of one position.
    leaf_pos = out["upos"][leaf_off[:-1]]
    leaf_pos_off = np.searchsorted(leaf_pos, np.arange(height * width + 1))
    group_starts = np.concatenate([np.arange(a, b, GROUP) for a, b in itertools.pairwise(leaf_pos_off)])
    group_off = np.append(group_starts, len(lo)).astype(np.int64)
    group_pos_off = np.searchsorted(leaf_pos[group_starts], np.arange(height * width + 1)).astype(np.int64)
    group_lo, _ = _boxes(lo, group_starts, GROUP)
    _, group_hi = _boxes(hi, group_starts, GROUP)
    out.update(leaf_off=leaf_off, leaf_lo=lo, leaf_hi=hi, group_off=group_off, group_pos_off=group_pos_off,
               group_lo=group_lo, group_hi=group_hi)
    return out
