"""A deliberately plain, per-pixel numpy implementation of the sampler.

It exists for two reasons: the tests check the batched engine against it on tiny
inputs, and ``python -m nps bench`` times it beside the engine.  It follows the
definitions literally (float64, a Python loop over samples, pixels and centre
offsets) and uses the same RNG streams and candidate order as the engine, so the
two must produce the same record.
"""

from __future__ import annotations

import numpy as np

from nps.config import GenerationConfig
from nps.constraints import active, plain_step_centres
from nps.corpora import Corpus
from nps.engine.fill_order import fill_order, seed_box
from nps.engine.sampler import gaussian_kernel, sample_streams
from nps.engine.sampler_pool import SemanticPools


def generate_plain(config: GenerationConfig, corpus: Corpus, sample_ids: np.ndarray | None = None,
                   pools: SemanticPools | None = None) -> dict[str, np.ndarray]:
    """Plain implementation of :func:`nps.engine.sampler.generate` (reference-mode ssl, or none).

    Returns:
        dict with ``images`` (S,H,W[,C]) uint8 and ``source_index``, ``source_y``,
        ``source_x``, ``pool_size`` (S,H,W) int64.
    """
    cfg = config
    if cfg.uses("ssl") and cfg.ssl_mode not in ("reference", "window"):
        raise ValueError("the plain implementation covers ssl_mode='reference' and 'window' only")
    window_mode = cfg.uses("ssl") and cfg.ssl_mode == "window"  # reading (ii): a pool per pixel
    ids = np.arange(cfg.n) if sample_ids is None else np.asarray(sample_ids)
    h, w = corpus.image_shape[:2]
    train = corpus.train.astype(np.float64) / 255.0
    if train.ndim == 3:
        train = train[..., None]
    half = cfg.window // 2
    padded = np.pad(train, ((0, 0), (half, half), (half, half), (0, 0)), mode="edge")
    gauss = gaussian_kernel(cfg.window, cfg.sigma_)
    y0, x0, y1, x1 = seed_box(h, w, cfg.seed_size)
    known0 = np.zeros((h, w), bool)
    known0[y0:y1, x0:x1] = True
    order, _ = fill_order(known0, cfg.window)
    label_ids = np.flatnonzero(corpus.train_labels == cfg.label) if cfg.label is not None else None
    refs, uniforms = sample_streams(cfg.seed, ids, len(corpus), len(order), cfg.reference, label_ids)
    pools = pools if pools is not None else SemanticPools.build(cfg, corpus)
    members = [None] * len(refs) if window_mode else pools.members(refs)
    if window_mode:
        from nps.engine.sampling_readings import plain_window_pool
        emb = pools.index  # the fitted WindowEmbedding (its basis is the definition's)
        padded_u8, basis = emb.padded.numpy(), emb.basis.numpy()
    # "mask" constraints (multi-scale): their per-sample state, then a plain admission per pixel.
    masks = [(c, *c.plain_prepare(cfg, corpus, ids, refs, pools.for_references(refs)))
             for c in active(cfg, "mask")]
    out = {"images": np.zeros((len(ids), h, w, train.shape[3]), np.uint8)}
    for key in ("source_index", "source_y", "source_x", "pool_size"):
        out[key] = np.full((len(ids), h, w), -1, np.int64)
    raw = corpus.train if corpus.train.ndim == 4 else corpus.train[..., None]
    for s, ref in enumerate(refs):
        pool = np.arange(len(corpus)) if members[s] is None else members[s]
        if not cfg.include_reference:
            pool = pool[pool != ref]  # the reference only seeds the canvas, in every constraint set
        canvas = np.zeros((h + 2 * half, w + 2 * half, train.shape[3]))
        known = np.zeros((h + 2 * half, w + 2 * half), bool)
        canvas[y0 + half:y1 + half, x0 + half:x1 + half] = train[ref, y0:y1, x0:x1]
        known[y0 + half:y1 + half, x0 + half:x1 + half] = True
        out["images"][s, y0:y1, x0:x1] = raw[ref, y0:y1, x0:x1]
        out["source_index"][s, y0:y1, x0:x1] = ref
        out["source_y"][s, y0:y1, x0:x1] = np.arange(y0, y1)[:, None]
        out["source_x"][s, y0:y1, x0:x1] = np.arange(x0, x1)[None, :]
        out["pool_size"][s, y0:y1, x0:x1] = 1
        for step, (y, x) in enumerate(order):
            if window_mode:
                pool = plain_window_pool(padded_u8, basis, out["images"][s], known[half:half + h, half:half + w], y, x,
                                         cfg.window, cfg.k, -1 if cfg.include_reference else int(ref))
            keep = np.ones(len(pool), bool)
            for c, coarse_train, coarse in masks:  # multi-scale: pool images whose coarse window matches
                keep &= c.plain_admit(cfg, coarse_train, coarse[s], y, x, pool)
            admitted = pool[keep]
            target = canvas[y:y + cfg.window, x:x + cfg.window]
            gm = gauss * known[y:y + cfg.window, x:x + cfg.window]
            (cy0, cy1, cx0, cx1), _ = plain_step_centres(cfg, y, x, h, w)  # each constraint's plain centres
            cands, dists = [], []
            for cy in range(cy0, cy1):  # candidate order: centre offset (row-major), then pool id
                for cx in range(cx0, cx1):
                    windows = padded[admitted, cy:cy + cfg.window, cx:cx + cfg.window]  # (P,w,w,C)
                    d = ((windows - target) ** 2).sum(-1)
                    dists.append((d * gm).sum((1, 2)) / gm.sum())
                    cands.extend((int(p), cy, cx) for p in admitted)
            dist = np.concatenate(dists)
            kept = np.ones(len(dist), bool)
            for rule in active(cfg, "threshold"):  # appearance: d <= (1 + eps) d_min + tol
                kept &= rule.plain_keep(dist, cfg)
            if cfg.ssd_global_min and cfg.uses("ssd"):  # reading (iii): d_min over every window of every image
                others = np.arange(len(corpus)) if cfg.include_reference else np.flatnonzero(np.arange(len(corpus))
                                                                                             != ref)
                g = min(float(((((padded[others, cy:cy + cfg.window, cx:cx + cfg.window] - target) ** 2).sum(-1)
                                 * gm).sum((1, 2)) / gm.sum()).min())
                        for cy in range(cy0, cy1) for cx in range(cx0, cx1))
                under = dist <= g * (1.0 + cfg.eps) + cfg.tol
                if under.any():  # else the pool's own rule (the pixel is marked relaxed)
                    kept = under
            keep = np.flatnonzero(kept)
            sid, sy, sx = cands[keep[int(np.floor(uniforms[s, step] * len(keep)))]]
            canvas[y + half, x + half] = train[sid, sy, sx]
            known[y + half, x + half] = True
            out["images"][s, y, x] = raw[sid, sy, sx]
            out["source_index"][s, y, x], out["source_y"][s, y, x], out["source_x"][s, y, x] = sid, sy, sx
            out["pool_size"][s, y, x] = len(keep)
    if corpus.train.ndim == 3:
        out["images"] = out["images"][..., 0]
    return out
