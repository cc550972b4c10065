"""Multi-scale (``ms``): coarse to fine, for long-range structure (the paper's open question).

Each batch first grows a half-resolution canvas with the unchanged sampler: the corpus
``half_train(train)`` (2x2 block means, :func:`nps.provenance.half_train`), the same reference,
semantic pool and constraints, the window ``ms_window``, seed side s//2, radius max(1, R//2),
and its own RNG stream ``(seed, i, 2)`` per sample.  At full resolution, pixel p = (y, x) may
then copy only from the pool images i whose coarse window around p/2 matches the coarse canvas
c_b nearly as well as the best one:

    D(b, i, q) = sum_d g_d v_d (c_b[q + d] - half_i[q + d])^2 / sum_d g_d v_d,   q = (y//2, x//2)
    admit i   <=>  D(b, i, q) <= (1 + ms_eps) * min_j D(b, j, q) + tol

over the wc x wc offsets d (wc = ``ms_window``, Gaussian g with sigma = wc/6.4, v_d = 1 inside
the coarse canvas).  The appearance threshold is then taken inside the admitted windows, so
every pixel is still copied from one training pixel; the coarse level is stored in the record
(version 3: ``coarse_images``, ``coarse_source_*``) and traced exactly against ``half_train``.

Kind "mask": a per-step admission over the candidate images of per-sample pools, so it
needs the representation constraint in reference mode (one pool of k images per sample);
it is opt-in and not part of the full model.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from nps.constraints.base import Constraint, Field, register

if TYPE_CHECKING:  # pragma: no cover
    from nps.config import GenerationConfig

FIELDS = (
    Field("ms_eps", "float", 0.5, "multi-scale: admit pool images whose coarse window around p/2 is within "
          "(1+ms_eps) of the best match to the coarse canvas (default: %(default)s)", limits=(0.0, 1e30),
          app=(0.0, 4.0), owner="ms", ablate=True),
    Field("ms_window", "int", 3, "multi-scale: the coarse level's window (odd; default: %(default)s)",
          limits=(3, 255), app=(3, 7), owner="ms"),
)

_HALF: dict[str, Any] = {}  # corpus content hash -> its half-resolution Corpus (one at a time)


def half_corpus(corpus: Any) -> Any:
    """The half-resolution corpus (same rows, labels and names; :func:`nps.provenance.half_train`), built once."""
    from nps.corpora import Corpus
    from nps.provenance import half_train
    key = corpus.content_hash
    if key not in _HALF:
        _HALF.clear()
        _HALF[key] = Corpus(name=f"{corpus.name}@half", train=half_train(corpus.train),
                            train_labels=corpus.train_labels, test=half_train(corpus.test[:1]),
                            test_labels=corpus.test_labels[:1], class_names=corpus.class_names,
                            subset=corpus.subset, source="half resolution", train_ids=corpus.train_ids)
    return _HALF[key]


def coarse_config(config: GenerationConfig, n: int) -> GenerationConfig:
    """The coarse level's config: the same constraints but the masks, a smaller window, seed and radius."""
    from nps.constraints import get
    return config.replace(constraints=tuple(c for c in config.constraints if get(c).kind != "mask"),
                          window=config.ms_window, seed_size=max(1, config.seed_size // 2),
                          radius=max(1, config.radius // 2), n=n, batch_size=n, sigma=None)


def coarse_distances(coarse: np.ndarray, half: np.ndarray, pool_ids: np.ndarray, window: int) -> np.ndarray:
    """D(b, p, q): Gaussian-weighted SSD of every coarse window, canvas against pool image.

    Args:
        coarse: (B,h,w[,C]) uint8 coarse canvases.  half: (N,h,w[,C]) uint8 half-resolution train.
        pool_ids: (B,P) int64 pool ids (-1: padding, distance +inf).
    Returns:
        (B,P,h,w) float64, normalised by the in-canvas weight.
    """
    from nps.engine.sampler_setup import gaussian_kernel
    c = coarse.astype(np.float64) / 255.0
    t = half[np.maximum(pool_ids, 0)].astype(np.float64) / 255.0  # (B,P,h,w[,C])
    if c.ndim == 3:
        c, t = c[..., None], t[..., None]
    B, h, w, _ = c.shape
    r = window // 2
    g = gaussian_kernel(window, window / 6.4)
    cp = np.pad(c, ((0, 0), (r, r), (r, r), (0, 0)))
    tp = np.pad(t, ((0, 0), (0, 0), (r, r), (r, r), (0, 0)))
    inside = np.pad(np.ones((h, w)), r)
    num = np.zeros((B, pool_ids.shape[1], h, w))
    den = np.zeros((h, w))
    for dy in range(window):
        for dx in range(window):
            v = g[dy, dx] * inside[dy:dy + h, dx:dx + w]  # (h,w) weight of this offset at every q
            diff = cp[:, None, dy:dy + h, dx:dx + w] - tp[:, :, dy:dy + h, dx:dx + w]
            num += v * (diff * diff).sum(-1)
            den += v
    d = num / den
    d[pool_ids < 0] = np.inf
    return d


def admitted(d: np.ndarray, eps: float, tol: float) -> np.ndarray:
    """(B,P,h,w) bool: the images within (1 + eps) of the best coarse match at each q (the best always)."""
    best = d.min(1, keepdims=True)
    return d <= best * (1.0 + eps) + tol


@register
class MultiScale(Constraint):
    name = "ms"
    title = "multi-scale"
    label = "MS"
    kind = "mask"
    order = 40
    default_on = False
    ablation = True
    fields = FIELDS
    help = "coarse to fine: source images that match the half-resolution canvas around p/2"

    def check(self, config: GenerationConfig, corpus_size: int) -> None:
        from nps.errors import NPSError
        if not config.per_sample_pools() or config.ssl_mode != "reference":
            raise NPSError("--constraints ms needs ssl in reference mode without --label (one pool of k images "
                           "per sample); add ssl, e.g. --constraints ssd,loc,ssl,ms.")
        if config.ms_window % 2 == 0:
            raise NPSError(f"--ms-window {config.ms_window} must be odd (3, 5, 7).")

    # ---------------------------------------------------------------- engine
    def prepare(self, config: GenerationConfig, corpus: Any, sample_ids: np.ndarray, refs: np.ndarray,
                pool_ids: np.ndarray | None) -> dict:
        """Grow the batch's coarse canvases (the unchanged sampler) and their admission tables.

        Args:
            sample_ids: (B,) int64 the batch's sample ids (the coarse level's RNG streams).
            refs: (B,) int64 references.  pool_ids: (B,P) int64 the batch's semantic pools.
        Returns:
            the batch state: ``coarse`` (the coarse level's arrays) and ``admit`` (B,P,h,w) bool.
        """
        from nps.errors import NPSError
        refs = np.asarray(refs, np.int64)
        if pool_ids is None or pool_ids.shape[0] != len(refs) or (refs < 0).any():
            raise NPSError("ms needs one semantic pool per sample and a reference (it does not complete images); "
                           "use --constraints ssd,loc,ssl,ms with generate.")
        half = half_corpus(corpus)
        if min(half.image_shape[:2]) < config.ms_window:
            raise NPSError(f"the half-resolution canvas {half.image_shape[0]}x{half.image_shape[1]} is smaller than "
                           f"--ms-window {config.ms_window}; use a smaller --ms-window or drop ms.")
        ccfg = coarse_config(config, len(refs))
        coarse = _coarse_sampler(ccfg, half, pool_ids)
        steps = len(coarse.order_)
        uniforms = np.stack([np.random.default_rng([int(config.seed), int(i), 2]).random(steps)
                             for i in sample_ids])
        out = coarse._run_batch(refs, uniforms, 0, 1, None)
        d = coarse_distances(out["images"], half.train, pool_ids, config.ms_window)
        return {"coarse": out, "admit": admitted(d, config.ms_eps, config.tol)}

    def admit(self, state: dict, y: int, x: int) -> np.ndarray:
        """(B,P) bool: the pool slots admitted at full-resolution pixel (y, x)."""
        a = state["admit"]
        return a[:, :, min(y // 2, a.shape[2] - 1), min(x // 2, a.shape[3] - 1)]

    def record_arrays(self, state: dict) -> dict[str, np.ndarray]:
        out = state["coarse"]
        return {"coarse_images": out["images"], "coarse_source_index": out["source_index"],
                "coarse_source_y": out["source_y"], "coarse_source_x": out["source_x"]}

    def replay(self, config: GenerationConfig, corpus: Any, record: Any, n: int, pool_ids: np.ndarray) -> dict:
        """The admission table of sample n of a record, from its stored coarse canvas (the funnel)."""
        from nps.errors import NPSError
        if record.coarse_images is None:
            raise NPSError("this record was made with ms but holds no coarse level; regenerate it.")
        d = coarse_distances(record.coarse_images[n:n + 1], half_corpus(corpus).train, pool_ids, config.ms_window)
        return {"admit": admitted(d, config.ms_eps, config.tol)}

    def plain_prepare(self, config: GenerationConfig, corpus: Any, sample_ids: np.ndarray, refs: np.ndarray,
                      pool_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For :mod:`nps.engine.reference_impl`: (half-resolution train, (B,h,w[,C]) coarse canvases).

        The coarse level is the unchanged sampler (pinned against the plain implementation by
        tests/test_sampler.py), so the plain version reuses it and defines the admission plainly.
        """
        return half_corpus(corpus).train, self.prepare(config, corpus, sample_ids, refs, pool_ids)["coarse"]["images"]

    # ---------------------------------------------------------------- plain reference
    def plain_admit(self, config: GenerationConfig, half: np.ndarray, coarse: np.ndarray, y: int, x: int,
                    pool: np.ndarray) -> np.ndarray:
        """(P,) bool admitted pool images at (y, x), by the definition: a loop over images and offsets.

        Args:
            half: (N,h,w[,C]) uint8 half-resolution train.  coarse: (h,w[,C]) uint8 this sample's coarse canvas.
        """
        from nps.engine.sampler_setup import gaussian_kernel
        c = coarse.astype(np.float64).reshape(*coarse.shape[:2], -1) / 255.0
        h, w = c.shape[:2]
        qy, qx = min(y // 2, h - 1), min(x // 2, w - 1)
        r = config.ms_window // 2
        g = gaussian_kernel(config.ms_window, config.ms_window / 6.4)
        dist = np.empty(len(pool))
        for j, i in enumerate(pool):
            img = half[i].astype(np.float64).reshape(h, w, -1) / 255.0
            num = den = 0.0
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    yy, xx = qy + dy, qx + dx
                    if 0 <= yy < h and 0 <= xx < w:
                        num += g[dy + r, dx + r] * float(((c[yy, xx] - img[yy, xx]) ** 2).sum())
                        den += g[dy + r, dx + r]
            dist[j] = num / den
        return dist <= dist.min() * (1.0 + config.ms_eps) + config.tol

    def funnel_label(self, config: dict) -> str:
        return f"multi-scale (ε_c={config.get('ms_eps')})"


@functools.cache
def _fixed_pools_class() -> type:
    """SemanticPools that hand the coarse level the full-resolution batch's pools (built on first use:
    nps.engine.sampler_pool imports the config, which imports this module)."""
    from dataclasses import dataclass

    from nps.engine.sampler_pool import SemanticPools

    @dataclass
    class FixedPools(SemanticPools):
        fixed: np.ndarray | None = None

        def for_references(self, refs: np.ndarray) -> np.ndarray | None:
            return self.fixed

    return FixedPools


_COARSE: dict = {}  # (config, corpus hash) -> the coarse Sampler (its padded corpus and geometry, once per run)


def _coarse_sampler(ccfg: GenerationConfig, half: Any, pool_ids: np.ndarray) -> Any:
    from nps.engine.sampler import Sampler
    key = (ccfg, half.content_hash)
    pools = _fixed_pools_class()(ccfg, index="fixed", key="ms-fixed", fixed=pool_ids)
    if key not in _COARSE:
        _COARSE.clear()
        _COARSE[key] = Sampler(ccfg, half, pools)
    sampler = _COARSE[key]
    sampler.pools = pools
    return sampler
