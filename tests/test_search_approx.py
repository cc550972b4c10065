"""Approximate whole-corpus search (nps.engine.search_approx).

Exact when every group is probed, measured recall otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nps.config import GenerationConfig
from nps.engine.sampler import Sampler, generate
from nps.engine.search import ExactSearch, StepQuery
from nps.engine.search_approx import ApproxSearch, RecallMeter, build_centroids
from nps.engine.search_index import WindowIndex, build_index
from nps.provenance import check_provenance
from nps.record import ProvenanceRecord

SMALL = dict(corpus="digits", window=3, seed_size=2, k=12, batch_size=4)
_RECORD_KEYS = ("images", "source_index", "source_y", "source_x", "source_label", "pool_size", "relaxed")


def _cfg(**kw) -> GenerationConfig:
    return GenerationConfig(**{**SMALL, "n": 6, "seed": 1, **kw})


def _same_record(a: ProvenanceRecord, b: ProvenanceRecord) -> None:
    for key in _RECORD_KEYS:
        assert np.array_equal(getattr(a, key), getattr(b, key)), key


def _meter(cfg: GenerationConfig, corpus) -> tuple[Sampler, RecallMeter]:
    """A sampler of ``cfg`` (search approx) whose search is wrapped in a :class:`RecallMeter`."""
    sampler = Sampler(cfg, corpus).prepare()
    approx = sampler.exact_search(build=True)
    assert isinstance(approx, ApproxSearch)
    exact = Sampler(cfg.replace(search="exact"), corpus).prepare().exact_search(build=True)
    assert type(exact) is ExactSearch
    meter = RecallMeter(approx, exact)
    sampler.search_ = meter
    return sampler, meter


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc"])
@pytest.mark.parametrize("extra", [{}, {"max_ssd": 0.002}, {"include_reference": True}])
def test_approx_with_every_group_probed_is_exact_search(digits, cons, extra):
    cfg = _cfg(constraints=cons, n=5, seed=11, search="approx", nprobe=2**31 - 1, **extra)
    rec = generate(cfg, digits)
    _same_record(rec, generate(cfg.replace(search="exact"), digits))
    assert rec.config["search"] == "approx" and rec.config["nprobe"] == 2**31 - 1


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc"])
def test_approx_records_copy_training_pixels_and_record_their_parameters(digits, cons):
    cfg = _cfg(constraints=cons, n=6, seed=2, search="approx", nprobe=1)
    rec = generate(cfg, digits)
    assert check_provenance(rec, digits.train) == 0  # every pixel a copy of the pixel its provenance names
    assert rec.config["search"] == "approx" and rec.config["nprobe"] == 1
    assert GenerationConfig.from_dict(rec.config) == cfg  # the record regenerates itself
    _same_record(rec, generate(GenerationConfig.from_dict(rec.config), digits))
    grown = rec.order[rec.shell > 0]
    assert (rec.pool_size[:, grown[:, 0], grown[:, 1]] >= 1).all()
    if cons == "ssd,loc":  # locality holds: every source centre within R of the target (L-infinity)
        ys, xs = grown.T
        dy = np.abs(rec.source_y[:, ys, xs] - ys)
        dx = np.abs(rec.source_x[:, ys, xs] - xs)
        assert (np.maximum(dy, dx) <= cfg.radius).all()


def test_recall_meter_is_one_for_every_group_and_below_one_for_a_single_probe(digits):
    full_s, full = _meter(_cfg(constraints="ssd,loc", n=4, search="approx", nprobe=2**31 - 1), digits)
    full_s.run(np.arange(4))
    assert full.total > 0 and full.recall == 1.0 and full.mean_recall == 1.0
    one_s, one = _meter(_cfg(constraints="ssd,loc", n=4, search="approx", nprobe=1), digits)
    rec = one_s.run(np.arange(4))
    assert 0.0 < one.recall < 1.0  # one group per sample misses part of the epsilon-set on this corpus
    assert len(one.per_step) == 4 * int((rec.shell > 0).sum())
    assert rec.config["search"] == "approx"


def test_approx_draw_is_uniform_over_the_found_set(digits):
    """The draw is the exact search's draw over the found kept set: the kept windows' counts are the pool sizes."""
    cfg = _cfg(constraints="ssd,loc", n=4, search="approx", nprobe=2)
    sampler = Sampler(cfg, digits).prepare()
    approx = sampler.exact_search(build=True)
    approx.blank = None  # every sample through survivors (blank ones come from their kept set otherwise)
    seen = []
    original = approx.survivors

    def spy(q, t, refs, hints=None):
        out = original(q, t, refs, hints)
        _, keep, mult, _ = out
        seen.append((keep.numpy() * mult.numpy()).sum(0))
        return out
    approx.survivors = spy
    rec = sampler.run(np.arange(4))
    ys, xs = rec.order[rec.shell > 0].T
    # One call per sample and step (the approximate search searches one sample at a time).
    assert np.array_equal(np.concatenate(seen).reshape(len(ys), 4).T, rec.pool_size[:, ys, xs])


def test_centroids_are_the_means_of_their_groups(rng):
    imgs = (rng.integers(0, 4, (40, 8, 8)) * (rng.random((40, 8, 8)) < 0.4) * 80).astype(np.uint8)
    padded = np.pad(imgs, ((0, 0), (1, 1), (1, 1)), mode="edge")[:, None]
    ix = WindowIndex(**build_index(padded, 3, 8, 8))
    cen = build_centroids(ix, padded, 3, 8)["centroid"]
    assert cen.shape == (len(ix.group_off) - 1, 9)
    for g in range(0, len(cen), max(1, len(cen) // 20)):
        ids = np.arange(ix.leaf_off[ix.group_off[g]], ix.leaf_off[ix.group_off[g + 1]])
        cy, cx = divmod(int(ix.upos[ids[0]]), 8)
        win = padded[ix.rep[ids], 0, cy:cy + 3, cx:cx + 3].reshape(len(ids), -1).astype(np.float64)
        assert np.allclose(cen[g], win.mean(0), rtol=1e-5)


def test_nprobe_is_checked():
    from nps.errors import NPSError
    with pytest.raises(NPSError, match="--nprobe"):
        GenerationConfig(search="approx", nprobe=0).check()


@pytest.mark.slow
def test_approx_recall_on_mnist_subset():
    """A mid-size corpus (2,000 MNIST images, w=7, SSD + locality): epsilon-set recall on the sampler's canvases."""
    from nps.corpora import load_corpus
    corpus = load_corpus("mnist", 2000)
    cfg = GenerationConfig(corpus="mnist", subset=2000, n=4, seed=3, batch_size=4, constraints="ssd,loc",
                           search="approx", nprobe=64)
    sampler, meter = _meter(cfg, corpus)
    rec = sampler.run(np.arange(4))
    assert check_provenance(rec, corpus.train) == 0
    assert meter.recall >= 0.97, meter.recall  # measured 0.995 (pooled), 0.94 mean per step
    assert meter.approx.scanned < meter.approx.banded  # it searched a part of the band only


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc"])
def test_approx_serves_blank_samples_from_their_kept_set_and_draws_the_same(cons, monkeypatch):
    """All-zero targets probe the same groups, so the blank memo applies to the approximate search too:
    it serves samples and the records equal those of the per-sample path (500 MNIST images, nprobe 64)."""
    from nps.corpora import load_corpus
    from nps.engine import search_blank
    monkeypatch.setattr(search_blank.STORE, "disk", False)
    corpus = load_corpus("mnist", 500)
    cfg = GenerationConfig(corpus="mnist", subset=500, n=2, seed=3, batch_size=2, constraints=cons,
                           search="approx", nprobe=64)
    cfg = cfg.fit_canvas(corpus.image_shape, seed_size_given=False)
    records, served = [], []
    for memo in (True, False):
        search_blank.STORE.clear()
        monkeypatch.setattr(ApproxSearch, "memo_blank", memo)
        sampler = Sampler(cfg, corpus).prepare()
        records.append(sampler.run(np.arange(cfg.n)))
        served.append(sampler.search_.blank.served if sampler.search_.blank is not None else 0)
    assert served[0] > 0 and served[1] == 0
    _same_record(*records)
    search_blank.STORE.clear()


