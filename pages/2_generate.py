"""Generate: parameters, constraint toggles, a live canvas, the result grid and downloads."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app_support import lesson_view, present, resources, stages, views
from app_support.boot import entry_guard
from app_support.display import record_label
from app_support.links import params_from_query, params_to_query
from app_support.state import BOUNDS, build_config, grid_picture, suggested_params
from app_support.toggles import (
    constraint_toggles,
    default_toggles,
    enabled,
    owner_off,
    plugin_params,
    set_constraints,
    toggle_keys,
)
from app_support.ui import (
    LiveProgress,
    add_record,
    config_caption,
    download_buttons,
    lesson_banner,
    mirror_query,
    open_in_analysis,
    records,
    show_error,
    sidebar_corpus,
    ss_default,
    stop_notice,
    take_link,
    view_result,
    warn_if_slow,
)
from nps.cli.command import cli_command
from nps.config import DEFAULTS, FIELDS

entry_guard()
st.title("Generate")
settings = st.session_state["settings"]
corpus = sidebar_corpus(settings)
h, w = corpus.image_shape[:2]
side = min(h, w)

# Canvas-size dependent defaults, re-applied when the corpus changes shape (8x8 digits vs 28x28 MNIST).
if st.session_state.get("gen_shape") != [h, w]:
    for k, v in suggested_params(corpus.image_shape).items():
        st.session_state[f"gen_{k}"] = v
    st.session_state["gen_shape"] = [h, w]
default_toggles("gen")
for k, v in {"n": 16, "batch_size": 16, "sigma_auto": True,
             "sigma": round(DEFAULTS["window"] / 6.4, 3), "ssl_mode": DEFAULTS["ssl_mode"], "label": -1,
             "ref_mode": "random", "reference": 0}.items():
    ss_default(f"gen_{k}", v)


link = take_link("generate")
if link:  # a permalink: its parameters replace the page's (each checked; a bad one keeps the default)
    fields, notes = params_from_query(link, bounds=BOUNDS)
    ss = st.session_state
    for name, value in fields.items():
        if name == "constraints":
            set_constraints("gen", value)
        elif name == "label":
            ss["gen_label"] = -1 if value is None else int(value)
        elif name == "reference":
            ss["gen_ref_mode"] = "random" if value is None else "pick"
            ss["gen_reference"] = 0 if value is None else int(value)
        elif name == "sigma":
            ss["gen_sigma_auto"] = value is None
            if value is not None:
                ss["gen_sigma"] = float(value)
        else:
            ss[f"gen_{name}"] = value
    for note in notes:
        st.caption(f":orange[{note}]")


def clamp(key: str, lo: float, hi: float) -> None:
    """Keep a value set from outside (lesson, old session) inside the widget's range."""
    st.session_state[key] = type(st.session_state[key])(min(max(st.session_state[key], lo), hi))


lesson_banner("gen_lesson", "The result opens below (or press Generate); look:")

st.subheader("Constraints")
constraint_toggles("gen")  # one per registered constraint (nps.constraints)
extra = plugin_params("gen")  # the fields of plug-in constraints, if any

st.subheader("Parameters")
windows = [v for v in range(int(BOUNDS["window"][0]), int(BOUNDS["window"][1]) + 1, 2) if v <= side]
if st.session_state["gen_window"] not in windows:
    st.session_state["gen_window"] = windows[-1] if st.session_state["gen_window"] > windows[-1] else windows[0]
clamp("gen_seed_size", 1, min(int(BOUNDS["seed_size"][1]), side))
clamp("gen_radius", *BOUNDS["radius"])
clamp("gen_eps", *BOUNDS["eps"])
clamp("gen_k", 1, int(BOUNDS["k"][1]))
clamp("gen_n", *BOUNDS["n"])
clamp("gen_batch_size", *BOUNDS["batch_size"])
p = st.columns(4)
p[0].select_slider("window w", windows, key="gen_window", help="odd context window side")
p[0].checkbox("σ = w / 6.4 (Efros–Leung)", key="gen_sigma_auto")
p[0].number_input("σ", min_value=BOUNDS["sigma"][0], max_value=BOUNDS["sigma"][1], step=0.1, key="gen_sigma",
                  disabled=st.session_state["gen_sigma_auto"])
