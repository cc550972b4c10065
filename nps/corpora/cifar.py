"""``cifar10``: the ``cifar-10-batches-py`` pickles, read with a restricted unpickler (nothing in them runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nps.corpora.base import Corpus, data_roots, frozen_corpus
from nps.corpora.idx import PICKLE_DATA_ERRORS
from nps.corpora.safe_pickle import load_restricted
from nps.errors import DataMissingError, NPSError

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck")
#: An official batch is 31 MB; never read gigabytes of pickle.
MAX_CIFAR_BATCH_BYTES = 256 * 2**20
HOW_TO_GET_CIFAR = ("download cifar-10-python.tar.gz yourself, unpack it, and pass "
                    "--data-root to the folder holding cifar-10-batches-py.")


def locate_cifar10(data_root: str | None) -> Path | None:
    """The first data root (or its ``cifar-10-batches-py``) holding ``data_batch_1`` and ``test_batch``."""
    for root in data_roots(data_root):
        for folder in (root / "cifar-10-batches-py", root):
            if (folder / "data_batch_1").is_file() and (folder / "test_batch").is_file():
                return folder
    return None


def load_cifar10(data_root: str | None) -> Corpus:
    folder = locate_cifar10(data_root)
    if folder is None:
        raise DataMissingError(f"corpus 'cifar10' is not on this machine; {HOW_TO_GET_CIFAR}")
    return frozen_corpus("cifar10", read_cifar_batches(folder), CIFAR_CLASSES, str(folder))


def probe_cifar10(data_root: str | None) -> str | None:
    folder = locate_cifar10(data_root)
    if folder is None:
        return None
    n_batches = sum((folder / f"data_batch_{i}").is_file() for i in range(1, 6))
    return f"{n_batches} train batches + test batch, 32x32x3, from {folder}"


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> ((n,32,32,3) uint8, (n,) int64 labels in 0..9), or one NPSError line.

    The file is unpickled by :func:`nps.corpora.safe_pickle.load_restricted`: it may hold
    dicts, lists, bytes, str, ints and numpy arrays, and nothing in it is ever called.
    """
    try:
        size = path.stat().st_size
        if size > MAX_CIFAR_BATCH_BYTES:
            raise ValueError(f"{size:,} bytes, more than {MAX_CIFAR_BATCH_BYTES:,}")
        with open(path, "rb") as f:
            d = load_restricted(f, encoding="bytes")
        if not isinstance(d, dict):
            raise TypeError(f"the pickle holds a {type(d).__name__}, not a dict")
        data = d.get(b"data", d.get("data"))
        labels = d.get(b"labels", d.get("labels"))
        if data is None or labels is None:
            raise KeyError("data/labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                or data.shape[1] != 3 * 32 * 32:
            shape = getattr(data, "shape", type(data).__name__)
            raise ValueError(f"data is {getattr(data, 'dtype', '')} {shape}, expected uint8 (n, 3072)")
        if not isinstance(labels, list | np.ndarray) or any(
                not isinstance(v, int | np.integer) or isinstance(v, bool) for v in labels):
            raise ValueError("labels must be a list of integers")
        labels = np.asarray(labels, np.int64).reshape(-1)
        if labels.shape != (len(data),):
            raise ValueError(f"{len(labels)} labels for {len(data)} images")
        if labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR_CLASSES)):
            raise ValueError(f"labels range {labels.min()}..{labels.max()}, expected 0..9")
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(images), labels
    except PICKLE_DATA_ERRORS as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NPSError(f"{path} is not a CIFAR-10 batch ({first}); point --data-root at "
                       "an unmodified cifar-10-batches-py folder.") from None


def read_cifar_batches(folder: Path) -> tuple[np.ndarray, ...]:
    """Read the standard ``cifar-10-batches-py`` pickles, safely.

    Each batch is a pickled dict with ``b"data"`` (n, 3072) uint8 rows (R, G, B planes
    of 32x32) and ``b"labels"`` (n,) ints.  The files are untrusted: they are read
    with a restricted unpickler that admits only that structure (see
    :mod:`nps.corpora.safe_pickle`), so a crafted batch is refused and nothing in it runs.

    Returns:
        train (N,32,32,3) uint8, train labels (N,) int64, test (M,32,32,3), test labels (M,).
    Raises:
        NPSError: one line naming the first file that is not a CIFAR-10 batch.
    """
    batches = [folder / f"data_batch_{i}" for i in range(1, 6) if (folder / f"data_batch_{i}").is_file()]
    if not batches or not (folder / "test_batch").is_file():
        raise DataMissingError(f"'{folder}' lacks data_batch_1..5 or test_batch; {HOW_TO_GET_CIFAR}")
    parts = [_read_cifar_batch(b) for b in batches]
    xt, yt = _read_cifar_batch(folder / "test_batch")
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), xt, yt)
