"""The whole-corpus window index and its bounds (nps.engine.search_index, nps.engine.search)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nps.engine.search import box_bound, box_bounds, direct_distance
from nps.engine.search_index import build_index


def _padded(rng: np.random.Generator, n: int = 30, size: int = 8, half: int = 1) -> np.ndarray:
    # Zero-inflated like MNIST, with repeats, so de-duplication has work to do.
    imgs = (rng.integers(0, 4, (n, size, size)) * (rng.random((n, size, size)) < 0.4) * 80).astype(np.uint8)
    imgs[5] = imgs[3]
    return np.pad(imgs, ((0, 0), (half, half), (half, half)), mode="edge")[:, None]


def test_index_maps_every_window_to_its_unique_copy(rng):
    padded, w, size = _padded(rng), 3, 8
    ix = build_index(padded, w, size, size)
    n = padded.shape[0]
    for p in range(size * size):
        cy, cx = divmod(p, size)
        windows = padded[:, 0, cy:cy + w, cx:cx + w].reshape(n, -1)
        uid = ix["uid"][p]
        lo, hi = ix["pos_off"][p], ix["pos_off"][p + 1]
        assert ((uid >= lo) & (uid < hi)).all()
        assert (ix["upos"][lo:hi] == p).all()
        rep = ix["rep"][uid]
        assert np.array_equal(padded[rep, 0, cy:cy + w, cx:cx + w].reshape(n, -1), windows)  # same window
        assert (rep <= np.arange(n)).all()  # the representative is the first occurrence
        assert np.array_equal(np.bincount(uid - lo, minlength=hi - lo), ix["count"][lo:hi])
        assert len(np.unique(windows, axis=0)) == hi - lo  # unique windows are unique
    # Every leaf's box holds its windows; every group's box holds its leaves.
    for leaf in range(len(ix["leaf_lo"])):
        ids = np.arange(ix["leaf_off"][leaf], ix["leaf_off"][leaf + 1])
        p = ix["upos"][ids[0]]
        assert (ix["upos"][ids] == p).all()
        cy, cx = divmod(int(p), size)
        win = padded[ix["rep"][ids], 0, cy:cy + w, cx:cx + w].reshape(len(ids), -1)
        assert (win >= ix["leaf_lo"][leaf]).all() and (win <= ix["leaf_hi"][leaf]).all()
    for g in range(len(ix["group_lo"])):
        leaves = slice(ix["group_off"][g], ix["group_off"][g + 1])
        assert (ix["leaf_lo"][leaves] >= ix["group_lo"][g]).all()
        assert (ix["leaf_hi"][leaves] <= ix["group_hi"][g]).all()


def test_box_bound_is_a_lower_bound_and_direct_distance_is_the_definition(rng):
    s = rng.integers(0, 256, (50, 6)).astype(np.uint8)
    t = rng.integers(0, 256, (3, 6)).astype(np.float64)
    w = rng.random(6)
    lo, hi = s[:25].min(0, keepdims=True), s[:25].max(0, keepdims=True)
    bound = box_bound(lo, hi, torch.from_numpy(t).float(), torch.from_numpy(w).float()).numpy()[0]
    exact = ((t[None] - s[:25, None].astype(np.float64)) ** 2 * w).sum(-1)  # (25,3)
    assert (bound <= exact.min(0) * (1 + 1e-6)).all()
    d = direct_distance(torch.from_numpy(s[:25].astype(np.float64)), torch.from_numpy(t[[0] * 25]),
                        torch.from_numpy(w), 7.0).numpy()
    assert np.allclose(d, exact[:, 0] / 7.0, rtol=1e-14)
    # The same pair gives the same bits whatever else is in the batch (no shape-dependent rounding).
    one = direct_distance(torch.from_numpy(s[3:4].astype(np.float64)), torch.from_numpy(t[:1]),
                          torch.from_numpy(w), 7.0).numpy()
    assert one[0] == d[3]


@pytest.mark.parametrize("batch", [3, 40])  # the per-sample and the per-dimension loop (B > K)
def test_box_bounds_enclose_every_window_of_the_box(rng, batch):
    """Both bounds hold for every window of each box, and the upper one is 0 exactly when the box is
    the target (so an accepted zero box really scores 0)."""
    K = 6
    s = rng.choice(np.array([0, 0, 0, 7, 255], np.uint8), (40, K))
    t = rng.choice(np.array([0, 0, 7, 255], np.float64), (batch, K))
    t[0] = 0
    w = rng.random(K) + 0.01
    boxes = [s[i:i + 4] for i in range(0, 40, 4)] + [np.zeros((3, K), np.uint8)]
    lo = np.stack([b.min(0) for b in boxes])
    hi = np.stack([b.max(0) for b in boxes])
    low, high = box_bounds(lo, hi, torch.from_numpy(t).float(), torch.from_numpy(w).float())
    for i, b in enumerate(boxes):
        exact = ((t[None] - b[:, None].astype(np.float64)) ** 2 * w).sum(-1)  # (n,B)
        assert (low[i].numpy() <= exact.min(0) * (1 + 1e-6)).all()
        assert (high[i].numpy() >= exact.max(0) * (1 - 1e-6)).all()
        assert ((high[i].numpy() == 0) == (exact.max(0) == 0)).all()
    assert high[-1, 0] == 0  # the all-zero box against the blank target
    assert torch.equal(low, box_bound(lo, hi, torch.from_numpy(t).float(), torch.from_numpy(w).float()))
