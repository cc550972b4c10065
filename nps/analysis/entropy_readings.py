"""Readings of the paper's entropy measurement: which one gives (1.075, 2.496)?

The paper reports a class entropy of 1.075 and an image-ID entropy of 2.496 for its
full model on MNIST, without the window, the log base or how windows are aggregated
(``../shared/method.md``).  Our measurement (:mod:`nps.analysis.entropy`: 5 x 5 windows
inside the canvas, bits, mean over windows then over samples) gives about 0.03 and 2.6.
This module recomputes the *same records* under every reading of the measurement
itself, so the sampling is never touched:

* **scope** (what a histogram pools):
  ``window``  every w x w window inside the canvas, stride 1 (today's protocol);
  ``pixel``   a w x w window centred on every pixel, clipped at the border (border
              pixels have smaller windows; every pixel counts once);
  ``image``   one histogram over the whole canvas of a sample;
  ``position`` at each pixel position, the histogram over the N samples (how varied the
              source of that position is across the batch), then the mean over positions;
  ``batch``   one histogram of every pixel of every sample;
* **window** w (``window`` and ``pixel`` scopes): 3, 5, 7, 9, 11, 15;
* **pixels** counted: ``all`` copied pixels; ``ink`` only pixels of intensity >= 128
  (the background is copied from anywhere and is one flat value); ``generated`` the
  seed patch (shell 0, one source by construction) left out;
* **base**: 2 (bits), e (nats), 10 (dits).  H_b = H_2 / log2(b) exactly, so the base
  scales both entropies alike and cannot change their ratio; and a class entropy is at
  most log_b(10) for ten classes, so the paper's 1.075 cannot be in base 10
  (:func:`admits_paper`).

Per sample, a score is the mean over its windows (or pixels, positions) that hold at
least one counted pixel; a configuration reports the mean over samples (``batch``: the
one value).  Closeness to the paper is the relative distance
``sqrt(((c - 1.075)/1.075)^2 + ((i - 2.496)/2.496)^2)``.

The histogram of a window is the one implementation, :func:`nps.analysis.entropy.histogram_entropy`
(by sorting, O(K log K) per window of K pixels, so 15 x 15 windows and whole canvases stay cheap);
today's protocol is its base-2, in-canvas case (:func:`nps.analysis.entropy.window_entropy`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from itertools import product

import numpy as np

from nps.analysis.entropy import histogram_entropy, sliding_entropy
from nps.errors import NPSError

#: The paper's full-model figures (Lu et al., arXiv 2510.22196), units unstated.
PAPER = (1.075, 2.496)
WINDOWS = (3, 5, 7, 9, 11, 15)
SCOPES = ("window", "pixel", "image", "position", "batch")
#: Scopes that measure one sample's composition (the paper's part-whole claim); the
#: others pool across samples, so their class entropy measures the batch's class mix.
WITHIN = ("window", "pixel", "image")
PIXELS = ("all", "ink", "generated")
BASES = {"2": 2.0, "e": math.e, "10": 10.0}
INK = 128  # uint8 intensity from which a pixel is stroke, not background


def _mean_per_sample(ent: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # a sample without any counted pixel is all-NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(ent.reshape(len(ent), -1), axis=1)


def scope_entropy(maps: np.ndarray, counted: np.ndarray, scope: str, window: int | None = None,
                  base: float = 2.0) -> np.ndarray:
    """(N,) per-sample scores of one reading ((1,) for ``batch``; (H*W,) per position for ``position``).

    Args:
        maps: (N,H,W) integer maps; counted: (N,H,W) bool.
        scope: one of :data:`SCOPES`; ``window`` is needed for ``window`` and ``pixel``.
    """
    maps, counted = np.asarray(maps), np.asarray(counted, bool)
    n = len(maps)
    if scope in ("window", "pixel"):
        if window is None:
            raise NPSError(f"the {scope} scope needs a window size.")
        return _mean_per_sample(sliding_entropy(maps, window, counted, centred=scope == "pixel", base=base))
    if scope == "image":
        return histogram_entropy(maps.reshape(n, -1), counted.reshape(n, -1), base)
    if scope == "position":
        return histogram_entropy(maps.reshape(n, -1).T, counted.reshape(n, -1).T, base)
    if scope == "batch":
        return histogram_entropy(maps.reshape(1, -1), counted.reshape(1, -1), base)
    raise NPSError(f"entropy scope {scope!r} is unknown; use one of {', '.join(SCOPES)}.")


def counted_pixels(record, which: str) -> np.ndarray:
    """(N,H,W) bool: the pixels a reading counts (:data:`PIXELS`) among the copied ones."""
    from nps.analysis.entropy import seed_mask
    copied = np.asarray(record.source_index) >= 0
    if which == "all":
        return copied
    if which == "ink":
        img = np.asarray(record.images)
        img = img if img.ndim == 3 else img.max(-1)  # colour: any channel's ink
        return copied & (img >= INK)
    if which == "generated":
        return copied & ~seed_mask(record)[None]
    raise NPSError(f"pixel set {which!r} is unknown; use one of {', '.join(PIXELS)}.")


@dataclass(frozen=True)
class Reading:
    """One reading's entropies of one record.

    Attributes:
        scope, window, pixels, base: the reading (window None for whole-canvas scopes).
        class_h, image_id_h: mean over samples (or the one batch value), in ``base`` units.
        class_std, image_id_std: std over samples (0 for ``batch``; over positions for ``position``).
    """

    scope: str
    window: int | None
    pixels: str
    base: str
    class_h: float
    image_id_h: float
    class_std: float
    image_id_std: float

    @property
    def ratio(self) -> float:
        """Image-ID over class entropy: the same in every base."""
        return self.image_id_h / self.class_h if self.class_h > 0 else math.inf

    @property
    def distance(self) -> float:
        """Relative distance to the paper's (1.075, 2.496)."""
        return math.hypot((self.class_h - PAPER[0]) / PAPER[0], (self.image_id_h - PAPER[1]) / PAPER[1])

    def to_dict(self) -> dict:
        return {"scope": self.scope, "window": self.window, "pixels": self.pixels, "base": self.base,
                "class": self.class_h, "image_id": self.image_id_h, "class_std": self.class_std,
                "image_id_std": self.image_id_std, "ratio": self.ratio, "distance": self.distance}


