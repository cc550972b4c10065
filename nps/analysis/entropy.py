"""Sliding-window entropy of provenance maps, and the pool-size (uncertainty) map.

The paper's "part-whole generalisation" measurement: over every w x w window
(stride 1) of the *class map* (``record.source_label``) and of the *image-ID map*
(``record.source_index``), take the Shannon entropy (bits) of the values in the
window.  Low class entropy with high image-ID entropy means coherent parts are
composed from many different training images of the same class.

Protocol (the paper does not state window or log base): window 5, stride 1, base 2,
only windows that fit entirely inside the canvas.  Pixels with ``source_index < 0``
(given pixels of a completion) are left out of their windows' counts; a window with
no valid pixel is NaN and ignored.  A sample's score is the mean over its windows;
a configuration reports mean +- std over samples.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nps.errors import NPSError

DEFAULT_WINDOW = 5
# Samples per chunk: bounds the (chunk*windows, w*w, w*w) equality tensor to ~30 MB.
_CHUNK = 32


def window_entropy(maps: np.ndarray, window: int = DEFAULT_WINDOW, valid: np.ndarray | None = None) -> np.ndarray:
    """Shannon entropy (bits) of the values in every w x w window.

    Vectorised: for the K = w*w values of a window, each value's count c_j is the
    row sum of the K x K equality matrix, and H = (1/n) sum_j log2(n / c_j) over the
    n valid pixels j (a value seen c times contributes c * log2(n/c), i.e. n * p log2 1/p).

    Args:
        maps: (N,H,W) integer maps (labels or source ids).
        window: odd or even window side w, 1 <= w <= min(H,W).
        valid: (N,H,W) bool, pixels to count (default: all).
    Returns:
        (N, H-w+1, W-w+1) float64; entry [n,i,j] is the window with top-left (i,j).
        NaN where a window holds no valid pixel.
    """
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise NPSError(f"entropy maps must be (N,H,W), got shape {maps.shape}.")
    n, h, w = maps.shape
    if not 1 <= window <= min(h, w):
        raise NPSError(f"entropy window {window} must be between 1 and {min(h, w)} for {h}x{w} maps.")
    valid = np.ones(maps.shape, bool) if valid is None else np.asarray(valid, bool)
    out = np.empty((n, h - window + 1, w - window + 1))
    for s in range(0, n, _CHUNK):
        win = sliding_window_view(maps[s:s + _CHUNK], (window, window), axis=(1, 2))
        ok = sliding_window_view(valid[s:s + _CHUNK], (window, window), axis=(1, 2))
        shape = win.shape[:3]
        v = win.reshape(-1, window * window)
        m = ok.reshape(-1, window * window)
        eq = (v[:, :, None] == v[:, None, :]) & m[:, None, :]  # (M,K,K): j-th value equals k-th valid one
        counts = eq.sum(2)  # c_j, counted among valid pixels
        k = m.sum(1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            # (1/n) sum_j log2(n / c_j): exact for equal splits (1 bit is 1.0, not 1 - 1 ulp).
            ent = np.where(m, np.log2(k[:, None] / np.maximum(counts, 1)), 0.0).sum(1) / k
        ent[k == 0] = np.nan
        # Tiny negative round-off (constant windows) to exact zero.
        out[s:s + _CHUNK] = np.maximum(ent, 0.0).reshape(shape)
    return out


def entropy_map(maps: np.ndarray, window: int = DEFAULT_WINDOW, valid: np.ndarray | None = None) -> np.ndarray:
    """Window entropy placed at each window's centre pixel.

    Returns:
        (N,H,W) float64, NaN on the border where no window is centred (and where
        a window has no valid pixel).  For an even window the centre is the pixel
        below-right of the middle.
    """
    ent = window_entropy(maps, window, valid)
    n, h, w = np.asarray(maps).shape
    out = np.full((n, h, w), np.nan)
    r = window // 2
    out[:, r:r + ent.shape[1], r:r + ent.shape[2]] = ent
    return out


@dataclass(frozen=True)
class EntropySummary:
    """Per-sample mean window entropies and their summary.

    Attributes:
        per_sample: (N,) float64 mean over each sample's windows (bits).
        mean, std: over samples.
        window: the window side used.
    """

    per_sample: np.ndarray
    mean: float
    std: float
    window: int

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "window": self.window, "base": 2,
                "per_sample": [round(float(v), 6) for v in self.per_sample]}


def summarise_entropy(maps: np.ndarray, window: int = DEFAULT_WINDOW,
                      valid: np.ndarray | None = None) -> EntropySummary:
    """Mean +- std over samples of each sample's mean window entropy (bits)."""
    ent = window_entropy(maps, window, valid)
    with warnings.catch_warnings():  # a sample whose windows are all NaN (no valid pixel)
        warnings.simplefilter("ignore", RuntimeWarning)
        per = np.nanmean(ent.reshape(len(ent), -1), axis=1) if ent.size else np.zeros(0)
    per = np.where(np.isnan(per), 0.0, per)
    return EntropySummary(per, float(per.mean()) if len(per) else float("nan"),
                          float(per.std()) if len(per) else float("nan"), window)


def record_entropies(record, window: int = DEFAULT_WINDOW) -> dict[str, EntropySummary]:  # noqa: ANN001
    """Class-map and image-ID-map entropy summaries of a :class:`~nps.record.ProvenanceRecord`."""
    valid = record.source_index >= 0
    return {"class": summarise_entropy(record.source_label, window, valid),
            "image_id": summarise_entropy(record.source_index, window, valid)}


def seed_mask(record) -> np.ndarray:  # noqa: ANN001
    """(H,W) bool: the seed pixels (shell 0 of the fill order)."""
    mask = np.zeros(record.canvas_shape, bool)
    ys, xs = np.asarray(record.order)[np.asarray(record.shell) == 0].T
    mask[ys, xs] = True
    return mask


def pool_size_summary(record) -> dict:  # noqa: ANN001
    """The sampler's uncertainty per pixel.

    Returns a dict with:
        ``log10_map``: (H,W) float64, mean over samples of log10(pool size) (seed pixels NaN);
        ``relaxed_map``: (H,W) float64, share of samples whose pixel had an empty pool (relaxed);
        ``median``, ``mean_log10``, ``single_share`` (share of generated pixels drawn from a
        pool of one, i.e. a forced copy), ``relaxed_rate`` (share of generated pixels relaxed).
    """
    seeds = seed_mask(record)
    gen = (record.source_index >= 0) & ~seeds[None]
    pool = np.maximum(np.asarray(record.pool_size, np.float64), 1.0)
    logp = np.where(gen, np.log10(pool), np.nan)
    with warnings.catch_warnings():  # seed pixels are NaN in every sample
        warnings.simplefilter("ignore", RuntimeWarning)
        log_map = np.nanmean(logp, axis=0) if len(logp) else np.full(record.canvas_shape, np.nan)
    relaxed = np.asarray(record.relaxed) & gen
    denom = max(int(gen.sum()), 1)
    return {
        "log10_map": log_map,
        "relaxed_map": relaxed.mean(0) if len(relaxed) else np.zeros(record.canvas_shape),
        "median": float(np.median(pool[gen])) if gen.any() else float("nan"),
        "mean_log10": float(np.nanmean(logp)) if gen.any() else float("nan"),
        "single_share": float((pool[gen] <= 1).sum() / denom),
        "relaxed_rate": float(relaxed.sum() / denom),
    }
