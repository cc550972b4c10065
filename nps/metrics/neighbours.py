"""Exact nearest-neighbour search with faiss, chunked, with float64 re-ranking.

Every neighbour computation of the metrics goes through :class:`NeighbourIndex`:
a ``faiss.IndexFlatL2`` (exact, brute force) over a database, searched in query
chunks so memory stays bounded (the distance block faiss holds is
``chunk x database`` float32, e.g. 1024 x 60,000 = 245 MB at most, and usually
much less since faiss tiles it internally).

faiss returns ``(D, I)``: ``D`` (Q,k) float32 *squared* L2 distances in ascending
order and ``I`` (Q,k) int64 database rows (-1 where the database has fewer than k
rows).  faiss expands |x|^2+|y|^2-2xy in float32, whose round-off on 784-d MNIST
pixels (~1e-5) is the size of a one-grey-level change, so the returned distances
are recomputed exactly in float64 over a few extra candidates and re-sorted.
"""

from __future__ import annotations

import numpy as np

from nps.errors import NPSError

#: Query rows per faiss search call.
CHUNK = 1024
#: Extra candidates fetched beyond k for the exact re-rank.
SLACK = 3


class NeighbourIndex:
    """Exact L2 k-NN over a fixed database.

    Args:
        database: (M,D) float array (converted to float32 for faiss; float64 copy kept
            lazily per chunk for the re-rank).
    """

    def __init__(self, database: np.ndarray) -> None:
        import faiss
        db = np.ascontiguousarray(database, np.float32)
        if db.ndim != 2 or len(db) == 0:
            raise NPSError(f"a neighbour search needs a non-empty (M,D) database, got shape {db.shape}.")
        self.db = db
        self.index = faiss.IndexFlatL2(db.shape[1])
        self.index.add(db)

    def __len__(self) -> int:
        return len(self.db)

    def search(self, queries: np.ndarray, k: int, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest database rows of each query.

        Args:
            queries: (Q,D) float.
            k: neighbours per query (at most the database size).
        Returns:
            D (Q,k) float64 L2 distances (not squared), ascending; I (Q,k) int64 rows.
        """
        q = np.ascontiguousarray(queries, np.float32)
        if q.ndim != 2 or q.shape[1] != self.db.shape[1]:
            raise NPSError(f"query shape {q.shape} does not match the database's {self.db.shape}.")
        if not 1 <= k <= len(self.db):
            raise NPSError(f"k = {k} neighbours asked of a database of {len(self.db)} rows.")
        kk = min(k + SLACK, len(self.db))
        dist = np.empty((len(q), k), np.float64)
        ids = np.empty((len(q), k), np.int64)
        for s in range(0, len(q), chunk):
            block = q[s:s + chunk]
            _, cand = self.index.search(block, kk)
            diff = self.db[cand].astype(np.float64) - block[:, None, :].astype(np.float64)
            d = np.sqrt(np.einsum("qkd,qkd->qk", diff, diff))
            order = np.argsort(d, axis=1, kind="stable")[:, :k]
            dist[s:s + chunk] = np.take_along_axis(d, order, 1)
            ids[s:s + chunk] = np.take_along_axis(cand, order, 1)
        return dist, ids

    def kth_radius(self, k: int) -> np.ndarray:
        """(M,) float64 distance of each database row to its k-th nearest *other* row."""
        d, _ = self.search(self.db, min(k + 1, len(self.db)))
        return d[:, -1]  # column 0 is the row itself (distance 0)


def pairwise_within(queries: np.ndarray, database: np.ndarray, radii: np.ndarray,
                    chunk: int = CHUNK) -> np.ndarray:
    """(Q,M) bool: ``|queries[q] - database[m]| <= radii[m]`` (ball membership).

    This is a full (Q,M) distance block rather than a k-NN search, so it is computed
    directly in float64 (|q|^2 + |x|^2 - 2 q.x, chunked over queries: chunk x M
    float64 at a time); the radii themselves come from :meth:`NeighbourIndex.kth_radius`.
    Meant for the M of a few thousand rows that precision/recall/coverage use.
    """
    q = np.asarray(queries, np.float64)
    x = np.asarray(database, np.float64)
    if q.ndim != 2 or x.ndim != 2 or q.shape[1] != x.shape[1]:
        raise NPSError(f"query shape {q.shape} does not match the database's {x.shape}.")
    r2 = np.asarray(radii, np.float64) ** 2
    xn = (x * x).sum(1)
    out = np.zeros((len(q), len(x)), bool)
    for s in range(0, len(q), chunk):
        b = q[s:s + chunk]
        norms = (b * b).sum(1)[:, None] + xn[None, :]
        d2 = norms - 2.0 * (b @ x.T)
        # float64 round-off of the expansion is ~1e-16 of the norms; a point exactly on the
        # radius (the k-th neighbour that defines it) must count as inside
        out[s:s + chunk] = d2 <= r2[None, :] + 1e-12 * norms
    return out
