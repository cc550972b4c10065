"""The sampler: provenance, constraints, the SSD rule, determinism, sharding, completion, funnel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nps.config import GenerationConfig
from nps.corpora import Corpus
from nps.engine.reference_impl import generate_plain
from nps.engine.sampler import Sampler, Stopped, complete, gaussian_kernel, generate
from nps.engine.sampler_pool import SemanticPools, candidate_centres
from nps.engine.ssd import window_ssd, window_ssd_reference, window_ssd_rows, window_ssd_shared, with_squares
from nps.errors import NPSError
from nps.lab.funnel import constraint_funnel
from nps.provenance import check_provenance
from nps.record import ProvenanceRecord, merge

SMALL = dict(corpus="digits", window=3, seed_size=2, k=12, batch_size=4)


def _cfg(**kw) -> GenerationConfig:
    return GenerationConfig(**{**SMALL, "n": 6, "seed": 1, **kw})


@pytest.fixture(scope="module")
def records(digits) -> dict[str, ProvenanceRecord]:
    out = {}
    for cons in ("ssd", "ssd,loc", "ssd,loc,ssl", "loc,ssl", "ssd,ssl"):
        out[cons] = generate(_cfg(constraints=cons), digits)
    return out


def _rgb_corpus(n: int = 40) -> Corpus:
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (4, 10, 10, 3), dtype=np.uint8)
    labels = np.arange(n) % 4
    train = np.clip(base[labels].astype(int) + rng.integers(-20, 21, (n, 10, 10, 3)), 0, 255).astype(np.uint8)
    return Corpus("rgb-synthetic", train, labels.astype(np.int64), train[:8], labels[:8].astype(np.int64),
                  ("a", "b", "c", "d"))


# ----------------------------------------------------------------------------- provenance (backbone)

def test_provenance_invariant_every_constraint_set(records, digits):
    for cons, rec in records.items():
        assert check_provenance(rec, digits.train) == 0, cons
        src = rec.source_index
        assert (src >= 0).all()
        assert np.array_equal(rec.images, digits.train[src, rec.source_y, rec.source_x])
        assert np.array_equal(rec.source_label, digits.train_labels[src])


def test_provenance_invariant_colour_corpus():
    corpus = _rgb_corpus()
    rec = generate(GenerationConfig(corpus="x", n=3, window=3, seed_size=4, k=6, batch_size=2, encoder="pixels"),
                   corpus)
    assert rec.images.shape == (3, 10, 10, 3)
    assert check_provenance(rec, corpus.train) == 0
    # all channels of a pixel come from the same source pixel
    assert np.array_equal(rec.images, corpus.train[rec.source_index, rec.source_y, rec.source_x])


def test_seed_is_reference_central_patch(records, digits):
    rec = records["ssd,loc,ssl"]
    seed = rec.shell == 0
    ys, xs = rec.order[seed].T
    assert len(ys) == 4 and set(ys) == {3, 4} and set(xs) == {3, 4}
    for n in range(len(rec)):
        assert (rec.source_index[n, ys, xs] == rec.reference[n]).all()
        assert np.array_equal(rec.images[n, ys, xs], digits.train[rec.reference[n], ys, xs])


# ----------------------------------------------------------------------------- constraints

def test_locality_respected_for_every_non_seed_pixel(records):
    for cons in ("ssd,loc", "ssd,loc,ssl", "loc,ssl"):
        rec = records[cons]
        yy, xx = np.mgrid[0:8, 0:8]
        dist = np.maximum(np.abs(rec.source_y - yy), np.abs(rec.source_x - xx))
        assert dist.max() <= rec.config["radius"], cons


def test_locality_off_uses_far_positions(records):
    rec = records["ssd"]
    yy, xx = np.mgrid[0:8, 0:8]
    dist = np.maximum(np.abs(rec.source_y - yy), np.abs(rec.source_x - xx))
    assert dist.max() > rec.config["radius"]  # otherwise the ablation would be meaningless


def test_every_source_in_semantic_pool(records, digits):
    for cons in ("ssd,loc,ssl", "loc,ssl", "ssd,ssl"):
        rec = records[cons]
        cfg = GenerationConfig.from_dict(rec.config)
        members = SemanticPools.build(cfg, digits).members(rec.reference)
        seed = np.zeros(rec.canvas_shape, bool)
        seed[tuple(rec.order[rec.shell == 0].T)] = True
        for n in range(len(rec)):
            assert len(members[n]) == cfg.k
            assert rec.reference[n] not in members[n]  # excluded by default
            assert np.isin(rec.source_index[n][~seed], members[n]).all()


def test_class_conditional_pool(digits):
    rec = generate(_cfg(label=7), digits)
    assert (rec.source_label == 7).all()
    assert (digits.train_labels[rec.reference] == 7).all()


def test_candidate_centres_relaxes_only_when_ball_misses():
    assert candidate_centres(5, 5, 28, 28, 2) == ((3, 8, 3, 8), False)
    assert candidate_centres(0, 27, 28, 28, 2) == ((0, 3, 25, 28), False)
    (y0, y1, x0, x1), relaxed = candidate_centres(40, 40, 28, 28, 2)  # canvas larger than sources
    assert relaxed and y0 < y1 and x0 < x1
    assert candidate_centres(3, 3, 8, 8, None) == ((0, 8, 0, 8), False)


def test_max_ssd_falls_back_and_marks_relaxed(digits):
    strict = generate(_cfg(max_ssd=0.0), digits)
    assert strict.relaxed.any() and not strict.relaxed[:, 3:5, 3:5].any()
    assert check_provenance(strict, digits.train) == 0
    loose = generate(_cfg(max_ssd=1e9), digits)
    assert not loose.relaxed.any()
    assert np.array_equal(loose.images, generate(_cfg(), digits).images)


# ----------------------------------------------------------------------------- the SSD rule

def test_window_ssd_matches_definition(rng):
    B, P, C, H, W, w = 2, 3, 2, 9, 9, 5
    half = w // 2
    imgs = rng.random((B, P, H, W, C)).astype(np.float32)
    pad = np.pad(imgs, ((0, 0), (0, 0), (half, half), (half, half), (0, 0)), mode="edge")
    hp, wp = pad.shape[2:4]
    target = rng.random((B, C, w, w)).astype(np.float32)
    gm = (gaussian_kernel(w, 1.0) * (rng.random((w, w)) > 0.4)).astype(np.float32)
    pool = with_squares(torch.from_numpy(pad.transpose(0, 2, 3, 4, 1).reshape(B, hp * wp, C, P)), 2).contiguous()
    cy0, cx0, ny, nx = 2, 3, 3, 4
    d = window_ssd(pool, wp, (cy0, cx0), torch.from_numpy(target), torch.from_numpy(gm), ny, nx).numpy()
    region = torch.from_numpy(pad[0].transpose(0, 3, 1, 2)[:, :, cy0:cy0 + ny + w - 1, cx0:cx0 + nx + w - 1].copy())
    d_shared = window_ssd_shared(region, torch.from_numpy(target[:1]), torch.from_numpy(gm))
    for b in range(B):
        for p in range(P):
            for oy in range(ny):
                for ox in range(nx):
                    t = target[b].transpose(1, 2, 0)
                    ref = window_ssd_reference(pad[b, p], t, gm, cy0 + oy + half, cx0 + ox + half)
                    assert d[b, oy * nx + ox, p] == pytest.approx(ref, abs=1e-5)
                    if b == 0:
                        assert float(d_shared[0, oy * nx + ox, p]) == pytest.approx(ref, abs=1e-5)
    # Every column (no locality band): the row kernel, from padded row 1, against the same definition.
    rows = window_ssd_rows(pool, wp, 1, torch.from_numpy(target), torch.from_numpy(gm), ny).numpy()
    nxw = wp - w + 1
    assert rows.shape == (B, ny * nxw, P)
    for b in range(B):
        for p in range(P):
            for oy in range(ny):
                for ox in range(nxw):
                    ref = window_ssd_reference(pad[b, p], target[b].transpose(1, 2, 0), gm, 1 + oy + half, ox + half)
                    assert rows[b, oy * nxw + ox, p] == pytest.approx(ref, abs=1e-5)


def test_pool_is_exactly_the_threshold_set_by_brute_force(records, digits):
    """At sampled pixels, recompute every candidate's SSD in float64 and compare the pool."""
    rec = records["ssd,loc,ssl"]
    cfg = GenerationConfig.from_dict(rec.config)
    pools = SemanticPools.build(cfg, digits)
    half = cfg.window // 2
    train = np.pad(digits.train.astype(np.float64) / 255, ((0, 0), (half, half), (half, half)), mode="edge")
    g = gaussian_kernel(cfg.window, cfg.sigma_)
    for n in range(2):
        members = pools.members(rec.reference[n:n + 1])[0]
        for step in (4, 20, 45, 63):
            y, x = rec.order[step]
            img, known = rec.canvas_at(n, step)
            ctx = np.pad(img.astype(np.float64) / 255, half)[y:y + cfg.window, x:x + cfg.window]
            gm = g * np.pad(known, half)[y:y + cfg.window, x:x + cfg.window]
            (cy0, cy1, cx0, cx1), _ = candidate_centres(y, x, 8, 8, cfg.radius)
            d = np.array([[window_ssd_reference(train[p][..., None], ctx[..., None], gm, cy + half, cx + half)
                           for p in members] for cy in range(cy0, cy1) for cx in range(cx0, cx1)])
            thr = d.min() * (1 + cfg.eps) + cfg.tol
            lo, hi = int((d <= thr - 1e-6).sum()), int((d <= thr + 1e-6).sum())
            assert lo <= rec.pool_size[n, y, x] <= hi
            # the copied window is itself in the threshold set
            sid = rec.source_index[n, y, x]
            dy, dx = rec.source_y[n, y, x], rec.source_x[n, y, x]
            chosen = window_ssd_reference(train[sid][..., None], ctx[..., None], gm, dy + half, dx + half)
            assert chosen <= thr + 1e-6


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc", "ssd,loc,ssl", "loc,ssl"])
def test_batched_engine_equals_plain_reference(digits, cons):
    cfg = _cfg(constraints=cons, n=5, seed=7)
    rec = generate(cfg, digits)
    plain = generate_plain(cfg, digits)
    for key in ("images", "source_index", "source_y", "source_x", "pool_size"):
        assert np.array_equal(getattr(rec, key), plain[key]), key


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc"])
def test_chunked_shared_pool_equals_one_chunk(digits, monkeypatch, cons):
    """A corpus-wide pool is scanned in cache-sized chunks; the chunking must not change a single draw."""
    import nps.engine.sampler_scores as sampler_module
    cfg = _cfg(constraints=cons, n=4, seed=3)
    whole = generate(cfg, digits)
    monkeypatch.setattr(sampler_module, "CHUNK_SCORES", 1)  # 64-image chunks: 29 of them on digits
    chunked = generate(cfg, digits)
    for key in ("images", "source_index", "source_y", "source_x", "pool_size"):
        assert np.array_equal(getattr(whole, key), getattr(chunked, key)), key


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc", "ssd,loc,ssl"])
def test_reference_only_seeds_the_canvas(digits, cons):
    """Every constraint set leaves the reference out of the candidates (ablations compare like with like)."""
    cfg = _cfg(constraints=cons, n=6, seed=4)
    rec = generate(cfg, digits)
    seed = np.zeros(rec.images.shape[1:3], bool)
    ky, kx = rec.order[rec.shell == 0].T
    seed[ky, kx] = True
    assert (rec.source_index[:, seed] == rec.reference[:, None]).all()
    assert not (rec.source_index[:, ~seed] == rec.reference[:, None]).any()
    # With include_reference the seed's own image is a candidate and, from an exact seed, gets copied.
    kept = generate(cfg.replace(include_reference=True), digits)
    assert (kept.source_index[:, ~seed] == kept.reference[:, None]).any()


