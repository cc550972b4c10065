"""The sampler's view of a stored corpus: rows gathered on demand, never the whole corpus padded.

:func:`nps.engine.sampler_setup.padded_corpus` holds the train split twice in memory (as is, and
edge-padded by the window's half width), which is right for the corpora of tens of
thousands that the app uses and wrong for a memory-mapped store of millions.  With the
representation constraint each batch reads only its semantic pools (k images per
sample), so :func:`sampler_arrays` gives the sampler two stand-ins that index like those
tensors and gather (and pad) only the rows asked for from ``corpus.train``.  They hold
the same uint8 values, so records are bit-identical (``tests/test_store.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from nps.corpora import Corpus


class TrainView:
    """Stands for the (N,H,W,C) uint8 train tensor; reads rows of a (memory-mapped) array on demand."""

    def __init__(self, train: np.ndarray) -> None:
        self.train = train
        self.shape = (*train.shape[:3], 1 if train.ndim == 3 else int(train.shape[3]))

    def __getitem__(self, key) -> torch.Tensor:  # a tensor, or (ids, ys, xs) tensors
        parts = key if isinstance(key, tuple) else (key,)
        idx = tuple(np.asarray(k) if isinstance(k, torch.Tensor) else k for k in parts)
        if len(idx) == 1:  # whole images: sort the reads (a memmap likes ascending rows), then restore order
            ids = idx[0].reshape(-1)
            uniq, inverse = np.unique(ids, return_inverse=True)
            rows = np.asarray(self.train[uniq])[inverse].reshape(*idx[0].shape, *self.train.shape[1:])
        else:
            rows = np.asarray(self.train[idx])
        rows = np.ascontiguousarray(rows)
        if self.train.ndim == 3:
            rows = rows[..., None]
        return torch.from_numpy(rows)


class PaddedView:
    """Stands for the edge-padded (N,C,H+2h,W+2h) uint8 tensor; pads only the rows asked for."""

    def __init__(self, train: TrainView, half: int) -> None:
        self.train = train
        self.half = half
        n, h, w, c = train.shape
        self.shape = (n, c, h + 2 * half, w + 2 * half)

    def to(self, device: torch.device) -> PaddedView:
        if torch.device(device).type != "cpu":
            from nps.errors import NPSError
            raise NPSError("a stored corpus with per-sample pools is gathered row by row on the CPU; "
                           "use --device cpu.")
        return self

    def __getitem__(self, key) -> torch.Tensor:  # ids tensor, or (rows, :, ys, xs)
        rows, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(rows, slice):
            rows = torch.arange(self.shape[0])[rows]
        images = self.train[rows]  # (...,H,W,C)
        h = self.half
        lead = images.dim() - 3
        padded = np.pad(images.numpy(), [(0, 0)] * lead + [(h, h), (h, h), (0, 0)], mode="edge")
        out = torch.from_numpy(np.ascontiguousarray(np.moveaxis(padded, -1, lead)))  # (...,C,Hp,Wp)
        return out[(slice(None),) * lead + tuple(rest)] if rest else out


def gathers_on_demand(corpus: Corpus, per_sample_pools: bool) -> bool:
    """Whether the sampler should read ``corpus`` through the views: a memory-mapped store with per-sample pools.

    Without per-sample pools (ssd or loc alone, label pools) every step scans the whole
    corpus, which is best done from one padded copy; a stored corpus then is loaded whole.
    """
    return per_sample_pools and isinstance(corpus.train, np.memmap)


def sampler_arrays(corpus: Corpus, half: int) -> tuple[TrainView, PaddedView]:
    """The (train, padded) pair of :func:`nps.engine.sampler_setup.padded_corpus`, gathered on demand."""
    train = TrainView(corpus.train)
    return train, PaddedView(train, half)
