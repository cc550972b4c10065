"""All-zero contexts of wide bands served from their kept set, searched once (nps.engine.search_blank):
the same records as the usual exact path and the dense scan, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from nps.engine import search_blank
from nps.engine.search_blank import BlankKept

_RECORD_KEYS = ("images", "source_index", "source_y", "source_x", "source_label", "pool_size", "relaxed")
SMALL = dict(corpus="digits", window=3, seed_size=2, k=12, batch_size=4, n=8, seed=1, search="exact")


def _same_record(a, b) -> None:
    for key in _RECORD_KEYS:
        assert np.array_equal(getattr(a, key), getattr(b, key)), key


def _run(cfg, corpus, memo: bool, monkeypatch):
    """(record, samples the memo served) of ``cfg`` with the memo on or off."""
    from nps.engine.sampler import Sampler
    from nps.engine.sampler_pool import SemanticPools
    from nps.engine.search import ExactSearch
    monkeypatch.setattr(ExactSearch, "memo_blank", memo)
    sampler = Sampler(cfg, corpus, SemanticPools.build(cfg, corpus))
    record = sampler.run(np.arange(cfg.n))
    search = sampler.search_ or None
    return record, (search.blank.served if search is not None and search.blank is not None else 0)


def test_packed_bits_read_back_the_mask(rng):
    """:meth:`BlankKept.kept` and :meth:`BlankKept.kept_at` read the packed mask at unaligned slot starts."""
    sizes = np.array([5, 1, 13, 8, 3, 17])
    start = np.concatenate([[0], np.cumsum(sizes)])
    mask = rng.random(int(start[-1])) < 0.5
    e = BlankKept(np.zeros(len(sizes), np.int64), np.packbits(mask), start, None)
    for slot in range(len(sizes)):
        assert np.array_equal(e.kept_at(slot), mask[start[slot]:start[slot + 1]])
    slots = np.repeat(np.arange(len(sizes)), sizes)
    local = np.concatenate([np.arange(z) for z in sizes])
    assert np.array_equal(e.kept(slots, local), mask)


@pytest.mark.parametrize("extra", [{}, {"constraints": "ssd,loc"}, {"max_ssd": 0.002}, {"include_reference": True},
                                   {"window": 5, "seed_size": 3}, {"constraints": "ssd,ssl", "label": 3},
                                   {"constraints": "ssd,ssl", "label": 0, "seed": 4, "batch_size": 3}])
def test_memo_gives_the_usual_path_and_the_dense_scan_records(digits, monkeypatch, extra):
    """On digits, blank samples are drawn from the memo, and every record equals the usual exact path's
    and the dense float32 scan's."""
    from nps.config import GenerationConfig
    from nps.engine.sampler import generate
    cfg = GenerationConfig(**{**SMALL, "constraints": "ssd", **extra})
    memo, served = _run(cfg, digits, True, monkeypatch)
    plain, none = _run(cfg, digits, False, monkeypatch)
    assert served > 0 and none == 0  # the memo drew some samples, and only when on
    _same_record(memo, plain)
    _same_record(memo, generate(cfg.replace(search="brute"), digits))


def test_memo_on_mnist_ssd_alone_and_its_bounds(monkeypatch):
    """SSD alone on 200 MNIST images (784-position bands): the memo serves the blank
    samples, holds one entry per (pool, band, known dimensions) within MEMO_BYTES, and changes no draw."""
    from nps.config import GenerationConfig
    from nps.corpora import load_corpus
    from nps.engine.sampler import Sampler
    from nps.engine.sampler_pool import SemanticPools
    corpus = load_corpus("mnist", 200)
    cfg = GenerationConfig(corpus="mnist", subset=200, n=2, seed=2, batch_size=2, constraints="ssd")
    cfg = cfg.fit_canvas(corpus.image_shape, seed_size_given=False)
    sampler = Sampler(cfg, corpus, SemanticPools.build(cfg, corpus))
    memo = sampler.run(np.arange(cfg.n))
    blank = sampler.search_.blank
    assert blank.served > 0
    shapes = {g.known.tobytes() for g in sampler.geometry_}
    assert 0 < len(blank.entries) <= len(shapes)
    assert blank.held == sum(e.nbytes for e in blank.entries.values() if e is not None) <= search_blank.MEMO_BYTES
    plain, _ = _run(cfg, corpus, False, monkeypatch)
    _same_record(memo, plain)


def test_a_memo_too_small_for_two_entries_evicts_and_changes_nothing(digits, monkeypatch):
    from nps.config import GenerationConfig
    cfg = GenerationConfig(**{**SMALL, "constraints": "ssd"})
    memo, served = _run(cfg, digits, True, monkeypatch)
    monkeypatch.setattr(search_blank, "MEMO_BYTES", 1)  # each new entry evicts every other one
    small, served_small = _run(cfg, digits, True, monkeypatch)
    assert served_small == served > 0
    _same_record(memo, small)


def test_the_approximate_search_keeps_the_usual_path():
    """Its kept sets come from each sample's own probes, not the band's: no memo."""
    from nps.engine.search import ExactSearch
    from nps.engine.search_approx import ApproxSearch
    assert ApproxSearch.memo_blank is False and ExactSearch.memo_blank is True
