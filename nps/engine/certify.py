"""Certified appearance decisions: float32 scores, float64 answers.

The appearance rule keeps a candidate window when ``d <= thr(d_min)`` (:func:`nps.engine.selection.thresholds`).
The engine scores windows in float32 (banded matrix products, :mod:`nps.engine.ssd`), whose
rounding depends on the product's shape and blocking; the exact search (:mod:`nps.engine.search`)
decides in float64.  Near the threshold the two could disagree: on all 60,000 MNIST
images a few pixels did, so ``--search exact`` and ``--search brute`` wrote different
records.  This module makes every decision the float64 one, whichever path scored it.

**The definition.**  ``d(s) = sum_k w_k (t_k - s_k)^2 / (sum gm * 255^2)`` over the known
window dimensions k (in (ky, kx, c) order), pixels as integers 0..255 and
``w = gm`` in float64, computed by :func:`direct_distance` in a fixed order.

**The error bound.**  A float32 score ``d32`` of a sum with ``n = K (C+1)`` nonzero terms
(K known pixels, C channels plus the squares channel) obeys, in any summation order,
``|d32 - d| <= gamma * (sum |terms|) / G`` with ``gamma ~ n u`` (u = 2^-24).  The terms
are ``gm s^2``, ``-2 gm t s`` and ``gm t^2``; by Cauchy-Schwarz and the triangle
inequality their absolute sum is at most ``G (sqrt d + 2 tau)^2`` with
``tau^2 = sum gm t^2 / G``.  So (:func:`score_bound`)::

    |d32 - d| <= c (sqrt(d) + 2 tau)^2,   c = 2 (K (C+1) + 16) u

(the 16 covers the rounding of the inputs, of ``G`` and of the last additions; the
factor 2 is margin).  For a blank context (tau = 0) the bound is relative, so the
all-zero windows (44 % of MNIST's) are exact and never in doubt.

**The decision** (:func:`certify`).  The true minimum lies within the bound of the
float32 minimum, so the threshold lies in an interval; scores clearly below it are kept,
clearly above it dropped.  Only for a sample with a score inside that band is the exact
minimum recomputed (from the few windows near the float32 minimum) and each doubtful
score recomputed by :func:`direct_distance`.  The kept set is then exactly
``{d <= thr(min d)}`` for the float64 ``d``, whatever the float32 path did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from nps.config import GenerationConfig
from nps.constraints import active
from nps.engine.selection import thresholds

U32 = 2.0 ** -24
EXACT_BATCH = 1 << 16  # entries scored by the definition at a time (about 25 MB of float64 pixels at K = 49)


def direct_distance(s: torch.Tensor, t: torch.Tensor, w: torch.Tensor, denom: float) -> torch.Tensor:
    """The definition ``sum_k w_k (t_k - s_k)^2 / denom``, elementwise in a fixed order of k.

    Each term is ``w_k * (diff_k * diff_k)``, summed left to right (``np.add.accumulate``
    is sequential by definition), with only single, correctly rounded operations (no
    fused ones, whose vector and scalar code paths may round differently), so every
    element is the same IEEE computation whatever the number of rows.

    Args:
        s, t: (n,K) float64 pixel values (0..255) of n (window, context) pairs; w: (K,) float64.
    Returns:
        (n,) float64.
    """
    diff = t.numpy() - s.numpy()
    terms = w.numpy() * (diff * diff)
    if terms.shape[1] == 0:
        return torch.zeros(terms.shape[0], dtype=torch.float64)
    return torch.from_numpy(np.add.accumulate(terms, axis=1)[:, -1] / denom)


class ExactWeights:
    """The float64 weights of one step's definition, shared by the exact search and the certifier.

    Args:
        gm: (w,w) float64 Gaussian x known mask; channels: C; hp, wp: the padded image size.
    Attributes:
        dims: (K,) int64 known dimensions of the flattened (ky, kx, c) window.
        w: (K,) float64 weights; denom: ``sum gm * 255^2`` in one fixed order.
        offsets: (K,) int64 flat offset of each dimension from a window's corner in a
            padded (C,Hp,Wp) image.
    """

    def __init__(self, gm: np.ndarray, channels: int, hp: int, wp: int) -> None:
        window = gm.shape[0]
        weights = np.repeat(np.asarray(gm, np.float64).ravel(), channels)  # (D,) dims (ky, kx, c)
        self.dims = np.flatnonzero(weights > 0)
        self.w = torch.from_numpy(weights[self.dims])
        # The normaliser in one fixed order, in [0,1]-intensity units (pixels here are 0..255).
        self.denom = float(np.asarray(gm, np.float64).ravel().sum()) * 255.0 * 255.0
        ky, rest = np.divmod(self.dims, window * channels)
        kx, ch = np.divmod(rest, channels)
        self.offsets = (ch * hp + ky) * wp + kx

    def context(self, cpad: torch.Tensor, y: int, x: int, window: int) -> torch.Tensor:
        """(B,K) float64 context pixels (0..255) on :attr:`dims` from (B,C,Hp,Wp) float32 canvases.

        ``cpad`` holds pixel / 255 in float32, which rounds back to the integer exactly.
        """
        target = cpad[:, :, y:y + window, x:x + window].permute(0, 2, 3, 1).reshape(cpad.shape[0], -1)
        return target[:, torch.from_numpy(self.dims).to(target.device)].cpu().double().mul_(255.0).round_()


def error_scale(known_pixels: int, channels: int) -> float:
    """``c = 2 (K (C+1) + 16) u`` of :func:`score_bound` for K known pixels and C channels."""
    return 2.0 * (known_pixels * (channels + 1) + 16) * U32


def score_bound(d32: np.ndarray, tau: np.ndarray, c: float, channels: int) -> np.ndarray:
    """(B,) float64 bound on ``|d32 - d|`` for float32 scores near ``d32``.

    ``|d32 - d| <= c (sqrt(d) + 2 tau)^2`` with ``d <= d32 + 9 c C`` (the bound at the
    largest possible d, C channels, tau^2 <= C), so evaluating at ``max(d32, 0) + 9 c C``
    is safe.  Monotone in ``d32``.

    Args:
        d32: (B,) float64 values of float32 scores; tau: (B,) float64 ``sqrt(sum gm t^2 / G)``.
    """
    return c * (np.sqrt(np.maximum(d32, 0.0) + 9.0 * c * channels) + 2.0 * tau) ** 2


def _down32(v: np.ndarray) -> np.ndarray:
    """The largest float32 at or below each float64 value."""
    f = v.astype(np.float32)
    return np.where(f > v, np.nextafter(f, np.float32(-np.inf)), f)


def _up32(v: np.ndarray) -> np.ndarray:
    """The smallest float32 at or above each float64 value."""
    f = v.astype(np.float32)
    return np.where(f < v, np.nextafter(f, np.float32(np.inf)), f)


def _on(a: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(a)
    return t if device.type == "cpu" else t.to(device)


def _thresholds(m: np.ndarray, config: GenerationConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`nps.engine.selection.thresholds` (the one rule) on float64 numpy minima."""
    thr, fell = thresholds(torch.from_numpy(m), config)
    return thr.numpy(), fell


