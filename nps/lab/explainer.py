"""The step explainer's data: one frame per fill step, rebuilt from a record (no new sampling).

A frame holds everything a picture of one step needs: the target pixel's masked
w x w context, the candidate windows ranked by SSD with the engine's threshold
(:func:`nps.engine.selection.thresholds`, through :func:`nps.lab.funnel.ranked_candidates`),
the counts through the constraints, and the window the record says was drawn.
Nothing here samples: the candidates and distances are the engine's own, replayed
on the canvas as it was before the step (a pixel never changes once filled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nps.corpora import Corpus
from nps.engine.sampler_pool import SemanticPools
from nps.errors import NPSError
from nps.lab.funnel import Funnel, ranked_candidates, replay_sampler
from nps.record import ProvenanceRecord

#: "Appearance alone" scores every window of the corpus once more per step: only up to this many.
EXHAUSTIVE_WINDOWS = 500_000  # digits (92k windows) yes; a 2,000-image MNIST subset (1.6M) took 1.4 s a step


@dataclass
class StepFrame:
    """One fill step of one sample, as the explainer shows it.

    Attributes:
        step: index in ``record.order``; y, x: the target pixel; shell: its fill shell.
        context: (w,w,C) uint8 the canvas window centred on the target before the step
            (0 where unknown or outside the canvas).
        known: (w,w) bool which context pixels were known (the SSD weighs only these).
        canvas: (H,W,C) uint8 the whole canvas before the step; filled: (H,W) bool.
        value: (C,) uint8 the pixel the step wrote (the drawn window's centre).
        windows: (M,w,w,C) uint8 the shown candidate windows, as the engine compares them
            (edge-padded where a window reaches past its training image).
        sources: (M,3) int64 (train id, y, x) of each shown window's centre.
        labels: (M,) int64 each shown window's training label.
        ssd: (M,) float32 their distances; kept: (M,) bool in the pool; rank: (M,) int64
            0-based rank among every candidate (ascending SSD).
        drawn: index into ``windows`` of the drawn window (``record.source_*``).
        ranked_ssd, ranked_at: (K,) float32 / int64 the ranked-SSD curve over every
            candidate (thinned on log-spaced ranks).
        n_candidates: windows the SSD ranks (those passing locality and representation).
        pool_size: windows under the threshold (= ``record.pool_size`` at the pixel).
        d_min, threshold: the SSD minimum and the cut; None when appearance is off.
        funnel: (label, count) rows through the constraints, widest first.
    """

    step: int
    y: int
    x: int
    shell: int
    context: np.ndarray
    known: np.ndarray
    canvas: np.ndarray
    filled: np.ndarray
    value: np.ndarray
    windows: np.ndarray
    sources: np.ndarray
    labels: np.ndarray
    ssd: np.ndarray
    kept: np.ndarray
    rank: np.ndarray
    drawn: int
    ranked_ssd: np.ndarray
    ranked_at: np.ndarray
    n_candidates: int
    pool_size: int
    d_min: float | None
    threshold: float | None
    funnel: list[tuple[str, int]]

    @property
    def n_more(self) -> int:
        """Candidates not shown as thumbnails."""
        return self.n_candidates - len(self.windows)


def sampled_steps(record: ProvenanceRecord, n: int) -> np.ndarray:
    """(S,) int64 indices into ``record.order`` of the pixels of sample n that were sampled."""
    ys, xs = record.order.T
    return np.flatnonzero((record.shell > 0) & (record.source_index[n, ys, xs] >= 0)).astype(np.int64)


def default_step(record: ProvenanceRecord, n: int) -> int:
    """A stroke pixel to start on: the first sampled step whose pixel is bright and had a choice.

    "Bright" is at least half the sample's brightest value (so not background); a pool
    of more than one window makes the draw worth showing.  Falls back to the first
    bright step, then the first sampled step.

    Raises:
        NPSError: sample n has no sampled pixel (all given or seed).
    """
    steps = sampled_steps(record, n)
    if len(steps) == 0:
        raise NPSError(f"sample {n} has no sampled pixel to explain (every pixel was given or seeded).")
    img = np.asarray(record.images[n])
    lum = img.reshape(*record.canvas_shape, -1).max(-1).astype(np.int64)
    ys, xs = record.order[steps].T
    bright = lum[ys, xs] * 2 >= max(int(lum.max()), 1)
    chosen = bright & (record.pool_size[n, ys, xs] > 1)
    for mask in (chosen, bright):
        if mask.any():
            return int(steps[np.flatnonzero(mask)[0]])
    return int(steps[0])


def funnel_rows(fun: Funnel, config: dict) -> list[tuple[str, int]]:
    """(label, count) rows of a funnel, from every window to the pool, for a bar chart (one per constraint)."""
    return fun.rows(config)


def step_frames(record: ProvenanceRecord, corpus: Corpus, n: int, start: int, count: int = 8,
                pools: SemanticPools | None = None, top: int = 48,
                exhaustive: bool | None = None) -> list[StepFrame]:
    """Frames for up to ``count`` sampled steps of sample n, from fill step ``start`` on.

    Args:
        start: an index into ``record.order``; seed and given steps are skipped.
        top: candidate thumbnails per frame (the drawn window is added if it ranks lower).
        exhaustive: also count windows passing SSD alone over the whole corpus (a funnel
            row); default: when the corpus has at most :data:`EXHAUSTIVE_WINDOWS` windows.
    Raises:
        NPSError: an out-of-range sample or step, or a corpus that does not match the record.
    """
    if not 0 <= n < len(record):
        raise NPSError(f"sample {n} is out of range; the record has {len(record)} samples.")
    if not 0 <= start < len(record.order):
        raise NPSError(f"step {start} is out of range; the fill order has {len(record.order)} steps.")
    sampler = replay_sampler(record, corpus, pools)
    if exhaustive is None:
        exhaustive = len(corpus) * int(np.prod(record.canvas_shape)) <= EXHAUSTIVE_WINDOWS
    steps = sampled_steps(record, n)
    steps = steps[steps >= start][:max(count, 0)]
    w, half = sampler.config.window, sampler.half
    padded = sampler.padded_  # (N,C,Hp,Wp) uint8, edge-padded by half: what the SSD compares against
    labels = np.asarray(corpus.train_labels, np.int64)
    C = corpus.channels
    h, wd = record.canvas_shape
    frames = []
    for step in steps.tolist():
        y, x = (int(v) for v in record.order[step])
        rc = ranked_candidates(record, corpus, n, y, x, top=top, exhaustive=exhaustive, sampler=sampler)
        img, known = record.canvas_at(n, step)
        canvas = img.reshape(h, wd, C)
        ctx = np.pad(canvas, ((half, half), (half, half), (0, 0)))[y:y + w, x:x + w]
        ctx_known = np.pad(known, half)[y:y + w, x:x + w]
        sid, sy, sx = (rc.sources[:, i] for i in range(3))
        # Window rows/cols cy..cy+w of the padded image are centred on (cy, cx) of the original.
        rows = sy[:, None] + np.arange(w)[None, :]
        cols = sx[:, None] + np.arange(w)[None, :]
        win = _windows(padded, sid, rows, cols)
        f = rc.funnel
        frames.append(StepFrame(
            step=step, y=y, x=x, shell=int(record.shell[step]), context=ctx, known=ctx_known,
            canvas=canvas, filled=known, value=np.asarray(record.images[n, y, x], np.uint8).reshape(C),
            windows=win, sources=rc.sources, labels=labels[sid], ssd=rc.ssd, kept=rc.kept, rank=rc.rank,
            drawn=rc.drawn, ranked_ssd=rc.ranked_ssd, ranked_at=rc.ranked_at, n_candidates=rc.n_candidates,
            pool_size=f.final, d_min=f.d_min, threshold=f.threshold, funnel=funnel_rows(f, record.config)))
    return frames


def _windows(padded, sid: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(M,w,w,C) uint8 windows of a (N,C,Hp,Wp) uint8 tensor at (M,w) row and column indices."""
    import torch
    t = padded[torch.from_numpy(sid)[:, None, None], :, torch.from_numpy(rows)[:, :, None],
               torch.from_numpy(cols)[:, None, :]]  # (M,w,w,C): advanced indices first, then the sliced C
    return t.numpy().astype(np.uint8)
