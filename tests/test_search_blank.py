"""All-zero contexts of wide bands served from their kept set, searched once (nps.engine.search_blank):
the same records as the usual exact path and the dense scan, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from nps.engine import search_blank
from nps.engine.search_blank import BlankKept

_RECORD_KEYS = ("images", "source_index", "source_y", "source_x", "source_label", "pool_size", "relaxed")
SMALL = dict(corpus="digits", window=3, seed_size=2, k=12, batch_size=4, n=8, seed=1, search="exact")


@pytest.fixture(autouse=True)
def _empty_store(monkeypatch):
    """Each test starts with no entries (the store is the process's) and reads none from the cache
    (tests/test_blank_disk.py tests that)."""
    search_blank.STORE.clear()
    monkeypatch.setattr(search_blank.STORE, "disk", False)
    yield
    search_blank.STORE.clear()


def _same_record(a, b) -> None:
    for key in _RECORD_KEYS:
        assert np.array_equal(getattr(a, key), getattr(b, key)), key


def _run(cfg, corpus, memo: bool, monkeypatch, memo_of: bool = False):
    """(record, samples the memo served) of ``cfg`` with the memo on or off (``memo_of``: the memo itself
    instead of the count)."""
    from nps.engine.sampler import Sampler
    from nps.engine.sampler_pool import SemanticPools
    from nps.engine.search import ExactSearch
    monkeypatch.setattr(ExactSearch, "memo_blank", memo)
    sampler = Sampler(cfg, corpus, SemanticPools.build(cfg, corpus))
    record = sampler.run(np.arange(cfg.n))
    search = sampler.search_ or None
    blank = search.blank if search is not None else None
    return record, (blank if memo_of else blank.served if blank is not None else 0)


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
    held = search_blank.STORE.held
    assert held == sum(e.nbytes for e in blank.entries.values() if e is not None) <= search_blank.MEMO_BYTES
    plain, _ = _run(cfg, corpus, False, monkeypatch)
    _same_record(memo, plain)


def test_a_memo_too_small_for_two_entries_evicts_and_changes_nothing(digits, monkeypatch):
    from nps.config import GenerationConfig
    cfg = GenerationConfig(**{**SMALL, "constraints": "ssd"})
    memo, served = _run(cfg, digits, True, monkeypatch)
    search_blank.STORE.clear()
    monkeypatch.setattr(search_blank, "MEMO_BYTES", 1)  # each new entry evicts every other one
    small, blank = _run(cfg, digits, True, monkeypatch, memo_of=True)
    assert blank.served == served > 0 and blank.searched > 1
    assert sum(e is not None for e in search_blank.STORE.entries.values()) == 1  # the newest only
    _same_record(memo, small)


def test_later_generations_read_the_entries_and_draw_the_same(digits, monkeypatch):
    """A second generation with the same settings (samples 0-5 of the first's 8, other batch size)
    searches no entry and makes the record a fresh store makes; another threshold (eps) has entries of
    its own; the seed and the reference rule are not in the key."""
    from nps.config import GenerationConfig
    cfg = GenerationConfig(**{**SMALL, "constraints": "ssd"})
    _, first = _run(cfg, digits, True, monkeypatch, memo_of=True)
    assert first.searched > 0
    later = cfg.replace(n=6, batch_size=2)
    shared, blank = _run(later, digits, True, monkeypatch, memo_of=True)
    assert blank.searched == 0 and blank.served > 0
    search_blank.STORE.clear()
    fresh, again = _run(later, digits, True, monkeypatch, memo_of=True)
    assert again.searched > 0
    _same_record(shared, fresh)
    _, other = _run(cfg.replace(eps=0.3), digits, True, monkeypatch, memo_of=True)
    assert other.searched > 0 and other.scope != first.scope
    assert search_blank.config_scope(cfg.replace(seed=7, include_reference=True)) == search_blank.config_scope(cfg)


def test_the_approximate_search_has_its_own_entries(digits):
    """The approximate search memoises blank contexts too (its records equal its per-sample path's,
    tests/test_search_approx.py), but its kept sets are of its probed groups: never the exact search's
    entries, in the process or in the cache, nor another nprobe's."""
    from nps.config import GenerationConfig
    from nps.engine.sampler import Sampler
    cfg = GenerationConfig(**{**SMALL, "constraints": "ssd,loc"})
    memos = [Sampler(c, digits).prepare().exact_search(build=True).blank
             for c in (cfg, cfg.replace(search="approx", nprobe=2), cfg.replace(search="approx", nprobe=3))]
    assert all(m is not None for m in memos)
    assert len({m.scope for m in memos}) == 3 and len({m.disk_key for m in memos}) == 3
