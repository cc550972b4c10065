"""The whole-corpus window index and its bounds (nps.engine.search_index, nps.engine.search), and a label's
shared pool through the same index (nps.engine.search_pool): bit-identical to the dense scan."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nps.engine.search import direct_distance
from nps.engine.search_bounds import bounds_of, box_bounds, rows
from nps.engine.search_index import build_index


def _padded(rng: np.random.Generator, n: int = 30, size: int = 8, half: int = 1) -> np.ndarray:
    # Zero-inflated like MNIST, with repeats, so de-duplication has work to do.
    imgs = (rng.integers(0, 4, (n, size, size)) * (rng.random((n, size, size)) < 0.4) * 80).astype(np.uint8)
    imgs[5] = imgs[3]
    return np.pad(imgs, ((0, 0), (half, half), (half, half)), mode="edge")[:, None]


def test_index_maps_every_window_to_its_unique_copy(rng):
    padded, w, size = _padded(rng), 3, 8
    ix = build_index(padded, w, size, size)
    n = padded.shape[0]
    for p in range(size * size):
        cy, cx = divmod(p, size)
        windows = padded[:, 0, cy:cy + w, cx:cx + w].reshape(n, -1)
        uid = ix["uid"][p]
        lo, hi = ix["pos_off"][p], ix["pos_off"][p + 1]
        assert ((uid >= lo) & (uid < hi)).all()
        assert (ix["upos"][lo:hi] == p).all()
        rep = ix["rep"][uid]
        assert np.array_equal(padded[rep, 0, cy:cy + w, cx:cx + w].reshape(n, -1), windows)  # same window
        assert (rep <= np.arange(n)).all()  # the representative is the first occurrence
        assert np.array_equal(np.bincount(uid - lo, minlength=hi - lo), ix["count"][lo:hi])
        assert len(np.unique(windows, axis=0)) == hi - lo  # unique windows are unique
    # Every leaf's box holds its windows; every group's box holds its leaves.
    for leaf in range(len(ix["leaf_lo"])):
        ids = np.arange(ix["leaf_off"][leaf], ix["leaf_off"][leaf + 1])
        p = ix["upos"][ids[0]]
        assert (ix["upos"][ids] == p).all()
        cy, cx = divmod(int(p), size)
        win = padded[ix["rep"][ids], 0, cy:cy + w, cx:cx + w].reshape(len(ids), -1)
        assert (win >= ix["leaf_lo"][leaf]).all() and (win <= ix["leaf_hi"][leaf]).all()
    for g in range(len(ix["group_lo"])):
        leaves = slice(ix["group_off"][g], ix["group_off"][g + 1])
        assert (ix["leaf_lo"][leaves] >= ix["group_lo"][g]).all()
        assert (ix["leaf_hi"][leaves] <= ix["group_hi"][g]).all()


def test_box_bound_is_a_lower_bound_and_direct_distance_is_the_definition(rng):
    s = rng.integers(0, 256, (50, 6)).astype(np.uint8)
    t = rng.integers(0, 256, (3, 6)).astype(np.float64)
    w = rng.random(6)
    lo, hi = s[:25].min(0, keepdims=True), s[:25].max(0, keepdims=True)
    bound = box_bounds(lo, hi, torch.from_numpy(t).float(), torch.from_numpy(w).float(), upper=False)[0].numpy()[0]
    exact = ((t[None] - s[:25, None].astype(np.float64)) ** 2 * w).sum(-1)  # (25,3)
    assert (bound <= exact.min(0) * (1 + 1e-6)).all()
    d = direct_distance(torch.from_numpy(s[:25].astype(np.float64)), torch.from_numpy(t[[0] * 25]),
                        torch.from_numpy(w), 7.0).numpy()
    assert np.allclose(d, exact[:, 0] / 7.0, rtol=1e-14)
    # The same pair gives the same bits whatever else is in the batch (no shape-dependent rounding).
    one = direct_distance(torch.from_numpy(s[3:4].astype(np.float64)), torch.from_numpy(t[:1]),
                          torch.from_numpy(w), 7.0).numpy()
    assert one[0] == d[3]


@pytest.mark.parametrize("batch", [3, 40])  # the per-sample and the per-dimension loop (B > K)
def test_box_bounds_enclose_every_window_of_the_box(rng, batch):
    """Both bounds hold for every window of each box, and the upper one is 0 exactly when the box is
    the target (so an accepted zero box really scores 0)."""
    K = 6
    s = rng.choice(np.array([0, 0, 0, 7, 255], np.uint8), (40, K))
    t = rng.choice(np.array([0, 0, 7, 255], np.float64), (batch, K))
    t[0] = 0
    w = rng.random(K) + 0.01
    boxes = [s[i:i + 4] for i in range(0, 40, 4)] + [np.zeros((3, K), np.uint8)]
    lo = np.stack([b.min(0) for b in boxes])
    hi = np.stack([b.max(0) for b in boxes])
    low, high = box_bounds(lo, hi, torch.from_numpy(t).float(), torch.from_numpy(w).float())
    for i, b in enumerate(boxes):
        exact = ((t[None] - b[:, None].astype(np.float64)) ** 2 * w).sum(-1)  # (n,B)
        assert (low[i].numpy() <= exact.min(0) * (1 + 1e-6)).all()
        assert (high[i].numpy() >= exact.max(0) * (1 - 1e-6)).all()
        assert ((high[i].numpy() == 0) == (exact.max(0) == 0)).all()
    assert high[-1, 0] == 0  # the all-zero box against the blank target
    lower_only = box_bounds(lo, hi, torch.from_numpy(t).float(), torch.from_numpy(w).float(), upper=False)[0]
    assert torch.equal(low, lower_only)



def test_byte_bounds_are_the_float_bounds_bit_for_bit(rng):
    """Byte targets take the uint8 path (gaps formed without wrapping); its bounds equal the float32
    formulas' bit for bit, at the extremes 0 and 255 too, and non-byte targets take the float path."""
    from nps.engine.search_bounds import _box_bounds_float, as_bytes
    K = 12
    lo = rng.choice(np.array([0, 1, 128, 254, 255], np.uint8), (300, K))
    hi = np.maximum(lo, rng.choice(np.array([0, 1, 127, 255], np.uint8), (300, K)))
    t = torch.from_numpy(rng.choice(np.array([0, 1, 128, 255], np.float32), (4, K)))
    w = torch.rand(K) + 0.01
    assert as_bytes(t).dtype == torch.uint8
    fast = box_bounds(lo, hi, as_bytes(t), w)
    slow = _box_bounds_float(lo, hi, t, w, True, True)
    assert torch.equal(fast[0], slow[0]) and torch.equal(fast[1], slow[1])
    assert (fast[0] <= fast[1]).all() and (fast[0] > 0).any()
    half = t + 0.5  # not bytes: the float path, whose gaps are not integers
    assert as_bytes(half).dtype == torch.float32
    assert torch.equal(box_bounds(lo, hi, as_bytes(half), w)[0], _box_bounds_float(lo, hi, half, w, True, True)[0])
    for odd in (-1.0, 256.0, 0.5, float("nan"), float("inf")):  # none of these converts back to itself
        assert as_bytes(torch.tensor([[odd, 1.0]])).dtype == torch.float32
    assert torch.equal(as_bytes(torch.tensor([[0.0, 255.0, -0.0]])), torch.tensor([[0, 255, 0]], dtype=torch.uint8))


