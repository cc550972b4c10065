"""``nps evaluate``, ``nps ablate`` and ``nps sweep`` end to end on the tiny digits corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from nps.analysis import record_from_maps
from nps.cli import main


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    import torch
    torch.set_num_threads(1)
    monkeypatch.setenv("NPS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "nps-cache"))


@pytest.fixture(scope="module")
def digits():
    from nps.corpora import load_corpus
    return load_corpus("digits")


def synthetic_record(digits, path):
    """Sample 0 copies train image 5 whole (memorised); the others are patchworks."""
    rng = np.random.default_rng(0)
    src = rng.integers(0, len(digits), size=(12, 8, 8))
    src[0] = 5
    rec = record_from_maps(src, digits.train, digits.train_labels, seed_size=2,
                           config={"corpus": "digits", "subset": None, "encoder": "pca"})
    rec.save(path)
    return rec


def assert_png(path):
    with Image.open(path) as im:
        im.verify()


def test_evaluate_writes_metrics_and_pngs(digits, tmp_path, capsys):
    synthetic_record(digits, tmp_path / "s.npz")
    rc = main(["evaluate", str(tmp_path / "s.npz"), "--out", str(tmp_path / "ev"), "--traces", "2"])
    assert rc == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["n"] == 12 and m["provenance_errors"] == 0
    assert m["entropy"]["class"]["window"] == 5 and m["entropy"]["image_id"]["per_sample"][0] == 0.0
    assert m["composition"]["largest_island"]["max"] == 64.0  # the memorised sample is one island
    assert m["memorisation"]["exact_copies"] == 1
    assert m["memorisation"]["pixels"]["fraction_below"] == pytest.approx(1 / 12)
    assert m["scores"]["real"]["n"] == 12 and m["scores"]["samples"]["is_mean"] >= 1.0
    for name in m["pictures"].values():
        assert_png(tmp_path / "ev" / name)
    assert {"grid", "trace_0", "trace_1", "entropy_maps", "memorisation", "composition"} <= set(m["pictures"])
    assert "class entropy" in capsys.readouterr().out


def test_evaluate_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert main(["evaluate", str(tmp_path / "junk.npz"), "--out", str(tmp_path / "o")]) == 2


def test_ablate_and_sweep_on_digits(tmp_path):
    out = tmp_path / "abl"
    rc = main(["ablate", "--corpus", "digits", "--n", "8", "--subset", "300", "--window", "3", "--seed-size", "3",
               "--k", "16", "--encoders", "pca,pixels", "--out", str(out)])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["configs"]) == {"ssd", "ssd+loc", "ssd+loc+ssl", "ssd+loc+ssl/pixels", "ssd+loc+ssl+ms",
                                 "ssd+loc+ssl+ms/pixels",  # the multi-scale constraint (opt-in, ablated)
                                 "full:ssd+loc+ssl", "full:ssd+loc+ssl/pixels"}  # + paper-scale rows
    assert m["configs"]["full:ssd+loc+ssl"]["config"]["subset"] is None
    assert m["configs"]["ssd+loc+ssl"]["config"]["k"] == 16
    assert not [n for n in m["notes"] if "references differ" in n]
    for r in m["configs"].values():
        assert r["provenance_errors"] == 0 and r["n"] == 8
    report = (out / "report.md").read_text()
    for heading in ("Figure 2", "Table 1", "Table 2", "Protocol", "6.23", "1.075", "2.496"):
        assert heading in report
    assert_png(out / "figure2.png")
    refs = [np.load(out / "records" / f"{s}.npz")["reference"] for s in ("ssd", "ssd-loc", "ssd-loc-ssl")]
    assert np.array_equal(refs[0], refs[1]) and np.array_equal(refs[0], refs[2])

    sw = tmp_path / "sw"
    rc = main(["sweep", "--corpus", "digits", "--subset", "300", "--n", "8", "--param", "eps=0.1,0.5",
               "--param", "window=3", "--param", "seed_size=3", "--param", "k=16", "--out", str(sw)])
    assert rc == 0
    lines = (sw / "sweep.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 2 and lines[0].startswith("eps,window,seed_size,k,IS")
    assert_png(sw / "sweep.png")


def test_sweep_rejects_bad_params(tmp_path, capsys):
    assert main(["sweep", "--corpus", "digits", "--param", "colour=1", "--out", str(tmp_path)]) == 2
    assert main(["sweep", "--corpus", "digits", "--param", "eps=abc", "--out", str(tmp_path)]) == 2
    assert main(["sweep", "--corpus", "digits", "--param", "eps", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("error: ") == 3


def test_ablate_only_runs_the_named_configurations_and_prints_the_estimate_first(tmp_path, capsys):
    out = tmp_path / "abl"
    argv = ["ablate", "--corpus", "digits", "--n", "4", "--subset", "200", "--window", "3", "--seed-size", "3",
            "--k", "8", "--encoders", "pca", "--baselines", "none", "--out", str(out)]
    assert main([*argv, "--only", "ssd+loc,full:ssd+loc+ssl"]) == 0
    printed = capsys.readouterr().out
    assert printed.index("estimate: sampling") < printed.index("wrote ")
    assert "ssd+loc about" in printed or "ssd+loc under a second" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["configs"]) == {"ssd+loc", "full:ssd+loc+ssl"}
    assert (out / "report.md").is_file()
    assert main([*argv, "--only", "ssd+locc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'ssd+locc'" in err and "ssd+loc+ssl" in err