# ----------------------------------------------------------------------------- determinism and sharding

def test_bit_identical_for_same_seed_and_config(digits):
    a, b = generate(_cfg(), digits), generate(_cfg(), digits)
    for key in ("images", "source_index", "source_y", "source_x", "pool_size", "reference"):
        assert np.array_equal(getattr(a, key), getattr(b, key))
    c = generate(_cfg(seed=2), digits)
    assert not np.array_equal(a.images, c.images)


def test_shards_merge_to_the_whole_run(digits):
    whole = generate(_cfg(n=8), digits)
    first = generate(_cfg(n=8), digits, sample_ids=np.arange(0, 4))
    second = generate(_cfg(n=8), digits, sample_ids=np.arange(4, 8))
    merged = merge([second, first])
    for key in ("images", "source_index", "source_y", "source_x", "reference", "sample_id", "pool_size"):
        assert np.array_equal(getattr(merged, key), getattr(whole, key)), key
    with pytest.raises(NPSError):
        merge([first, first])
    with pytest.raises(NPSError):
        merge([first, generate(_cfg(n=8, eps=0.3), digits, sample_ids=np.arange(4, 8))])


def test_record_roundtrip_without_pickle(records, tmp_path, digits):
    rec = records["ssd,loc,ssl"]
    path = rec.save(tmp_path / "r.npz")
    with np.load(path, allow_pickle=False) as z:
        keys = set(z.files)
        assert z["images"].dtype == np.uint8 and z["source_index"].dtype == np.int64
        assert z["order"].shape == (64, 2) and z["relaxed"].dtype == bool
    assert {"images", "source_index", "source_y", "source_x", "source_label", "pool_size", "relaxed",
            "reference", "order", "config"} <= keys
    back = ProvenanceRecord.load(path)
    assert np.array_equal(back.images, rec.images)
    cfg = back.config
    for name in ("window", "sigma", "eps", "radius", "k", "constraints", "encoder", "ssl_mode", "seed",
                 "corpus", "subset", "corpus_size", "version"):
        assert name in cfg
    assert cfg["corpus_size"] == len(digits)


