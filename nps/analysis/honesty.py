"""The honesty facts of one sample: is it a copy, and how large is its largest copied region?

What the app's honesty panel shows beside a sample; computed from the record and the corpus alone.
"""

from __future__ import annotations

import numpy as np

from nps.errors import NPSError
from nps.record import ProvenanceRecord


def nearest_candidates(image: np.ndarray, train: np.ndarray, k: int = 16, chunk: int = 8192) -> np.ndarray:
    """Train ids of the ``k`` images nearest to ``image`` in pixel L2, found chunk by chunk.

    Memory stays at one float32 chunk (a whole-corpus float copy of MNIST would be 190 MB
    per request on a shared demo server).

    Args:
        image: (H,W[,C]) uint8.  train: (N,H,W[,C]) uint8, N >= 2.
    Returns:
        (min(k, N),) int64 ids, nearest first (float32 ranking; re-rank exactly before use).
    """
    q = np.asarray(image, np.float32).reshape(-1) / 255.0
    train = np.asarray(train)
    best_d = np.empty(0, np.float32)
    best_i = np.empty(0, np.int64)
    for s in range(0, len(train), chunk):
        x = train[s:s + chunk].reshape(-1, q.size).astype(np.float32) / 255.0
        d = (x * x).sum(1) - 2.0 * (x @ q)  # |x - q|^2 - |q|^2
        best_d = np.concatenate([best_d, d])
        best_i = np.concatenate([best_i, np.arange(s, s + len(x), dtype=np.int64)])
        keep = np.argsort(best_d, kind="stable")[:k]
        best_d, best_i = best_d[keep], best_i[keep]
    return best_i


def honesty(record: ProvenanceRecord, n: int, train: np.ndarray) -> dict:
    """Facts that keep a sample honest: is it a copy, and how large is its largest copied region?

    Args:
        train: (N,H,W[,C]) uint8, the corpus the record points into.
    Returns:
        dict with ``nearest`` (train id nearest in pixels), ``nearest_distance`` (L2, [0,1] pixels),
        ``nn_ratio`` (nearest / second nearest; near 0 means a copy), ``largest_island`` (pixels),
        ``island_share``, ``n_sources``, ``top1_share``, ``mismatches`` (pixels whose value does not
        equal their recorded source: 0 for an exact record), ``pixels``.
    """
    from nps.analysis.composition import composition
    from nps.analysis.memorisation import nn_ratio
    from nps.provenance import check_provenance
    if not 0 <= n < len(record):
        raise NPSError(f"sample {n} is out of range; the record has {len(record)} samples.")
    img = record.images[n:n + 1].reshape(1, -1).astype(np.float32) / 255.0
    cand = nearest_candidates(record.images[n], train)
    # nn_ratio re-ranks the shortlist exactly (float64); the shortlist holds the true two nearest.
    ratio, d1, pos = nn_ratio(img, np.asarray(train)[cand].reshape(len(cand), -1).astype(np.float32) / 255.0)
    nearest = cand[pos]
    comp = composition(record.source_index[n:n + 1], record.source_label[n:n + 1])
    one = record.select([n])
    return {"nearest": int(nearest[0]), "nearest_distance": float(d1[0]), "nn_ratio": float(ratio[0]),
            "largest_island": int(comp["largest_island"][0]), "island_share": float(comp["island_share"][0]),
            "n_sources": int(comp["n_sources"][0]), "top1_share": float(comp["top1_share"][0]),
            "mismatches": check_provenance(one, train), "pixels": int((one.source_index >= 0).sum())}
