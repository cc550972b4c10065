"""Teaching views over one record: overlays with pixel picking, tracing, funnel, honesty (replay: replay_view.py)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app_support import resources
from app_support.display import stroke_pixel
from app_support.state import fill_step, source_window
from app_support.ui import ss_default
from nps.lab.overlays import LAYERS
from nps.lab.plots import to_rgb, upscale
from nps.record import ProvenanceRecord


# --------------------------------------------------------------------------- a grid to click
def _on_grid_pick(chart_key: str, state_key: str, n: int) -> None:
    from nps.lab.plots_maps import grid_index_from_points
    try:
        points = st.session_state[chart_key]["selection"]["points"]  # type: ignore[index]
    except (KeyError, TypeError):
        return
    i = grid_index_from_points(points, n)
    if i is not None:
        st.session_state[state_key] = i


def pick_grid(images: np.ndarray, state_key: str, chart_key: str, ncol: int | None = None,
              tile_px: int | None = None, hover: list[str] | None = None) -> None:
    """A sample grid: click a digit to select it (``state_key`` gets its index); the chosen one is outlined."""
    from nps.lab.plots_maps import grid_figure
    n = len(images)
    sel = int(st.session_state.get(state_key, 0))
    tile = tile_px or max(40, min(96, 3 * max(images.shape[1:3])))
    if st.session_state.get("sb_present") and tile_px is None:
        tile *= 2  # presentation mode: grids twice as large
    fig = grid_figure(images, ncol, sel, tile, hover)
    st.plotly_chart(fig, key=chart_key, on_select=lambda: _on_grid_pick(chart_key, state_key, n),
                    selection_mode="points", config={"displayModeBar": False}, width="content")


# --------------------------------------------------------------------------- overlay canvas with pixel picking
def _on_pick(chart_key: str, h: int, w: int) -> None:
    from app_support.state import pixel_from_points
    state = st.session_state.get(chart_key)
    points = []
    try:
        points = state["selection"]["points"]  # type: ignore[index]
    except (KeyError, TypeError):
        return
    yx = pixel_from_points(points, h, w)
    if yx is not None:
        st.session_state["ana_y"], st.session_state["ana_x"] = yx


def overlay_choice() -> tuple[str, float]:
    """One overlay at a time (or none), and how strongly it is blended over the sample.

    Returns:
        (layer name or "none", opacity in [0.2, 1]).
    """
    ss_default("ana_overlay", "image-ID")
    ss_default("ana_overlay_alpha", 0.8)
    if st.session_state["ana_overlay"] not in ("none", *LAYERS):
        st.session_state["ana_overlay"] = "image-ID"
    c = st.columns([4, 1], vertical_alignment="bottom")
    c[0].radio("overlay", ["none", *LAYERS], key="ana_overlay", horizontal=True,
               help="One provenance layer at a time, drawn over the sample with its key beside the canvas.")
    c[1].slider("blend", 0.2, 1.0, step=0.1, key="ana_overlay_alpha",
                disabled=st.session_state["ana_overlay"] == "none",
                help="How much of the overlay covers the sample: 1 shows the layer alone.")
    return st.session_state["ana_overlay"], float(st.session_state["ana_overlay_alpha"])


@st.cache_data(show_spinner=False, max_entries=64)
def _overlay(rid: str, n: int, name: str, class_names: tuple[str, ...], _record: ProvenanceRecord):
    from nps.lab.overlays import overlay_key, overlay_layers
    return overlay_layers(_record, n), overlay_key(_record, n, name, class_names) if name != "none" else None


@st.cache_data(show_spinner=False, max_entries=64)
def _hover(rid: str, n: int, class_names: tuple[str, ...], _record: ProvenanceRecord) -> np.ndarray:
    from app_support.display import pixel_hover
    return pixel_hover(_record, n, class_names)


def canvas_height() -> int:
    """The traced canvas's height: larger in presentation mode."""
    return 560 if st.session_state.get("sb_present") else 360


