"""The constraint seam (issue 14, parts 1 and 3): one declaration per constraint, everything else generated.

The built-in three are declared through :mod:`nps.constraints` (their bit-identical records
are pinned by tests/test_sampler.py and friends, unchanged).  A throwaway constraint,
defined in the single file tests/throwaway_constraint.py and registered here, must appear
in ``generate --help``, the app's toggles, the funnel and the cache keys, and run through the
engine and the plain reference implementation alike.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest

from nps.config import FIELDS, GenerationConfig
from nps.constraints import (
    ablation_chain,
    ablation_sets,
    active,
    cache_key,
    names,
    pool_key,
    register,
    registered,
    set_label,
    unregister,
)

sys.path.insert(0, str(Path(__file__).parent))
from throwaway_constraint import SameRow  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(corpus="digits", window=3, seed_size=2, k=12, batch_size=4)


@pytest.fixture
def row():
    """The throwaway constraint, registered for one test (and removed after, so no other test sees it)."""
    register(SameRow)
    try:
        yield
    finally:
        unregister("row")
    assert "row" not in names() and "row_slack" not in FIELDS


# --------------------------------------------------------------------------- the built-in three
def test_builtins_are_declared_once_in_canonical_order():
    assert names() == ("ssd", "loc", "ssl", "ms")
    assert [c.kind for c in registered()] == ["threshold", "centres", "images", "mask"]
    owned = {c.name: [f.name for f in c.fields] for c in registered()}
    assert owned == {"ssd": ["sigma", "eps", "tol", "max_ssd", "ssd_global_min"], "loc": ["radius"],
                     "ssl": ["k", "encoder", "ssl_mode", "ssl_eps", "ssl_cap", "label"],
                     "ms": ["ms_eps", "ms_window"]}
    assert GenerationConfig().constraints == ("ssd", "loc", "ssl")  # multi-scale is opt-in
    assert GenerationConfig(constraints="ssl,ssd").constraints == ("ssd", "ssl")


def test_one_definition_of_the_ablation_sets():
    from app_support.state import ABLATION_SETS
    from nps.cli.ablate import ablation_plan
    from nps.lab import presets
    assert ablation_chain() == (("ssd",), ("ssd", "loc"), ("ssd", "loc", "ssl"))
    assert ablation_sets() == ABLATION_SETS == (*ablation_chain(), ("ssd", "loc", "ssl", "ms"))
    lesson = next(le for le in presets.LESSONS if le.key == "three-ablations")
    assert [tuple(c) for c in lesson.controls["columns"]] == list(ablation_chain())
    assert [set_label(s) for s in ABLATION_SETS] == ["SSD only", "SSD + loc", "SSD + loc + SSL", "SSD + loc + SSL + MS"]
    plan = ablation_plan(GenerationConfig(**SMALL), ["pca", "pixels"], 1442, 64)
    assert [p[0] for p in plan] == ["ssd", "ssd+loc", "ssd+loc+ssl", "ssd+loc+ssl/pixels", "ssd+loc+ssl+ms",
                                    "ssd+loc+ssl+ms/pixels", "full:ssd+loc+ssl", "full:ssd+loc+ssl/pixels"]
    assert [p[1] for p in plan][:4] == ["SSD only", "SSD + loc", "SSD + loc + SSL (pca)", "SSD + loc + SSL (pixels)"]
    assert plan[-1][2].subset is None and plan[-1][2].k == 64 and plan[-1][3] == "full"


def test_pool_key_is_each_constraints_part():
    assert pool_key(GenerationConfig(corpus="digits", constraints="ssd,loc")) == ("none",)
    full = GenerationConfig(corpus="digits", encoder="pca")
    assert pool_key(full) == (("ssl", "pca", "reference", 64, False, None, "cpu"),)
    assert pool_key(full.replace(label=3)) == (("ssl", "label", 3),)
    assert pool_key(full.replace(eps=0.3)) == pool_key(full)  # appearance does not change the pools
    assert [part[0] for part in cache_key(full)] == ["ssd", "loc", "ssl"]
    assert cache_key(full.replace(radius=3)) != cache_key(full)


def test_cost_and_cheaper_come_from_the_constraints():
    from nps.lab.cost import cheaper
    cfg = GenerationConfig(corpus="mnist", encoder="pca", constraints="ssd")
    assert cfg.windows_per_pixel(60000, (28, 28)) == 60000 * 28 * 28
    assert cfg.replace(constraints="ssd,loc").windows_per_pixel(60000, (28, 28)) == 60000 * 25
    assert cfg.replace(constraints="ssd,loc,ssl").windows_per_pixel(60000, (28, 28)) == 64 * 25
    alts = cheaper(cfg, 60000, (28, 28))
    assert any(a.what == "locality on (R = 2)" and a.changes == {"constraints": ("ssd", "loc")} for a in alts)


# --------------------------------------------------------------------------- a throwaway fourth
def test_throwaway_constraint_is_in_the_cli_help_and_flags(row):
    from nps.cli import build_parser
    from nps.cli.generate import config_from_args
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    text = sub.choices["generate"].format_help()
    assert "row (same row)" in text and "--row-slack" in text and "same row (row)" in text
    args = build_parser().parse_args(["generate", "--corpus", "digits", "--constraints", "ssd,row", "--row-slack", "2"])
    cfg = config_from_args(args)
    assert cfg.constraints == ("ssd", "row") and cfg.row_slack == 2 and cfg.options == (("row_slack", 2),)
    assert FIELDS["row_slack"].owner == "row"
    from app_support.state import BOUNDS
    from nps.cli.command import cli_command
    assert BOUNDS["row_slack"] == (0, 8)
    assert "--constraints ssd,row" in cli_command(cfg) and "--row-slack 2" in cli_command(cfg)
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "--row-slack", "x"])


def test_throwaway_constraint_runs_in_engine_and_plain_reference_alike(row, digits):
    from nps.engine.reference_impl import generate_plain
    from nps.engine.sampler import generate
    from nps.provenance import check_provenance
    cfg = GenerationConfig.make(**SMALL, n=3, seed=5, constraints="ssd,loc,row", row_slack=0)
    assert [c.name for c in active(cfg, "centres")] == ["loc", "row"]
    rec = generate(cfg, digits)
    plain = generate_plain(cfg, digits)
    for key in ("images", "source_index", "source_y", "source_x", "pool_size"):
        assert np.array_equal(getattr(rec, key), plain[key]), key
    assert check_provenance(rec, digits.train) == 0
    sampled = rec.shell[np.arange(len(rec.order))] > 0
    ys = rec.order[sampled, 0]
    xs = rec.order[sampled, 1]
    assert np.array_equal(rec.source_y[:, ys, xs], np.broadcast_to(ys, (len(rec), len(ys))))  # same row
    assert rec.config["row_slack"] == 0 and "row" in rec.config["constraints"]
    back = GenerationConfig.from_dict(rec.config)
    assert back == cfg
    loose = generate(cfg.replace(row_slack=1), digits)
    assert not np.array_equal(loose.source_y, rec.source_y)


def test_throwaway_constraint_is_in_the_funnel(row, digits):
    from nps.engine.sampler import generate
    from nps.lab.funnel import constraint_funnel
    cfg = GenerationConfig.make(**SMALL, n=1, seed=2, constraints="ssd,loc,row", row_slack=1)
    rec = generate(cfg, digits)
    step = int(np.flatnonzero(rec.shell > 0)[5])
    y, x = (int(v) for v in rec.order[step])
    fun = constraint_funnel(rec, digits, 0, y, x)
    assert fun.final == rec.pool_size[0, y, x]
    assert list(fun.counts) == ["loc", "row"]
    rows_in_canvas = min(8, y + 2) - max(0, y - 1)
    assert fun.counts["row"] == (len(digits) - 1) * rows_in_canvas * 8
    labels = [label for label, _ in fun.rows(rec.config)]
    assert "same row (±1)" in labels and "locality ∩ same row" in labels


def test_throwaway_constraint_is_in_the_cache_keys(row):
    from app_support.resources import generation_key, pool_fields
    base = GenerationConfig.make(corpus="digits", encoder="pca", constraints="ssd,loc,ssl,row")
    other = base.replace(row_slack=2)
    assert ("row", ("row_slack", 0)) in cache_key(base) and ("row", ("row_slack", 2)) in cache_key(other)
    assert generation_key(base, "h", "p") != generation_key(other, "h", "p")
    assert generation_key(base, "h", "p") != generation_key(base.replace(constraints="ssd,loc,ssl"), "h", "p")
    assert pool_fields(base) == pool_fields(other)  # it narrows centres, not the semantic pools


def test_throwaway_constraint_is_in_the_app_toggles(row, monkeypatch):
    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    import nps.engine.sampler
    init = PagesManager.__init__

    def v2_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", v2_init)
    calls: list = []
    real = nps.engine.sampler.generate

    def spy(config, corpus=None, **kw):
        calls.append(config)
        return real(config, corpus, **kw)

    monkeypatch.setattr(nps.engine.sampler, "generate", spy)
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.query_params["corpus"] = "digits"
    at.run()
    at.switch_page("pages/2_generate.py").run()
    assert not at.exception
    toggle = at.toggle(key="gen_row")
    assert toggle.label == "same row (row)" and toggle.value is False  # a plug-in is opt-in
    toggle.set_value(True).run()
    at.number_input(key="gen_row_slack").set_value(1)
    at.slider(key="gen_n").set_value(2)
    at.button(key="btn_generate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert calls[-1].constraints == ("ssd", "loc", "ssl", "row") and calls[-1].row_slack == 1
    at.switch_page("pages/3_ablations.py").run()
    assert not at.exception
    assert at.checkbox(key="abl_0_row").label == "row"
    at.switch_page("pages/5_complete.py").run()
    assert not at.exception
    assert at.toggle(key="cmp_row").label == "same row (row)"
