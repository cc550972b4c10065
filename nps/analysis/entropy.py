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

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nps.errors import NPSError

DEFAULT_WINDOW = 5
_CHUNK_ELEMENTS = 4_000_000  # (windows x K) int64 elements per sorted chunk: ~32 MB
#: The metric keys, one spelling each.  :func:`record_entropies` (and ``metrics.json``'s ``entropy``)
#: are keyed by map; :func:`entropy_metrics` (the app's tables and cards) by flat metric name.
CLASS, IMAGE_ID = "class", "image_id"
CLASS_ENTROPY, IMAGE_ID_ENTROPY = f"{CLASS}_entropy", f"{IMAGE_ID}_entropy"
STD = "_std"  # suffix of a flat metric's spread over samples: ``image_id_entropy_std``


def histogram_entropy(values: np.ndarray, counted: np.ndarray, base: float = 2.0) -> np.ndarray:
    """Shannon entropy of each row's counted values, by sorting.

    For the n counted values of a row, H = (1/n) sum_j log(n / c_j), where c_j is how
    often value j occurs among them (a value seen c times contributes c log(n/c)).

    Args:
        values: (M,K) integer values (labels or source ids).
        counted: (M,K) bool, the values that count.
        base: log base (2: bits).
    Returns:
        (M,) float64, NaN for a row with no counted value; >= 0.
    """
    values, counted = np.asarray(values), np.asarray(counted, bool)
    if values.ndim != 2 or values.shape != counted.shape:
        raise NPSError(f"histogram rows must be (M,K) with a mask of the same shape, got {values.shape} "
                       f"and {counted.shape}.")
    m, k = values.shape
    if k == 0 or m == 0:
        return np.full(m, np.nan)
    v = values.astype(np.int64)
    sentinel = (v.max() if v.size else 0) + 1  # uncounted values sort last, as one value left out below
    s = np.sort(np.where(counted, v, sentinel), axis=1)
    idx = np.broadcast_to(np.arange(k), (m, k))
    new = np.ones((m, k), bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    last = np.ones((m, k), bool)
    last[:, :-1] = new[:, 1:]
    start = np.maximum.accumulate(np.where(new, idx, 0), axis=1)
    end = np.minimum.accumulate(np.where(last, idx, k)[:, ::-1], axis=1)[:, ::-1]
    c = (end - start + 1).astype(np.float64)  # the run length holding each element
    ok = s != sentinel
    n = ok.sum(1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        # (1/n) sum_j log(n / c_j): exactly 0 for a constant row, exactly 1 bit for an equal split.
        ratio = n[:, None] / c
        logs = np.log2(ratio) if base == 2.0 else np.log(ratio) / math.log(base)  # bits: log2(2) is exactly 1
        h = np.where(ok, logs, 0.0).sum(1) / n
    h[n == 0] = np.nan
    return np.maximum(h, 0.0)  # round-off on constant rows to exact zero


def sliding_entropy(maps: np.ndarray, window: int, counted: np.ndarray | None = None, *,
                    centred: bool = False, base: float = 2.0) -> np.ndarray:
    """Entropy of every w x w window of (N,H,W) maps.

    Args:
        maps: (N,H,W) integer maps.
        window: side w, 1 <= w <= min(H,W).
        counted: (N,H,W) bool pixels that count (default: all).
        centred: False: windows inside the canvas, (N,H-w+1,W-w+1), entry [n,i,j] has its
            top-left at (i,j) (as :func:`window_entropy`); True: one
            window per pixel, (N,H,W), rows y-w//2 .. y-w//2+w-1, clipped at the border.
        base: log base.
    Returns:
        float64 entropies, NaN where a window counts no pixel.
    """
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise NPSError(f"entropy maps must be (N,H,W), got shape {maps.shape}.")
    n, h, w = maps.shape
    if not 1 <= window <= min(h, w):
        raise NPSError(f"entropy window {window} must be between 1 and {min(h, w)} for {h}x{w} maps.")
    counted = np.ones(maps.shape, bool) if counted is None else np.asarray(counted, bool)
    if centred:
        r = window // 2
        pad = ((0, 0), (r, window - 1 - r), (r, window - 1 - r))
        maps, counted = np.pad(maps, pad), np.pad(counted, pad, constant_values=False)
    oh, ow = maps.shape[1] - window + 1, maps.shape[2] - window + 1
    out = np.empty((n, oh, ow))
    k = window * window
    step = max(1, _CHUNK_ELEMENTS // max(1, oh * ow * k))
    for s in range(0, n, step):
        v = sliding_window_view(maps[s:s + step], (window, window), axis=(1, 2)).reshape(-1, k)
        c = sliding_window_view(counted[s:s + step], (window, window), axis=(1, 2)).reshape(-1, k)
        out[s:s + step] = histogram_entropy(v, c, base).reshape(-1, oh, ow)
    return out


def window_entropy(maps: np.ndarray, window: int = DEFAULT_WINDOW, valid: np.ndarray | None = None) -> np.ndarray:
    """Shannon entropy (bits) of the values in every w x w window inside the canvas.

    For the n valid values of a window, H = (1/n) sum_j log2(n / c_j), where c_j is how often
    value j occurs among them (:func:`sliding_entropy` in base 2, the one implementation).

    Args:
        maps: (N,H,W) integer maps (labels or source ids).
        window: odd or even window side w, 1 <= w <= min(H,W).
        valid: (N,H,W) bool, pixels to count (default: all).
    Returns:
        (N, H-w+1, W-w+1) float64; entry [n,i,j] is the window with top-left (i,j).
        NaN where a window holds no valid pixel.
    """
    return sliding_entropy(maps, window, valid, base=2.0)


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


def record_entropies(record, window: int = DEFAULT_WINDOW) -> dict[str, EntropySummary]:
    """Class-map and image-ID-map entropy summaries of a :class:`~nps.record.ProvenanceRecord`."""
    valid = record.source_index >= 0
    return {CLASS: summarise_entropy(record.source_label, window, valid),
            IMAGE_ID: summarise_entropy(record.source_index, window, valid)}


def entropy_metrics(record) -> dict[str, float]:
    """Class and image-ID window entropies (bits, mean and std over samples), by flat metric name.

    Returns:
        ``{CLASS_ENTROPY, CLASS_ENTROPY + STD, IMAGE_ID_ENTROPY, IMAGE_ID_ENTROPY + STD: float,
        "entropy_window": int}``, the window ``min(DEFAULT_WINDOW, H, W)``.
    """
    win = min(DEFAULT_WINDOW, *record.canvas_shape)
    ent = record_entropies(record, win)
    return {CLASS_ENTROPY: ent[CLASS].mean, CLASS_ENTROPY + STD: ent[CLASS].std,
            IMAGE_ID_ENTROPY: ent[IMAGE_ID].mean, IMAGE_ID_ENTROPY + STD: ent[IMAGE_ID].std, "entropy_window": win}


def seed_mask(record) -> np.ndarray:
    """(H,W) bool: the seed pixels (shell 0 of the fill order)."""
    mask = np.zeros(record.canvas_shape, bool)
    ys, xs = np.asarray(record.order)[np.asarray(record.shell) == 0].T
    mask[ys, xs] = True
    return mask


def pool_size_summary(record) -> dict:
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
