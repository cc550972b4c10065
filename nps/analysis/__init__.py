"""Mechanistic analysis of provenance records.

* :mod:`nps.analysis.entropy`: sliding-window entropy of the class and image-ID maps,
  pool-size (uncertainty) maps;
* :mod:`nps.analysis.composition`: distinct sources, top-1/top-5 shares, copy islands,
  label purity;
* :mod:`nps.analysis.memorisation`: nearest / second-nearest training-image ratios.

:func:`analyse_record` runs all of them (plus IS/FID when a classifier exists) and
returns one JSON-able dict; ``nps evaluate``, ``nps ablate`` and ``nps sweep`` use it.
"""

from __future__ import annotations

import logging

import numpy as np

from nps.errors import NPSError

log = logging.getLogger(__name__)


def analyse_record(record, corpus, *, window: int = 5, classifier=None, encoder=None,
                   memorisation: bool = True, scores: bool = True, n_real: int = 500) -> dict:
    """Every metric of one record.

    Args:
        record: a :class:`~nps.record.ProvenanceRecord`.
        corpus: the corpus it was generated from (ids point into ``corpus.train``).
        window: entropy window side.
        classifier: a fitted classifier for IS/FID; None loads the corpus's one (and skips
            the scores with a note if it has none).
        encoder: a fitted encoder for the embedding-space memorisation ratio (None: pixels only).
        memorisation, scores: switch the slower parts off.
    Returns:
        dict with ``n``, ``provenance_errors``, ``entropy``, ``pool``, ``composition``,
        ``relaxed_rate``, ``scores`` (or None), ``memorisation`` (or None), ``notes``.
    """
    from nps.analysis.composition import record_composition, summarise
    from nps.analysis.entropy import pool_size_summary, record_entropies
    from nps.provenance import check_provenance
    notes: list[str] = []
    if int(record.config.get("corpus_size", len(corpus))) != len(corpus):
        raise NPSError(f"the record was made from a corpus of {record.config.get('corpus_size')} images but "
                       f"'{corpus.name}' has {len(corpus)}; load it with the record's --subset.")
    ent = record_entropies(record, window)
    pool = pool_size_summary(record)
    comp = record_composition(record)
    out: dict = {
        "n": len(record),
        "config": record.config,
        "provenance_errors": check_provenance(record, corpus.train),
        "entropy": {k: v.to_dict() for k, v in ent.items()},
        "pool": {k: v for k, v in pool.items() if not k.endswith("_map")},
        "relaxed_rate": pool["relaxed_rate"],
        "composition": summarise(comp),
        "scores": None,
        "memorisation": None,
        "notes": notes,
    }
    if scores:
        out["scores"] = image_scores(record.images, corpus, notes, classifier, references=record.reference)
    if memorisation:
        out["memorisation"], out["_memorisation_report"] = image_memorisation(record.images, corpus, encoder, n_real)
    out["_composition"] = comp
    out["_pool"] = pool
    return out


def image_scores(images: np.ndarray, corpus, notes: list[str], classifier=None,
                 references: np.ndarray | None = None) -> dict | None:
    """IS/FID of (N,H,W[,C]) uint8 images against the real ceiling, or None with the reason in ``notes``.

    Shared by records (:func:`analyse_record`) and learned-baseline samples: the classifier
    is ``classifier`` or the corpus's own; fewer than 2 images cannot be scored.
    """
    from nps.metrics.classifier import load_classifier
    from nps.metrics.scores import classifier_report
    try:
        clf = classifier if classifier is not None else load_classifier(corpus.name)
    except NPSError as exc:
        notes.append(f"IS/FID skipped: {exc}")
        return None
    if len(images) < 2:
        notes.append("IS/FID skipped: they need at least 2 samples.")
        return None
    return classifier_report(images, corpus.name, corpus=corpus, classifier=clf, references=references)


def image_memorisation(images: np.ndarray, corpus, encoder=None, n_real: int = 500) -> tuple[dict, object]:
    """(JSON-able dict, report) of the nearest-neighbour memorisation ratios of (N,H,W[,C]) uint8 images."""
    from nps.analysis.memorisation import memorisation as memo
    rep = memo(images, corpus, encoder=encoder, n_real=n_real)
    return rep.to_dict(), rep  # the report is not JSON; :func:`jsonable` drops ``_``-keys


def jsonable(result: dict) -> dict:
    """Drop the private (array/object) entries and convert numpy scalars for json.dump."""
    def conv(v):
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items() if not str(k).startswith("_")}
        if isinstance(v, list | tuple):
            return [conv(x) for x in v]
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, float) and not np.isfinite(v):
            return None
        return v
    return conv(result)


def record_from_maps(source_index: np.ndarray, train: np.ndarray, train_labels: np.ndarray,
                     source_y: np.ndarray | None = None, source_x: np.ndarray | None = None,
                     pool_size: np.ndarray | None = None, seed_size: int = 0, config: dict | None = None):
    """A valid :class:`~nps.record.ProvenanceRecord` built from hand-made maps (tests, teaching).

    Args:
        source_index: (N,H,W) int64 train ids (-1: a given pixel, left black).
        train, train_labels: the corpus arrays the ids point into.
        source_y, source_x: (N,H,W) source positions (default: the same position, as with R=0).
        pool_size: (N,H,W) (default 1).
        seed_size: the central s x s box becomes shell 0 of the fill order.
    Returns:
        a record whose images satisfy the provenance invariant exactly.
    """
    from nps.record import ProvenanceRecord
    src = np.asarray(source_index, np.int64)
    n, h, w = src.shape
    yy, xx = np.broadcast_to(np.arange(h)[:, None], (h, w)), np.broadcast_to(np.arange(w)[None, :], (h, w))
    sy = np.broadcast_to(yy, src.shape).astype(np.int64) if source_y is None else np.asarray(source_y, np.int64)
    sx = np.broadcast_to(xx, src.shape).astype(np.int64) if source_x is None else np.asarray(source_x, np.int64)
    ok = src >= 0
    images = np.zeros((n, h, w, *train.shape[3:]), np.uint8)
    images[ok] = train[src[ok], sy[ok], sx[ok]]
    labels = np.where(ok, np.asarray(train_labels)[np.maximum(src, 0)], -1).astype(np.int64)
    y0, x0 = (h - seed_size) // 2, (w - seed_size) // 2
    in_seed = (yy >= y0) & (yy < y0 + seed_size) & (xx >= x0) & (xx < x0 + seed_size)
    first = np.flatnonzero(in_seed.ravel())
    rest = np.flatnonzero(~in_seed.ravel())
    order = np.stack(np.divmod(np.concatenate([first, rest]), w), 1).astype(np.int64)
    shell = np.concatenate([np.zeros(len(first), np.int64), np.ones(len(rest), np.int64)])
    cfg = {"corpus": "synthetic", "corpus_size": len(train), "constraints": ["ssd", "loc", "ssl"]}
    cfg.update(config or {})
    return ProvenanceRecord(
        images=images, source_index=src, source_y=sy.copy(), source_x=sx.copy(), source_label=labels,
        pool_size=np.ones(src.shape, np.int64) if pool_size is None else np.asarray(pool_size, np.int64),
        relaxed=np.zeros(src.shape, bool), reference=np.where(ok.any((1, 2)), src.reshape(n, -1).max(1), -1),
        order=order, config=cfg, sample_id=np.arange(n, dtype=np.int64), shell=shell)
