"""The step explainer page: one pixel, one step, animated (issue 13, item 2).

Everything shown is rebuilt from the current record and the funnel
(:func:`nps.lab.explainer.step_frames`): no new sampling.  The animation is a plotly
figure with frames and its own play / pause / speed buttons and slider, so it plays
in the browser without rerunning this script per frame (a rerun loop or
``st.fragment(run_every=...)`` would redraw the page several times a second on a
2-core host and flicker).  Streamlit buttons move the figure's first step back and
forward; the figure is drawn at a fixed pixel size, so it never shrinks during play.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from app_support import resources
from app_support.ui import attempt, config_caption, records, ss_default
from nps.config import GenerationConfig
from nps.record import ProvenanceRecord

STEPS_PER_FIGURE = 6  # fill steps animated per figure (6 phases each); more makes the page slow to load


@st.cache_data(show_spinner=False, max_entries=256)
def _frame(rid: str, n: int, step: int, corpus_name: str, subset: int | None, _record: ProvenanceRecord):
    """One step's frame (cached per step, so Next recomputes only the step that is new)."""
    from nps.lab.explainer import step_frames
    cfg = GenerationConfig.from_dict(_record.config)
    frames = step_frames(_record, resources.corpus(corpus_name, subset), n, step, 1, pools=resources.pools(cfg))
    return frames[0] if frames else None


def _frames(rid: str, n: int, start: int, count: int, corpus_name: str, subset: int | None,
            _record: ProvenanceRecord) -> list:
    """Frames for ``count`` sampled steps of sample n from fill step ``start``."""
    from nps.lab.explainer import sampled_steps
    steps = sampled_steps(_record, n)
    with st.spinner("Replaying the candidate pools of these steps…"):
        return [_frame(rid, n, int(s), corpus_name, subset, _record) for s in steps[steps >= start][:count]]


@st.cache_data(show_spinner="Drawing the animation…", max_entries=32)
def _figure(rid: str, n: int, steps: tuple[int, ...], corpus_name: str, subset: int | None,
            _record: ProvenanceRecord, _frames: list, narrow: bool = False):
    """The animated figure of ``_frames`` (the frames of ``steps``; keyed by the steps, not the arrays).

    ``narrow``: the stacked 320 px layout for phones (:data:`app_support.explainer_figure.NARROW`).
    """
    from app_support.explainer_figure import NARROW, WIDE, step_figure
    names = resources.corpus(corpus_name, subset).class_names
    return step_figure(_frames, _record.config, tuple(names), geo=NARROW if narrow else WIDE)


def _narrow_on_phones() -> None:
    """Switch the figure to its phone layout once per session when the window is narrow.

    The server cannot see the window's width, so a small script of ours (constant, no
    visitor input) ticks the "Phone layout" toggle when the screen is at most 768 px wide,
    once; the visitor can switch it back.
    """
    ss = st.session_state
    if ss.get("_exp_narrow_probed"):
        return
    ss["_exp_narrow_probed"] = True
    st.html("""<script>/* explainer: phone layout */
(() => {
  const tick = (tries) => {
    if (!window.matchMedia("(max-width: 768px)").matches) return;
    const box = document.querySelector('.st-key-exp_narrow input[type="checkbox"]');
    if (box) { if (!box.checked) box.click(); return; }
    if (tries > 0) setTimeout(() => tick(tries - 1), 150);
  };
  tick(20);
})();
</script>""", unsafe_allow_javascript=True)


def _move(key: str, steps: np.ndarray, delta: int) -> None:
    """Move the step in ``key`` to the previous/next sampled step (seed and given steps are skipped)."""
    cur = int(st.session_state.get(key, steps[0]))
    if delta > 0:
        later = steps[steps > cur]
        st.session_state[key] = int(later[0]) if len(later) else int(steps[-1])
    else:
        earlier = steps[steps < cur]
        st.session_state[key] = int(earlier[-1]) if len(earlier) else int(steps[0])


def _reset(key: str, value: int) -> None:
    st.session_state[key] = int(value)


def _traced_step(record: ProvenanceRecord, n: int) -> int | None:
    """The fill step of the pixel traced on the Analysis page, if it is a sampled pixel of this sample."""
    from nps.lab.explainer import sampled_steps
    y, x = st.session_state.get("ana_y"), st.session_state.get("ana_x")
    if y is None or x is None or int(st.session_state.get("ana_sample", 0)) != n:
        return None
    hit = np.flatnonzero((record.order[:, 0] == int(y)) & (record.order[:, 1] == int(x)))
    if len(hit) == 0 or int(hit[0]) not in set(sampled_steps(record, n).tolist()):
        return None
    return int(hit[0])


def _no_record() -> None:
    from app_support.stages import no_record_picker
    no_record_picker("exp", "No record yet: generate one on the Generate page, or open a preset here.")


