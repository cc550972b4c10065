"""The fast window-index build (nps.engine.search_index) against its plain definitions.

The cached index (version 3) was built by the plain definitions; the fast build must give
every array bit for bit (same unique ids, k-d order, leaves, groups and boxes), or old
caches would be silently inconsistent with new builds.
"""

from __future__ import annotations

import numpy as np
import pytest

from nps.engine import search_index as si
from nps.engine import search_index_reference as ref

_KEYS = ("uid", "rep", "count", "upos", "pos_off", "leaf_off", "leaf_lo", "leaf_hi",
         "group_off", "group_pos_off", "group_lo", "group_hi")


def _assert_same(fast: dict[str, np.ndarray], plain: dict[str, np.ndarray]) -> None:
    assert set(fast) == set(plain) == set(_KEYS)
    for key in _KEYS:
        assert fast[key].dtype == plain[key].dtype, key
        assert fast[key].shape == plain[key].shape, key
        assert np.array_equal(fast[key], plain[key]), key


def _corpus(rng: np.random.Generator, kind: str, n: int, size: int, channels: int, half: int) -> np.ndarray:
    """(n,C,size+2h,size+2h) uint8 edge-padded, like the engine's padded corpus."""
    shape = (n, size, size, channels)
    if kind == "uniform":
        imgs = rng.integers(0, 256, shape)
    elif kind == "zero-inflated":  # MNIST-like: most pixels 0, some 255, a few in between
        imgs = np.where(rng.random(shape) < 0.7, 0, np.where(rng.random(shape) < 0.5, 255, rng.integers(1, 255, shape)))
    elif kind == "few-levels":  # many exact ties in every dimension, and duplicate images
        imgs = rng.integers(0, 3, shape) * 100
        imgs[n // 2:] = imgs[:n - n // 2]
    else:  # constant: one unique window per position
        imgs = np.full(shape, 7)
    imgs = imgs.astype(np.uint8)
    padded = np.pad(imgs, ((0, 0), (half, half), (half, half), (0, 0)), mode="edge")
    return np.ascontiguousarray(padded.transpose(0, 3, 1, 2))


@pytest.mark.parametrize(("kind", "n", "size", "channels", "window"), [
    ("zero-inflated", 300, 8, 1, 5),
    ("zero-inflated", 40, 6, 3, 3),
    ("uniform", 200, 5, 1, 3),
    ("few-levels", 250, 6, 1, 3),
    ("few-levels", 120, 5, 2, 5),
    ("constant", 30, 4, 1, 3),
    ("uniform", 5, 4, 1, 3),  # fewer windows than a leaf
    ("zero-inflated", 9, 4, 1, 3),  # a leaf and one more
    ("uniform", 1, 3, 1, 3),
])
def test_fast_build_equals_the_plain_definitions(rng, kind, n, size, channels, window):
    padded = _corpus(rng, kind, n, size, channels, window // 2)
    _assert_same(si.build_index(padded, window, size, size), si.build_index(padded, window, size, size, plain=True))


def test_fast_kd_order_equals_the_plain_one_on_hard_rows(rng):
    weight = rng.random(6)
    weight[2] = 0  # a dimension that never steers (the window's centre)
    cases = [  # unique rows, as the build gives (the plain loop never ends on a node of equal rows)
        np.unique(rng.integers(0, 2, (500, 6)).astype(np.uint8), axis=0),  # 2^6 rows, binary
        np.unique(rng.integers(0, 256, (1000, 6)).astype(np.uint8), axis=0)[rng.permutation(1000)],
        np.unique((rng.integers(0, 4, (3000, 6)) * (rng.random((3000, 6)) < 0.3) * 60).astype(np.uint8), axis=0),
        rng.integers(0, 256, (8, 6)).astype(np.uint8),
        np.zeros((0, 6), np.uint8),
    ]
    for u in cases:
        perm, starts = si._kd_order(u, weight, si.LEAF)
        ref_perm, ref_starts = ref.kd_order_reference(u, weight, si.LEAF)
        assert perm.dtype == ref_perm.dtype and starts.dtype == ref_starts.dtype
        assert np.array_equal(perm, ref_perm) and np.array_equal(starts, ref_starts)
        assert np.array_equal(np.sort(perm), np.arange(len(u)))  # a permutation


def test_kd_order_stops_at_nodes_that_cannot_split(rng):
    # Rows differing only where the weight is 0 (the centre): no split helps; the plain loop would spin.
    weight = np.ones(3)
    weight[1] = 0
    u = np.zeros((20, 3), np.uint8)
    u[:, 1] = np.arange(20)
    u = np.concatenate([u, rng.integers(1, 256, (30, 3)).astype(np.uint8)])
    perm, starts = si._kd_order(u, weight, si.LEAF)
    assert np.array_equal(np.sort(perm), np.arange(len(u)))
    assert np.array_equal(np.sort(perm[:20]), np.arange(20)) and 0 in starts and 20 in starts
    assert (np.diff(np.append(starts, len(u)))[1:] <= si.LEAF).all()  # the rest split down to leaves


def test_unique_rows_on_a_hash_collision_takes_the_exact_path(monkeypatch, rng):
    x = rng.integers(0, 3, (400, 5)).astype(np.uint8)
    # Multipliers of 0 hash every row to 0: the fast path must notice and sort the rows exactly.
    zero = np.zeros(5, np.int64)
    monkeypatch.setattr(si, "_hash_multipliers", lambda d: (zero, zero))
    first, inverse, counts = si._unique_rows(x)
    _, ref_first, ref_inverse, ref_counts = np.unique(x, axis=0, return_index=True, return_inverse=True,
                                                      return_counts=True)
    assert np.array_equal(first, ref_first) and np.array_equal(inverse, ref_inverse.ravel())
    assert np.array_equal(counts, ref_counts)
    assert np.array_equal(x[first][inverse], x)


def test_unique_rows_equals_the_plain_definition(rng):
    for x in (rng.integers(0, 256, (300, 49)).astype(np.uint8),
              (rng.integers(0, 2, (3000, 9)) * 255).astype(np.uint8)):  # heavy duplication
        for a, b in zip(si._unique_rows(x), ref.unique_rows_reference(x), strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)


def test_fast_build_equals_the_plain_definitions_on_mnist():
    from nps.corpora import load_corpus
    from nps.engine.sampler_setup import padded_corpus
    corpus = load_corpus("mnist", subset=500)
    _, padded = padded_corpus(corpus, 3)
    padded = padded.numpy()
    _assert_same(si.build_index(padded, 7, 28, 28), si.build_index(padded, 7, 28, 28, plain=True))


def test_rows_store_joins_its_chunks_in_order(rng):
    store = si._Rows(np.uint8, (3,), chunk_bytes=30)  # 10 rows a chunk
    parts = [rng.integers(0, 256, (k, 3)).astype(np.uint8) for k in (4, 0, 7, 25, 1, 10)]
    for part in parts:
        store.append(part)
    assert len(store.chunks) > 3
    joined = store.joined()
    assert joined.dtype == np.uint8 and np.array_equal(joined, np.concatenate(parts))
    assert store.chunks == [] and len(store.joined()) == 0


def test_boxes_in_blocks_equal_one_block(rng):
    y = rng.integers(0, 256, (1000, 4)).astype(np.uint8)
    starts = np.sort(rng.choice(np.arange(1, 1000), 150, replace=False))
    starts = np.concatenate([[0], starts])
    most = int(np.diff(np.append(starts, 1000)).max())
    lo, hi = si._boxes(y, starts, most, block=7)
    for s, e, a, b in zip(starts, np.append(starts[1:], 1000), lo, hi, strict=True):
        assert np.array_equal(a, y[s:e].min(0)) and np.array_equal(b, y[s:e].max(0))


def test_kd_order_sums_in_64_bits_when_a_node_could_overflow_32(rng):
    # 70,000 unique rows of values 250..255: the root's sum of squares (~4.4e9) exceeds 2^32.
    u = np.unique((250 + rng.integers(0, 6, (90000, 8))).astype(np.uint8), axis=0)[:70000]
    u = u[rng.permutation(len(u))]
    assert len(u) == 70000 and (u.astype(np.int64) ** 2).sum(0).max() > 2**32
    weight = rng.random(8)
    perm, starts = si._kd_order(u, weight, si.LEAF)
    ref_perm, ref_starts = ref.kd_order_reference(u, weight, si.LEAF)
    assert np.array_equal(perm, ref_perm) and np.array_equal(starts, ref_starts)
