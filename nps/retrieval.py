"""Cached embeddings and faiss retrieval indexes over a corpus.

The semantic pool of the sampler is a k-nearest-neighbour query here.  The
embedding table and the trained approximate indexes (IVF, HNSW) live in
``cache/``, keyed by the corpus content hash (both splits and the subset) and the
encoder identity (which includes a hash of its weights), so ablation runs and
app sessions reuse them.  The exact flat index is rebuilt from the cached
embeddings (a copy) each time.  :func:`recall_at_k` measures an approximate
index against the exact one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nps.cache import atomic_write, cache_root, cached_arrays, content_key, file_sha256, read_only
from nps.encoders.base import Encoder
from nps.errors import NPSError

log = logging.getLogger(__name__)

INDEX_KINDS = ("flat", "ivf", "hnsw")
# From this many train images on, the sampler's semantic pools come from a cached IVF index:
# exact search costs O(N) per query, IVF about nprobe/nlist of it (recall@k: `python -m nps embed
# --index ivf`).  Below it exact search is cheap and records stay identical to earlier runs.
ANN_THRESHOLD = 200_000


def pool_index_kind(n_train: int) -> str:
    """The index kind the sampler uses for a corpus of ``n_train`` images: "flat" or "ivf"."""
    return "ivf" if n_train >= ANN_THRESHOLD else "flat"


@dataclass(frozen=True, eq=False)
class EmbeddingTable:
    """Embeddings of a corpus under one encoder.

    Attributes:
        train: (N,D) float32, L2-normalised, row i embeds train image i.
        test: (M,D) float32.
        key: the cache key (corpus hash + encoder identity).
    """

    train: np.ndarray
    test: np.ndarray
    key: str


def embedding_cached(corpus, encoder: Encoder) -> bool:
    """Whether :func:`embed_corpus` would read its table from the cache (a file probe: nothing is built or read)."""
    from nps.cache import cache_root
    key = content_key("embeddings", corpus.content_hash, encoder.identity)
    return (cache_root() / f"embeddings-{key}.npz").is_file()


def embed_corpus(corpus, encoder: Encoder) -> EmbeddingTable:
    """Embed train and test splits, cached by (corpus content, encoder identity).

    ``corpus.content_hash`` covers both splits and the subset; ``encoder.identity``
    covers the encoder's name and fitted state (a hash of its weights).

    Returns:
        an :class:`EmbeddingTable`: train (N,D) and test (M,D) float32 unit rows.
    """
    key = content_key("embeddings", corpus.content_hash, encoder.identity)

    def build() -> dict[str, np.ndarray]:
        log.info("embedding %s (%d + %d images) with %s", corpus.name, len(corpus.train), len(corpus.test),
                 encoder.identity)
        from nps.store import encode_in_chunks  # a stored corpus of millions is read in chunks
        return {"train": encode_in_chunks(encoder, corpus),
                "test": np.asarray(encoder.encode(corpus.test), np.float32)}

    arrays = cached_arrays("embeddings", key, build,
                           meta={"corpus": corpus.name, "subset": corpus.subset, "encoder": encoder.identity,
                                 "corpus_hash": corpus.content_hash})
    return EmbeddingTable(arrays["train"], arrays["test"], key)


class SourceIndex:
    """k-NN search over train embeddings by inner product (cosine on unit vectors).

    The exact ``flat`` index (faiss IndexFlatIP) is the default.  It is rebuilt
    from the (cached) embeddings on every fit, because adding vectors to a flat
    index is a copy: storing it would double the cache and be slower to load.
    The approximate ``ivf`` and ``hnsw`` indexes are trained once and cached.

    Args:
        kind: "flat" (exact, IndexFlatIP), "ivf" (IndexIVFFlat) or "hnsw" (IndexHNSWFlat).
        nlist: IVF lists; default min(4*sqrt(N), N/39), faiss's own minimum of 39
            training points per centroid.
        nprobe: IVF lists visited per query (a search-time setting).
        hnsw_m: HNSW graph degree.
        ef_search: HNSW search beam (a search-time setting; faiss uses max(ef_search, k)).
    """

    def __init__(self, kind: str = "flat", nlist: int | None = None, nprobe: int = 16, hnsw_m: int = 32,
                 ef_search: int = 64) -> None:
        self.kind = kind
        self.nlist = nlist
        self.nprobe = nprobe
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search

    def fit(self, table: EmbeddingTable) -> SourceIndex:
        """Build (or load from cache) the index over ``table.train``; returns self."""
        import faiss
        if self.kind not in INDEX_KINDS:
            raise NPSError(f"unknown index kind '{self.kind}'; use one of {', '.join(INDEX_KINDS)}.")
        x = np.ascontiguousarray(table.train, np.float32)
        if x.ndim != 2 or len(x) == 0:
            raise NPSError(f"cannot index embeddings of shape {x.shape}; expected (N,D) with N >= 1.")
        n, d = x.shape
        self.ntotal_ = n
        self.dim_ = d
        if self.kind == "flat":
            self.index_ = faiss.IndexFlatIP(d)
            self.index_.add(x)
            self.nlist_ = None
            self.key_ = content_key("index", table.key, "flat")
            return self
        nlist = self.nlist or max(1, min(int(4 * np.sqrt(n)), n // 39))
        nlist = min(nlist, n)
        # The content hash guards against two tables that share a key but not their data
        # (hand-made tables in tests and notebooks); for embed_corpus tables it is redundant.
        key = content_key("index", table.key, content_key(x), self.kind, nlist, self.hnsw_m)

        def build() -> dict[str, np.ndarray]:
            if self.kind == "ivf":
                index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
                index.cp.seed = 0
                index.train(x)
                index.add(x)
            else:
                index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
                # Parallel HNSW insertion makes the graph depend on thread timing; one
                # thread makes it a function of the data, so runs are reproducible.
                threads = faiss.omp_get_max_threads()
                faiss.omp_set_num_threads(1)
                try:
                    index.add(x)
                finally:
                    faiss.omp_set_num_threads(threads)
            data = faiss.serialize_index(index)
            if self.kind == "ivf" and not read_only():
                # The lists go to a sidecar that later runs memory-map: only the probed lists are
                # ever paged in, and the index is never held twice (bytes + deserialised copy).
                atomic_write(sidecar, lambda f: f.write(memoryview(data)))
                return {"faiss_sha256": np.array(file_sha256(sidecar)), "faiss_size": np.array(len(data))}
            return {"faiss": data}

        meta = {"index_kind": self.kind, "n": n, "d": d, "nlist": nlist if self.kind == "ivf" else None,
                "hnsw_m": self.hnsw_m if self.kind == "hnsw" else None, "embeddings": table.key}
        sidecar = cache_root() / f"index-{key}.faiss"
        arrays = cached_arrays("index", key, build, meta=meta)
        if "faiss" not in arrays and not _sidecar_ok(sidecar, arrays):
            log.warning("the memory-mapped index %s is missing or damaged; rebuilding it", sidecar.name)
            if read_only():
                arrays = build()  # in memory: nothing is written in read-only mode
            else:
                (cache_root() / f"index-{key}.npz").unlink(missing_ok=True)
                arrays = cached_arrays("index", key, build, meta=meta)
        if "faiss" in arrays:
            self.index_ = faiss.deserialize_index(arrays["faiss"])
        else:
            self.index_ = faiss.read_index(str(sidecar), faiss.IO_FLAG_MMAP)
        self.mmapped_ = "faiss" not in arrays
        self.nlist_ = nlist if self.kind == "ivf" else None
        self.key_ = key
        return self

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss-style search.

        Args:
            queries: (M,D) float32, unit rows.
            k: neighbours per query (clipped to the corpus size).
        Returns:
            (D, I): (M,k') float32 inner products, descending; (M,k') int64 train ids,
            k' = min(k, N).  An approximate index may return fewer hits than k',
            marked by id -1.
        """
        if not hasattr(self, "index_"):
            raise RuntimeError("SourceIndex.search called before fit")
        if k < 1:
            raise NPSError(f"k must be at least 1 (got {k}).")
        q = np.ascontiguousarray(queries, np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim_:
            raise ValueError(f"queries must be (M,{self.dim_}); got {q.shape}")
        # Search-time settings are applied here so that changing them after fit takes effect.
        if self.kind == "ivf":
            self.index_.nprobe = self.nprobe
        elif self.kind == "hnsw":
            self.index_.hnsw.efSearch = self.ef_search
        return self.index_.search(q, min(k, self.ntotal_))


def _sidecar_ok(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Whether the index sidecar has the size and sha256 its cache entry recorded."""
    try:
        return (path.stat().st_size == int(arrays["faiss_size"])
                and file_sha256(path) == str(arrays["faiss_sha256"]))
    except (OSError, KeyError, ValueError):
        return False


def recall_at_k(approx: SourceIndex, exact: SourceIndex, queries: np.ndarray, k: int) -> float:
    """Recall@k of an approximate index against the exact one.

    The share of each query's exact k nearest ids that the approximate index also
    returns in its top k, averaged over queries.

    Args:
        approx, exact: fitted indexes over the same train embeddings.
        queries: (M,D) float32, unit rows.
    Returns:
        a float in [0, 1] (1.0 when there are no queries).
    """
    if len(queries) == 0:
        return 1.0
    _, truth = exact.search(queries, k)
    _, found = approx.search(queries, k)
    return recall_of(found, truth)


def recall_of(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the ids in ``truth`` (M,k) that ``found`` (M,k) holds in the same row (-1 ignored)."""
    if truth.size == 0:
        return 1.0
    hits = 0
    for t, f in zip(truth, found):
        hits += len(np.intersect1d(t[t >= 0], f[f >= 0], assume_unique=True))
    return hits / float(truth.size)


def semantic_pool(index: SourceIndex, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
                  ssl_eps: float | None = None, cap: int | None = None) -> np.ndarray:
    """The k nearest train ids of each query, optionally excluding one id per query.

    Args:
        queries: (M,D) float32.
        exclude: (M,) int64 id to drop from each row (the reference), a single id for
            every row, or None; -1 entries exclude nothing.
        ssl_eps: adaptive radius: keep ids with cosine distance <= (1 + ssl_eps) * nearest
            distance; the rest of the row is padded with -1.
        cap: with ``ssl_eps``, the most ids a row keeps instead of k (the corpus size: the
            radius alone decides); the rows are then as wide as the widest kept row.
    Returns:
        (M,k) int64 train ids sorted ascending, then -1 in unused slots (the adaptive
        radius kept fewer, or the corpus has fewer than k other images); (M,k') with
        k' = max(1, most ids kept) when ``cap`` is set.
    """
    if cap is not None and ssl_eps is not None:
        rows = semantic_pool(index, queries, cap, exclude, ssl_eps)  # the same rule, capped at ``cap``
        width = max(1, int((rows >= 0).sum(1).max(initial=0)))
        return np.ascontiguousarray(rows[:, :width])
    if exclude is not None:
        exclude = np.broadcast_to(np.asarray(exclude, np.int64), (len(queries),))
    extra = 0 if exclude is None else 1
    sims, ids = index.search(queries, k + extra)
    out = np.full((len(ids), k), -1, np.int64)
    for m in range(len(ids)):
        row, sim = ids[m], sims[m]
        keep = row >= 0
        if exclude is not None and exclude[m] >= 0:
            keep &= row != exclude[m]
        row, sim = row[keep][:k], sim[keep][:k]
        if ssl_eps is not None and len(row):
            dist = 1.0 - sim
            row = row[dist <= (1.0 + ssl_eps) * max(float(dist[0]), 0.0) + 1e-6]
        out[m, :len(row)] = np.sort(row)
    return out


def source_index(corpus, encoder: Encoder, kind: str = "flat") -> tuple[EmbeddingTable, SourceIndex]:
    """Embeddings and a fitted index for (corpus, encoder), both cached."""
    table = embed_corpus(corpus, encoder)
    return table, SourceIndex(kind).fit(table)
