"""Scale: approximate semantic pools above a size threshold, and the scaling study command."""

from __future__ import annotations

import numpy as np

from nps import retrieval
from nps.config import GenerationConfig
from nps.record import check_provenance
from nps.sampler import generate

CFG = GenerationConfig(corpus="digits", n=4, seed=2, window=3, seed_size=2, k=12, batch_size=2, encoder="pca")


def test_pools_use_ivf_from_the_threshold_and_the_record_says_so(digits, monkeypatch):
    exact = generate(CFG, digits)
    assert exact.config["pool_index"] == "flat"
    monkeypatch.setattr(retrieval, "ANN_THRESHOLD", 1000)  # digits has 1442 train images
    approx = generate(CFG, digits)
    assert approx.config["pool_index"] == "ivf"
    assert approx.config["pool_key"] != exact.config["pool_key"]  # app caches never mix the two
    assert check_provenance(approx, digits.train) == 0
    assert np.array_equal(generate(CFG, digits).images, approx.images)  # the cached index is reused, same result
    monkeypatch.setattr(retrieval, "ANN_THRESHOLD", 10**9)
    assert generate(CFG, digits, sample_ids=np.arange(4)).config["pool_index"] == "flat"