@pytest.mark.parametrize("upper", [False, True])
def test_bounds_in_chunks_are_the_bounds_of_the_rows(rng, monkeypatch, upper):
    """``bounds_of`` reads and bounds the boxes a chunk at a time: the same (n,B) bounds as one call on the
    gathered rows, for chunks that divide the boxes and chunks that do not, and (0,B) for no box."""
    import nps.engine.search_bounds as bounds_module
    D, dims = 9, np.array([0, 2, 3, 8])
    lo = rng.integers(0, 200, (50, D)).astype(np.uint8)
    hi = np.maximum(lo, rng.integers(0, 256, (50, D))).astype(np.uint8)
    ids = rng.permutation(50)[:37]
    t = torch.from_numpy(rng.integers(0, 256, (3, len(dims))).astype(np.float32))
    w = torch.rand(len(dims))
    whole = box_bounds(rows(lo, ids, dims), rows(hi, ids, dims), t, w)[1 if upper else 0]
    for chunk in (1, 5, 37, 1 << 14):
        monkeypatch.setattr(bounds_module, "BOUND_CHUNK", chunk)
        assert torch.equal(bounds_of(lo, hi, ids, dims, t, w, upper=upper), whole)
    assert bounds_of(lo, hi, ids[:0], dims, t, w, upper=upper).shape == (0, 3)

# ----------------------------------------------------------------------------- a shared (label) pool through the index

SMALL = dict(corpus="digits", window=3, seed_size=2, k=12, batch_size=4)
_RECORD_KEYS = ("images", "source_index", "source_y", "source_x", "source_label", "pool_size", "relaxed")