@pytest.mark.parametrize("argv", [["--cases", "nope"], ["--cases", ","], ["--batches", "4,x"], ["--batches", "0"],
                                  ["--partial", "b,nope"]])
def test_bench_case_and_batch_lists_are_checked(argv, capsys):
    from nps.cli import main
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].count(argv[0]) == 1


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc"])
def test_exact_search_screening_in_chunks_changes_nothing(digits, monkeypatch, cons):
    """Screened a few windows at a time (doubtful pixels read again) and its boxes bounded a few at a time,
    the exact search writes the same record."""
    import nps.engine.search as search_module
    import nps.engine.search_bounds as bounds_module
    cfg = _cfg(constraints=cons, n=4, seed=5, search="exact", eps=0.0)
    whole = generate(cfg, digits)
    monkeypatch.setattr(search_module, "SCREEN_CHUNK", 7)
    monkeypatch.setattr(bounds_module, "BOUND_CHUNK", 64)  # several chunks a step (5 took 27 s on ssd)
    _same_record(whole, generate(cfg, digits))
    _same_record(whole, generate(cfg.replace(search="brute"), digits))
    approx = cfg.replace(search="approx", nprobe=3)
    chunked = generate(approx, digits)
    monkeypatch.setattr(search_module, "SCREEN_CHUNK", 1 << 17)
    _same_record(chunked, generate(approx, digits))


