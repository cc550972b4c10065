"""The ablation report's Table 3: intervals, the ceiling, unreliable marks and separations."""

from __future__ import annotations

from nps.lab.report import research_section, write_report


def _m(value, low, high, n, reliable=True):
    return {"value": value, "low": low, "high": high, "n": n, "reliable": reliable,
            "why": "" if reliable else f"fid: n = {n} < 64, too few"}


def _cfg(label, fid, n=128, reliable=True):
    research = {"n": n, "metrics": {"fid": _m(*fid, n, reliable), "precision": _m(0.5, 0.4, 0.6, n, reliable)},
                "ceiling": {"fid": _m(40.0, 30.0, 55.0, n)}, "per_class": [], "protocol": "PROTOCOL"}
    return {"label": label, "n": n, "research": research}


def test_table3_shows_intervals_ceiling_and_which_pairs_separate():
    cfgs = {"ssd": _cfg("SSD only", (400.0, 380.0, 420.0)), "ssd+loc": _cfg("SSD + loc", (200.0, 180.0, 220.0)),
            "ssd+loc+ssl": _cfg("full", (190.0, 170.0, 215.0))}
    text = "\n".join(research_section(cfgs))
    assert "| SSD only | 128 | 400.0 [380.0, 420.0] |" in text
    assert "real test images (ceiling, half B) | 128 | 40.0 [30.0, 55.0]" in text
    assert "SSD only vs SSD + loc: intervals disjoint for FID; overlapping for precision" in text
    assert "SSD + loc vs full: intervals disjoint for no metric" in text
    assert "⚠" not in text and "PROTOCOL" in text


def test_unreliable_figures_are_marked_with_the_reason(tmp_path):
    cfgs = {"ssd": _cfg("SSD only", (400.0, 300.0, 500.0), n=16, reliable=False)}
    for c in cfgs.values():
        c.update(scores=None, entropy={"class": {"mean": 1.0, "std": 0.1}, "image_id": {"mean": 2.0, "std": 0.1}},
                 composition={k: {"mean": 1.0} for k in ("n_sources", "top1_share", "top5_share", "largest_island",
                                                          "label_purity")}, relaxed_rate=0.0)
    report = write_report({"configs": cfgs, "protocol": {}}, tmp_path).read_text()
    assert "400.0 [300.0, 500.0] ⚠" in report and "⚠ unreliable: fid: n = 16 < 64, too few." in report
    assert "| SSD only | 16 | — | — | 400.0 [300.0, 500.0] ⚠ | — |" in report  # Table 1 gets the interval too
