"""Embedding tables, faiss indexes, the semantic pool, recall of approximate indexes, `nps embed`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from nps.cache_quota import list_entries
from nps.cli import main
from nps.encoders import ENCODERS, Encoder, get_encoder, register_encoder
from nps.errors import NPSError
from nps.retrieval import EmbeddingTable, SourceIndex, embed_corpus, recall_at_k, semantic_pool


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """(n,d) float32 random rows of unit L2 norm."""
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(rng: np.random.Generator, n: int, d: int = 32, centres: int = 20,
              noise: float = 0.05) -> np.ndarray:
    """Easy data for approximate search: tight clusters around random unit centres."""
    c = unit_rows(rng, centres, d)
    x = c[rng.integers(0, centres, n)] + noise * rng.standard_normal((n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def table(train: np.ndarray, test: np.ndarray | None = None, key: str = "t") -> EmbeddingTable:
    return EmbeddingTable(train, train[:0] if test is None else test, key)


def brute_force(train: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims = queries.astype(np.float64) @ train.astype(np.float64).T
    ids = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, ids, 1), ids


# --------------------------------------------------------------------------- exact search

@pytest.mark.parametrize("k", [1, 5, 200, 500])
def test_flat_search_equals_brute_force(rng: np.random.Generator, k: int) -> None:
    train, queries = unit_rows(rng, 200, 16), unit_rows(rng, 13, 16)
    index = SourceIndex("flat").fit(table(train))
    D, I = index.search(queries, k)
    want_d, want_i = brute_force(train, queries, k)
    assert I.shape == D.shape == (13, min(k, 200))
    assert I.dtype == np.int64 and D.dtype == np.float32
    np.testing.assert_array_equal(I, want_i)
    np.testing.assert_allclose(D, want_d, atol=1e-5)


def test_search_rejects_bad_input(rng: np.random.Generator) -> None:
    index = SourceIndex("flat").fit(table(unit_rows(rng, 20, 8)))
    with pytest.raises(NPSError):
        index.search(unit_rows(rng, 2, 8), 0)
    with pytest.raises(ValueError):
        index.search(unit_rows(rng, 2, 9), 3)
    with pytest.raises(NPSError, match="unknown index kind"):
        SourceIndex("annoy").fit(table(unit_rows(rng, 20, 8)))


# --------------------------------------------------------------------------- semantic pool

def test_semantic_pool_excludes_the_reference_and_sorts(rng: np.random.Generator) -> None:
    train = unit_rows(rng, 300, 16)
    index = SourceIndex("flat").fit(table(train))
    refs = np.array([0, 5, 17, 299])
    pools = semantic_pool(index, train[refs], k=10, exclude=refs)
    assert pools.shape == (4, 10) and pools.dtype == np.int64
    _, nearest = brute_force(train, train[refs], 11)
    for row, ref, near in zip(pools, refs, nearest):
        assert ref not in row
        assert np.all(np.diff(row) > 0), "sorted ascending, no duplicates"
        np.testing.assert_array_equal(row, np.sort(near[near != ref][:10]))
    # Without exclusion each reference is its own nearest neighbour.
    kept = semantic_pool(index, train[refs], k=10)
    assert all(ref in row for ref, row in zip(refs, kept))
    # A single id excludes from every row; -1 excludes nothing.
    same = semantic_pool(index, train[refs], k=10, exclude=5)
    assert 5 not in same[1] and 5 not in same.ravel()
    np.testing.assert_array_equal(semantic_pool(index, train[refs], k=10, exclude=np.full(4, -1)), kept)


def test_semantic_pool_pads_when_the_corpus_is_small(rng: np.random.Generator) -> None:
    train = unit_rows(rng, 6, 4)
    index = SourceIndex("flat").fit(table(train))
    pools = semantic_pool(index, train[[2]], k=8, exclude=np.array([2]))
    np.testing.assert_array_equal(pools, [[0, 1, 3, 4, 5, -1, -1, -1]])


@pytest.mark.parametrize("ssl_eps", [0.0, 0.05, 0.2])
def test_adaptive_ssl_eps_matches_the_rule(rng: np.random.Generator, ssl_eps: float) -> None:
    train = unit_rows(rng, 400, 8)
    index = SourceIndex("flat").fit(table(train))
    refs = np.arange(0, 400, 25)
    k = 32
    pools = semantic_pool(index, train[refs], k=k, exclude=refs, ssl_eps=ssl_eps)
    sims, ids = brute_force(train, train[refs], k + 1)
    sizes = []
    for row, ref, s, i in zip(pools, refs, sims, ids):
        s, i = s[i != ref][:k], i[i != ref][:k]
        dist = 1.0 - s
        want = np.sort(i[dist <= (1 + ssl_eps) * dist[0] + 1e-6])
        got = row[row >= 0]
        np.testing.assert_array_equal(got, want)
        assert np.all(row[len(got):] == -1)
        sizes.append(len(got))
    if ssl_eps == 0.0:
        assert sizes == [1] * len(refs)  # continuous data: no ties at the minimum
    else:
        assert 1 < max(sizes) < k  # the radius actually trims the top-k


# --------------------------------------------------------------------------- approximate indexes

@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_recall_is_high_on_easy_data(rng: np.random.Generator, kind: str) -> None:
    x = clustered(rng, 2100)
    t = table(x[:2000], x[2000:], key=f"easy-{kind}")
    exact = SourceIndex("flat").fit(t)
    approx = SourceIndex(kind).fit(t)
    assert recall_at_k(exact, exact, t.test, 10) == 1.0
    r = recall_at_k(approx, exact, t.test, 10)
    assert 0.95 <= r <= 1.0
    assert approx.key_ in {e.key for e in list_entries()}  # trained once, cached


def test_recall_detects_a_poor_index(rng: np.random.Generator) -> None:
    x = unit_rows(rng, 2100, 32)  # no structure: one probed list misses most neighbours
    t = table(x[:2000], x[2000:], key="poor")
    poor = SourceIndex("ivf", nlist=50, nprobe=1).fit(t)
    r = recall_at_k(poor, SourceIndex("flat").fit(t), t.test, 10)
    assert 0.0 < r < 0.8
    poor.nprobe = 50  # a search-time setting: probing every list is exact
    assert recall_at_k(poor, SourceIndex("flat").fit(t), t.test, 10) == 1.0


def test_approximate_index_is_cached_and_reproducible(rng: np.random.Generator, cache_dir: Path) -> None:
    import faiss

    from nps.cache_quota import clear
    x = clustered(rng, 1500)
    t = table(x, key="repro")
    first = SourceIndex("hnsw").fit(t)
    again = SourceIndex("hnsw").fit(t)
    assert first.key_ == again.key_ and len(list_entries()) == 1
    blob = faiss.serialize_index(first.index_)
    clear(None)
    rebuilt = SourceIndex("hnsw").fit(t)
    np.testing.assert_array_equal(faiss.serialize_index(rebuilt.index_), blob)


def test_ivf_index_is_memory_mapped_from_a_verified_sidecar(rng: np.random.Generator, cache_dir: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    from nps.cache_quota import clear
    x = clustered(rng, 1600)
    t = table(x[:1500], x[1500:], key="mmap")
    first = SourceIndex("ivf").fit(t)
    sidecar = cache_dir / f"index-{first.key_}.faiss"
    assert sidecar.is_file() and first.mmapped_
    want = first.search(t.test, 10)
    again = SourceIndex("ivf").fit(t)
    assert again.mmapped_
    for a, b in zip(want, again.search(t.test, 10)):
        np.testing.assert_array_equal(a, b)
    # A flipped byte in the lists: refused by its sha256, rebuilt (same answers), with a warning.
    # Flipped in place and after dropping the maps: truncating a memory-mapped file (write_bytes
    # does) makes the next access to a live map a SIGBUS; the cache itself only ever renames.
    del first, again
    import gc
    gc.collect()
    with open(sidecar, "r+b") as f:
        f.seek(sidecar.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    with caplog.at_level("WARNING", logger="nps"):
        rebuilt = SourceIndex("ivf").fit(t)
    assert "missing or damaged" in caplog.text
    for a, b in zip(want, rebuilt.search(t.test, 10)):
        np.testing.assert_array_equal(a, b)
    # The sidecar belongs to its entry: clearing removes both.
    clear(None)
    assert not sidecar.exists() and list(cache_dir.iterdir()) == []


def test_quota_eviction_takes_the_index_sidecar_with_its_entry(rng: np.random.Generator, cache_dir: Path) -> None:
    from nps import cache_quota
    x = clustered(rng, 1600)
    first = SourceIndex("ivf").fit(table(x, key="evict"))
    entry = cache_dir / f"index-{first.key_}.npz"
    size = entry.stat().st_size + entry.with_suffix(".faiss").stat().st_size
    assert cache_quota.usage(cache_dir) >= size
    assert entry in cache_quota.enforce_quota(cache_dir, quota=1)
    assert not entry.exists() and not entry.with_suffix(".faiss").exists()


def test_index_cache_is_keyed_by_content_not_only_the_table_key(rng: np.random.Generator) -> None:
    a, b = clustered(rng, 800), clustered(rng, 800)
    ia = SourceIndex("ivf").fit(table(a, key="shared"))
    ib = SourceIndex("ivf").fit(table(b, key="shared"))
    assert ia.key_ != ib.key_
    _, got = ib.search(b[:5], 1)
    np.testing.assert_array_equal(got[:, 0], np.arange(5))  # b's own index, not a's


# --------------------------------------------------------------------------- embedding tables

def test_embed_corpus_shapes_and_cache_hit(digits_small) -> None:
    enc = get_encoder("pca", digits_small)
    first = embed_corpus(digits_small, enc)
    n_entries = len(list_entries())
    second = embed_corpus(digits_small, enc)
    assert len(list_entries()) == n_entries, "the second call is a cache hit"
    assert first.key == second.key
    assert first.train.shape == (200, enc.dim) and first.test.shape == (len(digits_small.test), enc.dim)
    assert first.train.dtype == first.test.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first.train, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(second.train, first.train)
    np.testing.assert_allclose(first.train, enc.encode(digits_small.train), atol=1e-6)


def test_embedding_key_changes_with_subset_and_encoder(digits, digits_small) -> None:
    from nps.corpora import load_corpus
    keys = {
        "full-pca": embed_corpus(digits, get_encoder("pca", digits)).key,
        "sub200-pca": embed_corpus(digits_small, get_encoder("pca", digits_small)).key,
        "full-pixels": embed_corpus(digits, get_encoder("pixels", digits)).key,
    }
    sub300 = load_corpus("digits", subset=300)
    keys["sub300-pca"] = embed_corpus(sub300, get_encoder("pca", sub300)).key
    assert len(set(keys.values())) == len(keys), keys
    assert embed_corpus(digits, get_encoder("pca", digits)).key == keys["full-pca"]


# --------------------------------------------------------------------------- `nps embed`

def test_embed_help_exits_0(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["embed", "--help"])
    assert exc.value.code == 0
    assert "--index" in capsys.readouterr().out


def test_embed_writes_the_documented_keys(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from nps.corpora import load_corpus
    out = tmp_path / "emb.npz"
    assert main(["embed", "--corpus", "digits", "--encoder", "pca", "--subset", "300", "--out", str(out)]) == 0
    corpus = load_corpus("digits", subset=300)
    with np.load(out, allow_pickle=False) as z:
        assert {"train", "test", "labels_train", "labels_test"} <= set(z.files)
        assert z["train"].shape == (300, 32) and z["train"].dtype == np.float32
        assert z["test"].shape == (len(corpus.test), 32) and z["test"].dtype == np.float32
        np.testing.assert_array_equal(z["labels_train"], corpus.train_labels)
        np.testing.assert_array_equal(z["labels_test"], corpus.test_labels)
        np.testing.assert_array_equal(z["train"], embed_corpus(corpus, get_encoder("pca", corpus)).train)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_embed_reports_recall_of_an_approximate_index(kind: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "emb.npz"
    assert main(["embed", "--corpus", "digits", "--encoder", "pca", "--out", str(out),
                 "--index", kind, "--k", "10"]) == 0
    text = capsys.readouterr().out
    m = re.search(rf"recall@10 of {kind} .* on 355 test queries: ([0-9.]+)", text)
    assert m, text
    assert 0.9 <= float(m.group(1)) <= 1.0


class _ToyEncoder(Encoder):
    """A registered encoder that takes a device, as simclr does: embed must accept it unchanged."""

    name = "toy"

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def fit(self, corpus) -> _ToyEncoder:
        self.fitted_ = True
        return self

    @property
    def dim(self) -> int:
        return 3

    def _encode(self, images: np.ndarray) -> np.ndarray:
        x = images.reshape(len(images), -1).astype(np.float32)
        return np.stack([x.mean(1), x.std(1), x[:, 0]], 1) + 1.0


def test_embed_works_with_any_registered_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ENCODERS, "toy", lambda device="cpu", **kw: _ToyEncoder(device=device))
    out = tmp_path / "toy.npz"
    assert main(["embed", "--corpus", "digits", "--encoder", "toy", "--subset", "100", "--out", str(out)]) == 0
    with np.load(out) as z:
        assert z["train"].shape == (100, 3)
        np.testing.assert_allclose(np.linalg.norm(z["train"], axis=1), 1.0, atol=1e-5)
    assert register_encoder  # the public way to add one; monkeypatch keeps the registry clean here


def _assert_one_error_line(capsys: pytest.CaptureFixture, needle: str) -> None:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0] and "Traceback" not in err


@pytest.mark.parametrize(("argv", "needle"), [
    (["--corpus", "no-such-corpus"], "unknown corpus"),
    (["--corpus", "digits", "--encoder", "no-such-encoder"], "unknown encoder"),
    (["--corpus", "digits", "--k", "0"], "--k"),
    (["--corpus", "digits", "--subset", "0"], "--subset"),
])
def test_embed_bad_input_exits_2(argv: list[str], needle: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture) -> None:
    assert main(["embed", *argv, "--out", str(tmp_path / "e.npz")]) == 2
    _assert_one_error_line(capsys, needle)
    assert not (tmp_path / "e.npz").exists()


def test_embed_checks_the_output_path_before_any_work(tmp_path: Path, cache_dir: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    assert main(["embed", "--corpus", "digits", "--out", str(tmp_path / "missing" / "e.npz")]) == 2
    _assert_one_error_line(capsys, "does not exist")
    assert main(["embed", "--corpus", "digits", "--out", str(tmp_path / "e.txt")]) == 2
    _assert_one_error_line(capsys, ".npz")
    assert list_entries() == [], "nothing was embedded"


def test_embed_unknown_index_kind_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["embed", "--corpus", "digits", "--index", "annoy", "--out", str(tmp_path / "e.npz")])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
