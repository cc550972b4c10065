"""Blank-context entries kept in the cache between processes (nps.engine.blank_disk): a fresh process
reads them and draws the same records; damaged, inconsistent or read-only caches change no draw."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from nps.engine import blank_disk, search_blank
from nps.engine.search_blank import BlankKept


@pytest.fixture(autouse=True)
def _fresh_store():
    search_blank.STORE.clear()
    yield
    search_blank.STORE.clear()


def _entries(rng) -> dict:
    def kept(sizes, fell):
        start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        bits = np.packbits(rng.random(int(start[-1])) < 0.5)
        return BlankKept(rng.integers(0, 9, len(sizes)).astype(np.int64), bits, start, fell)
    return {b"": kept([5, 1, 13], None), b"pool" + bytes(16): None, bytes(range(16)): kept([8], np.array([True])),
            b"\x00" * 20: kept([3, 0, 3], np.array([False]))}


def test_pack_and_unpack_round_trip(rng):
    entries = _entries(rng)
    back = blank_disk.unpack(blank_disk.pack(entries))
    assert list(back) == list(entries)
    for key, e in entries.items():
        if e is None:
            assert back[key] is None
            continue
        for name in ("per_offset", "bits", "band_start"):
            assert np.array_equal(getattr(back[key], name), getattr(e, name)) and getattr(back[key], name).dtype == \
                getattr(e, name).dtype
        assert (back[key].fell_back is None) == (e.fell_back is None)
        assert e.fell_back is None or back[key].fell_back.tolist() == e.fell_back.tolist()
    assert blank_disk.unpack(blank_disk.pack({})) == {}


def _bump_last(name):
    def damage(a):
        a[name] = a[name].copy()
        a[name][-1] += 1
    return damage


@pytest.mark.parametrize("damage", [
    lambda a: a.pop("bits"),
    _bump_last("bits_off"),
    _bump_last("key_off"),
    lambda a: a.update(band_start=a["band_start"].astype(np.int32)),
    lambda a: a.update(fell_back=np.array([5, 0, 1], np.int8)),
    lambda a: a.update(key_off=a["key_off"][::-1].copy()),
    lambda a: a.update(band_start=a["band_start"] * 2),  # the bits no longer cover the band
    lambda a: a.update(per_offset=-a["per_offset"] - 1),
    lambda a: a.update(applies=np.ones_like(a["applies"])),  # more entries than their arrays hold
], ids=["missing", "bits-off", "key-off", "dtype", "fell-back", "decreasing", "band", "negative", "applies"])
def test_inconsistent_arrays_are_refused(rng, damage):
    arrays = blank_disk.pack(_entries(rng))
    damage(arrays)
    with pytest.raises(ValueError):
        blank_disk.unpack(arrays)


def _cfg():
    from nps.config import GenerationConfig
    from nps.corpora import load_corpus
    corpus = load_corpus("mnist", 200)
    cfg = GenerationConfig(corpus="mnist", subset=200, n=2, seed=2, batch_size=2, constraints="ssd,loc")
    return cfg.fit_canvas(corpus.image_shape, seed_size_given=False), corpus


def _generate(cfg, corpus):
    """(record, the run's blank memo), as a process that never met these entries would find them."""
    from nps.engine.sampler import Sampler
    from nps.engine.sampler_pool import SemanticPools
    sampler = Sampler(cfg, corpus, SemanticPools.build(cfg, corpus))
    return sampler.run(np.arange(cfg.n)), sampler.search_.blank


def _same(a, b) -> None:
    for key in ("images", "source_index", "source_y", "source_x", "pool_size", "relaxed"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key


def test_a_fresh_process_reads_the_entries_and_draws_the_same(cache_dir, caplog):
    cfg, corpus = _cfg()
    first, memo = _generate(cfg, corpus)
    assert memo.searched > 0 and memo.served > 0 and memo.unsaved == 0
    files = sorted(cache_dir.glob(f"{blank_disk.BLANK_KIND}-*.npz"))
    assert len(files) == 1 and len(blank_disk.load(memo.disk_key)) == memo.searched
    search_blank.STORE.clear()  # as in a fresh process
    again, memo = _generate(cfg, corpus)
    assert memo.searched == 0 and memo.served > 0
    _same(first, again)
    # Another scope (eps) has its own entry: it searches, and leaves the first file alone.
    search_blank.STORE.clear()
    _, other = _generate(cfg.replace(eps=0.3), corpus)
    assert other.searched > 0 and other.disk_key != memo.disk_key
    assert len(list(cache_dir.glob(f"{blank_disk.BLANK_KIND}-*.npz"))) == 2
    # A damaged file is reported in one line, searched again (the same draws) and written anew.
    data = bytearray(files[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    files[0].write_bytes(bytes(data))
    search_blank.STORE.clear()
    with caplog.at_level(logging.WARNING):
        damaged, memo = _generate(cfg, corpus)
    assert memo.searched > 0 and any(files[0].name in r.getMessage() for r in caplog.records)
    _same(first, damaged)
    assert len(blank_disk.load(memo.disk_key)) == memo.searched


def test_read_only_writes_nothing_and_a_stale_layout_is_searched_again(cache_dir, monkeypatch):
    cfg, corpus = _cfg()
    _generate(cfg, corpus)  # builds the index (and the entries) while the cache is writable
    for f in cache_dir.glob(f"{blank_disk.BLANK_KIND}-*.npz"):
        f.unlink()
    monkeypatch.setenv("NPS_CACHE_READONLY", "1")
    search_blank.STORE.clear()
    first, memo = _generate(cfg, corpus)
    assert memo.searched > 0 and not list(cache_dir.glob(f"{blank_disk.BLANK_KIND}-*.npz"))
    # An entry laid out for another band (a forged or mismatched file) is not drawn from.
    keys = list(memo.entries)
    search_blank.STORE.clear()
    monkeypatch.delenv("NPS_CACHE_READONLY")
    odd = BlankKept(np.zeros(1, np.int64), np.zeros(1, np.uint8), np.array([0, 3]), None)
    assert keys and blank_disk.save(memo.disk_key, dict.fromkeys(keys, odd))
    search_blank.STORE.clear()
    again, memo = _generate(cfg, corpus)
    assert memo.searched > 0
    _same(first, again)


def test_entries_are_stored_only_where_the_quota_has_room_and_evict_nothing(cache_dir, monkeypatch, rng):
    """A blank file only saves time: one that would push the cache over its quota is not written, and
    the entry already there (standing in for the window index) stays; with room it is written."""
    other = cache_dir / "windowindex-0123456789abcdef.npz"
    other.write_bytes(b"x" * (1 << 20))
    entries = _entries(rng)
    monkeypatch.setenv("NPS_CACHE_QUOTA_MB", "1.0001")  # the other entry fills it
    assert not blank_disk.save("k1", entries)
    assert other.is_file() and not list(cache_dir.glob(f"{blank_disk.BLANK_KIND}-*.npz"))
    monkeypatch.setenv("NPS_CACHE_QUOTA_MB", "not-a-number")  # a bad quota: one warning, no exception
    assert not blank_disk.save("k1", entries)
    monkeypatch.setenv("NPS_CACHE_QUOTA_MB", "2")
    assert blank_disk.save("k1", entries) and other.is_file()
    assert list(blank_disk.load("k1")) == list(entries)
