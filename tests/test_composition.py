"""Source composition and copy islands on hand-made maps."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from nps.analysis import record_from_maps
from nps.analysis.composition import composition, copy_islands, record_composition, summarise, top_sources


def bfs_largest_island(m: np.ndarray) -> int:
    h, w = m.shape
    seen = np.zeros(m.shape, bool)
    best = 0
    for y in range(h):
        for x in range(w):
            if seen[y, x] or m[y, x] < 0:
                continue
            size, queue = 0, deque([(y, x)])
            seen[y, x] = True
            while queue:
                cy, cx = queue.popleft()
                size += 1
                for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                    if 0 <= ny < h and 0 <= nx < w and not seen[ny, nx] and m[ny, nx] == m[cy, cx]:
                        seen[ny, nx] = True
                        queue.append((ny, nx))
            best = max(best, size)
    return best


HAND = np.array([[1, 1, 2, 2],
                 [1, 3, 3, 2],
                 [4, 4, 3, 2],
                 [4, 1, 1, 1]])


def test_copy_islands_on_hand_made_maps():
    checker = (np.add.outer(np.arange(4), np.arange(4)) % 2)
    diagonal = np.eye(4, dtype=np.int64) * 7  # 7s touch only at corners; the diagonal cuts the 0s in two
    given = np.full((4, 4), -1)
    given[0, :3] = 5
    maps = np.stack([HAND, checker, np.zeros((4, 4), np.int64), diagonal, given])
    # HAND: source 2 covers (0,2),(0,3),(1,3),(2,3): 4; the two regions of source 1 are not joined.
    assert copy_islands(maps).tolist() == [4, 1, 16, 6, 3]


def test_copy_islands_match_bfs_on_random_maps():
    rng = np.random.default_rng(0)
    maps = rng.integers(-1, 3, size=(20, 9, 7))
    assert copy_islands(maps).tolist() == [bfs_largest_island(m) for m in maps]


def test_composition_fields():
    labels = np.array([0, 0, 1, 1, 1, 0, 0, 0])
    comp = composition(HAND[None], labels[HAND][None])
    # counts: source 1: 6 px, 2: 4, 3: 3, 4: 3 of 16.
    assert comp["n_sources"].tolist() == [4]
    assert comp["top1_share"][0] == pytest.approx(6 / 16)
    assert comp["top5_share"][0] == pytest.approx(1.0)
    assert comp["largest_island"].tolist() == [4]
    assert comp["island_share"][0] == pytest.approx(4 / 16)
    # labels: source 1 -> 0, 2 -> 1, 3 -> 1, 4 -> 1: majority label 1 with 10 px.
    assert comp["label_purity"][0] == pytest.approx(10 / 16)


def test_given_pixels_are_excluded():
    src = np.full((1, 4, 4), -1)
    src[0, 0, :] = [3, 3, 3, 9]
    comp = composition(src, np.where(src >= 0, 0, -1))
    assert comp["n_sources"][0] == 2
    assert comp["top1_share"][0] == pytest.approx(0.75)
    assert comp["label_purity"][0] == 1.0
    empty = composition(np.full((1, 3, 3), -1), np.full((1, 3, 3), -1))
    assert empty["n_sources"][0] == 0 and empty["largest_island"][0] == 0


def test_top_sources_order_and_ties():
    ids, counts = top_sources(np.array([[5, 5, 2], [2, 9, 9], [-1, 1, 0]]), k=3)
    assert ids.tolist() == [2, 5, 9] and counts.tolist() == [2, 2, 2]


def test_memorised_sample_is_one_island():
    train = np.random.default_rng(0).integers(0, 255, size=(3, 6, 6), dtype=np.uint8)
    src = np.stack([np.full((6, 6), 1), np.add.outer(np.arange(6), np.arange(6)) % 3])
    rec = record_from_maps(src, train, np.array([0, 1, 2]))
    comp = record_composition(rec)
    assert comp["island_share"].tolist() == [1.0, pytest.approx(1 / 36)]
    assert comp["n_sources"].tolist() == [1, 3]
    s = summarise(comp)
    assert s["n_sources"]["mean"] == 2.0 and s["n_sources"]["max"] == 3.0


def test_reference_share_counts_generated_pixels_from_the_reference():
    train = np.zeros((4, 4, 4), np.uint8)
    src = np.full((2, 4, 4), 2)
    src[0, :2, :] = 1  # sample 0: half of the canvas from image 1
    rec = record_from_maps(src, train, np.zeros(4, np.int64), seed_size=2)
    rec.reference[:] = [1, 3]
    comp = record_composition(rec)
    # the 2x2 seed (rows/cols 1-2) is left out: image 1 covers rows 0-1 -> 8 px, 2 of them seed -> 6 of 12
    assert comp["reference_share"].tolist() == [0.5, 0.0]