p[1].slider("ε (SSD threshold)", float(BOUNDS["eps"][0]), float(BOUNDS["eps"][1]), step=0.01, key="gen_eps",
            help="keep windows with d ≤ (1+ε)·d_min + tol")
p[1].slider("radius R (locality)", int(BOUNDS["radius"][0]), int(BOUNDS["radius"][1]), key="gen_radius",
            disabled=owner_off("gen", "radius"))
p[2].number_input("k (semantic pool)", 1, int(BOUNDS["k"][1]), step=8, key="gen_k",
                  disabled=owner_off("gen", "k"), help="nearest training images of the reference")
p[2].radio("representation mode", list(FIELDS["ssl_mode"].choices), key="gen_ssl_mode", horizontal=True,
           disabled=owner_off("gen", "ssl_mode"),
           help="reference: k-NN of a reference image; canvas: re-embed the partial canvas every shell")
if st.session_state["gen_label"] is None or st.session_state["gen_label"] >= len(corpus.class_names):
    st.session_state["gen_label"] = -1  # -1: no class condition (a None option would read as "no choice")
p[2].selectbox("class condition", [-1, *range(len(corpus.class_names))], key="gen_label",
               format_func=lambda v: "none" if v < 0 else f"{v}: {corpus.class_names[v]}",
               disabled=owner_off("gen", "label"), help="the pool becomes all images of this class")
p[3].slider("seed size s", 1, min(int(BOUNDS["seed_size"][1]), side), key="gen_seed_size",
            help="side of the seed patch copied from the reference")
p[3].slider("samples n", int(BOUNDS["n"][0]), int(BOUNDS["n"][1]), key="gen_n")
p[3].slider("batch size", int(BOUNDS["batch_size"][0]), int(BOUNDS["batch_size"][1]), key="gen_batch_size",
            help="samples advanced in lockstep")

st.subheader("Reference")
st.radio("reference image", ["random", "pick"], key="gen_ref_mode", horizontal=True,
         format_func=lambda v: "random per sample (from the seed)" if v == "random" else "one fixed image",
         help="the seed patch and the representation pool come from the reference")