@pytest.mark.parametrize("extra", [{}, {"max_ssd": 0.002}, {"include_reference": True}])
def test_approx_label_pool_with_every_group_probed_is_exact_search(digits, extra):
    """A label's shared pool through the approximate search: all groups probed, the exact (= brute) record."""
    cfg = _cfg(constraints="ssd,loc,ssl", label=3, n=5, seed=11, search="approx", nprobe=2**31 - 1, **extra)
    rec = generate(cfg, digits)
    _same_record(rec, generate(cfg.replace(search="exact"), digits))
    _same_record(rec, generate(cfg.replace(search="brute"), digits))
    assert (rec.source_label == 3).all()


def test_approx_label_pool_probes_only_the_pools_groups_and_meters_recall(digits):
    cfg = _cfg(constraints="ssd,ssl", label=5, n=4, search="approx", nprobe=1)
    sampler, meter = _meter(cfg, digits)
    probed, original = [], meter.approx.probed

    def spy(q, t):
        out, member = original(q, t)
        probed.append(bool(meter.approx.live["groups"][out].all()) and len(out) < q.n_groups
                      and (member is None or bool((member.sum(0) == 1).all())))  # nprobe 1: one group each
        return out, member
    meter.approx.probed = spy
    rec = sampler.run(np.arange(4))
    assert probed and all(probed)  # a part of the band, and only groups holding a window of the pool
    assert check_provenance(rec, digits.train) == 0 and (rec.source_label == 5).all()
    assert meter.total > 0 and 0.0 < meter.recall <= 1.0
    assert meter.approx.images is not None and meter.exact.images is not None  # both searched the label's pool
    full_s, full = _meter(cfg.replace(nprobe=2**31 - 1), digits)
    full_rec = full_s.run(np.arange(4))
    assert full.recall == 1.0
    _same_record(full_rec, generate(cfg.replace(search="brute"), digits))


@pytest.mark.parametrize("cons", ["ssd", "ssd,loc"])
def test_approx_records_do_not_depend_on_the_batch(digits, cons, monkeypatch):
    """Each sample searches its own probed groups: the same record in any batch size (and with the meter)."""
    cfg = _cfg(constraints=cons, n=6, seed=4, search="approx", nprobe=2)
    one = generate(cfg.replace(batch_size=1), digits)
    for batch in (3, 6):
        _same_record(one, generate(cfg.replace(batch_size=batch), digits))
    sampler, meter = _meter(cfg.replace(batch_size=6), digits)
    out = sampler.run(np.arange(6))
    assert meter.total > 0
    _same_record(out, one)
    # Searched together (the default parts of 4; here 6, and each sample alone), each sample masked to its
    # own probes: the same record.  Without the mask the batch's probes would pool: some sample then
    # draws otherwise (so the mask is what keeps records batch-independent).
    for together in (6, 1):
        monkeypatch.setattr(ApproxSearch, "samples_together", together)
        _same_record(generate(cfg.replace(batch_size=6), digits), one)
    monkeypatch.setattr(ApproxSearch, "samples_together", 6)
    monkeypatch.setattr(ApproxSearch, "_probes", lambda self, ids, kind: None)
    pooled = generate(cfg.replace(batch_size=6), digits)
    assert not np.array_equal(pooled.source_index, one.source_index)


