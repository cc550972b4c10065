"""Fill-order properties."""

from __future__ import annotations

import numpy as np
import pytest

from nps.engine.fill_order import fill_order, full_order, seed_box, shell_index


@pytest.mark.parametrize(("h", "w", "s", "win"), [(28, 28, 8, 7), (8, 8, 2, 3), (10, 13, 3, 5), (32, 32, 8, 9)])
def test_every_pixel_once_shells_outward(h, w, s, win):
    known = np.zeros((h, w), bool)
    y0, x0, y1, x1 = seed_box(h, w, s)
    known[y0:y1, x0:x1] = True
    order, shells = fill_order(known, win)
    full = full_order(known, win)
    assert full.shape == (h * w, 2)
    assert len({(int(y), int(x)) for y, x in full}) == h * w  # each pixel exactly once
    assert not known[order[:, 0], order[:, 1]].any()
    assert (np.diff(shells) >= 0).all()  # shells never go back inwards
    dist = shell_index(known)
    assert np.array_equal(dist[order[:, 0], order[:, 1]], shells)


def test_each_pixel_has_a_filled_neighbour_when_its_turn_comes():
    known = np.zeros((28, 28), bool)
    known[10:18, 10:18] = True
    order, _ = fill_order(known, 7)
    filled = known.copy()
    for y, x in order:
        assert filled[max(0, y - 1):y + 2, max(0, x - 1):x + 2].any()
        filled[y, x] = True


def test_within_a_shell_most_filled_context_first():
    known = np.zeros((12, 12), bool)
    known[4:8, 4:8] = True
    order, shells = fill_order(known, 5)
    filled = known.copy()
    half = 2
    for i, (y, x) in enumerate(order):
        same = [(int(a), int(b)) for (a, b), s in zip(order[i:], shells[i:]) if s == shells[i]]
        counts = {p: filled[max(0, p[0] - half):p[0] + half + 1, max(0, p[1] - half):p[1] + half + 1].sum()
                  for p in same}
        best = max(counts.values())
        assert counts[(int(y), int(x))] == best
        assert (int(y), int(x)) == min(p for p, c in counts.items() if c == best)  # raster tie-break
        filled[y, x] = True


def test_order_is_independent_of_values_and_deterministic():
    known = np.zeros((16, 16), bool)
    known[6:10, 6:10] = True
    a, _ = fill_order(known, 7)
    b, _ = fill_order(known.copy(), 7)
    assert np.array_equal(a, b)


def test_arbitrary_known_mask_for_completion():
    known = np.zeros((8, 8), bool)
    known[:, :3] = True
    order, shells = fill_order(known, 3)
    assert len(order) == 40
    assert shells[0] == 1 and shells[-1] == 5
    assert set(order[shells == 1][:, 1].tolist()) == {3}


def test_empty_known_region_is_an_error():
    with pytest.raises(ValueError):
        fill_order(np.zeros((4, 4), bool), 3)
