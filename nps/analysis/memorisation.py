"""Memorisation: is a sample a near-copy of one training image?

For each sample, d1 / d2 where d1 and d2 are the distances to its nearest and
second-nearest training images (exact search with faiss), in two spaces:

* ``pixels``: L2 over raw pixels scaled to [0,1];
* ``embedding``: L2 between unit-norm encoder embeddings (the record's encoder by default).

A ratio far below 1 means one training image is much closer than any other: a copy.
The fraction of samples below 1/3 is reported next to the same statistic for real
test images (which are not copies, so they show what "novel" looks like).  An exact
copy has d1 = 0 and ratio 0; when d2 = 0 too (duplicate training images) the ratio
is 0 as well.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from nps.errors import NPSError

log = logging.getLogger(__name__)

THRESHOLD = 1.0 / 3.0


def nn_ratio(queries: np.ndarray, database: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest / second-nearest L2 distance ratio of each query against a database.

    Args:
        queries: (Q,D) float32.
        database: (M,D) float32, M >= 2.
    Returns:
        ratio (Q,) float64 in [0,1], d1 (Q,) float64, nearest id (Q,) int64.
    """
    import faiss
    db = np.ascontiguousarray(database, np.float32)
    q = np.ascontiguousarray(queries, np.float32)
    if db.ndim != 2 or q.ndim != 2 or db.shape[1] != q.shape[1]:
        raise NPSError(f"memorisation: query shape {q.shape} and database shape {db.shape} do not match.")
    if len(db) < 2:
        raise NPSError("memorisation needs at least 2 training images.")
    index = faiss.IndexFlatL2(db.shape[1])
    index.add(db)
    k = min(4, len(db))
    _, ids = index.search(q, k)
    # faiss computes |x|^2+|y|^2-2xy in float32, whose round-off (~1e-5 on MNIST) is the
    # size of a one-grey-level change; re-rank the few candidates exactly in float64.
    diff = db[ids].astype(np.float64) - q[:, None, :].astype(np.float64)
    d = np.sqrt((diff * diff).sum(2))
    order = np.argsort(d, axis=1, kind="stable")
    d = np.take_along_axis(d, order, 1)
    ids = np.take_along_axis(ids, order, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(d[:, 0] == 0, 0.0, d[:, 0] / d[:, 1])
    return ratio, d[:, 0], ids[:, 0].astype(np.int64)


def _pixels(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


@dataclass
class MemorisationReport:
    """Ratios for samples and real test images in pixel and embedding space.

    Attributes:
        ratios: {"pixels": (N,), "embedding": (N,)} float64 for the samples.
        real_ratios: the same for ``n_real`` test images.
        nearest: {"pixels": (N,) int64} nearest train id of each sample.
        exact_copies: (N,) bool, sample equals a training image pixel for pixel.
        encoder: the encoder used for the embedding space (None if skipped).
    """

    ratios: dict[str, np.ndarray]
    real_ratios: dict[str, np.ndarray]
    nearest: dict[str, np.ndarray]
    exact_copies: np.ndarray
    encoder: str | None = None
    threshold: float = THRESHOLD
    notes: list[str] = field(default_factory=list)

    def fraction_below(self, space: str, real: bool = False) -> float:
        r = (self.real_ratios if real else self.ratios)[space]
        return float((r < self.threshold).mean()) if len(r) else float("nan")

    def to_dict(self) -> dict:
        out: dict = {"threshold": self.threshold, "encoder": self.encoder, "notes": self.notes,
                     "exact_copies": int(self.exact_copies.sum())}
        for space in self.ratios:
            out[space] = {
                "fraction_below": self.fraction_below(space),
                "real_fraction_below": self.fraction_below(space, real=True),
                "median_ratio": float(np.median(self.ratios[space])),
                "real_median_ratio": float(np.median(self.real_ratios[space])),
            }
        return out


def memorisation(images: np.ndarray, corpus, encoder=None, n_real: int = 500,
                 seed: int = 0) -> MemorisationReport:
    """Nearest-neighbour ratios of samples and of ``n_real`` random test images.

    Args:
        images: (N,H,W[,C]) uint8 samples.
        corpus: the :class:`~nps.corpora.Corpus` the samples were drawn from.
        encoder: a fitted :class:`~nps.encoders.Encoder` for the embedding space, or None
            to skip that space.
        n_real: test images used as the baseline (a seeded random subset).
    """
    images = np.asarray(images)
    if images.shape[1:] != corpus.train.shape[1:]:
        raise NPSError(f"samples of shape {images.shape[1:]} do not match corpus '{corpus.name}' images "
                       f"{corpus.train.shape[1:]}; evaluate against the corpus the record was made from.")
    rng = np.random.default_rng(seed)
    real = corpus.test[np.sort(rng.choice(len(corpus.test), size=min(n_real, len(corpus.test)), replace=False))]
    train_px = _pixels(corpus.train)
    ratio, d1, nearest = nn_ratio(_pixels(images), train_px)
    real_ratio, _, _ = nn_ratio(_pixels(real), train_px)
    ratios = {"pixels": ratio}
    real_ratios = {"pixels": real_ratio}
    near = {"pixels": nearest}
    name = None
    if encoder is not None:
        from nps.retrieval import embed_corpus
        table = embed_corpus(corpus, encoder)
        r, _, nid = nn_ratio(encoder.encode(images), table.train)
        rr, _, _ = nn_ratio(encoder.encode(real), table.train)
        ratios["embedding"], real_ratios["embedding"], near["embedding"] = r, rr, nid
        name = encoder.identity
    return MemorisationReport(ratios, real_ratios, near, d1 == 0, name)
