"""Box bounds of the window index and the small gathers of the exact search (:mod:`nps.engine.search`).

A box is the per-dimension [lo, hi] of a set of windows (a leaf or a group of the
:class:`nps.engine.search_index.WindowIndex`).  For a target context ``t`` and weights ``w`` on the known
dimensions, every window ``s`` of the box obeys::

    sum_k w_k gap_k^2  <=  sum_k w_k (t_k - s_k)^2  <=  sum_k w_k far_k^2,
    gap_k = max(lo_k - t_k, 0) + max(t_k - hi_k, 0),   far_k = max(t_k - lo_k, hi_k - t_k),

the lower bound prunes, the upper one keeps whole boxes without scoring them.
"""

from __future__ import annotations

import numpy as np
import torch

# Boxes bounded at a time (:func:`bounds_of`): SSD alone over 60k MNIST bounds up to 4.5M leaves in a
# step, whose rows and float32 temporaries took 1.9 GB at once.  2^14 boxes (about 20 MB of temporaries
# at K = 48, B = 4) also stay in cache: 60k MNIST, batch 4, SSD alone's first 16 steps 2.8x faster than
# unchunked and 1.2x faster than 2^17; SSD + locality 1.1x (measured 2026-12-02, README).
BOUND_CHUNK = 1 << 14


