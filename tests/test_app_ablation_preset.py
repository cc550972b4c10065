"""The Ablations page's preset "Reproduce the README's ablation table" (issue 13, 5.4).

The presets are ``nps ablate`` command lines run by the CLI's own code (:mod:`nps.lab.ablation`);
the real 8-minute run is never made here: the page's runner is patched with a stand-in that
returns the published table (or a perturbed copy), so what is tested is the page's contract:
the estimate before the click, the quick alternative, the hosted-mode restriction, stage-named
progress, the cache (a second visit shows the table without running), and the comparison with
the README's figures.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from nps.lab import ablation as A

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
PNG = (ROOT / "docs" / "ablation-figure2.png").read_bytes()


def _published() -> dict:
    return A.load_published()


def _quick_table() -> dict:
    t = copy.deepcopy(_published())
    for c in t["configs"].values():
        c["n"] = 32
    t["command"] = A.PRESETS["quick"].command("/tmp/x")
    return t


# --------------------------------------------------------------------------- the library side
def test_readme_preset_is_the_readme_command_line():
    from nps.cli import build_parser
    from nps.cli.ablate import auto_k
    args = build_parser().parse_args(["ablate", *A.PRESETS["readme"].argv, "--out", "/tmp/unused"])
    assert (args.corpus, args.seed, args.n, args.subset, args.encoders, args.baselines) == \
        ("mnist", 0, 128, 300, "simclr", "none")
    assert not args.quick and not args.no_full_corpus and args.k is None
    steps = {slug: (cfg, which) for slug, _, cfg, which in A.plan(A.PRESETS["readme"])}
    assert set(A.TABLE_SLUGS) <= set(steps)
    assert {steps[s][0].k for s in A.TABLE_SLUGS[:3]} == {auto_k(300)} == {15}
    assert steps["full:ssd+loc+ssl"][0].k == 64 and steps["full:ssd+loc+ssl"][0].subset is None
    quick = build_parser().parse_args(["ablate", *A.PRESETS["quick"].argv, "--out", "/tmp/unused"])
    assert quick.quick and A.PRESETS["quick"].n == 32 and not A.PRESETS["quick"].readme
    assert A.trim({"command": "python -m nps ablate --quick --out /tmp/x", "configs": {}})["command"] == \
        "python -m nps ablate --quick --out DIR"  # no server path on screen
    assert A.PRESETS["readme"].command() == ("python -m nps ablate --corpus mnist --seed 0 --encoders simclr "
                                             "--baselines none --n 128 --subset 300 --out DIR")


def test_published_figures_are_the_readmes_table():
    """docs/ablation.json (what the page reads) and the README's markdown table say the same, to its digits."""
    pub = _published()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## The paper's ablation, reproduced"):]
    for slug in A.TABLE_SLUGS:
        c = pub["configs"][slug]
        assert c["n"] == 128 and c["subset"] == (None if slug.startswith("full:") else 300)
        assert c["k"] == (64 if slug.startswith("full:") else 15)
        cells = (f"{c['is_mean']:.2f} ± {c['is_std']:.2f}", f"{c['fid']['value']:.1f}",
                 f"{c['class']['mean']:.3f}", f"{c['image_id']['mean']:.3f}")
        assert re.search(r"\| " + r" \| ".join(map(re.escape, cells)) + r" \|", section), (slug, cells)
    real = pub["real"]
    assert f"| real test images (n = {real['n']}) | {real['is_mean']:.2f} ± {real['is_std']:.2f} | " \
           f"{real['fid']:.1f} |" in section


def test_table_rows_carry_n_and_intervals():
    pub = _published()
    rows = A.table_rows(pub, pub)
    assert [r["configuration"] for r in rows[:4]] == [pub["configs"][s]["label"] for s in A.TABLE_SLUGS]
    assert [r["n"] for r in rows] == ["128"] * 5 + ["—"]
    assert rows[0]["FID (classifier) [95 %]"] == "441.3 [397.9, 496.3]" == rows[0]["README: FID"]
    assert rows[-1]["configuration"] == "paper, full model" and rows[-1]["IS (10 splits, ± std)"] == "6.23"
    assert rows[-1]["README: FID"] == rows[-2]["README: IS"] == "—"  # no blank cells
    research = A.research_rows(pub)
    assert len(research) == 4 and all("[" in research[0][h] for h in ("KID", "precision", "coverage"))


def test_differences_name_each_figure_and_the_reason():
    pub = _published()
    assert A.differences(pub, pub) == [] and A.why_different(pub, pub) == []
    other = copy.deepcopy(pub)
    other["configs"]["ssd+loc"]["fid"]["value"] += 0.5
    for c in other["configs"].values():
        c["engine"] = 99
    diff = A.differences(other, pub)
    assert diff == ["SSD + loc: FID 205.9 (README 205.4)"]
    assert any("engine version" in w and "99" in w for w in A.why_different(other, pub))
    other["configs"]["ssd+loc"]["fid"]["value"] -= 0.5
    other["configs"]["full:ssd+loc+ssl"]["image_id"]["mean"] += 2e-5  # a few changed draws: below 3 decimals
    other["configs"]["full:ssd+loc+ssl"]["is_mean"] += 2e-8
    assert A.differences(other, pub) == ["SSD + loc + SSL (simclr), all 60000: 2 figure(s) differ below the digits "
                                         "shown (largest: image-ID entropy by 2.0e-05)"]
    del other["configs"]["ssd"]
    assert "ssd: not run" in A.differences(other, pub)


