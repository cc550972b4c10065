"""`python -m nps generate`: a small run end to end, and every bad input -> exit 2, one line, no traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nps.cli import main
from nps.provenance import check_provenance
from nps.record import ProvenanceRecord

TINY = ["--corpus", "digits", "--window", "3", "--seed-size", "2", "--k", "8", "--n", "4"]


def test_generate_writes_record_and_grid(tmp_path, digits, capsys):
    out, grid = tmp_path / "s.npz", tmp_path / "g.png"
    assert main(["generate", *TINY, "--out", str(out), "--grid", str(grid)]) == 0
    rec = ProvenanceRecord.load(out)
    assert len(rec) == 4 and check_provenance(rec, digits.train) == 0
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "provenance check: exact" in capsys.readouterr().out


def test_generate_flags_reach_the_record(tmp_path):
    out = tmp_path / "s.npz"
    assert main(["generate", *TINY, "--constraints", "ssd,loc", "--eps", "0.2", "--radius", "1",
                 "--out", str(out)]) == 0
    cfg = ProvenanceRecord.load(out).config
    assert cfg["constraints"] == ["ssd", "loc"] and cfg["eps"] == 0.2 and cfg["radius"] == 1


BAD = {
    "unknown corpus": (["--corpus", "nope"], "unknown corpus"),
    "missing data": (["--corpus", "cifar10"], "cifar10"),
    "missing data root": (["--corpus", "mnist", "--data-root", "/no/such/folder"], "data-root"),
    "even window": (["--window", "4"], "--window"),
    "window larger than image": (["--window", "9"], "larger than"),
    "negative eps": (["--eps", "-0.1"], "--eps"),
    "negative radius": (["--radius", "-1"], "--radius"),
    "k below 1": (["--k", "0"], "--k"),
    "k above corpus": (["--k", "5000"], "--k"),
    "seed larger than canvas": (["--seed-size", "9"], "--seed-size"),
    "reference out of range": (["--reference", "99999"], "--reference"),
    "label absent": (["--label", "42"], "--label"),
    "unknown constraint": (["--constraints", "ssd,magic"], "constraint"),
    "unknown encoder": (["--encoder", "nope"], "encoder"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_2_with_one_line(case, tmp_path, capsys):
    extra, needle = BAD[case]
    args = ["generate", "--corpus", "digits", "--window", "3", "--seed-size", "2", "--k", "8", "--n", "2",
            "--out", str(tmp_path / "s.npz"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert needle in err
    assert not (tmp_path / "s.npz").exists()


def test_unwritable_output_fails_before_work(tmp_path, capsys):
    assert main(["generate", *TINY, "--out", str(tmp_path / "missing" / "s.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["generate", *TINY, "--out", str(tmp_path / "s.txt")]) == 2


def test_subprocess_has_no_traceback_and_help_works():
    bad = subprocess.run([sys.executable, "-m", "nps", "generate", "--window", "4"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.startswith("error:")
    ok = subprocess.run([sys.executable, "-m", "nps", "generate", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "--constraints" in ok.stdout and "provenance" in ok.stdout


def test_every_subcommand_has_help(capsys):
    from nps.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"generate", "bench", "corpora"} <= set(sub.choices)
    for name in sub.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0, name
    capsys.readouterr()


def test_bench_reports_ratio_on_tiny_corpus(capsys):
    from nps.lab.bench import run_case
    a = run_case("a", "digits", 4, 4)
    assert "error" not in a and a["ms_per_image"] > 0 and a["peak_rss_mb"] > 0
    np.testing.assert_equal(a["n"], 4)


def test_bench_json_records_the_device(tmp_path, capsys):
    import json
    out = tmp_path / "b.json"
    assert main(["bench", "--corpus", "digits", "--cases", "a,ssl-wide", "--n-a", "2", "--repeats", "1", "--skip-b",
                 "--device", "cpu", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["device"] == "cpu" and res["a@64"]["device"] == "cpu" and res["a@64"]["ms_per_image"] > 0
    assert res["ssl-wide@64"]["ms_per_image"] > 0
    printed = capsys.readouterr().out
    assert "device cpu" in printed and "per candidate window: (a) " in printed
    assert "target ssl-wide@64 ns/candidate <= " in printed and "target ssl-wide@64 peak RSS MB <= 1536" in printed


def test_bench_cold_searches_the_blank_entries_again(tmp_path, capsys):
    """``--cold`` clears the process's blank-context entries before every timed run: each run searches
    them again, and at least as many as a warm run (whose entries persist from its warm-up on)."""
    import json
    figures = {}
    for mode in ("warm", "cold"):
        out = tmp_path / f"{mode}.json"
        argv = ["bench", "--corpus", "mnist", "--subset", "200", "--cases", "loc-exact", "--batches", "2", "--n-b", "2",
                "--repeats", "2", "--json", str(out)] + (["--cold"] if mode == "cold" else [])
        assert main(argv) == 0
        figures[mode] = json.loads(out.read_text())["loc-exact@2"]
        assert figures[mode]["blank_store"] == mode and f"{mode} blank store" in capsys.readouterr().out
    cold, warm = figures["cold"]["blank_searched"], figures["warm"]["blank_searched"]
    assert len(cold) == 2 and cold[0] == cold[1] > 0  # the same samples: the same entries, searched again
    assert warm[1] == 0 and warm[0] <= cold[0]  # the second warm run finds every entry searched


def test_trace_prints_source_and_funnel_matching_record(tmp_path, capsys):
    import json
    out = tmp_path / "s.npz"
    assert main(["generate", *TINY, "--out", str(out)]) == 0
    rec = ProvenanceRecord.load(out)
    y, x = (int(v) for v in rec.order[40])
    capsys.readouterr()
    assert main(["trace", str(out), "--sample", "1", "--y", str(y), "--x", str(x), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source"]["train_id"] == rec.source_index[1, y, x]
    assert info["funnel"]["final"] == rec.pool_size[1, y, x]
    assert info["funnel"]["ssd_alone"] >= 1  # digits is small enough for the exhaustive count
    sy, sx = (int(v) for v in rec.order[0])
    assert main(["trace", str(out), "--y", str(sy), "--x", str(sx)]) == 2


# ----------------------------------------------------------------------------- threshold robustness (issue 9, 4)

def test_threshold_always_keeps_the_minimum():
    import itertools

    import torch

    from nps.config import GenerationConfig
    from nps.engine.selection import NO_LIMIT, thresholds
    # -1.3e-7: a float32 SSD minimum measured below zero for an exact match.
    d_min = torch.tensor([-1.3e-7, -1e-3, 0.0, 1e-9, 0.5, 3.0], dtype=torch.float32)
    for eps, tol, max_ssd in itertools.product((0.0, 0.1, 10.0, 1000.0, 1e30), (0.0, 1e-6, 1e30), (None, 0.0, 1e30)):
        cfg = GenerationConfig(corpus="digits", eps=eps, tol=tol, max_ssd=max_ssd)
        cfg.check()
        thr, _ = thresholds(d_min, cfg)
        assert (thr >= d_min).all() and (thr <= NO_LIMIT).all() and torch.isfinite(thr).all(), (eps, tol, max_ssd)
        assert not (torch.tensor(float("inf")) <= thr).any()  # excluded slots never pass
        if max_ssd is None:  # the rule itself is unchanged for a non-negative minimum (bit-identical)
            ok = d_min >= 0
            assert torch.equal(thr[ok], d_min[ok] * (1.0 + eps) + tol)


@pytest.mark.parametrize("extra", [["--eps", "10"], ["--eps", "1000"], ["--eps", "1e30"], ["--tol", "1e30"],
                                   ["--sigma", "0.15"], ["--sigma", "0.15", "--window", "5"],
                                   ["--sigma", "0.15", "--window", "7"], ["--sigma", "300"], ["--max-ssd", "0"],
                                   ["--eps", "1e30", "--constraints", "ssd"]])
def test_extreme_allowed_values_generate_and_keep_the_invariant(extra, tmp_path, digits, capsys):
    import json
    out = tmp_path / "s.npz"
    assert main(["generate", *TINY, "--n", "2", *extra, "--out", str(out)]) == 0
    rec = ProvenanceRecord.load(out)
    assert check_provenance(rec, digits.train) == 0 and (rec.pool_size >= 1).all()
    y, x = (int(v) for v in rec.order[-1])
    capsys.readouterr()
    assert main(["trace", str(out), "--sample", "1", "--y", str(y), "--x", str(x), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["funnel"]["final"] == rec.pool_size[1, y, x]