def explainer_page() -> None:
    """The whole page: record and sample choice, step controls, the animated figure, the rule."""
    from app_support.state import record_id
    from nps.lab.explainer import default_step, sampled_steps
    if not records():
        _no_record()
    labels = list(records())
    if st.session_state.get("ana_record") not in labels:
        st.session_state["ana_record"] = labels[-1]
    top = st.columns([2.3, 0.9, 0.9, 3.6], vertical_alignment="bottom")
    # The Analysis page's current record (the same key), so both pages talk about the same run.
    top[0].selectbox("Record", labels, key="ana_record")
    record = records()[st.session_state["ana_record"]]
    cfg = record.config
    corpus = attempt(resources.corpus, cfg.get("corpus"), cfg.get("subset"), what="loading the record's corpus")
    if corpus is None:
        st.stop()
    rid = record_id(record)
    ss_default("exp_sample", int(st.session_state.get("ana_sample", 0)))
    st.session_state["exp_sample"] = int(min(max(int(st.session_state["exp_sample"]), 0), len(record) - 1))
    top[1].number_input("sample", 0, len(record) - 1, step=1, key="exp_sample")
    n = int(st.session_state["exp_sample"])
    steps = sampled_steps(record, n)
    if len(steps) == 0:
        st.info(f"Sample {n} has no sampled pixel (every pixel was given or seeded): pick another sample.")
        st.stop()
    # A new record or sample starts on a stroke pixel (not background).
    stroke = default_step(record, n)
    if st.session_state.get("_exp_for") != (rid, n):
        st.session_state["_exp_for"] = (rid, n)
        st.session_state["exp_step"] = stroke
    total = len(record.order)
    st.session_state["exp_step"] = int(min(max(int(st.session_state.get("exp_step", stroke)), 0), total - 1))
    top[2].number_input("fill step", 0, total - 1, step=1, key="exp_step",
                        help="index in the fill order; seed pixels (copied whole) are skipped")
    row = top[3].container(horizontal=True)
    row.button("Back", icon=":material/chevron_left:", key="btn_exp_back", on_click=_move,
               args=("exp_step", steps, -1), help="one sampled pixel back")
    row.button("Next", icon=":material/chevron_right:", key="btn_exp_next", on_click=_move,
               args=("exp_step", steps, +1), help="one sampled pixel forward")
    row.button("Stroke pixel", icon=":material/gesture:", key="btn_exp_stroke", on_click=_reset,
               args=("exp_step", stroke), help="back to the first bright pixel that had a real choice")
    traced = _traced_step(record, n)
    if traced is not None:
        row.button("Traced pixel", icon=":material/troubleshoot:", key="btn_exp_traced", on_click=_reset,
                   args=("exp_step", traced), help="the pixel selected on the Analysis page")
    ss_default("exp_narrow", False)
    row.toggle("Phone layout", key="exp_narrow", help="a narrow figure with the panels stacked (320 px wide); "
               "switched on by itself on a screen up to 768 px wide")
    _narrow_on_phones()
    start = int(st.session_state["exp_step"])
    start = int(steps[steps >= start][0]) if (steps >= start).any() else int(steps[-1])
    from app_support.stages import pools_ready
    if not pools_ready(record, "The animation", f"exp_{rid[:8]}"):  # a cold SimCLR embedding: asked, not hidden
        st.stop()
    frames = attempt(_frames, rid, n, start, STEPS_PER_FIGURE, cfg.get("corpus"), cfg.get("subset"), record,
                     what="replaying the step")
    if not frames:
        st.stop()
    f = frames[0]
    narrow = bool(st.session_state["exp_narrow"])
    fig = attempt(_figure, rid, n, tuple(g.step for g in frames), cfg.get("corpus"), cfg.get("subset"), record,
                  frames, narrow, what="drawing the animation")
    if fig is None:
        st.stop()
    st.plotly_chart(fig, key=f"exp_fig_{rid[:8]}_{n}_{start}{'_narrow' if narrow else ''}", width="content",
                    theme=None, config={"displayModeBar": False, "responsive": False})
    st.markdown(f"**Step {f.step}** of {total} · pixel ({f.y}, {f.x}) · pool **{f.pool_size:,}** of "
                f"{f.n_candidates:,} candidates · the figure plays steps "
                f"{', '.join(str(g.step) for g in frames)}")
    st.caption(config_caption(cfg) + f" · sample {n}. Press ▶ Play (four speeds) in the figure to run each step "
               "in four beats: context, rank and cut, draw, land; ❚❚ Pause stops it and the slider scrubs. "
               "Back/Next move the first step shown by one sampled pixel.")
    with st.expander("The rule, exactly (what each frame shows)"):
        st.markdown(
            "- **Context**: the w×w window around the pixel on the canvas as it was before this step; only "
            "known pixels (filled earlier) are compared.\n"
            "- **Rank**: every candidate window that passes locality and representation is scored by the "
            "Gaussian-weighted SSD over the known pixels, normalised by their total weight (intensities in [0, 1]).\n"
            "- **Cut**: the engine keeps d ≤ (1+ε)·d_min + tol (lowered to the ceiling max_ssd where one is set and "
            "some window passes it): the one rule in `nps.engine.selection.thresholds`. The survivors are the pool; "
            "their number equals the record's pool size at this pixel.\n"
            "- **Draw**: the record says which window was drawn (uniformly from the pool); its centre pixel is "
            "copied to the canvas and never changes again.\n\n"
            "Nothing here is sampled anew: the canvas is replayed from the record and the candidates are "
            "recomputed with the engine's own distance code.")