def test_estimates_follow_the_cost_model():
    readme, quick = A.PRESETS["readme"], A.PRESETS["quick"]
    slow, fast = A.estimate_seconds(readme), A.estimate_seconds(quick)
    assert 5 * 60 < slow < 15 * 60 and 60 < fast < 5 * 60 and fast < slow / 2
    from nps.lab.cost import EMBED_COLD_S
    assert A.estimate_seconds(readme, cold_embedding=True) == pytest.approx(slow + EMBED_COLD_S)


def test_cached_run_runs_once_and_peek_never_runs(cache_dir, monkeypatch):
    calls = []

    def stand_in(preset, report):
        calls.append(preset.name)
        if report is not None:
            assert report("configuration 1/5, SSD only: sampling pixel 1/2", 0.1) is None
        return _published(), PNG

    preset = A.PRESETS["readme"]
    assert A.peek(preset, "h1") is None
    table, png = A.cached_run(preset, "h1", report=lambda s, f: None, runner=stand_in)
    assert calls == ["readme"] and table == _published() and png == PNG
    again = A.cached_run(preset, "h1", runner=stand_in)
    assert calls == ["readme"] and again == (table, png) == A.peek(preset, "h1")
    assert A.peek(preset, "another-corpus-hash".replace("-", "")) is None  # content-keyed by the corpus
    assert A.peek(A.PRESETS["quick"], "h1") is None
    monkeypatch.setenv("NPS_APP_READONLY", "1")
    A.cached_run(A.PRESETS["quick"], "h1", runner=stand_in)
    assert calls == ["readme", "quick"] and A.peek(A.PRESETS["quick"], "h1") is None  # read-only: not stored


# --------------------------------------------------------------------------- the page (AppTest)
@pytest.fixture
def page(monkeypatch, cache_dir):
    """The Ablations page with MNIST's hash stubbed and the runner replaced by a stand-in (no real run)."""
    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    from app_support import ablation_preset

    init = PagesManager.__init__

    def v2_init(self, *args, **kwargs):  # as tests/test_app.py's fixture: multipage v2, as a real server
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", v2_init)
    monkeypatch.delenv("NPS_APP_READONLY", raising=False)
    monkeypatch.delenv(ablation_preset.ENV, raising=False)
    monkeypatch.setattr(ablation_preset, "corpus_hash", lambda: "stubbedhash")
    monkeypatch.setattr(ablation_preset, "cold_embedding", lambda: None)
    calls: list[tuple[str, list]] = []

    def stand_in(preset, report):
        stages = [s for s in ("loading the classifier and encoders", "configuration 1/5, SSD only: sampling pixel 3/4",
                              "writing the report") if report(s, 0.5) is not False]
        calls.append((preset.name, stages))
        return (_published() if preset.readme else _quick_table()), PNG

    monkeypatch.setattr(ablation_preset, "runner", stand_in)
    st.cache_data.clear()

    def make():
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params["corpus"] = "digits"
        at.query_params["seed"] = "0"
        at.run()
        at.switch_page("pages/3_ablations.py").run()
        return at

    return make, calls


def _text(at) -> str:
    return "\n".join(str(e.value) for kind in ("caption", "markdown", "code", "info", "warning", "success")
                     for e in at.get(kind))


def test_preset_offers_estimate_quick_alternative_and_command(page):
    make, calls = page
    at = make()
    assert not at.exception, [e.value for e in at.exception]
    readme, quick = at.button(key="btn_ablpre_readme"), at.button(key="btn_ablpre_quick")
    assert readme.label == "Reproduce the README's ablation table" and not readme.disabled
    assert "not the README's n" in quick.label and not quick.disabled
    text = _text(at)
    assert re.search(r"n = 128 per row, 300-image subset\. Estimate: about \d+ min", text)
    assert re.search(r"Cheaper: the quick version, about \d+ min, not the README's n", text)
    assert "python -m nps ablate --corpus mnist --seed 0 --encoders simclr --baselines none --n 128" in text
    assert "README's figures" in text and calls == []  # nothing ran before the click
    assert at.dataframe[0].value["configuration"].iloc[0] == "SSD only"  # the published table, at once