if st.session_state["gen_ref_mode"] == "pick":
    clamp("gen_reference", 0, len(corpus) - 1)

    def use_reference(i: int) -> None:
        st.session_state["gen_reference"] = int(i)

    rc = st.columns([1, 4])
    rc[0].number_input("train id", 0, len(corpus) - 1, step=1, key="gen_reference")
    ref = int(st.session_state["gen_reference"])
    rc[0].image(grid_picture(corpus.train[ref][None], max(2, 112 // side)),
                caption=f"#{ref}: {corpus.class_names[int(corpus.train_labels[ref])]}")
    rng = np.random.default_rng(int(settings["seed"]))
    lab = st.session_state["gen_label"]
    pool = np.flatnonzero(corpus.train_labels == lab) if lab >= 0 else np.arange(len(corpus))
    picks = np.sort(rng.choice(pool, size=min(8, len(pool)), replace=False))
    with rc[1]:
        st.caption("Or pick one of these (they change with the RNG seed):")
        tc = st.columns(len(picks))
        for col, i in zip(tc, picks):
            col.image(grid_picture(corpus.train[i][None], max(2, 56 // side)), caption=f"#{i}")
            col.button("use", key=f"btn_ref_{i}", on_click=use_reference, args=(i,))


def current_params() -> dict:
    ss = st.session_state
    params = {"constraints": enabled("gen"), **extra,
              "n": int(ss["gen_n"]), "batch_size": int(ss["gen_batch_size"]), "window": int(ss["gen_window"]),
              "sigma": None if ss["gen_sigma_auto"] else float(ss["gen_sigma"]), "eps": float(ss["gen_eps"]),
              "radius": int(ss["gen_radius"]), "k": int(ss["gen_k"]), "seed_size": int(ss["gen_seed_size"]),
              "ssl_mode": ss["gen_ssl_mode"], "label": None if ss["gen_label"] < 0 else int(ss["gen_label"]),
              "reference": int(ss["gen_reference"]) if ss["gen_ref_mode"] == "pick" else None}
    return params


config = None
try:
    from app_support.state import check_against
    config = build_config(settings, current_params())
    check_against(config, corpus)
except Exception as exc:  # shown as one line
    show_error(exc, "checking the parameters")
    config = None

mirror_query(params_to_query(current_params()))  # the address bar is a link to this view
if config is not None:
    if not lesson_view.notice(config, corpus):  # a shipped record answers at once; else the estimate
        warn_if_slow(config, corpus, {**toggle_keys("gen"), "n": "gen_n"}, "gen")
    if present.show_secondary():
        with st.expander("The same run from the command line"):
            st.code(cli_command(config), language="bash")

stop_notice()
go = st.button("Generate", type="primary", key="btn_generate", icon=":material/brush:", disabled=config is None)
rerun_live, autorun = lesson_view.take("gen_rerun_live"), lesson_view.take("gen_autorun")
shipped = lesson_view.match(config) if not rerun_live else None
if (go or autorun) and shipped is not None:  # a lesson or toggle with a precomputed record: opened, not run
    opened = lesson_view.open_record(shipped, corpus)
    if opened is not None:
        label = record_label(config.to_dict(), "generate")
        add_record(label, opened[0])
        view_result("generate", settings).update(label=label, seconds=opened[1], cached=False, shipped=shipped.name)
        go = False
go = go or rerun_live
if go and config is not None:
    live = LiveProgress(f"Generating {config.n} samples", "gen", scale=max(2, 56 // side))
    try:
        stages.prepare(config, live)
        rec, seconds, cached = resources.generate(config, progress=live)
    except Exception as exc:  # NPSError, Stopped and anything unexpected, one line each
        live.done()
        show_error(exc, "generating")
    else:
        live.done()
        label = record_label(config.to_dict(), "generate")
        add_record(label, rec)
        view_result("generate", settings).update(label=label, seconds=seconds, cached=cached, shipped=None)

result = view_result("generate", settings)
last = result.get("label")
if last and last not in records():
    st.caption(f":orange[Your last result here ({last}) was removed from this session's records; "
               "generate it again (identical settings are served from the results cache).]")
if last and last in records():
    rec = records()[last]
    seconds, cached = result.get("seconds", float("nan")), result.get("cached", False)
    st.subheader("Result")
    if result.get("shipped"):
        st.caption(config_caption(rec.config) + f" · opened in {seconds:.2f} s")
        lesson_view.result_note(result["shipped"], "gen", corpus)
    else:
        st.caption(config_caption(rec.config) + f" · {seconds:.2f} s ({seconds / max(len(rec), 1) * 1000:.0f} "
                   "ms/image)" + (" · from the results cache" if cached else ""))
    ss_default("gen_pick", 0)
    clamp("gen_pick", 0, len(rec) - 1)
    views.pick_grid(rec.images, "gen_pick", "sel_gen_grid", ncol=int(np.ceil(np.sqrt(len(rec)))))
    st.caption("Click a digit to select it (outlined in red), then open it in Analysis.")
    oc = st.columns([1, 1, 3])
    oc[0].number_input("sample (row-major in the grid)", 0, len(rec) - 1, step=1, key="gen_pick")
    if oc[1].button("Open in Analysis", key="btn_open_analysis", icon=":material/troubleshoot:"):
        open_in_analysis(last, int(st.session_state["gen_pick"]))
    download_buttons(rec, f"nps-{rec.config.get('corpus')}-seed{rec.config.get('seed')}", "gen")
