"""Continuation hints: windows that likely score low, to bound each sample's minimum from above early.

The exact search (:mod:`nps.engine.search`) prunes a group or leaf when its lower bound exceeds the
threshold implied by an *upper* bound on the sample's minimum; any drawable window of the band gives
one.  The closer that upper bound, the fewer boxes pass.  Its first upper bound came from the windows
of the groups with the least lower bounds, which on SSD alone over 60k MNIST were often 3-30x the
true minimum (the boxes are loose on masked contexts, so the least bounds say little).

A better guess comes from the canvas itself (the coherence idea of Ashikhmin's synthesis): a known
neighbour at offset (dy, dx) of the target was drawn from image n at centre (sy, sx), so image n's
window at (sy - dy, sx - dx) continues that copy, and where the sample is copying a stretch of one
image it is the minimum or close to it.  Scoring those few windows (at most window^2 - 1 per sample)
costs one small screen; the bound is valid whatever they score, so the kept set, and so the record,
cannot change: only how much is pruned.
"""

from __future__ import annotations

import numpy as np


def continuations(sources: np.ndarray, y: int, x: int, half: int, uid: np.ndarray, height: int,
                  width: int) -> np.ndarray:
    """(B,J) int64 unique-window ids (-1: none) of the corpus windows continuing the copies of the
    target's known neighbours, J <= (2 half + 1)^2 - 1 (the neighbours inside the canvas).

    Args:
        sources: (3,B,h,w) int64 source image, centre y and centre x of each canvas pixel (-1: not
            drawn from the corpus yet: unknown, or given by the user).
        y, x: the target's canvas position; half: the window's half-width.
        uid: the window index's (HW,N) int32 unique id of image n's window at position p = cy * width + cx.
        height, width: the corpus images' size (centres must lie inside them).
    """
    image, sy, sx = sources
    _, h, w = image.shape
    dy, dx = np.divmod(np.arange((2 * half + 1) ** 2), 2 * half + 1)
    dy, dx = dy - half, dx - half
    near = ((dy != 0) | (dx != 0)) & (y + dy >= 0) & (y + dy < h) & (x + dx >= 0) & (x + dx < w)
    dy, dx = dy[near], dx[near]  # (J,) offsets of the target's neighbours inside the canvas
    n = image[:, y + dy, x + dx]  # (B,J)
    cy, cx = sy[:, y + dy, x + dx] - dy, sx[:, y + dy, x + dx] - dx
    ok = (n >= 0) & (cy >= 0) & (cy < height) & (cx >= 0) & (cx < width)
    return np.where(ok, uid[np.where(ok, cy * width + cx, 0), np.where(ok, n, 0)], -1).astype(np.int64)


def in_band(hints: np.ndarray | None, upos: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """(m,) int64 ascending the unique windows of ``hints`` ((B,J) ids, -1: none; None: no hints) whose
    position (``upos`` (U,) of the index) lies in the step's band (``slot`` (HW,) int64, -1 outside it):
    a window outside the band could score below the band's minimum."""
    if hints is None:
        return np.zeros(0, np.int64)
    ids = np.unique(hints[hints >= 0])
    return ids[slot[upos[ids]] >= 0]
