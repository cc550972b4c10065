"""Certified appearance decisions (nps.engine.certify): the float32 engine decides as float64 does.

Three kinds of check:
* the error bound holds for the engine's own float32 kernels (and is not vacuous);
* records are invariant to any float32 error inside the bound (noise injected into the
  kernels), and equal the float64 plain reference where float32 alone would not;
* the certifier's decision on a synthetic view is exactly the float64 rule.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nps.engine.sampler_scores as sampler_module
from nps.config import GenerationConfig
from nps.engine.certify import (
    DenseView,
    ExactWeights,
    certify,
    direct_distance,
    error_scale,
    score_bound,
    window_pixels,
)
from nps.engine.reference_impl import generate_plain
from nps.engine.sampler import generate
from nps.engine.selection import thresholds
from nps.engine.ssd import window_ssd_rows, window_ssd_shared, with_squares

SMALL = dict(corpus="digits", window=3, seed_size=2, k=12, batch_size=4)
KEYS = ("images", "source_index", "source_y", "source_x", "source_label", "pool_size", "relaxed")


def _cfg(**kw) -> GenerationConfig:
    return GenerationConfig(**{**SMALL, "n": 4, "seed": 1, **kw})


def _tau(target: torch.Tensor, gm: torch.Tensor) -> torch.Tensor:
    """(B,) float64 sqrt(sum gm t^2 / sum gm) of (B,C,w,w) contexts in [0,1]."""
    g = gm.double()
    return ((g * target.double() ** 2).sum((1, 2, 3)) / g.sum()).sqrt()


def _per_sample_rows(images: np.ndarray, target: torch.Tensor, gm: torch.Tensor) -> torch.Tensor:
    """(B,O,n) scores of every sample against all n images by :func:`window_ssd_rows` (the no-locality kernel)."""
    n, C, hp, wp = images.shape
    B = target.shape[0]
    x = torch.from_numpy(images).float().div_(255.0).permute(2, 3, 1, 0).reshape(hp * wp, C, n)
    pool = with_squares(x, 1)[None].expand(B, -1, -1, -1).contiguous()  # (B,L,C+1,n)
    return window_ssd_rows(pool, wp, 0, target, gm, hp - gm.shape[0] + 1)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("window", [3, 7])
@pytest.mark.parametrize("kernel", ["shared", "rows"])
def test_float32_scores_stay_inside_the_bound(rng, channels, window, kernel):
    n, B = 300, 6
    images = rng.integers(0, 256, (n, channels, window + 4, window + 4), dtype=np.uint8)
    images[: n // 3] = 0  # blank windows: the bound must be relative there
    ctx = rng.integers(0, 256, (B, channels, window, window), dtype=np.uint8)
    ctx[0] = 0
    ctx[1] = images[5, :, 2:2 + window, 2:2 + window]  # an exact match of one window
    known = rng.random((window, window)) < 0.7
    known[window // 2, window // 2] = False
    y, x = np.mgrid[:window, :window] - window // 2
    gm64 = np.exp(-(y ** 2 + x ** 2) / (2 * 1.5 ** 2)) * known
    gm = torch.from_numpy(gm64).float()
    target = torch.from_numpy(ctx).float() / 255.0
    if kernel == "shared":
        d32 = window_ssd_shared(torch.from_numpy(images).float() / 255.0, target, gm)  # (B,O,n)
    else:
        d32 = _per_sample_rows(images, target, gm)
    wts = ExactWeights(gm64, channels, window + 4, window + 4)
    cy, cx = np.divmod(np.arange(25), 5)  # centre offsets o = cy * 5 + cx: window corners
    b, o, p = (a.ravel() for a in np.meshgrid(np.arange(B), np.arange(25), np.arange(n), indexing="ij"))
    s = window_pixels(torch.from_numpy(images), wts, p, cy[o], cx[o])
    t = torch.from_numpy(ctx).permute(0, 2, 3, 1).reshape(B, -1)[:, wts.dims].double()
    exact = direct_distance(s, t[b], wts.w, wts.denom)
    got = d32[b, o, p].double()
    bound = torch.from_numpy(score_bound(got.numpy(), _tau(target, gm)[b].numpy(),
                                         error_scale(int(known.sum()), channels), channels))
    err = (got - exact).abs()
    assert (err <= bound).all()
    assert err.max() > 0  # float32 really rounds: the check is not vacuous
    assert (err[p < n // 3][b[p < n // 3] == 0] == 0).all()  # blank window against blank context: exact


def _noisy(real, rng: np.random.Generator, flips: list[int]):
    """Wrap a float32 kernel: add noise within half the error bound (as another BLAS might round)."""

    per_sample = real in (sampler_module.window_ssd, sampler_module.window_ssd_rows)  # (B,O,P); else (ny,n,nx,B)

    def kernel(*args, **kwargs):
        d = real(*args, **kwargs)
        target, gm = (args[3], args[4]) if per_sample else (args[1], args[2])
        C = target.shape[1]
        c = error_scale(int((gm > 0).sum()), C)
        tau = _tau(target, gm)
        B = target.shape[0]
        shape = [1] * d.dim()
        batch_dim = 0 if per_sample else d.dim() - 1
        shape[batch_dim] = B
        half = torch.from_numpy(0.5 * score_bound(d.double().numpy(), tau.reshape(shape).numpy(), c, C))
        noise = torch.from_numpy(rng.uniform(-1.0, 1.0, d.shape)) * half
        noisy = torch.where(torch.isfinite(d), d.double() + noise, d.double()).float()
        # Count the float32 decisions the noise would have flipped under the uncertified rule.
        flat_d = d.movedim(batch_dim, 0).reshape(B, -1)
        flat_n = noisy.movedim(batch_dim, 0).reshape(B, -1)
        cfg = kernel.config
        for a in (flat_d, flat_n):
            a.thr = thresholds(a.amin(1), cfg)[0]
        flips[0] += int(((flat_d <= flat_d.thr[:, None]) != (flat_n <= flat_n.thr[:, None])).sum())
        d.copy_(noisy)
        return d
    return kernel


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc", "ssd,loc,ssl", "ssd,ssl"])
@pytest.mark.parametrize("extra", [{}, {"eps": 0.0, "tol": 0.0}])
def test_records_do_not_depend_on_float32_rounding(digits, monkeypatch, cons, extra):
    cfg = _cfg(constraints=cons, search="brute", **extra)  # the float32 kernels (exact search has none)
    clean = generate(cfg, digits)
    flips = [0]
    for name in ("window_ssd", "window_ssd_rows", "window_ssd_shared"):
        wrapped = _noisy(getattr(sampler_module, name), np.random.default_rng(0), flips)
        wrapped.config = cfg
        monkeypatch.setattr(sampler_module, name, wrapped)
    noisy = generate(cfg, digits)
    for key in KEYS:
        assert np.array_equal(getattr(clean, key), getattr(noisy, key)), key
    if extra:
        assert flips[0] > 0  # the noise did flip raw float32 decisions: certification undid them


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc"])
def test_brute_force_keeps_every_exact_tie_like_the_float64_reference(digits, cons):
    """With tol=0 the float32 square scored exact matches as +-1e-8 and kept whichever rounded lowest."""
    cfg = _cfg(constraints=cons, n=3, seed=11, eps=0.0, tol=0.0, search="brute")
    rec = generate(cfg, digits)
    plain = generate_plain(cfg, digits)
    for key in ("images", "source_index", "source_y", "source_x", "pool_size"):
        assert np.array_equal(getattr(rec, key), plain[key]), key
    _same = generate(cfg.replace(search="exact"), digits)
    for key in KEYS:
        assert np.array_equal(getattr(rec, key), getattr(_same, key)), key


def test_certify_on_a_synthetic_view_is_the_float64_rule():
    """Scores that float32 rounded across the threshold are decided by the exact values."""
    cfg = GenerationConfig(corpus="digits", eps=0.1, tol=0.0)
    exact = torch.tensor([[0.100, 0.110, 0.1100000001, 0.10999999, 0.5, float("inf")],
                          [0.200, 0.300, 0.400, 0.500, 0.600, 0.700]], dtype=torch.float64)
    d32 = exact.float().clone()
    d32[0, 2] = 0.10999  # rounded below the threshold 0.11: must be dropped
    d32[0, 3] = 0.11001  # rounded above: must be kept
    view = DenseView(d32[:, None, :].clone())
    calls = []

    def score(b, j):
        calls.append(len(b))
        return exact[torch.from_numpy(b), torch.from_numpy(j)]
    tau = torch.tensor([1.0, 1.0], dtype=torch.float64)
    c = 1e-5  # a bound of about 4e-5 here, as for a 7x7 window
    thr, fell, (b, j, keep) = certify(view, view.flat.amin(1), tau, c, 1, cfg, score)
    view.apply(b, j, keep)
    kept = (view.flat <= thr[:, None]).numpy()
    want = (exact <= thresholds(exact.amin(1), cfg)[0][:, None]).numpy()
    assert (kept == want).all()
    assert kept[0].tolist() == [True, True, False, True, False, False]
    assert fell is None
    assert sum(calls) <= 8  # only the entries near the minimum and the threshold were recomputed
    assert set(np.unique(b).tolist()) == {0}  # sample 1 had nothing near its threshold
