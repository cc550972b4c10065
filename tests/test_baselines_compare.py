"""The ablation report's Table 4: NPS against the learned baselines, same metrics, same n, intervals."""

from __future__ import annotations

import json

import pytest

from nps.baselines.compare import comparison_section, plan_order, select_models
from nps.cli import main
from nps.errors import NPSError


def _m(value, low, high, n=128):
    return {"value": value, "low": low, "high": high, "n": n, "reliable": True, "why": ""}


def _entry(label, fid, memo, n=128, own=None, **extra):
    metrics = {"fid": _m(*fid, n), "kid": _m(5.0, 1.0, 9.0, n), "precision": _m(0.8, 0.7, 0.9, n),
               "recall": _m(0.6, 0.5, 0.7, n), "density": _m(0.9, 0.8, 1.0, n), "coverage": _m(0.9, 0.85, 0.95, n),
               "memorisation": _m(*memo, n)}
    if own is not None:
        metrics["reference_own_nearest"] = _m(*own, n)
    return {"label": label, "n": n, "research": {"n": n, "metrics": metrics},
            "scores": {"samples": {"is_mean": 8.0, "is_std": 0.5}}, **extra}


def test_table4_rows_carry_intervals_training_and_sampling_time():
    cfgs = {"ssd": _entry("SSD only", (400.0, 380.0, 420.0), (0.0, 0.0, 0.0), own=(0.4, 0.3, 0.5),
                          config={"constraints": ["ssd"], "encoder": "simclr", "corpus": "mnist"},
                          time_per_image_s=1.5),
            "full:ssd+loc+ssl": _entry("full, all 60k", (70.0, 60.0, 85.0), (0.0, 0.0, 0.0), own=(0.3, 0.2, 0.4),
                                       config={"constraints": ["ssd", "loc", "ssl"], "encoder": "simclr",
                                               "corpus": "mnist"}, time_per_image_s=0.05)}
    base = {"baseline:vae": _entry("VAE (MLP)", (390.0, 370.0, 410.0), (0.01, 0.0, 0.03), model="vae",
                                   training={"train_seconds": 288.7, "epochs_completed": 40.0},
                                   sampling_ms_per_image=0.024, load_average="1.0 1.0 1.0", seed=0),
            "baseline:gan": _entry("DCGAN", (80.0, 65.0, 95.0), (0.0, 0.0, 0.0), model="gan", training={},
                                   sampling_ms_per_image=2.5, load_average="2.0 1.0 1.0", seed=0)}
    text = "\n".join(comparison_section(cfgs, base))
    assert "## Table 4" in text
    assert ("| VAE (MLP) | 128 | 8.00 ± 0.50 | 390.0 [370.0, 410.0] | 5.0 [1.0, 9.0] | 80% [70%, 90%] | "
            "60% [50%, 70%] | 0.90 [0.80, 1.00] | 90% [85%, 95%] | 1.0% [0.0%, 3.0%] | — | 4.8 min, 40 epochs | "
            "0.024 |") in text
    assert "| DCGAN | 128 |" in text and "— (no card) | 2.5 |" in text
    assert "| SSD only | 128 |" in text and "40% [30%, 50%]" in text and "| 1500.0 |" in text
    assert "none (sampler); SimCLR encoder" in text  # the encoder's training is a cost of the full model
    assert "Every row is n = 128 samples" in text
    assert "real test images (ceiling, half B)" not in text  # no ceiling in these configurations
    assert "- full, all 60k vs VAE (MLP): intervals disjoint for FID, memorised" not in text  # memo overlaps
    assert "- full, all 60k vs VAE (MLP): intervals disjoint for FID; overlapping for KID" in text
    assert "- full, all 60k vs DCGAN: intervals disjoint for no metric" in text
    assert comparison_section(cfgs, {}) == []


def test_plan_order_restores_the_ablation_order_that_sorted_json_loses():
    slugs = ["full:ssd+loc+ssl", "full:ssd+loc+ssl/pca", "ssd", "ssd+loc", "ssd+loc+ssl", "ssd+loc+ssl/pca",
             "ssd+loc+ssl/pixels"]
    assert sorted(slugs, key=plan_order) == ["ssd", "ssd+loc", "ssd+loc+ssl", "ssd+loc+ssl/pca", "ssd+loc+ssl/pixels",
                                             "full:ssd+loc+ssl", "full:ssd+loc+ssl/pca"]


