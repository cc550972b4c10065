"""The sampling readings of issue 12, part 4, as engine options (nps/engine/sampling_readings.py).

(i) an uncapped adaptive representation threshold (``ssl_mode="canvas"``, ``ssl_eps``,
``ssl_cap``); (ii) a window-level embedding of the context (``ssl_mode="window"``); (iii) the
SSD minimum over every window of the corpus (``ssd_global_min``).  For each: every pixel is a
traced copy of one training pixel, the option off is today's engine, and the option changes
what it should (checked against its definition).
"""

from __future__ import annotations

import numpy as np
import pytest

from nps.config import GenerationConfig
from nps.errors import NPSError
from nps.provenance import check_provenance

SMALL = dict(corpus="digits", window=3, seed_size=2, k=8, batch_size=3, encoder="pca", n=5, seed=3)


def _cfg(**kw) -> GenerationConfig:
    return GenerationConfig.make(**{**SMALL, **kw})


def _gen(digits, **kw):
    from nps.engine.sampler import generate
    return generate(_cfg(**kw), digits)


def _sampled(rec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, ys, xs) of the sampled (non-seed) pixels in fill order."""
    steps = np.flatnonzero(rec.shell > 0)
    ys, xs = rec.order[steps].T
    return steps, ys, xs


def test_new_fields_default_off_and_default_records_unchanged(digits):
    cfg = GenerationConfig()
    assert cfg.ssl_cap is None and cfg.ssd_global_min is False and cfg.ssl_mode == "reference"
    today = _gen(digits)
    same = _gen(digits, ssl_cap=None, ssd_global_min=False, ssl_mode="reference")
    for key in ("images", "source_index", "source_y", "source_x", "pool_size", "relaxed"):
        assert np.array_equal(getattr(today, key), getattr(same, key)), key


def test_lesson_matching_reads_a_missing_new_field_as_its_default():
    from nps.lab.lesson_records import result_fields
    d = GenerationConfig(corpus="digits").to_dict()
    old = {k: v for k, v in d.items() if k not in ("ssl_cap", "ssd_global_min")}  # a record made before them
    assert result_fields(old) == result_fields(d)
    assert result_fields({**old, "ssd_global_min": True}) != result_fields(d)


# ----------------------------------------------------------------------------- (i)
def test_semantic_pool_cap_is_the_uncapped_radius_rule(rng):
    from nps.retrieval import SourceIndex, semantic_pool
    x = rng.normal(size=(300, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    from nps.retrieval import EmbeddingTable
    index = SourceIndex("flat").fit(EmbeddingTable(x, x[:1], "t"))
    refs = np.arange(6)
    eps = 3.0
    capped = semantic_pool(index, x[refs], 4, refs, eps)
    free = semantic_pool(index, x[refs], 4, refs, eps, cap=300)
    assert capped.shape == (6, 4)
    for m, r in enumerate(refs):
        dist = 1.0 - x @ x[r]
        dist[r] = np.inf
        want = np.flatnonzero(dist <= (1 + eps) * dist.min() + 1e-6)
        assert np.array_equal(free[m][free[m] >= 0], np.sort(want))
    assert (free >= 0).sum(1).max() > 4  # the cap was k: the uncapped rule keeps more
    assert np.array_equal(semantic_pool(index, x[refs], 4, refs, eps, cap=4), capped)  # cap = k is today's


def test_reading_i_uncapped_canvas_pools(digits):
    kw = dict(ssl_mode="canvas", ssl_eps=2.0, k=4)
    capped = _gen(digits, **kw)
    free = _gen(digits, **kw, ssl_cap=len(digits))
    assert check_provenance(free, digits.train) == 0
    assert np.array_equal(_gen(digits, **kw, ssl_cap=4).images, capped.images)
    _, ys, xs = _sampled(free)
    assert free.pool_size[:, ys, xs].mean() > capped.pool_size[:, ys, xs].mean()
    assert free.config["ssl_cap"] == len(digits)


def test_ssl_cap_needs_ssl_eps(digits):
    with pytest.raises(NPSError, match="--ssl-cap"):
        _cfg(ssl_cap=10).check(len(digits))


# ----------------------------------------------------------------------------- (ii)
@pytest.fixture(scope="module")
def window_rec(digits):
    return _gen(digits, ssl_mode="window", n=3)


def test_reading_ii_engine_equals_its_plain_definition(window_rec, digits):
    from nps.engine.reference_impl import generate_plain
    assert check_provenance(window_rec, digits.train) == 0
    plain = generate_plain(_cfg(ssl_mode="window", n=3), digits)
    for key in ("images", "source_index", "source_y", "source_x", "pool_size"):
        assert np.array_equal(getattr(window_rec, key), plain[key]), key


def test_reading_ii_source_image_is_among_the_window_nearest(window_rec, digits):
    from nps.engine.sampler_pool import SemanticPools
    from nps.engine.sampling_readings import plain_window_pool
    pools = SemanticPools.build(_cfg(ssl_mode="window"), digits)
    emb = pools.index
    steps, ys, xs = _sampled(window_rec)
    hits = 0
    for step, y, x in list(zip(steps, ys, xs))[::7]:
        img, known = window_rec.canvas_at(1, int(step))
        want = plain_window_pool(emb.padded.numpy(), emb.basis.numpy(), img, known, int(y), int(x), 3, 8,
                                 int(window_rec.reference[1]))
        assert np.array_equal(pools.for_step(img[None], known, window_rec.reference[1:2], int(y), int(x))[0], want)
        hits += int(window_rec.source_index[1, y, x] in want)
        assert window_rec.source_index[1, y, x] in want
    assert hits > 0


def test_reading_ii_pools_change_with_the_pixel(window_rec, digits):
    """Unlike reference mode (one pool per sample), the sources span more images than any one pool of k."""
    ref_mode = _gen(digits, n=3)
    _, ys, xs = _sampled(window_rec)
    n_window = max(len(np.unique(window_rec.source_index[s, ys, xs])) for s in range(3))
    assert n_window > 8  # more distinct sources than k: the pool moved
    assert not np.array_equal(window_rec.source_index, ref_mode.source_index)
    assert window_rec.config["pool_index"] == "window"


def test_reading_ii_funnel_replays_the_step_pool(window_rec, digits):
    from nps.lab.funnel import constraint_funnel
    _, ys, xs = _sampled(window_rec)
    y, x = int(ys[10]), int(xs[10])
    f = constraint_funnel(window_rec, digits, 0, y, x)
    assert f.final == window_rec.pool_size[0, y, x]
    assert f.chosen == (int(window_rec.source_index[0, y, x]), int(window_rec.source_y[0, y, x]),
                        int(window_rec.source_x[0, y, x]))


def test_window_mode_refuses_a_label(digits):
    with pytest.raises(NPSError, match="window"):
        _cfg(ssl_mode="window", label=3).check(len(digits))


# ----------------------------------------------------------------------------- (iii)
@pytest.mark.parametrize("eps", [0.1, 1.0])
def test_reading_iii_engine_equals_its_plain_definition(digits, eps):
    from nps.engine.reference_impl import generate_plain
    rec = _gen(digits, ssd_global_min=True, eps=eps, n=3)
    assert check_provenance(rec, digits.train) == 0
    plain = generate_plain(_cfg(ssd_global_min=True, eps=eps, n=3), digits)
    for key in ("images", "source_index", "source_y", "source_x", "pool_size"):
        assert np.array_equal(getattr(rec, key), plain[key]), key


def test_reading_iii_changes_the_pools_and_marks_fallbacks(digits):
    today = _gen(digits, eps=1.0)
    cut = _gen(digits, eps=1.0, ssd_global_min=True)
    assert check_provenance(cut, digits.train) == 0
    steps, ys, xs = _sampled(cut)
    assert cut.relaxed[:, ys, xs].any() and not today.relaxed[:, ys, xs].any()
    assert not np.array_equal(cut.pool_size, today.pool_size)
    # the first step where the two differ, on the same canvas: the global cut keeps a strict subset
    differs = (cut.pool_size[:, ys, xs] != today.pool_size[:, ys, xs]).any(0)  # (steps,) in fill order
    first = int(np.flatnonzero(differs)[0])
    y, x = ys[first], xs[first]
    b = np.flatnonzero(cut.pool_size[:, y, x] != today.pool_size[:, y, x])
    for n in b:
        assert np.array_equal(cut.canvas_at(n, int(steps[first]))[0], today.canvas_at(n, int(steps[first]))[0])
    assert (cut.pool_size[b, y, x] < today.pool_size[b, y, x]).all()


def test_the_cost_estimate_counts_the_whole_corpus_scans():
    today = GenerationConfig(corpus="mnist").windows_per_pixel(60000, (28, 28))
    assert today == 25 * 64
    assert GenerationConfig(corpus="mnist", ssl_mode="window").windows_per_pixel(60000, (28, 28)) == today + 60000
    cut = GenerationConfig(corpus="mnist", ssd_global_min=True)
    assert cut.windows_per_pixel(60000, (28, 28)) == today + 25 * 60000