class ScoreView(Protocol):
    """A step's float32 scores in some layout, seen as (sample b, candidate j) entries."""

    def count_between(self, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        """(B,) int64 entries with ``lo[b] < d <= hi[b]`` (lo, hi (B,) float32)."""

    def entries(self, near: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(b, j) int64 and d (float32) of the entries of samples ``rows`` with
        ``d <= near[b]`` or ``lo[b] < d <= hi[b]``."""

    def locate(self, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(centre offset o, pool slot p) of flat entries j."""

    def apply(self, b: np.ndarray, j: np.ndarray, keep: np.ndarray) -> None:
        """Write the decided entries back so that ``d <= thr`` reproduces the decisions."""


def certify(view: ScoreView, d_min32: torch.Tensor, tau: torch.Tensor, c: float, channels: int,
            config: GenerationConfig,
            exact: Callable[[np.ndarray, np.ndarray], torch.Tensor]) -> tuple[torch.Tensor, np.ndarray | None,
                                                                             tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The float64 appearance decision of a step, from its float32 scores.

    Args:
        view: the step's scores (:class:`ScoreView`); +inf for excluded candidates.
        d_min32: (B,) float32 minimum score of each sample.
        tau: (B,) float64 ``sqrt(sum gm t^2 / G)`` of each sample's context.
        c: :func:`error_scale`; channels: C.
        exact: the float64 definition of the scores of (b, j) entries, (n,) float64.
    Returns:
        thr: (B,) float32, keep ``d32 <= thr`` except at the overrides;
        fell_back: as :func:`nps.engine.selection.thresholds` (None without ``max_ssd``);
        overrides: (b, j, keep) arrays: entries whose float32 score was too close to call,
            with their float64 decision.
    """
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool))
    if not active(config, "threshold"):
        thr, fell = thresholds(d_min32, config)
        return thr, fell, none
    device = d_min32.device
    m32 = d_min32.double().cpu().numpy()
    tau = tau.cpu().numpy()
    finite = np.isfinite(m32)
    m32 = np.where(finite, m32, 0.0)
    bm = score_bound(m32, tau, c, channels)
    B = len(m32)
    both, fb = _thresholds(np.concatenate([m32 - bm, m32 + bm]), config)  # the threshold's interval
    thr_lo, thr_hi = both[:B], both[B:]
    lo = _down32(thr_lo - score_bound(thr_lo, tau, c, channels))
    hi = _up32(thr_hi + 2.0 * score_bound(thr_hi, tau, c, channels))
    lo_t = _on(lo, device)
    unsure = view.count_between(lo_t, _on(hi, device)).cpu().numpy() > 0
    fell = None
    if fb is not None:
        unsure |= fb[:B] != fb[B:]
        fell = fb[:B].copy()
    rows = np.flatnonzero(unsure & finite)
    if not len(rows):
        return lo_t, fell, none
    # One gather: the windows near the float32 minimum (the true argmin is within two bounds
    # of it) and those in the band; each scored once by the definition.
    near = _up32(m32 + 3.0 * bm)
    b, j, d32 = view.entries(_on(near, device), lo_t, _on(hi, device), rows)
    # In batches: a whole-corpus step can hold millions of exact matches of an inked context
    # (true d = 0, all in doubt at tol = 1e-6), and each costs K float64 pixels and context values.
    values = np.concatenate([np.zeros(0)] + [exact(b[s:s + EXACT_BATCH], j[s:s + EXACT_BATCH]).cpu().numpy()
                                             for s in range(0, len(b), EXACT_BATCH)])
    m_exact = m32.copy()
    m_exact[rows] = np.inf
    np.minimum.at(m_exact, b, values)  # every candidate of the minimum is in the gather
    thr_e, fb_e = _thresholds(m_exact, config)
    lo_e = _down32(thr_e - score_bound(thr_e, tau, c, channels))
    # Above lo_e the exact value decides; the rest of the gather is kept by the threshold.
    doubt = d32 > lo_e[b]
    keep = values[doubt] <= thr_e[b[doubt]]
    thr = lo.copy()
    thr[rows] = lo_e[rows]
    if fell is not None:
        fell[rows] = fb_e[rows]
    return _on(thr, device), fell, (b[doubt], j[doubt], keep)


def _selected(d: torch.Tensor, near: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """``d <= near`` or ``lo < d <= hi`` (broadcast)."""
    return (d <= near) | ((d > lo) & (d <= hi))


class DenseView:
    """Per-sample scores (B,O,P) float32 as (b, j = o * P + p) entries."""

    def __init__(self, d: torch.Tensor) -> None:
        self.d, self.slots = d, d.shape[2]
        self.flat = d.reshape(d.shape[0], -1)

    def count_between(self, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        return ((self.flat > lo[:, None]) & (self.flat <= hi[:, None])).sum(1)

    def entries(self, near: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = torch.from_numpy(rows).to(self.flat.device)
        sub = self.flat[r]
        r_i, j = torch.nonzero(_selected(sub, near[r, None], lo[r, None], hi[r, None]), as_tuple=True)
        return rows[r_i.cpu().numpy()], j.cpu().numpy().astype(np.int64), sub[r_i, j].cpu().numpy()

    def locate(self, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(offset o, pool slot p) of flat entries j."""
        return np.divmod(j, self.slots)

    def apply(self, b: np.ndarray, j: np.ndarray, keep: np.ndarray) -> None:
        """Write decided entries so that ``d <= thr`` reproduces them (-inf kept, +inf dropped)."""
        if len(b):
            value = torch.from_numpy(np.where(keep, -np.inf, np.inf)).to(self.flat)
            self.flat[torch.from_numpy(b), torch.from_numpy(j)] = value


class ChunkView:
    """Scores of a pool shared by the batch, as (ny,n_c,nx,B) float32 chunks (see ``draw_chunked``).

    Entry j = o * N + p for centre offset o = oy * nx + ox and pool slot p (N slots in all).
    """

    def __init__(self, chunks: list[torch.Tensor]) -> None:
        self.chunks = chunks
        self.ny, self.nx = chunks[0].shape[0], chunks[0].shape[2]
        self.starts = np.cumsum([0] + [c.shape[1] for c in chunks])
        self.slots = int(self.starts[-1])

    def count_between(self, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        return sum(((c > lo) & (c <= hi)).sum((0, 1, 2)) for c in self.chunks)

    def entries(self, near: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = torch.from_numpy(rows).to(self.chunks[0].device)
        bs, js, ds = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
        for start, c in zip(self.starts, self.chunks):
            sub = c[..., r]  # (ny,n_c,nx,R)
            oy, i, ox, r_i = torch.nonzero(_selected(sub, near[r], lo[r], hi[r]), as_tuple=True)
            if len(oy):
                bs.append(rows[r_i.cpu().numpy()])
                js.append(((oy * self.nx + ox) * self.slots + start + i).cpu().numpy().astype(np.int64))
                ds.append(sub[oy, i, ox, r_i].cpu().numpy())
        return np.concatenate(bs), np.concatenate(js), np.concatenate(ds)

    def locate(self, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.divmod(j, self.slots)

    def apply(self, b: np.ndarray, j: np.ndarray, keep: np.ndarray) -> None:
        o, p = self.locate(j)
        oy, ox = np.divmod(o, self.nx)
        chunk = np.searchsorted(self.starts, p, side="right") - 1
        for k in np.unique(chunk):
            sel = chunk == k
            value = torch.from_numpy(np.where(keep[sel], -np.inf, np.inf)).to(self.chunks[k])
            self.chunks[k][torch.from_numpy(oy[sel]), torch.from_numpy(p[sel] - self.starts[k]),
                           torch.from_numpy(ox[sel]), torch.from_numpy(b[sel])] = value


def window_pixels(padded: torch.Tensor | np.ndarray, weights: ExactWeights, images: np.ndarray, cy: np.ndarray,
                  cx: np.ndarray) -> torch.Tensor:
    """(n,K) float64 pixels (0..255) of the windows with centres (cy, cx) of ``images``.

    Args:
        padded: (N,C,Hp,Wp) uint8 padded corpus: a numpy array, or a tensor (or a view
            with row indexing, e.g. a stored corpus), of which only the needed rows are read.
        images, cy, cx: (n,) int64 image ids and centres (image coordinates = the padded
            window's corner).
    """
    if isinstance(padded, np.ndarray):
        _, C, hp, wp = padded.shape
        rows, index = padded, images.astype(np.int64)
    else:
        uniq, inv = np.unique(images, return_inverse=True)
        rows = padded[torch.from_numpy(uniq)].cpu().numpy()  # (U,C,Hp,Wp)
        _, C, hp, wp = rows.shape
        index = inv.astype(np.int64)
    base = (index * C * hp + cy) * wp + cx
    return torch.from_numpy(rows.reshape(-1)[base[:, None] + weights.offsets].astype(np.float64))
