"""Checking a record against a corpus: the provenance invariant, at both levels and through the row map.

The invariant (:mod:`nps.record`): ``images[n,y,x] == train[source_index[n,y,x], source_y[n,y,x],
source_x[n,y,x]]`` for every pixel with ``source_index >= 0``.  :func:`check_provenance` counts the
samples that break it against the run's corpus, :func:`check_provenance_full` against the full corpus
(through ``train_ids``), :func:`check_provenance_coarse` a multi-scale record's coarse level against
:func:`half_train`; :func:`check_fits` is the cheap shape and id check every reader runs first.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from nps.errors import NPSError
from nps.record import ProvenanceRecord


def check_fits(record: ProvenanceRecord, n_train: int, image_shape: tuple[int, ...],
               train_ids: np.ndarray | bool | None = False) -> None:
    """Raise NPSError unless the record's ids and canvas fit a corpus of ``n_train`` images of ``image_shape``.

    Args:
        train_ids: the corpus's own subset row map (``Corpus.train_ids``; None for a full
            corpus), to check the record's ``train_ids`` against; False (default): not checked.
            A record's row map is what makes it checkable against the full corpus, so one
            that disagrees with the rows it was really read against is refused, not trusted.
    """
    shape = tuple(image_shape)
    if train_ids is not False and record.train_ids is not None:
        expect = np.arange(n_train) if train_ids is None else np.asarray(train_ids)
        if not np.array_equal(record.train_ids, expect):
            raise NPSError("the record's train_ids (its subset's full-corpus ids) are not the rows of this "
                           "corpus's subset; the record is damaged or was made on other corpus files.")
    if tuple(record.images.shape[1:]) != shape and (*record.images.shape[1:], 1) != shape:
        raise NPSError(f"the record's {'x'.join(map(str, record.images.shape[1:]))} images do not match this "
                       f"corpus's {'x'.join(map(str, shape))}; load the corpus the record was made from.")
    top = max(int(record.source_index.max()), int(record.reference.max()))
    if top >= n_train:
        raise NPSError(f"the record points at train id {top} but this corpus has {n_train} images; "
                       "load the corpus (and --subset) the record was made from.")


def check_provenance(record: ProvenanceRecord, train: np.ndarray) -> int:
    """Count pixels that break the provenance invariant (0 means the record is exact).

    Args:
        train: (N_train,H,W[,C]) uint8, the corpus train split the record points into
            (the subset, for a ``--subset`` run).
    Raises:
        NPSError: the record's ids or canvas do not fit ``train``.
    """
    check_fits(record, len(train), train.shape[1:])
    src = record.source_index
    ok = src >= 0
    copied = train[src[ok], record.source_y[ok], record.source_x[ok]].reshape(record.images[ok].shape)
    return int((copied != record.images[ok]).reshape(len(copied), -1).any(1).sum())


def half_train(train: np.ndarray) -> np.ndarray:
    """The half-resolution corpus a multi-scale run's coarse level copies from.

    Each coarse pixel is the mean of a 2x2 block, rounded half up in integers:
    ``(a + b + c + d + 2) // 4``, a pure function of the training images.

    Args:
        train: (N,H,W[,C]) uint8.
    Returns:
        (N,H//2,W//2[,C]) uint8.
    """
    t = np.asarray(train)
    h, w = t.shape[1] // 2 * 2, t.shape[2] // 2 * 2
    blocks = t[:, :h, :w].astype(np.uint16)
    s = blocks[:, 0::2, 0::2] + blocks[:, 1::2, 0::2] + blocks[:, 0::2, 1::2] + blocks[:, 1::2, 1::2]
    return ((s + 2) // 4).astype(np.uint8)


def check_provenance_coarse(record: ProvenanceRecord, train: np.ndarray) -> int:
    """Count coarse pixels that break the invariant against :func:`half_train` (0: exact; no coarse level: 0)."""
    if record.coarse_images is None:
        return 0
    half = half_train(train)
    copied = half[record.coarse_source_index, record.coarse_source_y, record.coarse_source_x]
    return int((copied != record.coarse_images).reshape(len(record), -1).any(1).sum())


def full_source_index(record: ProvenanceRecord) -> np.ndarray:
    """(N,H,W) int64 full-corpus train id of every pixel's source (-1 kept for given pixels).

    A run on the full corpus already points into it; a ``--subset`` run maps through the
    record's ``train_ids`` (version 2).

    Raises:
        NPSError: a version-1 record of a ``--subset`` run (it has no row map).
    """
    src = record.source_index
    if record.train_ids is None:
        if record.config.get("subset") is not None:
            raise NPSError(f"this version-{record.version} record of a --subset run has no train_ids row map, "
                           "so it can only be checked against the subset; regenerate it with this nps.")
        return src
    return np.where(src >= 0, record.train_ids[np.maximum(src, 0)], -1)


def check_provenance_full(record: ProvenanceRecord, full_train: np.ndarray) -> int:
    """:func:`check_provenance` against the full corpus (``--subset`` runs through ``train_ids``).

    Args:
        full_train: (N_full,H,W[,C]) uint8, the whole train split of the record's corpus.
    Returns:
        the number of samples with at least one pixel that breaks the invariant.
    """
    full = full_source_index(record)
    view = ProvenanceRecord(**{**{f.name: getattr(record, f.name) for f in fields(record)},
                               "source_index": full, "train_ids": None, "config": {}})
    return check_provenance(view, full_train)
