"""Split weights of the window index: which window dimensions the queries of each position can see.

The k-d tree of a position (:func:`nps.engine.search_index._kd_order`) splits a node on the dimension
of largest ``weight * variance``.  A box prunes only through the dimensions a query knows
(:mod:`nps.engine.search_bounds`: ``sum_k w_k gap_k^2`` over the *known* k), and which those are is
fixed by the fill order: the canvas grows in shells from the central seed, so a target pixel's known
context lies on the side facing the seed, and with locality the windows at source position p are
compared only with the contexts of targets within R of p.  On a 28x28 canvas a position on the left
edge is queried by contexts known on their right half, one at the top by contexts known below; a
split on a dimension no query of p knows tightens no bound.

So with locality each position gets weights

    weight_p[k] = g[k] * (f_p[k] + FLOOR),

g the Gaussian the generic tree used (centre 0: the pixel being filled is never known), f_p[k] the
share of the default generation's queries at p that know dimension k (default seed, radius and
window for the canvas, SSD + locality).  ``FLOOR`` keeps every non-centre dimension splittable, so
positions no default query reaches (inside the seed) and runs with other settings (another seed or
radius, a hole to fill) still get a tree of the full window.

Without locality every position is queried by every target, whose known sides face all ways: there
the tuned trees pruned worse than the plain Gaussian (6,000 MNIST images, SSD alone, first 96 steps:
34.1 s against 27.5 s), so such runs use a second, *global* index whose splits weigh g alone (the
version-3 tree, same cache key: :func:`nps.engine.window_cache.index_key`).  Only the pruning's
speed depends on the weights: a box bounds its windows whatever the order, so the search's results
are the same with any of them (the tests compare both indexes with brute force).

Measured (60k MNIST, SSD + locality, batch 4, exact): windows screened per step 47,652 -> 16,475 and
leaves bounded 73,061 -> 42,382 over the first 208 steps, 1.9x faster there; the whole run 1.3x.
"""

from __future__ import annotations

import numpy as np

FLOOR = 0.01  # weight share of a dimension no default query knows (0.0625 screened 21 % more windows)


def split_gaussian(window: int) -> np.ndarray:
    """(w,w) float64 the generic split weights: a Gaussian of sigma w / 6.4, 0 at the centre."""
    r = np.arange(window) - window // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * (window / 6.4) ** 2))
    g[window // 2, window // 2] = 0  # the centre is the pixel being filled: never known, never compared
    return g


def known_share(height: int, width: int, window: int) -> np.ndarray:
    """(H*W, w*w) float64: per source position p = cy * W + cx, the share of the default generation's
    queries at p (its steps whose band holds p) that know each (ky, kx) of the window; 0 where none do.

    The default generation is :class:`nps.config.GenerationConfig`'s defaults fitted to the canvas,
    with SSD + locality (the whole-corpus path this index serves most).
    """
    from nps.config import GenerationConfig
    from nps.constraints import step_centres
    from nps.engine.fill_order import fill_order, seed_box

    cfg = GenerationConfig(window=window, constraints="ssd,loc").fit_canvas((height, width), seed_size_given=False)
    y0, x0, y1, x1 = seed_box(height, width, cfg.seed_size)
    known = np.zeros((height, width), bool)
    known[y0:y1, x0:x1] = True
    order, _ = fill_order(known, window)
    half = window // 2
    padded = np.pad(known, half)
    share = np.zeros((height, width, window * window))
    hits = np.zeros((height, width))
    for y, x in order:
        (a, b, c, d), _ = step_centres(cfg, int(y), int(x), height, width)
        share[a:b, c:d] += padded[y:y + window, x:x + window].ravel()
        hits[a:b, c:d] += 1
        padded[y + half, x + half] = True
    return (share / np.maximum(hits, 1)[..., None]).reshape(height * width, -1)


def split_weights(height: int, width: int, window: int, channels: int, local: bool = True) -> np.ndarray:
    """(H*W, D) float64 per-position split weights, D = w*w*C in (ky, kx, c) order.

    ``local``: tuned to each position's queries under locality (module docstring); else the
    Gaussian at every position (the "global" tree, for runs whose band is every position).
    """
    g = split_gaussian(window).ravel()
    if not local:
        return np.repeat(np.tile(g, (height * width, 1)), channels, axis=1)
    return np.repeat(g * (known_share(height, width, window) + FLOOR), channels, axis=1)
