"""Memorisation (pixel space, 1st-percentile threshold) and reference copying, with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from nps.errors import NPSError
from nps.metrics.copying import (
    memorisation_share,
    memorisation_threshold,
    nearest_train_distance,
    pixels,
    reference_copying,
)
from nps.metrics.neighbours import NeighbourIndex


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NPS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "nps-cache"))


@pytest.fixture(scope="module")
def mnist10k():
    """A 10k-image stratified MNIST subset (the memory) and a faiss index over its pixels."""
    from nps.corpora import load_corpus
    corpus = load_corpus("mnist", subset=10000)
    return corpus, NeighbourIndex(pixels(corpus.train))


def test_real_test_images_are_memorised_at_the_rate_that_defines_the_threshold(mnist10k):
    corpus, index = mnist10k
    perm = np.random.default_rng(0).permutation(len(corpus.test))
    tau, used = memorisation_threshold(corpus, index, np.sort(perm[:1000]))
    assert used == 1000 and tau > 0
    assert memorisation_threshold(corpus, index, np.sort(perm[:1000]))[0] == tau  # cached, identical
    d, _ = nearest_train_distance(corpus.test[perm[1000:3000]], index)  # disjoint test images
    share = memorisation_share(d, tau, seed=0)
    # 1 % by definition, up to the binomial noise of 2000 images (sd 0.22 %) and of the percentile
    assert 0.002 < share.value < 0.025 and share.low <= 0.01 <= share.high and share.n == 2000


def test_copied_training_images_are_all_memorised(mnist10k):
    corpus, index = mnist10k
    tau, _ = memorisation_threshold(corpus, index)
    rows = np.random.default_rng(1).choice(len(corpus.train), 64, replace=False)
    copies = corpus.train[rows].copy()
    d, nearest = nearest_train_distance(copies, index)
    assert np.array_equal(nearest, rows) and d.max() == 0.0
    assert memorisation_share(d, tau).value == 1.0
    copies[:, 10:12, 10:12] = np.clip(copies[:, 10:12, 10:12].astype(int) + 3, 0, 255)  # near-copies
    assert memorisation_share(nearest_train_distance(copies, index)[0], tau).value == 1.0
    assert memorisation_share(np.zeros(4), 0.0).value == 1.0  # exact copies count even when tau is 0


def test_reference_copying_separates_copies_from_unrelated_samples(mnist10k):
    corpus, index = mnist10k
    rng = np.random.default_rng(2)
    refs = rng.choice(len(corpus.train), 40, replace=False)
    copies = reference_copying(corpus.train[refs], refs, corpus.train, index)
    assert copies["own_nearest"].value == 1.0 and copies["median_ratio"].value == 0.0
    others = reference_copying(corpus.test[:40], refs, corpus.train, index)
    assert others["own_nearest"].value < 0.1 and others["median_ratio"].value > 1.0
    assert others["ratio_quantiles"]["10"] <= others["ratio_quantiles"]["50"] <= others["ratio_quantiles"]["90"]
    mixed = reference_copying(np.concatenate([corpus.train[refs[:20]], corpus.test[:20]]), refs, corpus.train, index)
    assert mixed["own_nearest"].value == pytest.approx(0.5, abs=0.05)
    assert mixed["own_nearest"].low < 0.5 < mixed["own_nearest"].high


def test_reference_copying_skips_missing_references_and_rejects_bad_ones(mnist10k):
    corpus, index = mnist10k
    refs = np.array([3, -1, 5, -1])
    out = reference_copying(corpus.train[[3, 0, 5, 0]], refs, corpus.train, index)
    assert out["n"] == 2 and out["own_nearest"].value == 1.0
    assert reference_copying(corpus.train[:2], np.array([-1, -1]), corpus.train, index) is None
    with pytest.raises(NPSError, match="outside"):
        reference_copying(corpus.train[:1], np.array([len(corpus.train)]), corpus.train, index)