def _cfg(**kw):
    from nps.config import GenerationConfig
    return GenerationConfig(**{**SMALL, "n": 6, "seed": 1, "label": 3, "constraints": "ssd,loc,ssl",
                               "search": "exact", **kw})


def _same_record(a, b) -> None:
    for key in _RECORD_KEYS:
        assert np.array_equal(getattr(a, key), getattr(b, key)), key


@pytest.fixture
def pooled(monkeypatch) -> list[int]:
    """The pool sizes (P) of every shared-pool step the index served (spy on ExactSearch.use_pool)."""
    import nps.engine.search as search_module
    seen: list[int] = []
    original = search_module.ExactSearch.use_pool

    def spy(self, subset):
        if subset is not None:
            seen.append(len(subset))
        return original(self, subset)
    monkeypatch.setattr(search_module.ExactSearch, "use_pool", spy)
    return seen


@pytest.mark.parametrize("cons", ["ssd,ssl", "ssd,loc,ssl"])
@pytest.mark.parametrize("extra", [{}, {"include_reference": True}, {"max_ssd": 0.002}, {"eps": 0.0},
                                   {"window": 5, "seed_size": 3}, {"label": 0, "seed": 4}])
def test_label_pool_exact_search_equals_brute_force(digits, pooled, cons, extra):
    """A label's pool through the window index gives the dense scan's record, bit for bit."""
    from nps.engine.sampler import generate
    cfg = _cfg(constraints=cons, **extra)
    exact = generate(cfg, digits)
    steps = int((exact.shell > 0).sum())
    assert pooled == [int((digits.train_labels == cfg.label).sum())] * (2 * steps)  # both batches, every step
    _same_record(exact, generate(cfg.replace(search="brute"), digits))
    assert (exact.source_label == cfg.label).all()
    if "max_ssd" in extra:
        assert exact.relaxed.any()  # the ceiling's fall-back is exercised


@pytest.mark.parametrize("include_reference", [False, True])
def test_label_pool_reference_exclusion(digits, pooled, include_reference):
    """The reference is excluded by its slot in the pool; one of another class is in no slot."""
    from nps.engine.sampler import generate
    inside = int(np.flatnonzero(digits.train_labels == 3)[5])
    outside = int(np.flatnonzero(digits.train_labels == 8)[0])
    for ref in (inside, outside):
        cfg = _cfg(n=5, reference=ref, include_reference=include_reference)
        exact = generate(cfg, digits)
        assert pooled
        _same_record(exact, generate(cfg.replace(search="brute"), digits))
        grown = exact.order[exact.shell > 0]
        src = exact.source_index[:, grown[:, 0], grown[:, 1]]
        if ref == outside or not include_reference:
            assert (src != ref).all()  # never a source beyond the seed (the class's pool lacks it, or it is excluded)
        pooled.clear()


def test_label_pool_exact_search_equals_plain_reference(digits):
    from nps.engine.reference_impl import generate_plain
    from nps.engine.sampler import generate
    for cfg in (_cfg(n=3, seed=9, window=5, seed_size=3), _cfg(n=3, seed=2, constraints="ssd,ssl")):
        rec, plain = generate(cfg, digits), generate_plain(cfg, digits)
        for key in ("images", "source_index", "source_y", "source_x", "pool_size"):
            assert np.array_equal(getattr(rec, key), plain[key]), key


