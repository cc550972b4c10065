"""The appearance threshold and the draw: which candidate window each pixel copies.

Candidates are ordered canonically by (centre offset o, pool slot p).  With the
adaptive rule a sample keeps every candidate with ``d <= (1 + eps) * d_min + tol``
(:func:`thresholds`, which also keeps the minimum whatever eps, tol and rounding do);
an optional absolute ceiling (Efros & Leung's delta) lowers that threshold to
``max_ssd`` wherever some candidate passes it.  The sample's uniform ``u`` then
picks the ``floor(u * count)``-th kept candidate.

Two layouts of the distances are served, with identical results:

* (B,O,P) for per-sample pools (small P): one cumsum and a searchsorted;
* a list of (ny,n,nx,B) chunks for a pool shared by the batch (P up to the whole
  corpus): counts per chunk and offset, so the distances are never transposed or
  scanned more than twice (this path is memory-bound).
"""

from __future__ import annotations

import numpy as np
import torch

from nps.config import GenerationConfig

# Stands in for "no appearance threshold": excluded slots hold +inf, which must still fail.
NO_LIMIT = float(torch.finfo(torch.float32).max)


def thresholds(d_min: torch.Tensor, config: GenerationConfig) -> tuple[torch.Tensor, np.ndarray | None]:
    """Per-sample thresholds from the per-sample minimum distance: the one threshold rule.

    The engine and the funnel (:mod:`nps.lab.funnel`) both call this, so the pool a pixel
    was drawn from and the pool the funnel recomputes are the same set by construction.
    The rule is each enabled "threshold" constraint's (:meth:`nps.constraints.Constraint.threshold`;
    appearance's, :mod:`nps.constraints.appearance`, scales ``max(d_min, 0)`` by ``1 + eps``, adds
    ``tol`` and lowers it to ``max_ssd`` where some window passes it); several combine by their
    minimum, so a candidate must pass every one.  Without one nothing is cut (:data:`NO_LIMIT`).

    Args:
        d_min: (B,) float32.
    Returns:
        (B,) float32 thresholds (keep ``d <= threshold``), and (B,) bool rows where a
        constraint fell back to a relaxed rule (None when none can).
    """
    from nps.constraints import active
    rules = active(config, "threshold")
    if not rules:
        return torch.full_like(d_min, NO_LIMIT), None
    thr, fell_back = rules[0].threshold(d_min, config)
    for rule in rules[1:]:
        more, fell = rule.threshold(d_min, config)
        thr = torch.minimum(thr, more)
        fell_back = fell if fell_back is None else (fell_back if fell is None else fell_back | fell)
    return thr, fell_back


def _picks(u: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """(B,) int64 rank j+1 of the drawn candidate among the kept ones (1-based)."""
    return (u * count).floor_().to(torch.int64).add_(1)


def draw(d: torch.Tensor, thr: torch.Tensor, u: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw from (B,O,P) distances.

    Args:
        d: (B,O,P) float32, +inf for excluded slots.
        thr: (B,) float32 from :func:`thresholds`.
        u: (B,) float64 uniforms.
    Returns:
        offset (B,) int64, slot (B,) int64, count (B,) int64 kept candidates.
    """
    B, _, P = d.shape
    keep = d.reshape(B, -1) <= thr[:, None]
    # cumsum counts kept candidates; the first position where it reaches j+1 is the j-th.
    seen = keep.cumsum(1, dtype=torch.int32)
    count = seen[:, -1]
    pick = torch.searchsorted(seen, _picks(u, count).to(torch.int32)[:, None]).squeeze(1).cpu().numpy()
    offset, slot = np.divmod(pick, P)
    return offset, slot, count.cpu().numpy().astype(np.int64)


def draw_chunked(chunks: list[torch.Tensor], thr: torch.Tensor,
                 u: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As :func:`draw` for distances held as pool-major chunks.

    Args:
        chunks: (ny,n_c,nx,B) float32 tensors (centre offset o = oy*nx + ox); chunk c holds
            the pool slots after those of chunks < c.
    Returns:
        offset, slot, count as in :func:`draw`.
    """
    B = thr.shape[0]
    ny, nx = chunks[0].shape[0], chunks[0].shape[2]
    per_chunk = torch.stack([(c <= thr).sum(1, dtype=torch.int64).permute(2, 0, 1).reshape(B, ny * nx)
                             for c in chunks])  # (C,B,O) kept counts
    per_offset = per_chunk.sum(0)  # (B,O)
    count = per_offset.sum(1)
    j = _picks(u, count)
    # The offset holding the j-th kept candidate, then the rank within that offset.
    upto = per_offset.cumsum(1)
    offset = torch.searchsorted(upto, j[:, None]).squeeze(1)
    j = j - (upto.gather(1, offset[:, None]) - per_offset.gather(1, offset[:, None])).squeeze(1)
    rows = torch.arange(B, device=thr.device)
    # Then the chunk, and the rank within that chunk.
    in_chunk = per_chunk[:, rows, offset]  # (C,B)
    upto = in_chunk.cumsum(0)
    chunk = (upto < j[None, :]).sum(0)
    j = j - (upto[chunk, rows] - in_chunk[chunk, rows])
    starts = np.cumsum([0] + [c.shape[1] for c in chunks])
    slot = np.empty(B, np.int64)
    chunk_np, offset_np, j_np = chunk.cpu().numpy(), offset.cpu().numpy(), j.cpu().numpy()
    oy, ox = np.divmod(offset_np, nx)
    for c in np.unique(chunk_np):
        bs = np.flatnonzero(chunk_np == c)
        column = chunks[c][oy[bs], :, ox[bs], bs] <= thr[bs][:, None]  # (|bs|,n_c)
        seen = column.cumsum(1, dtype=torch.int64)
        rank = torch.from_numpy(j_np[bs]).to(seen.device)[:, None]
        slot[bs] = starts[c] + torch.searchsorted(seen, rank).squeeze(1).cpu().numpy()
    return offset_np.astype(np.int64), slot, count.cpu().numpy().astype(np.int64)
