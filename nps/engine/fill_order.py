"""The order in which pixels are synthesised.

The canvas grows in concentric shells around the known region (the seed box).
Shell s holds the unknown pixels at L-infinity distance s from the known region.
Within a shell, the next pixel is the one whose w x w context holds the most
filled pixels; ties go to the smallest (y, x) in raster order.  The order depends
only on the canvas size, the known region and w, never on pixel values, so every
sample with the same seed box advances in lockstep.
"""

from __future__ import annotations

import numpy as np


def seed_box(height: int, width: int, seed_size: int) -> tuple[int, int, int, int]:
    """The central seed box (y0, x0, y1, x1), half-open, of side ``seed_size``."""
    y0 = (height - seed_size) // 2
    x0 = (width - seed_size) // 2
    return y0, x0, y0 + seed_size, x0 + seed_size


def shell_index(known: np.ndarray) -> np.ndarray:
    """L-infinity distance of every pixel to the nearest known pixel.

    Args:
        known: (H,W) bool.
    Returns:
        (H,W) int64; 0 on known pixels.
    """
    if not known.any():
        raise ValueError("the known region is empty; there is nothing to grow from")
    h, w = known.shape
    ky, kx = np.nonzero(known)
    yy, xx = np.mgrid[0:h, 0:w]
    # Chebyshev distance transform by brute force: canvases are small (<= 64x64 here).
    dist = np.full((h, w), np.iinfo(np.int64).max, np.int64)
    for chunk in np.array_split(np.arange(len(ky)), max(1, len(ky) // 256)):
        d = np.maximum(np.abs(yy[..., None] - ky[chunk]), np.abs(xx[..., None] - kx[chunk])).min(-1)
        np.minimum(dist, d, out=dist)
    return dist


def fill_order(known: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The synthesis order of the unknown pixels.

    Args:
        known: (H,W) bool, True where a pixel is given (the seed box).
        window: context window side w (odd).
    Returns:
        order: (U,2) int64, the (y, x) of the U unknown pixels in fill order.
        shell: (U,) int64, the shell of each entry (non-decreasing).
    """
    known = np.asarray(known, bool)
    half = window // 2
    shells = shell_index(known)
    filled = known.copy()
    # count[y, x] = number of filled pixels in the window around (y, x).
    padded = np.pad(filled, half).astype(np.int64)
    integral = padded.cumsum(0).cumsum(1)
    integral = np.pad(integral, ((1, 0), (1, 0)))
    count = (integral[window:, window:] - integral[:-window, window:]
             - integral[window:, :-window] + integral[:-window, :-window])
    order, shell_of = [], []
    for s in range(1, int(shells.max()) + 1):
        ys, xs = np.nonzero(shells == s)
        remaining = np.ones(len(ys), bool)
        for _ in range(len(ys)):
            c = np.where(remaining, count[ys, xs], -1)
            i = int(np.argmax(c))  # argmax returns the first max: raster order breaks ties
            y, x = int(ys[i]), int(xs[i])
            remaining[i] = False
            order.append((y, x))
            shell_of.append(s)
            count[max(0, y - half):y + half + 1, max(0, x - half):x + half + 1] += 1
    return np.asarray(order, np.int64).reshape(-1, 2), np.asarray(shell_of, np.int64)


def full_order(known: np.ndarray, window: int) -> np.ndarray:
    """The record's ``order``: known pixels first (raster), then :func:`fill_order`.

    Returns:
        (H*W,2) int64 (y, x); every pixel exactly once.
    """
    ky, kx = np.nonzero(np.asarray(known, bool))
    rest, _ = fill_order(known, window)
    return np.concatenate([np.stack([ky, kx], 1).astype(np.int64), rest])