def test_label_pool_pruning_and_chunked_screening_change_nothing(digits, monkeypatch):
    import nps.engine.search as search_module
    from nps.engine.sampler import generate
    cfg = _cfg(n=4, seed=5)
    pruned = generate(cfg, digits)
    chunk = search_module.SCREEN_CHUNK
    monkeypatch.setattr(search_module, "SCREEN_CHUNK", 7)
    _same_record(pruned, generate(cfg, digits))
    monkeypatch.setattr(search_module, "SCREEN_CHUNK", chunk)
    original = search_module.ExactSearch.__init__

    seen = []

    def unpruned(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.prune = False
        seen.append(self)
    monkeypatch.setattr(search_module.ExactSearch, "__init__", unpruned)
    _same_record(pruned, generate(cfg, digits))
    assert seen and seen[-1].images is not None  # the unpruned search really ran, on the label's pool


def test_label_pool_completion_equals_brute_force(digits, pooled):
    from nps.engine.sampler import complete
    image = digits.test[3]
    known = np.zeros((8, 8), bool)
    known[2:6, :] = True
    cfg = _cfg(n=3)
    _same_record(complete(cfg, digits, image, known), complete(cfg.replace(search="brute"), digits, image, known))
    assert pooled


def test_label_pool_under_global_minimum_and_k_nn_pools_keep_the_dense_scan(digits, pooled):
    from nps.engine.sampler import Sampler, generate
    cfg = _cfg(n=4, ssd_global_min=True)
    assert Sampler(cfg, digits).exact_search() is None  # its threshold needs the whole corpus's minimum
    _same_record(generate(cfg, digits), generate(cfg.replace(search="brute"), digits))
    assert Sampler(_cfg(label=None), digits).exact_search() is None  # per-sample k-NN pools
    assert not pooled


def test_pool_counts_are_the_pools_multiplicities(rng):
    from nps.config import GenerationConfig
    from nps.engine.search import ExactSearch
    from nps.engine.search_index import WindowIndex
    from nps.engine.search_pool import KEEP, pool_counts
    padded, w, size = _padded(rng, n=600), 3, 8  # several groups per position
    ix = WindowIndex(**build_index(padded, w, size, size))
    search = ExactSearch(ix, torch.from_numpy(padded), GenerationConfig(window=w), size)
    subset = np.array([0, 3, 5, 6, 11, 29, 450])
    count, images, live = pool_counts(search, subset)
    assert np.array_equal(images, np.isin(np.arange(padded.shape[0]), subset))
    for p in range(size * size):
        lo, hi = ix.pos_off[p], ix.pos_off[p + 1]
        assert np.array_equal(count[lo:hi], np.bincount(ix.uid[p, subset] - lo, minlength=hi - lo))
    assert count.sum() == len(subset) * size * size
    holds = np.add.reduceat(count.astype(np.int64), ix.leaf_off[:-1])  # windows of the pool per leaf
    assert np.array_equal(live["leaves"], holds > 0)
    assert np.array_equal(live["groups"], np.add.reduceat(holds, ix.group_off[:-1]) > 0)
    assert not live["groups"].all()  # some groups hold none of the pool's windows: skipped
    assert pool_counts(search, subset)[0] is count  # kept, not recomputed
    for k in range(KEEP + 1):
        pool_counts(search, np.arange(k + 1))
    assert len(search.pools) == KEEP
    whole = search.use_pool(subset).use_pool(None)
    assert whole.count is ix.count and whole.images is None and whole.live is None
    with pytest.raises(ValueError, match="ascending"):
        pool_counts(search, np.array([4, 2]))


def test_label_pool_exact_search_on_mnist_subset_equals_brute_force():
    """A mid-size corpus (2,000 MNIST images, 28x28, w=7): a label's pool through the index against the dense scan."""
    from nps.config import GenerationConfig
    from nps.corpora import load_corpus
    from nps.engine.sampler import generate
    corpus = load_corpus("mnist", 2000)
    cfg = GenerationConfig(corpus="mnist", subset=2000, n=4, seed=3, batch_size=4, constraints="ssd,loc,ssl",
                           label=3, search="exact")
    _same_record(generate(cfg, corpus), generate(cfg.replace(search="brute"), corpus))


@pytest.mark.parametrize("kept", [1, 2, 3, 40])  # the id-compare path (<= FEW_KEPT) and the mask path
def test_source_is_the_rank_th_image_holding_a_kept_window(rng, kept):
    """:meth:`KeptDraw.source` picks the rank-th image (by id) whose window at the position is kept,
    skipping the reference and images outside the pool, whichever way it finds them."""
    from types import SimpleNamespace

    from nps.engine.search_draw import KeptDraw
    N, U, first = 500, 60, 1000
    uid = np.zeros((3, N), np.int32)
    uid[1] = first + rng.integers(0, U, N)
    draw = KeptDraw()
    draw.index = SimpleNamespace(uid=uid, pos_off=np.array([0, first, first + U, first + U], np.int64))
    allowed = np.zeros(U, bool)
    allowed[rng.choice(U, kept, replace=False)] = True
    for pool in (None, rng.random(N) < 0.7):
        draw.images = pool
        holders = allowed[uid[1] - first] & (True if pool is None else pool)
        ref = int(np.flatnonzero(holders)[0])
        for r in (-1, ref):
            expect = holders.copy()
            if r >= 0:
                expect[r] = False
            ids = np.flatnonzero(expect)
            assert [draw.source(1, allowed, r, rank) for rank in range(1, len(ids) + 1)] == ids.tolist()