def test_replay_is_a_mask_of_the_final_image(records):
    rec = records["ssd,loc"]
    img, known = rec.canvas_at(0, 10)
    assert known.sum() == 10 and (img[~known] == 0).all()
    assert np.array_equal(img[known], rec.images[0][known])
    full, known = rec.canvas_at(0, 64)
    assert known.all() and np.array_equal(full, rec.images[0])


# ----------------------------------------------------------------------------- modes, completion, stop

def test_canvas_mode_runs_and_keeps_provenance(digits):
    rec = generate(_cfg(ssl_mode="canvas", n=3), digits)
    assert check_provenance(rec, digits.train) == 0


def test_adaptive_semantic_pool_is_a_subset_of_k(digits):
    cfg = _cfg(ssl_eps=0.05)
    rec = generate(cfg, digits)
    pools = SemanticPools.build(cfg, digits).members(rec.reference)
    assert all(1 <= len(p) <= cfg.k for p in pools)
    assert check_provenance(rec, digits.train) == 0


def test_completion_keeps_given_pixels_and_traces_the_rest(digits):
    image = digits.test[0]
    known = np.zeros((8, 8), bool)
    known[:, :4] = True
    rec = complete(_cfg(n=3), digits, image, known)
    assert (rec.images[:, known] == image[known]).all()
    assert (rec.source_index[:, known] == -1).all() and (rec.source_index[:, ~known] >= 0).all()
    assert (rec.reference == -1).all()
    assert check_provenance(rec, digits.train) == 0
    with pytest.raises(NPSError):
        complete(_cfg(), digits, image, np.zeros((8, 8), bool))
    with pytest.raises(NPSError):
        complete(_cfg(), digits, image[:4], known)


