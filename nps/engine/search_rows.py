"""A batch's rows split between searches, and their draws joined back in batch order.

:meth:`nps.engine.search.ExactSearch.choose` searches a batch in parts of a few samples (its draws depend on
each sample's own row only) and serves all-zero contexts from :mod:`nps.engine.search_blank`; both
join their parts here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from nps.engine.search import StepQuery


def choose_in_parts(choose, size: int, q: StepQuery, t: torch.Tensor, refs: np.ndarray, u: torch.Tensor,
                    hints: np.ndarray | None = None):
    """``choose`` (a search's :meth:`ExactSearch.choose`) on parts of ``size`` samples, joined.

    The exact search's draws depend on each sample's own row only, so its parts give the same
    arrays as one call; the approximate search probes per part, so parts of one make each sample's
    draw independent of the rest of its batch.  ``hints`` ((B,J) or None) go with their rows.
    """
    B = t.shape[0]
    parts = [choose(q, t[s:s + size], refs[s:s + size], u[s:s + size], None if hints is None else hints[s:s + size])
             for s in range(0, B, size)]
    sources = tuple(np.concatenate([p[0][i] for p in parts]) for i in range(3))
    fell = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
    return sources, np.concatenate([p[1] for p in parts]), fell


def join_rows(rows: np.ndarray, these, others):
    """The (sources, counts, fell-back) of a batch from those of its ``rows`` (B,) bool and of the rest
    (None: no other rows), in batch order."""
    if others is None:
        return these
    def join(a, b):
        out = np.empty(len(rows), a.dtype)
        out[rows], out[~rows] = a, b
        return out
    sources = tuple(join(a, b) for a, b in zip(these[0], others[0]))
    fell = None if these[2] is None else join(these[2], others[2])
    return sources, join(these[1], others[1]), fell