def test_exact_search_in_parts_is_the_batch_searched_together(digits, monkeypatch):
    cfg = _cfg(constraints="ssd,loc", n=8, seed=6, batch_size=8, search="exact")
    parts = generate(cfg, digits)  # parts of 4
    monkeypatch.setattr(ExactSearch, "samples_together", 8)
    _same_record(parts, generate(cfg, digits))


def test_probes_map_groups_leaves_and_windows_to_the_samples_probing_them(digits):
    """``_probes``: a leaf or window belongs to the samples that probe its group, by the index's offsets."""
    approx = Sampler(_cfg(constraints="ssd,loc", search="approx", nprobe=3), digits).prepare().exact_search(build=True)
    ix = approx.index
    G = len(ix.group_off) - 1
    rng = np.random.default_rng(5)
    groups = np.sort(rng.choice(G, min(G, 40), replace=False))
    member = rng.random((len(groups), 3)) < 0.4
    assert approx._probes(groups, "groups") is None  # no search in progress: every sample searches all
    approx.searching(groups, member)
    try:
        assert np.array_equal(approx._probes(groups, "groups").numpy(), member)
        leaves = np.concatenate([np.arange(ix.group_off[g], ix.group_off[g + 1]) for g in groups])
        owner = np.concatenate([[i] * int(ix.group_off[g + 1] - ix.group_off[g]) for i, g in enumerate(groups)])
        assert np.array_equal(approx._probes(leaves, "leaves").numpy(), member[owner])
        windows = np.concatenate([np.arange(ix.leaf_off[leaf], ix.leaf_off[leaf + 1]) for leaf in leaves])
        w_owner = np.concatenate([[owner[i]] * int(ix.leaf_off[leaf + 1] - ix.leaf_off[leaf])
                                  for i, leaf in enumerate(leaves)])
        assert np.array_equal(approx._probes(windows, "windows").numpy(), member[w_owner])
        # A window outside a sample's probed groups is not drawable by that sample.
        q_sampler = Sampler(_cfg(constraints="ssd,loc", search="approx", nprobe=3), digits).prepare()
        geo = q_sampler._geometries()[5]
        q = StepQuery(ix, geo.centres, q_sampler._exact_weights(geo), digits.image_shape[1])
        mult = approx._multiplicities(windows, q, np.full(3, -1, np.int64)).numpy()
        assert (mult[~member[w_owner]] == 0).all()
        counts = np.broadcast_to(ix.count[windows][:, None], mult.shape)
        assert np.array_equal(mult[member[w_owner]], counts[member[w_owner]])
    finally:
        approx.searching(None, None)
    assert approx._probes(groups, "groups") is None


def test_a_samples_ranking_does_not_depend_on_the_rest_of_its_part(digits):
    """The probe ranking row by row: the bits of searching the sample alone (a product's rounding may depend
    on its shape: one row against four differ in most elements on this machine)."""
    sampler = Sampler(_cfg(constraints="ssd,loc", search="approx", nprobe=3), digits).prepare()
    approx = sampler.exact_search(build=True)
    rng = np.random.default_rng(2)
    for step in (3, 20, 40):
        geo = sampler._geometries()[step]
        q = StepQuery(approx.index, geo.centres, sampler._exact_weights(geo), digits.image_shape[1])
        t = torch.from_numpy(rng.integers(0, 256, (4, len(q.dims))).astype(np.float64))
        part = approx.ranking(q, t)
        assert part.shape == (4, q.n_groups)
        for b in range(4):
            assert torch.equal(part[b], approx.ranking(q, t[b:b + 1])[0])