def box_bounds(lo: np.ndarray, hi: np.ndarray, t: torch.Tensor, w: torch.Tensor, upper: bool = True,
               lower: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(n,B) float32 lower and upper bounds of the weighted SSD numerator of every window in each box.

    A window s in the box [lo, hi] has ``gap_k <= |t_k - s_k| <= far_k`` with
    ``gap_k = max(lo_k - t_k, 0) + max(t_k - hi_k, 0)`` and ``far_k = max(t_k - lo_k, hi_k - t_k)``,
    so ``sum w gap^2 <= sum w (t - s)^2 <= sum w far^2``.  Pixels and gaps are small integers
    (exact in float32); only the weights and the sum round (relative error far below
    :data:`nps.engine.search.BOUND_REL`, all terms being non-negative).

    Args:
        lo, hi: (n,K) uint8 boxes on the known dimensions; t: (B,K) targets (0..255), uint8 (from
        :func:`as_bytes`: the byte path, one sample at a time where B <= K) or float32;
        w: (K,) float32 weights; upper, lower: which bounds to compute (the other is None).
    """
    B, K = t.shape
    if t.dtype == torch.uint8 and B <= K:
        return _box_bounds_u8(torch.from_numpy(lo), torch.from_numpy(hi), t, w, upper, lower)
    return _box_bounds_float(lo, hi, t.float(), w, upper, lower)


def as_bytes(t: torch.Tensor) -> torch.Tensor:
    """(B,K) targets for :func:`box_bounds`: uint8 where every one is an integer in 0..255 (the sampler's
    always are: pixels of the corpus), else float32.  (A value outside 0..255, a fraction or NaN does
    not convert back to itself.)"""
    t8 = t.to(torch.uint8)
    return t8 if torch.equal(t8.to(t.dtype), t) else t.float()


def _box_bounds_u8(lo: torch.Tensor, hi: torch.Tensor, t: torch.Tensor, w: torch.Tensor, upper: bool,
                   lower: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """:func:`box_bounds` of byte targets (B,K) uint8, one sample at a time (B <= K).

    The gaps are formed in uint8 without wrapping, ``max(lo, t) - t`` and ``t - min(hi, t)`` (at most
    one of them is not zero, so ``|`` adds them), and ``far = max(max(hi, t) - t, t - min(lo, t))``:
    the same integers as the float formulas, so the same float32 bounds, from a quarter of the bytes
    (60k MNIST, SSD + locality: 10,900 leaves, K = 28, batch 4 bound in 2.3 ms against 4.2 ms).
    """
    n, B = lo.shape[0], t.shape[0]
    low = torch.empty((B, n), dtype=torch.float32) if lower else None
    high = torch.empty((B, n), dtype=torch.float32) if upper else None

    def add(out: torch.Tensor, x: torch.Tensor) -> None:  # out = sum_k w_k x_k^2 of (n,K) uint8 x
        f = x.float()
        torch.mv(f.mul_(f), w, out=out)

    for j in range(B):
        tj = t[j]
        if lower:
            gap = torch.maximum(lo, tj).sub_(tj)
            gap |= tj - torch.minimum(hi, tj)
            add(low[j], gap)
        if upper:
            add(high[j], torch.maximum(torch.maximum(hi, tj).sub_(tj), tj - torch.minimum(lo, tj)))
    return (low.T if lower else None), (high.T if upper else None)


def _box_bounds_float(lo: np.ndarray, hi: np.ndarray, t: torch.Tensor, w: torch.Tensor, upper: bool,
                      lower: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """:func:`box_bounds` in float32, for any targets and batch."""
    lo, hi = torch.from_numpy(lo).float(), torch.from_numpy(hi).float()
    n, (B, K) = lo.shape[0], t.shape
    per_dimension = B > K  # one (n,B) pass per dimension; else one (n,K) pass per sample (no (n,B,K)
    # intermediate: 4x faster at n = 8,000, B = 4)
    shape = (n, B) if per_dimension else (B, n)
    low = torch.zeros(shape, dtype=torch.float32) if lower else None
    high = torch.zeros(shape, dtype=torch.float32) if upper else None
    def add(out: torch.Tensor, x: torch.Tensor, j: int) -> None:  # out += sum_k w_k x_k^2, into row/column j
        if per_dimension:
            out.addcmul_(x, x, value=float(w[j]))
        else:
            torch.mv(x.mul_(x), w, out=out[j])

    for j in range(K if per_dimension else B):
        if per_dimension:
            below, above = lo[:, j:j + 1] - t[:, j], t[:, j] - hi[:, j:j + 1]  # (n,B)
        else:
            below, above = lo - t[j], t[j] - hi  # (n,K) > 0 where the box lies above (below) the target
        if upper:
            add(high, torch.minimum(below, above), j)  # = -far
        if lower:
            add(low, below.clamp_(min=0).add_(above.clamp_(min=0)), j)  # = gap (in place: after far)
    if per_dimension:
        return low, high
    return (low.T if lower else None), (high.T if upper else None)


def bounds_of(box_lo: np.ndarray, box_hi: np.ndarray, ids: np.ndarray, dims: np.ndarray, t: torch.Tensor,
              w: torch.Tensor, upper: bool = False) -> torch.Tensor:
    """(n,B) float32 lower (``upper``: upper) bounds of the weighted SSD numerator of boxes ``ids`` (n,).

    The boxes' rows ``box_lo[ids][:, dims]`` and ``box_hi[...]`` ((L,D) uint8) are read and bounded
    :data:`BOUND_CHUNK` at a time (:func:`box_bounds`; each box's bound is its own, so the chunks only
    cap the memory).  t: (B,K) targets as :func:`box_bounds` takes them; w: (K,) float32 weights.
    """
    parts = []
    for a in range(0, len(ids), BOUND_CHUNK):
        part = ids[a:a + BOUND_CHUNK]
        low, high = box_bounds(rows(box_lo, part, dims), rows(box_hi, part, dims), t, w, upper=upper,
                               lower=not upper)
        parts.append(high if upper else low)
    if not parts:
        return torch.zeros((0, t.shape[0]), dtype=torch.float32)
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def rows(boxes: np.ndarray, ids: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """(n,K) ``boxes[ids][:, dims]`` for (L,D) uint8 ``boxes`` (``np.take`` of whole rows is several
    times faster than indexing rows, then columns)."""
    return np.take(boxes, ids, axis=0)[:, dims]


def ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(starts[i], ends[i])`` (int64)."""
    sizes = ends - starts
    return np.repeat(starts - np.cumsum(sizes) + sizes, sizes) + np.arange(sizes.sum())
