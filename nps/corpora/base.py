"""The :class:`Corpus` every reader returns, and what the readers share (data roots, freezing, subsets)."""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MNIST_CLASSES = tuple(str(i) for i in range(10))


@dataclass(frozen=True, eq=False)
class Corpus:
    """A labelled image corpus with a train/test split.

    Attributes:
        name: the name it was loaded by, in its canonical spelling (``mnist``,
            ``folder:/path``, ``folder:/path?size=32&colour=rgb`` ...; see :mod:`nps.corpora.registry`).
        train: (N,H,W) or (N,H,W,C) uint8 training images; the image id is the row.
        train_labels: (N,) int64.
        test: (M,H,W) or (M,H,W,C) uint8.
        test_labels: (M,) int64.
        class_names: one name per label value.
        subset: the stratified subset size asked for, or None for the whole corpus.
        train_ids: (N,) int64 full-corpus train id of each train row of a subset (None: the
            whole corpus, ids are rows); records store it so they check against the full corpus.
    """

    name: str
    train: np.ndarray
    train_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    subset: int | None = None
    source: str = field(default="")
    train_ids: np.ndarray | None = field(default=None, repr=False)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(H,W) or (H,W,C)."""
        return tuple(self.train.shape[1:])

    @property
    def channels(self) -> int:
        return 1 if self.train.ndim == 3 else int(self.train.shape[3])

    def __len__(self) -> int:
        return int(self.train.shape[0])

    @functools.cached_property
    def content_hash(self) -> str:
        """sha256 (hex, 16 chars) of both splits (images and labels) and the subset.

        Cache keys are built from this, so any change to the data invalidates them.
        The test split is included because cached embeddings hold test rows too.
        """
        h = hashlib.sha256()
        h.update(repr((self.train.shape, str(self.train.dtype), self.subset,
                       self.test.shape, str(self.test.dtype))).encode())
        for a in (self.train, self.test):
            h.update(np.ascontiguousarray(a).data)
        for y in (self.train_labels, self.test_labels):
            h.update(np.ascontiguousarray(y, dtype=np.int64).data)
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        """Summary statistics for display: sizes, shape, class counts."""
        labels, counts = np.unique(self.train_labels, return_counts=True)
        return {
            "name": self.name, "train": len(self), "test": int(self.test.shape[0]),
            "image_shape": list(self.image_shape), "classes": len(self.class_names),
            "class_counts": {self.class_names[int(k)]: int(c) for k, c in zip(labels, counts)},
            "mean_intensity": float(self.train.mean()), "subset": self.subset,
            "source": self.source,
        }


def frozen_corpus(name: str, arrays: tuple[np.ndarray, ...], classes: tuple[str, ...], source: str) -> Corpus:
    """A whole corpus from a reader's (train, train labels, test, test labels), its arrays made read-only.

    Loaded corpora are shared by every caller through the registry's cache, so nobody may write into them.
    """
    x, y, xt, yt = arrays
    for a in (x, y, xt, yt):
        a.setflags(write=False)
    return Corpus(name, x, y, xt, yt, tuple(classes), None, source)


def data_roots(data_root: str | None) -> list[Path]:
    """The folders searched for corpus files: ``--data-root`` first, then ``$NPS_DATA_ROOT``."""
    roots = [Path(data_root)] if data_root else []
    env = os.environ.get("NPS_DATA_ROOT")
    if env:
        roots.append(Path(env))
    return roots


def stratified_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices (int64) of a class-stratified subset of size n of ``labels`` (N,) (deterministic)."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts / counts.sum() * n).astype(int)
    # Hand the rounding remainder to the largest classes so the total is exactly n.
    for i in np.argsort(-counts, kind="stable")[: n - quota.sum()]:
        quota[i] += 1
    picks = [rng.choice(np.flatnonzero(labels == c), size=q, replace=False)
             for c, q in zip(classes, quota) if q > 0]
    return np.sort(np.concatenate(picks))