def test_progress_callback_can_stop(digits):
    seen = []

    def stop(info):
        seen.append(info.step)
        assert info.canvas.shape[1:] == (8, 8) and info.known.sum() == info.step + 4
        return False

    with pytest.raises(Stopped):
        generate(_cfg(), digits, progress=stop)
    assert seen == [16]


def test_cuda_request_without_gpu_is_a_clear_error(digits):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(NPSError, match="cuda"):
        Sampler(_cfg(device="cuda"), digits)


# ----------------------------------------------------------------------------- funnel

@pytest.mark.parametrize("cons", ["ssd,loc,ssl", "ssd", "loc,ssl"])
def test_funnel_final_count_equals_record(records, digits, cons):
    rec = records[cons]
    for n, step in ((0, 5), (1, 30), (3, 63)):
        y, x = rec.order[step]
        f = constraint_funnel(rec, digits, n, int(y), int(x))
        assert f.final == rec.pool_size[n, y, x]
        assert f.chosen in {tuple(s) for s in f.pool_sources.tolist()}
        assert f.final <= f.loc_ssl <= f.total
        if f.ssd_alone is not None:
            assert f.ssd_alone >= 1
        assert len(f.centre_values) == f.final


def test_funnel_rejects_seed_pixels(records, digits):
    rec = records["ssd,loc,ssl"]
    y, x = rec.order[0]
    with pytest.raises(NPSError, match="seed"):
        constraint_funnel(rec, digits, 0, int(y), int(x))