def source_picker(record: ProvenanceRecord, n: int, train: np.ndarray, rid: str) -> None:
    """The top sources as a clickable strip; the chosen one's pixels are lit on the sample.

    Clicking a source thumbnail (outlined once chosen) shows every pixel of the sample
    that was copied from it, with how many there are.
    """
    from app_support.display import source_highlight
    from nps.lab.plots import thumbnails
    thumbs = thumbnails(record, n, train, 5)
    if not thumbs:
        st.caption("This sample has no sampled pixels.")
        return
    key = f"ana_src_pick_{rid[:8]}_{n}"
    ss_default(key, 0)
    st.session_state[key] = int(min(max(st.session_state[key], 0), len(thumbs) - 1))
    c = st.columns([3, 1])
    with c[0]:
        st.caption("Click a source to light every pixel it gave:")
        big = 2 if st.session_state.get("sb_present") else 1
        pick_grid(np.stack([p for _, _, p in thumbs]), key, f"sel_src_{rid[:8]}_{n}", ncol=len(thumbs),
                  tile_px=big * max(64, min(112, 4 * max(record.canvas_shape))),
                  hover=[f"#{sid}: {cnt} pixels, click to light them" for sid, cnt, _ in thumbs])
    sid, _, _ = thumbs[st.session_state[key]]
    pic, count = source_highlight(record, n, sid)
    total = max(int((record.source_index[n] >= 0).sum()), 1)
    c[1].image(upscale(pic, max(1, 168 // max(record.canvas_shape))), width=168 * big,
               caption=f"#{sid} gave {count} pixels ({count / total:.0%}), lit in amber")


def overlay_canvas(record: ProvenanceRecord, n: int, rid: str, key: str, choice: tuple[str, float],
                   class_names: tuple[str, ...] = ()) -> tuple[int, int]:
    """The sample under the chosen overlay, with its key; click a pixel (or type its coordinates) to select it.

    Returns:
        the selected (y, x).
    """
    from nps.lab.overlays import compose_overlay
    from nps.lab.plots_maps import canvas_figure
    name, alpha = choice
    h, w = record.canvas_shape
    layers, okey = _overlay(rid, n, name, tuple(class_names), record)
    pic = compose_overlay(record.images[n], layers, [] if name == "none" else [name], alpha)
    # A new record or sample starts on a stroke pixel (a background pixel has a dull funnel), unless
    # the visitor arrived with a pixel of their own (a link, a lesson, "Open in Analysis").
    ss = st.session_state
    if ss.get("_ana_pixel_for") != (rid, n):
        if not ss.pop("_ana_pixel_given", False) or "ana_y" not in ss:
            ss["ana_y"], ss["ana_x"] = stroke_pixel(record, n)
        ss["_ana_pixel_for"] = (rid, n)
    st.session_state["ana_y"] = int(min(max(st.session_state["ana_y"], 0), h - 1))
    st.session_state["ana_x"] = int(min(max(st.session_state["ana_x"], 0), w - 1))
    y, x = st.session_state["ana_y"], st.session_state["ana_x"]
    fig = canvas_figure(pic, okey, (y, x), height=canvas_height(), hover=_hover(rid, n, tuple(class_names), record))
    chart_key = f"sel_canvas_{key}"
    st.plotly_chart(fig, key=chart_key, on_select=lambda: _on_pick(chart_key, h, w), selection_mode="points",
                    config={"displayModeBar": False})
    if okey is not None:
        st.caption(f"**{name}** ({alpha:.0%} over the sample): {okey.note}")
    st.caption("Hover a pixel to see its source (training image, class, position, pool size); click it to trace it, "
               "or type its coordinates. Red square: the traced pixel.")
    c1, c2 = st.columns(2)
    c1.number_input("pixel row y", 0, h - 1, step=1, key="ana_y")
    c2.number_input("pixel column x", 0, w - 1, step=1, key="ana_x")
    return int(st.session_state["ana_y"]), int(st.session_state["ana_x"])


# --------------------------------------------------------------------------- tracing one pixel
def source_figure(train_image: np.ndarray, info: dict, window: int):
    import plotly.graph_objects as go
    rgb = to_rgb(np.asarray(train_image)[None])[0]
    y0, x0, y1, x1 = info["box"]
    fig = go.Figure(go.Image(z=rgb, hoverinfo="skip"))
    fig.add_shape(type="rect", x0=x0 - 0.5, x1=x1 + 0.5, y0=y0 - 0.5, y1=y1 + 0.5,
                  line=dict(color="#ffb000", width=3))
    fig.add_shape(type="rect", x0=info["sx"] - 0.5, x1=info["sx"] + 0.5, y0=info["sy"] - 0.5, y1=info["sy"] + 0.5,
                  line=dict(color="#ff3b3b", width=3))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    fig.update_layout(margin=dict(l=0, r=0, t=0, b=0), height=300)
    return fig


def trace_source(record: ProvenanceRecord, n: int, y: int, x: int, corpus) -> bool:
    """Where pixel (y, x) came from: its source image with the window outlined, and its position.

    Returns:
        whether the pixel was sampled (False for a given or seed pixel, which has no funnel).
    """
    window = int(record.config.get("window", 7))
    info = source_window(record, n, y, x, window)
    step = fill_step(record, y, x)
    if info["source"] < 0:
        st.info(f"Pixel ({y}, {x}) was given (part of the known image of a completion), not sampled.")
        return False
    names = corpus.class_names
    label = names[info["label"]] if 0 <= info["label"] < len(names) else str(info["label"])
    st.markdown(f"**Pixel ({y}, {x})** of sample {n}: value `{record.images[n, y, x].tolist()}`, filled at step "
                f"{step} (shell {int(record.shell[step])}).")
    st.markdown(f"Copied from **training image #{info['source']}** (label *{label}*), at "
                f"**({info['sy']}, {info['sx']})**; offset ({info['sy'] - y:+d}, {info['sx'] - x:+d}). "
                f"Drawn uniformly from a pool of **{info['pool_size']}** windows"
                + (" *(relaxed: the pool was empty at first)*." if info["relaxed"] else "."))
    st.plotly_chart(source_figure(corpus.train[info["source"]], info, window), key=f"src_{n}_{y}_{x}",
                    config={"displayModeBar": False})
    st.caption(f"Orange: the {window}x{window} source window; red: its centre, the copied pixel.")
    if int(record.shell[step]) == 0:
        st.info("This is a seed pixel: the seed patch is copied whole from the reference image, so no constraint "
                "was applied. Pick a pixel outside the seed to see the constraint funnel.")
        return False
    return True


def attempt_funnel(record: ProvenanceRecord, n: int, y: int, x: int, rid: str):
    from app_support.ui import attempt
    return attempt(resources.funnel, rid, n, y, x, record.config["corpus"], record.config.get("subset"), record,
                   what="recomputing the constraint funnel")


def tex_number(v: float) -> str:
    """A number for LaTeX: 0.0123 stays, 1.7e-08 becomes 1.7\\times10^{-8}."""
    v = float(v)
    if v == 0 or 1e-3 <= abs(v) < 1e5:
        return f"{v:.4g}"
    mant, exp = f"{v:.3e}".split("e")
    return rf"{float(mant):.4g}\times10^{{{int(exp)}}}"


def funnel_section(record: ProvenanceRecord, n: int, y: int, x: int, rid: str) -> None:
    """The constraint funnel of pixel (y, x), recomputed from the record by nps.lab.funnel."""
    from app_support.stages import pools_ready
    if not pools_ready(record, "The constraint funnel", f"funnel_{rid[:8]}"):
        return
    fun = attempt_funnel(record, n, y, x, rid)
    if fun is not None:
        funnel_view(fun, record.config, record.images[n, y, x])


def funnel_view(fun, cfg: dict, value: np.ndarray) -> None:
    """Counts through the constraints, the SSD rule with live values, and the pool's centre values."""
    import plotly.graph_objects as go

    from nps.lab.plots_maps import funnel_figure
    rows = fun.rows(cfg, "all enabled (the pool)")  # one bar per enabled constraint (nps.constraints)
    fig = funnel_figure(rows)
    left, right = st.columns([1, 1])
    left.plotly_chart(fig, key="funnel_bars", config={"displayModeBar": False})
    with right:
        if fun.d_min is not None:
            eps, tol = float(cfg.get("eps", 0.1)), float(cfg.get("tol", 1e-6))
            st.latex(r"d(s)=\frac{\sum_k g_k m_k (t_k-s_k)^2}{\sum_k g_k m_k}")
            st.latex(r"\text{keep } d \le (1+\varepsilon)\,d_{\min}+\mathrm{tol}")
            st.latex(rf"(1+{eps:g})\times {tex_number(fun.d_min)} + {tex_number(tol)} = {tex_number(fun.threshold)}")
            st.caption("g: Gaussian weights (σ = w/6.4), m: known-pixel mask of the context window, t: the canvas, "
                       "s: a candidate window; intensities in [0, 1]. The pixel was drawn uniformly from the windows "
                       "below the threshold within the other constraints.")
        else:
            st.caption("Appearance (SSD) is off: every window passing the other constraints is in the pool.")
    vals = np.asarray(fun.centre_values)
    if vals.size:
        v = vals.reshape(len(vals), -1)[:, 0]
        hist = go.Figure(go.Histogram(x=v, xbins=dict(start=-0.5, end=255.5, size=8), marker_color="#72b7b2"))
        hist.add_vline(x=float(np.asarray(value).ravel()[0]), line_color="#ff3b3b", line_dash="dash")
        hist.update_layout(height=220, margin=dict(l=0, r=0, t=24, b=0), bargap=0.05,
                           title=f"Centre values of the {len(v)} pool windows (red: the value drawn)",
                           xaxis_title="intensity", yaxis_title="windows", xaxis_range=[-4, 259])
        right.plotly_chart(hist, key="funnel_hist", config={"displayModeBar": False})


# --------------------------------------------------------------------------- honesty
def honesty_panel(record: ProvenanceRecord, n: int, rid: str, corpus) -> None:
    from app_support.state import display_scale as ds
    from app_support.ui import attempt
    facts = attempt(resources.honesty, rid, n, record.config["corpus"], record.config.get("subset"), record,
                    what="checking this sample against the training set")
    if facts is None:
        return
    c = st.columns([1, 3])
    c[0].image(upscale(to_rgb(corpus.train[facts["nearest"]][None])[0], ds(corpus.image_shape, 112)),
               caption=f"nearest training image #{facts['nearest']}")
    with c[1]:
        m = st.columns(3)
        m[0].metric("nearest-neighbour ratio", f"{facts['nn_ratio']:.2f}",
                    help="distance to the nearest training image / to the second nearest (pixels); "
                         "near 0 means a copy of one image, real test digits sit near 0.8-1.")
        m[1].metric("largest single-source region", f"{facts['largest_island']} px",
                    f"{facts['island_share']:.0%} of the sample", delta_color="off", delta_arrow="off",
                    help="the largest 4-connected region copied from one training image")
        m[2].metric("distinct source images", facts["n_sources"],
                    f"top source {facts['top1_share']:.0%}", delta_color="off", delta_arrow="off")
        verdict = ("every pixel checked equals its recorded source pixel" if facts["mismatches"] == 0
                   else f"{facts['mismatches']} pixels do NOT match their recorded source: this record is damaged")
        st.markdown(f"**This provenance is exact, not a similarity guess.** Each pixel *was copied* from the "
                    f"training image and position shown when you trace it; {verdict} "
                    f"({facts['pixels']} pixels). The nearest-neighbour ratio above is the only similarity "
                    "measure on this panel, and it is there to show whether the whole sample is a copy.")
