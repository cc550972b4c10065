"""Continuation hints of the exact search (nps.engine.search_hints): they only tighten the first upper
bound on each sample's minimum, so they prune more and change no record, whatever windows they name
(windows outside the step's band are dropped: they could score below the band's minimum)."""

from __future__ import annotations

import numpy as np
import pytest

from nps.engine import search, search_blank
from nps.engine.search_hints import continuations, in_band

_RECORD_KEYS = ("images", "source_index", "source_y", "source_x", "source_label", "pool_size", "relaxed")
SMALL = dict(corpus="digits", window=3, seed_size=2, k=12, batch_size=4, n=8, seed=1, search="exact")


@pytest.fixture(autouse=True)
def _empty_store(monkeypatch):
    search_blank.STORE.clear()
    monkeypatch.setattr(search_blank.STORE, "disk", False)
    yield
    search_blank.STORE.clear()


def test_continuations_point_at_the_window_continuing_each_neighbours_copy():
    H = W = 6  # corpus images; the canvas is 5 x 7 here, so canvas and source positions differ
    uid = np.arange(H * W * 10, dtype=np.int32).reshape(H * W, 10)  # (HW,N) a distinct id each
    sources = np.full((3, 2, 5, 7), -1, np.int64)
    # Sample 0, target (2, 2): its right neighbour came from image 5 centred at (4, 1), so image 5's
    # window at (4, 0) continues that copy; its upper-left one from image 2 at (0, 0) gives (1, 1).
    sources[:, 0, 2, 3] = (5, 4, 1)
    sources[:, 0, 1, 1] = (2, 0, 0)
    sources[:, 0, 3, 2] = (7, 0, 3)  # below, from row 0: its continuation (-1, 3) is outside the image
    sources[:, 1, 2, 1] = (9, 5, 5)  # sample 1's left neighbour: (5, 6) is outside (cx = 6 = W)
    sources[:, 1, 0, 0] = (4, 3, 3)  # (0, 0) is two rows up: outside a 3 x 3 window
    hints = continuations(sources, 2, 2, 1, uid, H, W)
    assert hints.shape == (2, 8)
    assert sorted(hints[0][hints[0] >= 0].tolist()) == sorted([uid[4 * W + 0, 5], uid[1 * W + 1, 2]])
    assert (hints[1] == -1).all()
    # At a canvas corner only the neighbours inside the canvas count.
    assert continuations(sources, 0, 0, 1, uid, H, W).shape == (2, 3)


def test_hints_in_band_keep_the_bands_windows_only():
    upos = np.array([0, 0, 1, 2, 3, 4, 5, 5])  # (U,) each unique window's position
    slot = np.array([0, -1, 1, -1, -1, 2])  # positions 0, 2 and 5 are in the band
    hints = np.array([[7, 2, -1], [3, 7, 0]])
    assert in_band(hints, upos, slot).tolist() == [0, 3, 7]
    assert in_band(None, upos, slot).tolist() == []


def _run(digits, cfg, monkeypatch, hints: str):
    """(record, windows scored) with the real hints, none, or every window of the corpus as hints (the
    least bound there can be: the minimum over the band, and below it outside the band)."""
    from nps.engine import sampler_choice
    from nps.engine.sampler import Sampler
    from nps.engine.sampler_pool import SemanticPools

    def every_window(sources, y, x, half, uid, height, width):
        windows = np.arange(int(uid.max()) + 1)
        return np.broadcast_to(windows, (sources.shape[1], len(windows)))
    monkeypatch.setattr(sampler_choice, "continuations",
                        {"real": continuations, "every": every_window, "none": lambda *a: None}[hints])
    scored = []
    candidates = search.ExactSearch._candidates

    def counting(self, *args):
        cand = candidates(self, *args)
        scored.append(len(cand.scored))
        return cand
    monkeypatch.setattr(search.ExactSearch, "_candidates", counting)
    sampler = Sampler(cfg, digits, SemanticPools.build(cfg, digits))
    return sampler.run(np.arange(cfg.n)), sum(scored)


@pytest.mark.parametrize("extra", [{"constraints": "ssd"}, {"constraints": "ssd,loc"},
                                   {"constraints": "ssd", "include_reference": True, "batch_size": 3}])
def test_hints_prune_more_and_change_no_record(digits, monkeypatch, extra):
    from nps.config import GenerationConfig
    cfg = GenerationConfig(**{**SMALL, **extra}).fit_canvas(digits.image_shape, seed_size_given=False)
    hinted, with_hints = _run(digits, cfg, monkeypatch, "real")
    search_blank.STORE.clear()
    plain, without = _run(digits, cfg, monkeypatch, "none")
    search_blank.STORE.clear()
    every, _ = _run(digits, cfg, monkeypatch, "every")
    for key in _RECORD_KEYS:
        assert np.array_equal(getattr(hinted, key), getattr(plain, key)), key
        assert np.array_equal(getattr(every, key), getattr(plain, key)), key
    assert with_hints < without  # the hints do prune (else this test would prove nothing)
