"""FID, KID, precision/recall and density/coverage: known answers on synthetic and MNIST features."""

from __future__ import annotations

import numpy as np
import pytest

from nps.errors import NPSError
from nps.metrics.distribution import DC_K, fid, kid, prdc
from nps.metrics.neighbours import NeighbourIndex, pairwise_within
from nps.metrics.scores import feature_stats, fid_from_features, frechet_distance


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NPS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "nps-cache"))


@pytest.fixture(scope="module")
def mnist_features():
    """Shipped-classifier features of 1000 random train and 1000 random test MNIST images."""
    from nps.corpora import load_corpus
    from nps.metrics.classifier import load_classifier
    corpus, clf = load_corpus("mnist"), load_classifier("mnist")
    rng = np.random.default_rng(0)
    # random order, not sorted: MNIST's test split is two writer populations one after the other
    tr = rng.choice(len(corpus.train), 1000, replace=False)
    te = rng.choice(len(corpus.test), 1000, replace=False)
    return corpus, clf, tr, te, clf.features(corpus.train[tr]), clf.features(corpus.test[te])


def test_neighbour_index_matches_brute_force_and_radius_skips_self():
    rng = np.random.default_rng(0)
    db, q = rng.random((300, 9)), rng.random((40, 9))
    d, i = NeighbourIndex(db).search(q, 4, chunk=16)  # several chunks
    full = np.linalg.norm(q[:, None] - db[None], axis=2)
    assert d.shape == i.shape == (40, 4)
    assert np.array_equal(i, np.argsort(full, 1)[:, :4]) and np.allclose(d, np.sort(full, 1)[:, :4])
    own = np.sort(np.linalg.norm(db[:, None] - db[None], axis=2), 1)
    assert np.allclose(NeighbourIndex(db).kth_radius(3), own[:, 3])
    inside = pairwise_within(q, db, own[:, 3], chunk=7)
    assert np.array_equal(inside, full <= own[None, :, 3])
    with pytest.raises(NPSError):
        NeighbourIndex(db).search(q, 301)


def test_prdc_identical_gaussians_near_their_expectations_disjoint_ones_zero():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8))
    m = prdc(fake, real)
    # Naeem et al.: E[density] = 1 and E[coverage] = 1 - 1/2^k for equal sizes of one distribution
    assert m["density"].value == pytest.approx(1.0, abs=0.1)
    assert m["coverage"].value == pytest.approx(1 - 0.5 ** DC_K, abs=0.03)
    assert m["precision"].value > 0.8 and m["recall"].value > 0.8
    far = prdc(fake + 50.0, real)
    assert all(e.value == 0.0 for e in far.values())
    for e in m.values():
        assert e.low <= e.value <= e.high and e.n == 1000


def test_fid_resamples_use_the_same_formula_as_scores():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 6)), rng.normal(size=(400, 6)) + 0.5
    est = fid(a, b, resamples=50)
    assert est.value == pytest.approx(fid_from_features(a, b))
    assert est.low <= est.value <= est.high
    # the weighted-count resample equals the plain formula on the repeated rows
    idx = np.random.default_rng(0).integers(0, 300, 300)
    plain = frechet_distance(*feature_stats(a[idx]), *feature_stats(b))
    one = fid(a[idx], b, resamples=1)
    assert one.value == pytest.approx(plain, rel=1e-9)


def test_real_test_images_against_train_are_near_ideal(mnist_features):
    _, _, _, _, tr, te = mnist_features
    m = prdc(te[:500], tr[:500])
    assert m["precision"].value > 0.85 and m["recall"].value > 0.8
    assert m["coverage"].value > 0.9 and m["density"].value == pytest.approx(1.0, abs=0.2)


def test_copied_training_images_have_full_precision_and_low_coverage(mnist_features):
    corpus, clf, tr_rows, _, tr, _ = mnist_features
    copies = clf.features(corpus.train[np.tile(tr_rows[500:510], 50)])  # 10 images, 50 copies each
    m = prdc(copies, tr[:500])
    assert m["precision"].value >= 0.8  # real images: on the real manifold (about 93 % of them are)
    assert m["coverage"].value < 0.15 and m["recall"].value < 0.05  # ... but only 10 of its points


def test_shuffled_pixels_give_low_precision_blur_gives_low_coverage(mnist_features):
    from scipy.ndimage import gaussian_filter
    corpus, clf, _, te_rows, tr, te = mnist_features
    x = corpus.test[te_rows[:500]]
    real = prdc(te[:500], tr[:500])
    shuffled = np.random.default_rng(3).permuted(x.reshape(500, -1), axis=1).reshape(x.shape)
    m = prdc(clf.features(shuffled), tr[:500])
    # Noise lands near a few outlying real images whose 3-NN balls are large, so precision
    # does not reach 0 (Naeem et al.'s reason for density): far below real images, though.
    assert m["precision"].high < real["precision"].low - 0.25
    assert m["density"].high < 0.35 and m["coverage"].high < 0.1
    # Blur collapses the digits onto one small region: almost no real image is covered.
    # (With classifier features that region sits inside the balls of a few outlying real
    # images, so precision stays high there: recall and coverage are what see blur.)
    blurred = np.stack([gaussian_filter(i.astype(np.float64), 2.0) for i in x]).round().astype(np.uint8)
    b = prdc(clf.features(blurred), tr[:500])
    assert b["coverage"].high < 0.1 and b["recall"].high < 0.05


def test_kid_near_zero_for_one_distribution_positive_for_a_shift(mnist_features):
    corpus, clf, _, te_rows, _, te = mnist_features
    shifted = clf.features(np.roll(corpus.test[te_rows[500:]], 3, axis=2))  # 3 px to the right
    same = kid(te[:500], te[500:])
    moved = kid(shifted, te[:500])
    assert same.low < 0 < same.high  # unbiased: two halves of one distribution straddle 0
    assert moved.low > 0 and moved.value > 5 * abs(same.value)
    assert abs(kid(te[:500], te[:500]).value) < 0.25 * moved.value  # a set against itself
    assert fid(shifted, te[:500]).low > fid(te[:500], te[500:]).high


def test_kid_subset_estimator_above_the_subset_size():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(120, 5)), rng.normal(size=(130, 5)) + 1.0
    sub = kid(a, b, subset_size=60, subsets=20, resamples=50)
    full = kid(a, b, resamples=50)
    assert sub.low <= sub.value <= sub.high and sub.value == pytest.approx(full.value, rel=0.2)


def test_metrics_are_deterministic_for_a_seed(mnist_features):
    _, _, _, _, tr, te = mnist_features
    a = prdc(te[:200], tr[:200], seed=7)
    assert a == prdc(te[:200], tr[:200], seed=7)
    assert kid(te[:200], tr[:300], seed=7) == kid(te[:200], tr[:300], seed=7)
    assert fid(te[:200], tr, seed=7) == fid(te[:200], tr, seed=7)
    assert fid(te[:200], tr, seed=7).low != fid(te[:200], tr, seed=8).low


def test_intervals_narrow_as_n_grows(mnist_features):
    _, _, _, _, tr, te = mnist_features
    small, large = prdc(te[:100], tr[:100]), prdc(te[:800], tr[:800])
    assert large["precision"].width < small["precision"].width
    assert large["density"].width < small["density"].width
    assert fid(te[:800], tr).width < fid(te[:100], tr).width
    with pytest.raises(NPSError):
        prdc(te[:3], tr[:100])