def test_windows_per_pixel_names_the_cost_driver():
    cfg = GenerationConfig(corpus="mnist")
    shape = (28, 28)
    assert cfg.replace(constraints="ssd").windows_per_pixel(60_000, shape) == 60_000 * 784
    assert cfg.replace(constraints="ssd,loc").windows_per_pixel(60_000, shape) == 60_000 * 25
    assert cfg.replace(constraints="ssd,loc,ssl").windows_per_pixel(60_000, shape) == 64 * 25
    assert cfg.replace(constraints="ssd,ssl", label=3).windows_per_pixel(6_000, shape) == 6_000 * 784


def test_records_and_preset_keys_carry_the_engine_version(records, monkeypatch):
    import nps.lab.presets as presets
    from nps.record import ENGINE_VERSION
    assert all(rec.config["engine"] == ENGINE_VERSION for rec in records.values())
    preset = next(iter(presets.PRESETS.values()))
    before = preset.key
    monkeypatch.setattr(presets, "ENGINE_VERSION", ENGINE_VERSION + 1)
    assert preset.key != before  # a record cached by an older engine is never served


# ----------------------------------------------------------------------------- exact pruned search

_RECORD_KEYS = ("images", "source_index", "source_y", "source_x", "source_label", "pool_size", "relaxed")


def _same_record(a: ProvenanceRecord, b: ProvenanceRecord) -> None:
    for key in _RECORD_KEYS:
        assert np.array_equal(getattr(a, key), getattr(b, key)), key


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc"])
@pytest.mark.parametrize("extra", [{}, {"window": 5, "seed_size": 3}, {"max_ssd": 0.002}, {"include_reference": True},
                                   {"eps": 0.0}])
