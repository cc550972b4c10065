"""Sliding-window entropy and pool-size maps on synthetic maps with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from nps.analysis import record_from_maps
from nps.analysis.entropy import (
    entropy_map,
    pool_size_summary,
    record_entropies,
    seed_mask,
    summarise_entropy,
    window_entropy,
)
from nps.errors import NPSError


def brute_entropy(maps: np.ndarray, w: int) -> np.ndarray:
    n, h, wd = maps.shape
    out = np.empty((n, h - w + 1, wd - w + 1))
    for k in range(n):
        for i in range(h - w + 1):
            for j in range(wd - w + 1):
                _, c = np.unique(maps[k, i:i + w, j:j + w], return_counts=True)
                p = c / c.sum()
                out[k, i, j] = -(p * np.log2(p)).sum()
    return out


def test_constant_map_has_zero_entropy():
    maps = np.full((3, 12, 12), 7)
    ent = window_entropy(maps, 5)
    assert ent.shape == (3, 8, 8)
    assert np.all(ent == 0.0)
    assert summarise_entropy(maps, 5).mean == 0.0


def test_pixel_checkerboard_is_exactly_one_bit_in_even_windows():
    yy, xx = np.mgrid[:10, :10]
    board = ((yy + xx) % 2 * 1000 + 3)[None]  # two sources, 3 and 1003
    for w in (2, 4, 6):
        assert np.array_equal(window_entropy(board, w), np.ones((1, 11 - w, 11 - w)))
    # Odd windows hold 13 of one source and 12 of the other: H(13/25), the same everywhere.
    p = np.array([13, 12]) / 25
    assert np.allclose(window_entropy(board, 5), -(p * np.log2(p)).sum())


def test_two_block_map_has_one_bit_only_in_straddling_windows():
    maps = np.zeros((1, 8, 8), np.int64)
    maps[:, :, 4:] = 1  # left half from source 0, right half from source 1
    ent = window_entropy(maps, 2)[0]
    expected = np.zeros((7, 7))
    expected[:, 3] = 1.0  # only windows whose columns are {3, 4} straddle the boundary
    assert np.array_equal(ent, expected)
    # Four 4x4 blocks of four sources: the window centred on the corner holds 4 equal parts = 2 bits.
    quad = np.zeros((1, 8, 8), np.int64)
    quad[:, :4, 4:], quad[:, 4:, :4], quad[:, 4:, 4:] = 1, 2, 3
    assert window_entropy(quad, 4)[0, 2, 2] == pytest.approx(2.0)
    assert window_entropy(quad, 4)[0, 0, 0] == 0.0


def test_matches_brute_force_on_random_maps():
    rng = np.random.default_rng(1)
    maps = rng.integers(0, 6, size=(4, 9, 11))
    for w in (1, 3, 5):
        assert np.allclose(window_entropy(maps, w), brute_entropy(maps, w))


def test_invalid_pixels_are_left_out_and_empty_windows_are_nan():
    maps = np.zeros((1, 4, 4), np.int64)
    maps[:, :, 2:] = 5
    valid = np.ones_like(maps, bool)
    valid[:, :, 2:] = False  # the right half is "given": only source 0 remains, entropy 0
    ent = window_entropy(maps, 2, valid)[0]
    assert np.all(ent[:, :2] == 0.0)
    assert np.all(np.isnan(ent[:, 2]))  # windows over columns 2-3 hold no valid pixel


def test_entropy_map_places_windows_at_their_centres():
    maps = np.zeros((1, 7, 7), np.int64)
    maps[0, 3, 3] = 9
    em = entropy_map(maps, 3)[0]
    assert np.isnan(em[0]).all() and np.isnan(em[:, 0]).all()
    p = np.array([1, 8]) / 9
    assert em[3, 3] == pytest.approx(-(p * np.log2(p)).sum())
    assert em[1, 1] == 0.0  # window rows/cols 0..2 miss the odd pixel


def test_bad_window_is_an_npserror():
    with pytest.raises(NPSError):
        window_entropy(np.zeros((1, 4, 4)), 5)
    with pytest.raises(NPSError):
        window_entropy(np.zeros((4, 4)), 3)


def test_record_entropies_and_pool_summary():
    train = np.arange(4 * 6 * 6, dtype=np.uint8).reshape(4, 6, 6)
    labels = np.array([0, 0, 1, 1])
    src = np.zeros((2, 6, 6), np.int64)
    src[0, :, 3:] = 1  # sample 0: two sources of the same label
    src[1, :, 3:] = 2  # sample 1: two sources of different labels
    pool = np.full(src.shape, 100)
    pool[:, 0, 0] = 1
    rec = record_from_maps(src, train, labels, pool_size=pool, seed_size=2)
    ent = record_entropies(rec, 2)
    assert ent["class"].per_sample[0] == 0.0
    assert ent["image_id"].per_sample[0] == pytest.approx(ent["class"].per_sample[1])
    assert ent["image_id"].per_sample[0] == pytest.approx(5 / 25)  # 5 of 25 windows straddle, 1 bit each
    assert seed_mask(rec).sum() == 4 and seed_mask(rec)[2:4, 2:4].all()
    ps = pool_size_summary(rec)
    assert np.isnan(ps["log10_map"][2, 2])  # seed pixel
    assert ps["log10_map"][1, 1] == pytest.approx(2.0)
    assert ps["single_share"] == pytest.approx(2 / (2 * 32))
    assert ps["relaxed_rate"] == 0.0
