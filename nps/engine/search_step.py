"""What one step of the pruned search holds: its candidate windows and their screen.

The types :class:`nps.engine.search.ExactSearch` passes between its stages (pruning, screen,
certification, draw), split from :mod:`nps.engine.search` so that each file has one job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Candidates:
    """The windows one step's search considers, as unique ids (:meth:`nps.engine.search.ExactSearch._pruned`).

    Every window outside both sets is provably above every sample's threshold.  The
    ``accepted`` windows are decided without being scored: for each sample, each one is
    either provably within its threshold (``kept``) or provably above it.

    Attributes:
        scored: (n,) int64 ids screened and certified for every sample.
        accepted: (m,) int64 ids kept unscored; kept: (m,B) bool; zero: (m,B) bool where the
            window provably scores exactly 0 (the minimum, when it may be drawn).
    """

    scored: np.ndarray
    accepted: np.ndarray
    kept: torch.Tensor
    zero: torch.Tensor

    @classmethod
    def scoring(cls, ids: np.ndarray, batch: int) -> Candidates:
        """Every window of ``ids`` scored, none accepted."""
        none = torch.zeros((0, batch), dtype=torch.bool)
        return cls(ids, np.empty(0, np.int64), none, none)


@dataclass
class ScoredStep:
    """A step's screen (:meth:`nps.engine.search.ExactSearch._scored`).

    Attributes:
        cand: the :class:`Candidates`; d, err: (n,B) float64 scores of ``cand.scored`` and their
        error bounds; mult: (n,B) int32 drawable occurrences; pixels: (n,K) float64 or None
        (screened in chunks); d_min: (B,) float64 the certified minimum; accepted_mult: (m,B)
        int32 drawable occurrences of ``cand.accepted``.
    """

    cand: Candidates
    d: torch.Tensor
    err: torch.Tensor
    mult: torch.Tensor
    pixels: torch.Tensor | None
    d_min: torch.Tensor
    accepted_mult: torch.Tensor
