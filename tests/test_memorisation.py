"""Memorisation ratios: an exact training copy is flagged, novel images are not."""

from __future__ import annotations

import numpy as np
import pytest

from nps.analysis.memorisation import THRESHOLD, memorisation, nn_ratio
from nps.errors import NPSError


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NPS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "nps-cache"))


def test_nn_ratio_matches_brute_force():
    rng = np.random.default_rng(0)
    db = rng.random((200, 12)).astype(np.float32)
    q = rng.random((30, 12)).astype(np.float32)
    ratio, d1, nearest = nn_ratio(q, db)
    d = np.linalg.norm(q[:, None].astype(np.float64) - db[None].astype(np.float64), axis=2)
    srt = np.sort(d, axis=1)
    assert np.allclose(d1, srt[:, 0]) and np.allclose(ratio, srt[:, 0] / srt[:, 1])
    assert np.array_equal(nearest, d.argmin(1))


def test_exact_copy_has_ratio_zero_even_with_large_norms():
    rng = np.random.default_rng(1)
    db = rng.random((100, 784)).astype(np.float32)  # |x|^2 ~ 260: float32 round-off is visible
    ratio, d1, nearest = nn_ratio(db[[7, 42]], db)
    assert ratio.tolist() == [0.0, 0.0] and d1.tolist() == [0.0, 0.0] and nearest.tolist() == [7, 42]
    with pytest.raises(NPSError):
        nn_ratio(db[:1, :10], db)


def test_memorisation_flags_a_training_copy_not_a_test_image():
    from nps.corpora import load_corpus
    from nps.encoders import get_encoder
    corpus = load_corpus("digits")
    samples = np.stack([corpus.train[5], corpus.test[0], corpus.test[1]])
    rep = memorisation(samples, corpus, encoder=get_encoder("pca", corpus), n_real=100)
    assert rep.exact_copies.tolist() == [True, False, False]
    assert rep.ratios["pixels"][0] == 0.0 and rep.ratios["pixels"][1:].min() > THRESHOLD
    assert rep.nearest["pixels"][0] == 5
    assert rep.ratios["embedding"][0] < THRESHOLD
    assert rep.fraction_below("pixels") == pytest.approx(1 / 3)
    assert rep.fraction_below("pixels", real=True) < 0.2  # test images are not copies
    d = rep.to_dict()
    assert d["exact_copies"] == 1 and set(d) >= {"pixels", "embedding", "threshold"}
    with pytest.raises(NPSError):
        memorisation(np.zeros((2, 28, 28), np.uint8), corpus)
