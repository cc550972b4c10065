"""Cached embeddings and faiss retrieval indexes over a corpus.

The semantic pool of the sampler is a k-nearest-neighbour query here.  Both the
embedding table and the serialised faiss index live in ``cache/``, keyed by the
corpus content hash, the subset and the encoder identity (which includes a hash
of its weights), so ablation runs and app sessions reuse them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from nps.cache import cached_arrays, content_key
from nps.encoders.base import Encoder

log = logging.getLogger(__name__)

INDEX_KINDS = ("flat", "ivf", "hnsw")


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


def embed_corpus(corpus, encoder: Encoder) -> EmbeddingTable:  # noqa: ANN001
    """Embed train and test splits, cached by (corpus content, encoder identity)."""
    key = content_key("embeddings", corpus.content_hash, encoder.identity)

    def build() -> dict[str, np.ndarray]:
        log.info("embedding %s with %s", corpus.name, encoder.identity)
        return {"train": encoder.encode(corpus.train), "test": encoder.encode(corpus.test)}

    arrays = cached_arrays("embeddings", key, build,
                           meta={"corpus": corpus.name, "subset": corpus.subset, "encoder": encoder.identity})
    return EmbeddingTable(arrays["train"], arrays["test"], key)


class SourceIndex:
    """k-NN search over train embeddings by inner product (cosine on unit vectors).

    Args:
        kind: "flat" (exact, IndexFlatIP), "ivf" (IndexIVFFlat) or "hnsw" (IndexHNSWFlat).
    """

    def __init__(self, kind: str = "flat", nlist: int | None = None, nprobe: int = 16, hnsw_m: int = 32) -> None:
        self.kind = kind
        self.nlist = nlist
        self.nprobe = nprobe
        self.hnsw_m = hnsw_m

    def fit(self, table: EmbeddingTable) -> SourceIndex:
        """Build (or load from cache) the index over ``table.train``; returns self."""
        import faiss
        from nps.errors import NPSError
        if self.kind not in INDEX_KINDS:
            raise NPSError(f"unknown index kind '{self.kind}'; use one of {', '.join(INDEX_KINDS)}.")
        x = np.ascontiguousarray(table.train, np.float32)
        n, d = x.shape
        nlist = self.nlist or max(1, int(4 * np.sqrt(n)))
        key = content_key("index", table.key, self.kind, nlist, self.hnsw_m)

        def build() -> dict[str, np.ndarray]:
            if self.kind == "flat":
                index = faiss.IndexFlatIP(d)
            elif self.kind == "ivf":
                index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, min(nlist, n), faiss.METRIC_INNER_PRODUCT)
                index.cp.seed = 0
                index.train(x)
            else:
                index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.add(x)
            return {"faiss": faiss.serialize_index(index)}

        arrays = cached_arrays("index", key, build, meta={"kind": self.kind, "n": n, "d": d,
                                                          "embeddings": table.key})
        self.index_ = faiss.deserialize_index(arrays["faiss"])
        if self.kind == "ivf":
            self.index_.nprobe = self.nprobe
        self.ntotal_ = n
        self.key_ = key
        return self

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss-style search.

        Args:
            queries: (M,D) float32, unit rows.
            k: neighbours per query (clipped to the corpus size).
        Returns:
            (D, I): (M,k) float32 inner products, descending; (M,k) int64 train ids.
        """
        q = np.ascontiguousarray(queries, np.float32)
        return self.index_.search(q, min(k, self.ntotal_))


def semantic_pool(index: SourceIndex, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
                  ssl_eps: float | None = None) -> np.ndarray:
    """The k nearest train ids of each query, optionally excluding one id per query.

    Args:
        queries: (M,D) float32.
        exclude: (M,) int64 id to drop from each row (the reference), or None / -1.
        ssl_eps: adaptive radius: keep ids with cosine distance <= (1 + ssl_eps) * nearest
            distance; the rest of the row is padded with -1.
    Returns:
        (M,k) int64 train ids sorted ascending, -1 marking unused slots (adaptive only).
    """
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


def source_index(corpus, encoder: Encoder, kind: str = "flat") -> tuple[EmbeddingTable, SourceIndex]:  # noqa: ANN001
    """Embeddings and a fitted index for (corpus, encoder), both cached."""
    table = embed_corpus(corpus, encoder)
    return table, SourceIndex(kind).fit(table)
