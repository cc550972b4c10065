"""The run-time estimate (nps.lab.cost): its model, its cheaper alternatives and the CLI's line."""

from __future__ import annotations

import pytest

from nps.config import GenerationConfig
from nps.lab import cost

MNIST = (28, 28)


def test_estimate_follows_the_cost_driver():
    full = GenerationConfig(corpus="mnist", n=16, batch_size=16)
    est = cost.estimate(full, 60_000, MNIST)
    assert est.windows_per_pixel == 64 * 25 and est.pixels == 28 * 28 - 64 and est.n == 16
    assert not est.slow  # the full model on all of MNIST: a few seconds
    ssd = cost.estimate(full.replace(constraints=("ssd",)), 60_000, MNIST)
    assert ssd.slow and ssd.seconds > 3600  # appearance alone over 47M windows per pixel: hours
    loc = cost.estimate(full.replace(constraints=("ssd", "loc")), 60_000, MNIST)
    assert est.seconds < loc.seconds < ssd.seconds
    # the model is linear in n (plus the per-batch step cost)
    half = cost.estimate(full.replace(constraints=("ssd", "loc"), n=8), 60_000, MNIST)
    assert half.seconds == pytest.approx(cost.FIXED_S + (loc.seconds - cost.FIXED_S) / 2, rel=0.01)


def test_calibration_matches_the_measured_run():
    # measured: mnist 60k, ssd+loc, n = 4 in 128.8 s (see the module docstring); the model is within 2x
    cfg = GenerationConfig(corpus="mnist", n=4, batch_size=4, constraints=("ssd", "loc"))
    assert 128.8 / 2 < cost.estimate(cfg, 60_000, MNIST).seconds < 128.8 * 2


def test_cheaper_alternatives_are_faster_and_sorted():
    cfg = GenerationConfig(corpus="mnist", n=16, batch_size=16, constraints=("ssd",))
    base = cost.estimate(cfg, 60_000, MNIST).seconds
    alts = cost.cheaper(cfg, 60_000, MNIST)
    assert {a.what.split()[0] for a in alts} == {"locality", "a", "4"}
    secs = [a.estimate.seconds for a in alts]
    assert secs == sorted(secs) and all(s < base for s in secs)
    loc = next(a for a in alts if a.what.startswith("locality"))
    assert loc.changes == {"constraints": ("ssd", "loc")}
    assert next(a for a in alts if "subset" in a.what).changes == {"subset": 1000}
    # with representation on, a subset does not shrink the k-image pool: not offered
    with_ssl = cost.cheaper(cfg.replace(constraints=("ssd", "ssl")), 60_000, MNIST)
    assert not any("subset" in a.what for a in with_ssl)
    # nothing cheaper to offer for a tiny run on a tiny corpus
    tiny = GenerationConfig(corpus="digits", n=4, batch_size=4, window=3, seed_size=2, radius=1)
    assert cost.cheaper(tiny, 200, (8, 8)) == []


def test_format_seconds_and_line():
    assert cost.format_seconds(0.2) == "under a second"
    assert cost.format_seconds(8.2) == "about 8 s"
    assert cost.format_seconds(600) == "about 10 min"
    assert cost.format_seconds(9000) == "about 2.5 h"
    slow = GenerationConfig(corpus="mnist", n=16, constraints=("ssd",))
    line = cost.estimate_line(slow, 60_000, MNIST)
    assert line.startswith("estimate: about") and "; with " in line
    assert "; with " not in cost.estimate_line(GenerationConfig(corpus="mnist"), 60_000, MNIST)


def test_cli_prints_the_estimate_first(tmp_path, capsys):
    from nps.cli import main
    out = tmp_path / "r.npz"
    assert main(["generate", "--corpus", "digits", "--n", "2", "--batch-size", "2", "--window", "3",
                 "--seed-size", "2", "--radius", "1", "--k", "16", "--encoder", "pca", "--out", str(out)]) == 0
    out_text = capsys.readouterr().out  # stdout: stderr stays one "error:" line when a run is refused
    first = out_text.splitlines()[0]
    assert first.startswith("estimate: under a second") and "candidate windows per pixel" in first


def test_the_window_index_changes_the_estimate_only_where_the_run_would_search_it():
    loc = GenerationConfig(corpus="mnist", n=4, batch_size=4, constraints=("ssd", "loc"), search="exact")
    dense = cost.estimate(loc, 60_000, MNIST, index="missing")
    cached = cost.estimate(loc, 60_000, MNIST, index="cached")
    assert dense.search == "dense" and cached.search == "exact" and cached.index_build_s == 0
    # measured (python -m nps bench, case loc-exact at batch 4, 60k, 2026-12-02): 3.12 s/image; the model is within 2x
    assert 4 * 3.12 / 2 < cached.seconds < 4 * 3.12 * 2 and cached.seconds < dense.seconds / 4
    # brute search, per-sample pools and a guessed index for a big corpus all keep the dense model
    assert cost.estimate(loc.replace(search="brute"), 60_000, MNIST, index="cached") == dense
    full = loc.replace(constraints=("ssd", "loc", "ssl"))
    assert cost.estimate(full, 60_000, MNIST, index="cached").search == "dense"
    assert cost.estimate(loc, 60_000, MNIST) == dense  # above BUILD_ON_USE nothing is built on use
    # a small corpus builds its index on first use: its build time is part of the estimate
    small = cost.estimate(loc, 2_000, MNIST)
    assert small.search == "exact" and small.index_build_s == pytest.approx(
        cost.INDEX_BUILD_S_PER_WINDOW * 2_000 * 28 * 28)
    with pytest.raises(ValueError, match="not one of"):
        cost.estimate(loc, 60_000, MNIST, index="yes")


def test_the_exact_search_is_offered_where_the_index_is_there():
    cfg = GenerationConfig(corpus="mnist", n=16, batch_size=16, constraints=("ssd", "loc"), search="brute")
    alts = cost.cheaper(cfg, 60_000, MNIST, index="cached")
    exact = next(a for a in alts if a.changes == {"search": "exact"})
    assert "same draws" in exact.what and exact.estimate.search == "exact"
    assert not any(a.changes == {"search": "exact"} for a in cost.cheaper(cfg, 60_000, MNIST, index="missing"))
    line = cost.estimate_line(cfg.replace(search="exact"), 60_000, MNIST, index="cached")
    assert "pruned by the window index" in line
    assert "building the window index" in cost.estimate_line(cfg.replace(search="exact"), 4_000, MNIST)


def test_index_state_reads_the_cache(digits, cache_dir, monkeypatch):
    from nps.engine import window_cache
    from nps.engine.sampler import Sampler
    monkeypatch.setattr(window_cache, "_INDEXES", {})  # nothing held in memory by earlier tests
    cfg = GenerationConfig(corpus="digits", n=2, batch_size=2, window=3, seed_size=2, radius=1,
                           constraints=("ssd", "loc"), search="exact")
    assert cost.index_state(cfg.replace(constraints=("ssd", "loc", "ssl")), digits) == "unused"
    assert cost.index_state(cfg, digits) == "build"  # 1,442 8x8 images: built on first use
    Sampler(cfg, digits).exact_search(build=True)
    assert cost.index_state(cfg, digits) == "cached"
    assert cost.index_state(cfg.replace(search="brute"), digits) == "cached"  # the index is there either way
