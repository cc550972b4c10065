"""Welcome: what the lab is, preset records and guided lessons. Renders without any computation."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app_support import lesson_view, stages
from app_support.boot import entry_guard
from app_support.display import stroke_pixel
from app_support.pages import PAGE, SIDEBAR_PREFIX, hand_over, widget_key
from app_support.toggles import set_constraints
from app_support.ui import add_record, open_in_analysis
from nps.constraints import default_names
from nps.lab.presets import LESSONS, PRESETS, Lesson, get_lesson, is_built, read_built

FIRST_PICTURE = Path(__file__).resolve().parents[1] / "docs" / "sample-grid.png"  # shipped, pre-rendered


def pin_subset(lesson: Lesson) -> None:
    """Start-lesson callback: set the sidebar subset a lesson pins (a widget value, so before the script
    reruns) and mark the lesson to start at the top of the rerun, before this page draws anything again."""
    if "subset" in lesson.controls:
        st.session_state[SIDEBAR_PREFIX + "subset"] = lesson.controls["subset"] or 0
    st.session_state["wel_start"] = lesson.key


def start_lesson(lesson: Lesson) -> None:
    """Apply the lesson's controls to the target page's widgets, then go there.

    On Generate and Ablations the page opens the lesson's result on arrival (``<page>_autorun``):
    a shipped record where one matches (:mod:`app_support.lesson_view`), else it waits for the click.
    """
    ctl = dict(lesson.controls)
    ctl.pop("subset", None)  # set by pin_subset
    ss = st.session_state
    if lesson.page == "generate":
        set_constraints("gen", ctl.pop("constraints", default_names()))
        hand_over(ss, "generate", **ctl, lesson=lesson.key, autorun=True)
        st.switch_page(PAGE["generate"].file)
    elif lesson.page == "ablations":
        columns = ctl.pop("columns", [])
        for i, cons in enumerate(columns):
            set_constraints(widget_key("ablations", str(i)), cons)
        hand_over(ss, "ablations", ncols=len(columns), **ctl, lesson=lesson.key, autorun=True)
        st.switch_page(PAGE["ablations"].file)
    elif lesson.page == "analysis":
        name = ctl.get("preset", "digits")
        rec = stages.open_preset(name)
        if rec is not None:
            add_record(f"preset: {name}", rec)
            hand_over(ss, "analysis", lesson=lesson.key)
            pixel = ctl.get("pixel", "stroke")
            open_in_analysis(f"preset: {name}", 0, stroke_pixel(rec, 0) if pixel == "stroke" else tuple(pixel))


entry_guard()
# A click on a lesson card or a preset digit: go at once (the rest of this page is not drawn again).
if (start := st.session_state.pop("wel_start", None)) is not None:
    start_lesson(get_lesson(start))
if (pick := st.session_state.pop("wel_open", None)) is not None:  # a digit clicked in a preset grid
    built = stages.open_preset(pick[0])
    if built is not None:
        add_record(f"preset: {pick[0]}", built)
        open_in_analysis(f"preset: {pick[0]}", pick[1])

st.title("NPS lab")
intro, picture = st.columns([3, 1])
if FIRST_PICTURE.is_file():  # a picture on the very first screen, before anything is computed
    picture.image(str(FIRST_PICTURE), width="stretch",
                  caption="64 unselected MNIST samples, full model (pre-rendered; the presets below are live "
                          "records you can trace).")
intro.markdown(
    "A white-box image generator that trains nothing and models nothing: every pixel is "
    "**copied** from the centre of a training-image window that passes three constraints — "
    "**appearance** (Gaussian-weighted SSD of the context, Efros & Leung), **locality** (the source window "
    "sits within *R* pixels of the target) and **representation** (the source image is among the *k* nearest "
    "neighbours of a reference in an encoder's embedding). Because every pixel is copied, every pixel's "
    "source is *known exactly*: you can trace it, replay the fill, and see which constraint did what. "
    "(A fourth, **multi-scale**, is opt-in: a lesson below tries it.)")
intro.caption("After Lu et al., *Scaling Non-Parametric Sampling with Representation* (arXiv 2510.22196). "
              "Pick a corpus in the sidebar; its menu lists the pages of the bench (on a phone, open it with "
              "the » at the top).")

st.subheader("Presets")
st.caption("Small records built once and kept in the server's cache; opening one that is not built yet generates "
           "it (a few seconds on digits). The MNIST grid ships with the lab as a precomputed record (checked against "
           "the corpus when opened), so it opens in seconds even on a fresh server; its constraint funnel first embeds "
           "the 70,000 images once (a button says so and how long). Click a digit in a grid to open that sample in "
           "Analysis.")


def _on_preset_pick(name: str, n: int) -> None:
    """Grid click callback: remember which preset sample to open (the page body switches pages)."""
    from nps.lab.plots_maps import grid_index_from_points
    try:
        points = st.session_state[f"sel_wel_{name}"]["selection"]["points"]
    except (KeyError, TypeError):
        return
    i = grid_index_from_points(points, n)
    if i is not None:
        st.session_state["wel_open"] = (name, i)


def preset_grid(name: str, images) -> None:
    """A built preset's samples as a plotly grid: click one to open it in Analysis.

    It is also the session's first plotly chart, so the browser has loaded plotly's script
    (a few MB, about 1.5 s on this machine) before a lesson's result grid needs it.
    """
    from nps.lab.plots_maps import grid_figure
    tile = 56 if images.shape[1] > 12 else 48
    st.plotly_chart(grid_figure(images, 4, None, tile, [f"sample {i}: click to open it in Analysis"
                                                        for i in range(len(images))]),
                    key=f"sel_wel_{name}", on_select=lambda: _on_preset_pick(name, len(images)),
                    selection_mode="points", config={"displayModeBar": False}, width="content")


cols = st.columns(len(PRESETS))
for col, preset in zip(cols, PRESETS.values()):
    with col.container(border=True):
        st.markdown(f"**{preset.title}**")
        st.caption(preset.description)
        rec = read_built(preset.name) if is_built(preset.name) else None
        if rec is not None:  # a clickable plotly grid: the browser fetches plotly's script here, not at a lesson
            preset_grid(preset.name, rec.images)
        if st.button("Open in Analysis" if rec is not None else "Build and open", key=f"btn_preset_{preset.name}",
                     icon=":material/open_in_new:"):
            built = stages.open_preset(preset.name)
            if built is not None:
                add_record(f"preset: {preset.name}", built)
                open_in_analysis(f"preset: {preset.name}")

st.subheader("Guided lessons")
st.caption("Each card sets the controls for you. Read the question and make a prediction, then start the lesson: "
           "it opens the result (on MNIST a precomputed record, at once) and says what to look for.")
cols = st.columns(len(LESSONS))
for col, lesson in zip(cols, LESSONS):
    with col.container(border=True):
        st.markdown(f"**{lesson.title}**")
        st.markdown(f"*Predict:* {lesson.predict}")
        st.caption(lesson_view.card_note(lesson, st.session_state["settings"]))
        st.button("Start lesson", key=f"btn_lesson_{lesson.key}", icon=":material/play_lesson:",
                  on_click=pin_subset, args=(lesson,))

st.subheader("The pages")
st.markdown(
    "- **Corpus & encoder**: what the generator copies from, the encoder's embedding map and the cached indexes.\n"
    "- **Generate**: every parameter and constraint toggle, a live canvas, downloads.\n"
    "- **Ablations**: up to four constraint sets side by side on the same references and seeds, with metrics.\n"
    "- **Analysis & tracing**: replay the fill, overlay the provenance maps, click a pixel to see its source "
    "window and the constraint funnel that produced it.\n"
    "- **Complete**: hide part of an image and let the sampler fill it back (Efros–Leung hole filling).")