def test_click_runs_with_stages_then_a_second_visit_reads_the_cache(page):
    make, calls = page
    at = make()
    at.button(key="btn_ablpre_readme").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [c[0] for c in calls] == ["readme"] and len(calls[0][1]) == 3  # every stage reported, none stopped
    assert any("matches the README's" in s.value for s in at.success)
    table = at.dataframe[0].value
    assert list(table["n"])[:4] == ["128"] * 4 and table["README: FID"].iloc[0] == "441.3 [397.9, 496.3]"
    fresh = make()  # a second visit: a new session, the same server
    assert not fresh.exception and [c[0] for c in calls] == ["readme"]
    assert "in the results cache, shown at once" in _text(fresh)
    assert any("matches the README's" in s.value for s in fresh.success)
    assert fresh.dataframe[0].value["FID (classifier) [95 %]"].iloc[1] == "205.4 [180.1, 239.9]"


def test_quick_preset_is_labelled_not_the_readmes(page):
    make, calls = page
    at = make()
    at.button(key="btn_ablpre_quick").click().run()
    assert not at.exception and [c[0] for c in calls] == ["quick"]
    assert any("not the README's n = 128" in i.value for i in at.info)
    assert not at.success and "README: FID" not in at.dataframe[0].value.columns


def test_a_different_result_is_flagged_with_its_reason(page, monkeypatch):
    make, _ = page
    from app_support import ablation_preset

    def drifted(preset, report):
        t = _published()
        t["configs"]["ssd"]["is_mean"] += 0.1
        for c in t["configs"].values():
            c["engine"] = 99
        return t, PNG

    monkeypatch.setattr(ablation_preset, "runner", drifted)
    at = make()
    at.button(key="btn_ablpre_readme").click().run()
    warn = " ".join(w.value for w in at.warning)
    assert "1 figure(s) differ from the README's" in warn and "SSD only: IS 4.14 (README 4.04)" in warn
    assert "engine version" in warn


@pytest.mark.parametrize("env, readme_offered", [({"NPS_APP_READONLY": "1"}, False),
                                                 ({"NPS_APP_READONLY": "1", "NPS_APP_PAPER_ABLATION": "1"}, True),
                                                 ({"NPS_APP_PAPER_ABLATION": "0"}, False)])
def test_hosted_demo_offers_only_the_quick_preset(page, monkeypatch, env, readme_offered):
    make, calls = page
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    at = make()
    assert not at.exception, [e.value for e in at.exception]
    assert at.button(key="btn_ablpre_readme").disabled is (not readme_offered)
    assert not at.button(key="btn_ablpre_quick").disabled
    text = _text(at)
    assert ("Not offered here" in text) is (not readme_offered)
    assert "python -m nps ablate --corpus mnist" in text  # the command line is always shown
    assert at.dataframe[0].value["configuration"].iloc[0] == "SSD only"  # and the published table
    if not readme_offered:
        at.button(key="btn_ablpre_quick").click().run()
        assert [c[0] for c in calls] == ["quick"]


def test_no_mnist_shows_the_published_table_and_disables_both(page, monkeypatch):
    make, calls = page
    from app_support import ablation_preset
    monkeypatch.setattr(ablation_preset, "corpus_hash", lambda: None)
    at = make()
    assert at.button(key="btn_ablpre_readme").disabled and at.button(key="btn_ablpre_quick").disabled
    assert any("MNIST is not present" in i.value for i in at.info)
    assert at.dataframe[0].value["n"].tolist()[:4] == ["128"] * 4 and calls == []


# --------------------------------------------------------------------------- the shared code path, for real (tiny)
TINY = A.AblationPreset("tiny", "tiny", ("--corpus", "digits", "--seed", "0", "--n", "4", "--subset", "300",
                                         "--window", "3", "--seed-size", "3", "--k", "16", "--encoders", "pca",
                                         "--baselines", "none", "--no-full-corpus"), 4, 300, False)


def test_run_preset_is_the_clis_run_with_named_stages(tmp_path):
    """The page's runner (run_preset) and `python -m nps ablate` make the same figures; every stage is named."""
    import json

    from nps.cli import main
    heard: list[tuple[str, float]] = []
    table, png = A.run_preset(TINY, report=lambda s, f: heard.append((s, f)))
    assert png.startswith(b"\x89PNG") and table["command"] == TINY.command()
    stages = [s for s, _ in heard]
    assert stages[0] == "loading the classifier and encoders" and stages[-1] == "writing the report"
    assert any(s.startswith("configuration 1/") and ", SSD only: sampling pixel" in s for s in stages)
    assert any("evaluating" in s for s in stages) and any("building pools" in s for s in stages)
    fractions = [f for _, f in heard]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert main(["ablate", *TINY.argv, "--out", str(tmp_path / "cli")]) == 0
    cli = A.trim(json.loads((tmp_path / "cli" / "metrics.json").read_text()))
    assert set(cli["configs"]) == set(table["configs"]) >= {"ssd", "ssd+loc", "ssd+loc+ssl"}
    for slug, ours in table["configs"].items():
        theirs = cli["configs"][slug]
        assert {k: ours[k] for k in ours if k != "seconds"} == {k: theirs[k] for k in theirs if k != "seconds"}


def test_a_report_that_returns_false_stops_the_run():
    from nps.engine.sampler import Stopped
    with pytest.raises(Stopped):
        A.run_preset(TINY, report=lambda s, f: "sampling pixel" not in s)
