"""The step explainer: frame data rebuilt from a record (nps.lab.explainer, nps.lab.funnel.ranked_candidates),
its animated figure, and the page under AppTest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nps.config import GenerationConfig
from nps.engine.sampler import generate
from nps.engine.selection import thresholds
from nps.errors import NPSError
from nps.lab.explainer import default_step, sampled_steps, step_frames
from nps.lab.funnel import constraint_funnel, ranked_candidates

SMALL = dict(corpus="digits", window=3, seed_size=2, k=12, batch_size=4, n=4, seed=1)


@pytest.fixture(scope="module")
def records(digits):
    return {cons: generate(GenerationConfig(**{**SMALL, "constraints": cons}), digits)
            for cons in ("ssd,loc,ssl", "ssd", "loc,ssl")}


@pytest.mark.parametrize("cons", ["ssd,loc,ssl", "ssd", "loc,ssl"])
def test_frames_match_the_record(records, digits, cons):
    rec = records[cons]
    for n in range(len(rec)):
        frames = step_frames(rec, digits, n, 0, count=5, top=16)
        assert [f.step for f in frames] == sampled_steps(rec, n)[:5].tolist()
        for f in frames:
            y, x = f.y, f.x
            # The drawn window is the record's source, and it survived every constraint.
            assert tuple(f.sources[f.drawn]) == (rec.source_index[n, y, x], rec.source_y[n, y, x],
                                                 rec.source_x[n, y, x])
            assert f.kept[f.drawn]
            assert f.pool_size == rec.pool_size[n, y, x]
            assert f.funnel[-1][1] == rec.pool_size[n, y, x]
            # Its centre pixel is the pixel the record holds (what "lands" on the canvas).
            w = f.known.shape[0]
            assert f.windows[f.drawn][w // 2, w // 2].tolist() == f.value.tolist() == [rec.images[n, y, x]]
            assert f.windows.dtype == np.uint8 and f.windows.shape[1:] == (w, w, 1)
            # Ranked ascending, kept ones first, and the context is the replayed canvas.
            assert np.all(np.diff(f.ssd[:-1] if f.drawn >= 16 else f.ssd) >= 0)
            assert np.all(np.diff(f.ranked_ssd) >= 0) and f.ranked_at[0] == 0
            assert f.ranked_at[-1] == f.n_candidates - 1
            assert not f.known[w // 2, w // 2] and f.filled.sum() == f.step


@pytest.mark.parametrize("cons", ["ssd,loc,ssl", "ssd"])
def test_threshold_is_the_one_rule(records, digits, cons):
    rec = records[cons]
    cfg = GenerationConfig.from_dict(rec.config)
    for step in sampled_steps(rec, 1)[:6]:
        y, x = (int(v) for v in rec.order[step])
        rc = ranked_candidates(rec, digits, 1, y, x, top=8, curve_points=10**6)
        d_min = torch.tensor([rc.ranked_ssd[0]], dtype=torch.float32)
        assert rc.funnel.threshold == float(thresholds(d_min, cfg)[0][0])
        assert rc.funnel.d_min == float(rc.ranked_ssd[0])
        # Every candidate is on the (unthinned) curve; the survivors are exactly those under the line.
        assert len(rc.ranked_ssd) == rc.n_candidates == rc.funnel.loc_ssl
        assert int((rc.ranked_ssd <= np.float32(rc.funnel.threshold)).sum()) == rec.pool_size[1, y, x]
        same = constraint_funnel(rec, digits, 1, y, x)
        assert (same.final, same.threshold, same.chosen) == (rc.funnel.final, rc.funnel.threshold, rc.funnel.chosen)


def test_ceiling_lowers_the_line(digits):
    rec = generate(GenerationConfig(**{**SMALL, "constraints": "ssd,loc", "max_ssd": 0.01, "eps": 5.0}), digits)
    cfg = GenerationConfig.from_dict(rec.config)
    for step in sampled_steps(rec, 0)[:8]:
        y, x = (int(v) for v in rec.order[step])
        rc = ranked_candidates(rec, digits, 0, y, x)
        expect = float(thresholds(torch.tensor([rc.ranked_ssd[0]]), cfg)[0][0])
        assert rc.funnel.threshold == expect and rc.funnel.final == rec.pool_size[0, y, x]
        # The formula names the ceiling whenever it, not the adaptive line, is the threshold.
        adaptive = (1 + cfg.eps) * max(rc.funnel.d_min, 0.0) + cfg.tol
        lowered = expect < adaptive * (1 - 1e-6)
        assert ("lowered to max_ssd" in rc.funnel.formula) == lowered
        assert "max_ssd" in rc.funnel.formula


def test_formula_says_when_the_ceiling_is_the_line():
    from nps.lab.funnel import _formula
    cfg = GenerationConfig(**{**SMALL, "max_ssd": 0.01, "eps": 5.0})
    d_min = torch.tensor([0.004], dtype=torch.float32)  # adaptive line 6 x 0.004 = 0.024, above the ceiling
    thr = float(thresholds(d_min, cfg)[0][0])
    assert thr == pytest.approx(0.01)
    assert _formula(cfg, float(d_min[0]), thr).endswith(f"= 0.024001, lowered to max_ssd = {thr:.6g}")
    low = torch.tensor([0.001], dtype=torch.float32)  # 0.006: under the ceiling, the adaptive line stands
    assert _formula(cfg, float(low[0]), float(thresholds(low, cfg)[0][0])).endswith("(max_ssd 0.01 does not cut here)")
    plain = GenerationConfig(**SMALL)
    assert "max_ssd" not in _formula(plain, 0.004, float(thresholds(d_min, plain)[0][0]))


def test_frames_are_deterministic(records, digits):
    rec = records["ssd,loc,ssl"]
    a = step_frames(rec, digits, 2, 10, count=3)
    b = step_frames(rec, digits, 2, 10, count=3)
    for fa, fb in zip(a, b):
        for k, v in fa.__dict__.items():
            if isinstance(v, np.ndarray):
                assert np.array_equal(v, getattr(fb, k)), k
            else:
                assert v == getattr(fb, k), k


def test_default_step_is_a_stroke_pixel(records):
    rec = records["ssd,loc,ssl"]
    for n in range(len(rec)):
        s = default_step(rec, n)
        y, x = rec.order[s]
        assert rec.shell[s] > 0 and rec.source_index[n, y, x] >= 0
        assert int(rec.images[n, y, x]) * 2 >= int(rec.images[n].max())


def test_bad_requests_are_one_line_errors(records, digits):
    rec = records["ssd"]
    with pytest.raises(NPSError, match="out of range"):
        step_frames(rec, digits, 99, 0)
    with pytest.raises(NPSError, match="out of range"):
        step_frames(rec, digits, 0, 10_000)


@pytest.mark.parametrize("cons", ["ssd,loc,ssl", "ssd", "loc,ssl"])
def test_figure_has_fixed_size_and_all_frames(records, digits, cons):
    from app_support.explainer_figure import HEIGHT, PHASES, WIDTH, compose, layout_for, step_figure
    rec = records[cons]
    frames = step_frames(rec, digits, 0, 0, count=2)
    fig = step_figure(frames, rec.config, digits.class_names)
    assert (fig.layout.width, fig.layout.height) == (WIDTH, HEIGHT)
    assert [fr.name for fr in fig.frames] == [f"{f.step}:{p}" for f in frames for p in PHASES]
    # The threshold line drawn is the funnel's threshold (no line when appearance is off).
    thr = next(fr for fr in fig.frames if fr.name == f"{frames[0].step}:rank").data[3]
    if frames[0].threshold is None:
        assert len(thr.y) == 0 and "Appearance is off" in fig.frames[1].layout.annotations[0].text
    else:
        assert max(frames[0].threshold, 1e-7) == pytest.approx(thr.y[0])
    # A frame's annotations replace the figure's: the key and chart titles must be in every frame.
    assert all(any("Constraint funnel" in a.text for a in fr.layout.annotations) for fr in fig.frames)
    # The funnel's log axis is fixed for every frame and starts at half a window: a pool of 1 is a bar.
    lo, hi = fig.layout.xaxis3.range
    counts = [r[1] for f in frames for r in f.funnel if r[1] > 0]
    assert lo < np.log10(1) - 0.25 and hi >= np.log10(max(counts))
    lay = layout_for(3, (8, 8))
    pics = [compose(frames[0], lay, p) for p in PHASES]
    assert len({p.shape for p in pics}) == 1  # same size every phase: nothing shrinks during play
    assert not np.array_equal(pics[0], pics[-1])


# --------------------------------------------------------------------------- the page
@pytest.fixture
def app(monkeypatch):
    """A fresh AppTest on digits (as in tests/test_app.py: multipage-v2 mode, empty results cache)."""
    from pathlib import Path

    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    init = PagesManager.__init__

    def v2_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", v2_init)
    st.cache_data.clear()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "streamlit_app.py"), default_timeout=120)
    at.query_params["corpus"] = "digits"
    at.query_params["seed"] = "0"
    return at


def test_explainer_page_steps(app, digits):
    app.run()
    app.switch_page("pages/6_explainer.py").run()
    assert not app.exception
    app.button(key="btn_exp_preset_digits").click().run()
    assert not app.exception and not app.error
    assert app.title[0].value == "Step explainer"
    rec = app.session_state["records"]["preset: digits"]
    first = app.session_state["exp_step"]
    assert first == default_step(rec, 0)
    charts = app.get("plotly_chart")
    assert len(charts) == 1
    app.button(key="btn_exp_next").click().run()
    nxt = app.session_state["exp_step"]
    steps = sampled_steps(rec, 0)
    assert nxt == int(steps[steps > first][0])
    assert f"**Step {nxt}**" in " ".join(m.value for m in app.markdown)
    assert app.get("plotly_chart")[0].proto.spec != charts[0].proto.spec
    app.button(key="btn_exp_back").click().run()
    assert app.session_state["exp_step"] == first
    app.number_input(key="exp_sample").set_value(1).run()
    assert app.session_state["exp_step"] == default_step(rec, 1)
    assert not app.exception and not app.error
    # The pixel traced on the Analysis page is one click away.
    late = int(sampled_steps(rec, 1)[-3])
    app.session_state["ana_sample"] = 1
    app.session_state["ana_y"], app.session_state["ana_x"] = (int(v) for v in rec.order[late])
    app.run()
    app.button(key="btn_exp_traced").click().run()
    assert app.session_state["exp_step"] == late
    assert f"**Step {late}**" in " ".join(m.value for m in app.markdown)


def _rgb_corpus(n: int = 40):
    from nps.corpora import Corpus
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (4, 10, 10, 3), dtype=np.uint8)
    labels = np.arange(n) % 4
    train = np.clip(base[labels].astype(int) + rng.integers(-20, 21, (n, 10, 10, 3)), 0, 255).astype(np.uint8)
    return Corpus("rgb-synthetic", train, labels.astype(np.int64), train[:8], labels[:8].astype(np.int64),
                  ("a", "b", "c", "d"))


def test_colour_corpus_frames_and_pictures():
    from app_support.explainer_figure import PHASES, compose, layout_for
    corpus = _rgb_corpus()
    rec = generate(GenerationConfig(corpus="rgb-synthetic", n=2, seed=0, window=3, seed_size=2, k=6,
                                    constraints=("ssd", "loc", "ssl"), encoder="pixels"), corpus)
    frames = step_frames(rec, corpus, 1, 0, count=2)
    for f in frames:
        assert f.windows.shape[1:] == (3, 3, 3) and f.value.shape == (3,)
        assert f.windows[f.drawn][1, 1].tolist() == rec.images[1, f.y, f.x].tolist()
        assert f.pool_size == rec.pool_size[1, f.y, f.x] and f.kept[f.drawn]
        lay = layout_for(3, rec.canvas_shape)
        assert {compose(f, lay, p).shape for p in PHASES} == {compose(f, lay, "land").shape}


def test_completion_record_skips_given_pixels(digits):
    from nps.engine.sampler import complete
    image = digits.test[0]
    known = np.zeros(image.shape, bool)
    known[:4] = True
    rec = complete(GenerationConfig(corpus="digits", n=1, seed=0, window=3, seed_size=2, k=12,
                                    constraints=("ssd", "loc", "ssl")),
                   digits, image, known)
    steps = sampled_steps(rec, 0)
    assert len(steps) == (~known).sum()
    f = step_frames(rec, digits, 0, 0, count=1)[0]
    assert f.step == steps[0] and f.pool_size == rec.pool_size[0, f.y, f.x] and f.kept[f.drawn]
    assert rec.source_index[0, f.y, f.x] >= 0


@pytest.mark.parametrize("cons", ["ssd,loc,ssl", "loc,ssl"])
def test_phone_figure_fits_360_px_and_wraps_its_text(records, digits, cons):
    """The narrow layout: 360 px wide, panels inside the picture, every text line short enough for it."""
    import re

    from app_support.explainer_figure import NARROW, PHASES, WIDE, compose, layout_for, step_figure
    rec = records[cons]
    frames = step_frames(rec, digits, 0, 0, count=2)
    fig = step_figure(frames, rec.config, digits.class_names, geo=NARROW)
    assert (fig.layout.width, fig.layout.height) == (NARROW.width, NARROW.height) and NARROW.width <= 328
    for (y0, x0, h, w) in (NARROW.ctx, NARROW.thumbs, NARROW.canvas):
        assert x0 >= 0 and x0 + w <= NARROW.plot_w and y0 >= 0 and y0 + h <= NARROW.top_h
    lay = layout_for(3, (8, 8), NARROW)
    assert {compose(frames[0], lay, p).shape for p in PHASES} == {(NARROW.top_h, NARROW.plot_w, 3)}
    beats = [fr.layout.annotations[0].text for fr in fig.frames]
    longest = max(len(re.sub(r"<[^>]*>", "", line)) for b in beats for line in b.split("<br>"))
    assert longest <= NARROW.wrap + 12  # one long number may overrun a little, never a whole sentence
    assert all("<br>" in b for b in beats)
    wide = step_figure(frames, rec.config, digits.class_names)
    assert wide.layout.width == WIDE.width and "<br>" not in wide.frames[0].layout.annotations[0].text
    assert [b.label for b in fig.layout.updatemenus[0].buttons][-1] == "❚❚ Pause"


def test_explainer_phone_layout_toggle(app):
    app.run()
    app.switch_page("pages/6_explainer.py").run()
    app.button(key="btn_exp_preset_digits").click().run()
    assert not app.exception and not app.error
    import json
    wide = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert wide["layout"]["width"] == 980
    app.toggle(key="exp_narrow").set_value(True).run()
    assert not app.exception and not app.error
    narrow = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert narrow["layout"]["width"] == 320 and narrow["layout"]["height"] > wide["layout"]["height"]