def test_exact_search_equals_brute_force(digits, cons, extra):
    """The pruned whole-corpus search gives the dense float32 scan's record, bit for bit.

    (With ``tol=0`` they may differ, by design: the float32 expanded square scores exact
    matches as +-1e-8, so the dense scan keeps whichever tie rounded lowest; the exact
    search keeps every tie, as the float64 plain reference does; see the next test.)
    """
    cfg = _cfg(constraints=cons, n=5, seed=11, search="exact", **extra)
    exact = generate(cfg, digits)
    _same_record(exact, generate(cfg.replace(search="brute"), digits))
    assert exact.config["search"] == "exact"
    if "max_ssd" in extra:
        assert exact.relaxed.any()  # the ceiling's fall-back is exercised


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc"])
def test_exact_search_without_tolerance_keeps_every_exact_tie(digits, cons):
    cfg = _cfg(constraints=cons, n=3, seed=11, eps=0.0, tol=0.0, search="exact")
    rec = generate(cfg, digits)
    plain = generate_plain(cfg, digits)
    for key in ("images", "source_index", "source_y", "source_x", "pool_size"):
        assert np.array_equal(getattr(rec, key), plain[key]), key
    ys, xs = rec.order[rec.shell > 0].T
    assert (rec.pool_size[:, ys, xs] > 1).any()  # ties at distance 0 were kept together


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc"])
def test_exact_search_pruning_changes_nothing(digits, monkeypatch, cons):
    """Pruned and unpruned (every unique window scored, certified) index searches agree exactly."""
    import nps.engine.search as search_module
    cfg = _cfg(constraints=cons, n=4, seed=5, search="exact")
    pruned = generate(cfg, digits)
    seen = []
    original = search_module.ExactSearch.__init__

    def unpruned(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.prune = False
        seen.append(self)
    monkeypatch.setattr(search_module.ExactSearch, "__init__", unpruned)
    _same_record(pruned, generate(cfg, digits))
    assert seen  # the unpruned search really ran


@pytest.mark.parametrize("cons, extra", [("ssd", {}), ("ssd,loc", {}), ("ssd,loc", {"include_reference": True}),
                                         ("ssd,loc", {"max_ssd": 0.02})])
def test_exact_search_accepting_whole_leaves_changes_nothing(digits, monkeypatch, cons, extra):
    """Leaves kept unscored (their upper bound within the threshold) give the records of scoring them,
    and they are really used (on digits' blank backgrounds many leaves are exactly the context)."""
    import nps.engine.search as search_module
    cfg = _cfg(constraints=cons, n=4, seed=5, search="exact", **extra)
    accepted, zero = [], []
    original_pruned = search_module.ExactSearch._pruned

    def spy(self, *args):
        cand = original_pruned(self, *args)
        if self.accept:
            accepted.append(len(cand.accepted))
            zero.append(int(cand.zero.sum()))
        return cand
    monkeypatch.setattr(search_module.ExactSearch, "_pruned", spy)
    with_leaves = generate(cfg, digits)
    assert sum(accepted) > 0 and sum(zero) > 0
    original = search_module.ExactSearch.__init__

    def scoring(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.accept = False
    monkeypatch.setattr(search_module.ExactSearch, "__init__", scoring)
    _same_record(with_leaves, generate(cfg, digits))
    _same_record(with_leaves, generate(cfg.replace(search="brute"), digits))


def test_exact_search_completion_equals_brute_force(digits):
    image = digits.test[3]
    known = np.zeros((8, 8), bool)
    known[2:6, :] = True
    cfg = _cfg(constraints="ssd,loc", n=3, search="exact")
    _same_record(complete(cfg, digits, image, known), complete(cfg.replace(search="brute"), digits, image, known))


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc"])
def test_exact_search_engine_equals_plain_reference(digits, cons):
    cfg = _cfg(constraints=cons, n=2, seed=9, window=5, seed_size=3, search="exact")
    rec = generate(cfg, digits)
    plain = generate_plain(cfg, digits)
    for key in ("images", "source_index", "source_y", "source_x", "pool_size"):
        assert np.array_equal(getattr(rec, key), plain[key]), key


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc"])
def test_brute_search_still_equals_plain_reference(digits, cons):
    cfg = _cfg(constraints=cons, n=4, seed=7, search="brute")
    rec = generate(cfg, digits)
    plain = generate_plain(cfg, digits)
    for key in ("images", "source_index", "source_y", "source_x", "pool_size"):
        assert np.array_equal(getattr(rec, key), plain[key]), key


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc"])
def test_chunked_brute_shared_pool_equals_one_chunk(digits, monkeypatch, cons):
    import nps.engine.sampler_scores as sampler_module
    cfg = _cfg(constraints=cons, n=4, seed=3, search="brute")
    whole = generate(cfg, digits)
    monkeypatch.setattr(sampler_module, "CHUNK_SCORES", 1)
    _same_record(whole, generate(cfg, digits))


def test_exact_search_on_mnist_subset_equals_brute_force():
    """A mid-size corpus (2,000 MNIST images, 28x28, w=7): the pruned search against the dense scan."""
    from nps.corpora import load_corpus
    corpus = load_corpus("mnist", 2000)
    cfg = GenerationConfig(corpus="mnist", subset=2000, n=4, seed=3, batch_size=4, constraints="ssd,loc",
                           search="exact")
    _same_record(generate(cfg, corpus), generate(cfg.replace(search="brute"), corpus))
    small = load_corpus("mnist", 200)
    cfg = cfg.replace(subset=200, constraints="ssd", n=2, batch_size=2)
    _same_record(generate(cfg, small), generate(cfg.replace(search="brute"), small))


def test_search_mode_is_checked():
    with pytest.raises(NPSError, match="--search"):
        GenerationConfig(search="fast").check()


def test_exact_search_without_cached_index_on_a_large_corpus_uses_the_dense_scan(digits, monkeypatch, cache_dir):
    import nps.engine.window_cache as search_index
    monkeypatch.setattr(search_index, "BUILD_ON_USE", 0)  # digits now counts as large
    monkeypatch.setattr(search_index, "_INDEXES", {})
    cfg = _cfg(constraints="ssd,loc", n=3, search="exact")
    sampler = Sampler(cfg, digits)
    assert sampler.exact_search() is None  # nothing cached: the dense scan serves the run
    dense = sampler.run()
    assert sampler.exact_search(build=True) is not None  # built (and cached) on request
    assert list(cache_dir.glob("windowindex-*.npz"))
    later = Sampler(cfg, digits)
    assert later.exact_search() is not None  # a later sampler finds it cached
    _same_record(dense, later.run())


def test_the_sampler_hands_freed_memory_back_every_16_steps(digits, monkeypatch):
    """glibc keeps big freed temporaries in the heap (nps.memory.release_freed); the batch loop trims it."""
    import platform

    import nps.engine.sampler as sampler_module
    from nps import memory
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert memory._malloc_trim() is not None  # found, so the call is not a silent no-op here
    calls = []
    monkeypatch.setattr(sampler_module, "release_freed", lambda: calls.append(1))
    cfg = _cfg(n=2, batch_size=2)
    rec = generate(cfg, digits)
    steps = rec.images[0].size - cfg.seed_size ** 2  # pixels sampled per canvas, in one batch
    assert len(calls) == steps // 16 > 0
    memory.release_freed()  # and the real one runs