def readings(record, windows: tuple[int, ...] = WINDOWS, scopes: tuple[str, ...] = SCOPES,
             pixels: tuple[str, ...] = PIXELS, bases: tuple[str, ...] = tuple(BASES)) -> list[Reading]:
    """Every reading of a :class:`~nps.record.ProvenanceRecord`'s class and image-ID maps.

    Entropies are computed once in bits and converted (H_b = H_2 / log2 b).  Windows larger
    than the canvas are skipped.
    """
    bad = [b for b in bases if b not in BASES]
    if bad:
        raise NPSError(f"log base {bad[0]!r} is unknown; use one of {', '.join(BASES)}.")
    h, w = record.canvas_shape
    out: list[Reading] = []
    for scope, which in product(scopes, pixels):
        counted = counted_pixels(record, which)
        for win in (windows if scope in ("window", "pixel") else (None,)):
            if win is not None and win > min(h, w):
                continue
            per = {name: scope_entropy(m, counted, scope, win, 2.0)
                   for name, m in (("class", record.source_label), ("id", record.source_index))}
            stats = {k: (float(np.nanmean(v)), float(np.nanstd(v))) for k, v in per.items()}
            for b in bases:
                f = 1.0 / math.log2(BASES[b])
                out.append(Reading(scope, win, which, b, stats["class"][0] * f, stats["id"][0] * f,
                                   stats["class"][1] * f, stats["id"][1] * f))
    return out


def admits_paper(base: str, n_classes: int) -> bool:
    """Whether the paper's class entropy 1.075 is possible at all in ``base`` with ``n_classes`` labels.

    A histogram over n_classes values has entropy at most log_b(n_classes): 3.32 bits,
    2.30 nats, but 1.0 in base 10 for MNIST's ten classes, so 1.075 cannot be base 10.
    """
    return PAPER[0] <= math.log(n_classes) / math.log(BASES[base]) + 1e-12


def closest(rows: list[Reading], top: int = 10) -> list[Reading]:
    """The ``top`` readings nearest the paper's pair (:attr:`Reading.distance`)."""
    return sorted(rows, key=lambda r: r.distance)[:top]