def test_select_models():
    assert select_models("none", "mnist") == []
    assert select_models(None, "mnist") == ["vae", "gan", "flow"]  # all three ship for MNIST
    assert select_models("gan, vae,gan", "mnist") == ["gan", "vae"]
    with pytest.raises(NPSError, match="unknown model 'dit'"):
        select_models("vae,dit", "mnist")


def test_select_models_needs_weights(cache_dir):
    assert select_models("auto", "digits") == []  # nothing ships for digits, the fresh cache has nothing
    with pytest.raises(NPSError, match=r"no vae weights for 'digits'.*baselines train --corpus digits --model vae"):
        select_models("vae", "digits")


def test_ablate_report_gets_the_baseline_table_and_compare_rebuilds_it(tmp_path, cache_dir, capsys):
    assert main(["baselines", "train", "--corpus", "digits", "--model", "vae", "--max-steps", "3"]) == 0
    out = tmp_path / "abl"
    argv = ["ablate", "--corpus", "digits", "--n", "8", "--subset", "300", "--window", "3", "--seed-size", "3",
            "--k", "16", "--encoders", "pca", "--no-full-corpus", "--out", str(out)]
    assert main([*argv, "--baselines", "vae"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    vae = m["baselines"]["baseline:vae"]
    assert vae["n"] == 8 == m["configs"]["ssd"]["n"]  # the same n as every configuration
    for k in ("fid", "precision", "coverage", "memorisation"):
        e = vae["research"]["metrics"][k]
        assert e["n"] == 8 and e["low"] <= e["value"] <= e["high"]
    assert vae["training"]["steps"] == 3 and vae["sampling_ms_per_image"] > 0
    report = (out / "report.md").read_text()
    table4 = report[report.index("## Table 4"):report.index("## Mechanics")]
    assert "| real test images (ceiling, half B) | 8 |" in table4
    assert "## Table 4" in report and "| VAE (MLP) | 8 |" in report and "| SSD only | 8 |" in report
    # compare rebuilds it from metrics.json alone (the records are not regenerated) and writes a docs copy
    del m["baselines"]
    (out / "metrics.json").write_text(json.dumps(m))
    (out / "report.md").write_text("stale")
    docs = tmp_path / "docs" / "ablation.md"
    docs.parent.mkdir()
    assert main(["baselines", "compare", str(out), "--baselines", "vae", "--docs", str(docs)]) == 0
    rebuilt = (out / "report.md").read_text()
    assert "| VAE (MLP) | 8 |" in rebuilt
    assert rebuilt.index("| SSD only | 8 |") < rebuilt.index("| SSD + loc | 8 |")  # the run's order, not sorted
    slim = docs.read_text()
    assert "| VAE (MLP) | 8 |" in slim and "## Per configuration" not in slim and "trace_0" not in slim
    assert "This copy, without the per-configuration pictures, was rendered from" in slim
    assert "](ablation-figure2.png)" in slim and (docs.parent / "ablation-figure2.png").is_file()
    other = docs.parent / "ablation-paper.md"  # a second report beside it keeps the first one's figure
    before = (docs.parent / "ablation-figure2.png").stat().st_mtime_ns
    assert main(["baselines", "compare", str(out), "--baselines", "vae", "--docs", str(other)]) == 0
    assert "](ablation-paper-figure2.png)" in other.read_text()
    assert (docs.parent / "ablation-paper-figure2.png").is_file()
    assert (docs.parent / "ablation-figure2.png").stat().st_mtime_ns == before
    after = json.loads((out / "metrics.json").read_text())
    assert "baselines compare" in after["notes"][-1]
    # a second compare reuses the rows it finds at this n: metrics.json is left alone, the report re-rendered
    (out / "report.md").write_text("stale")
    before = (out / "metrics.json").read_bytes()
    assert main(["baselines", "compare", str(out), "--baselines", "vae"]) == 0
    assert (out / "metrics.json").read_bytes() == before and "| VAE (MLP) | 8 |" in (out / "report.md").read_text()
    capsys.readouterr()
    # bad input is one line before any work
    assert main([*argv, "--baselines", "dit"]) == 2
    assert main(["baselines", "compare", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("error:") for e in err)
