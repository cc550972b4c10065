"""Analysis & tracing: replay, overlays, pixel tracing with the constraint funnel, honesty, batch plots."""

from __future__ import annotations

import streamlit as st

from app_support import present, replay_view, resources, stages, views
from app_support.boot import entry_guard
from app_support.display import redact_paths
from app_support.links import record_query
from app_support.state import record_id
from app_support.ui import (
    MAX_RECORDS,
    LiveProgress,
    add_record,
    attempt,
    config_caption,
    download_buttons,
    lesson_banner,
    mirror_query,
    pinned_records,
    records,
    set_pinned,
    ss_default,
    take_link,
)
from nps.analysis.entropy import CLASS_ENTROPY, IMAGE_ID_ENTROPY, STD
from nps.lab.presets import PRESETS

RECORD_MB = 50
entry_guard()
st.title("Analysis & tracing")

lesson_banner("ana_lesson", "Then look:")

if present.show_secondary():
    with st.expander("Open a record file (.npz)"):
        up = st.file_uploader("record", type=["npz"], key="upload_record", label_visibility="collapsed",
                              help=f"a record written by `python -m nps generate` or this app (up to {RECORD_MB} MB)")
        if up is not None and st.session_state.get("_uploaded_name") != (up.name, up.size):
            rec = attempt(resources.uploaded_record, up.getvalue(), RECORD_MB, what="reading the uploaded record")
            if rec is not None:
                if rec.config.get("corpus") not in resources.available_corpora():
                    st.error(f"this record was made on corpus '{redact_paths(str(rec.config.get('corpus')))}', which "
                             "the app cannot open (the sidebar lists what it opens); analyse it with "
                             "`python -m nps evaluate`.")
                else:
                    add_record(f"upload: {up.name}", rec)
                    st.session_state["_uploaded_name"] = (up.name, up.size)



def open_link(link: dict) -> None:
    """Rebuild the record a permalink names (a preset, or a generation from its config) and select its view."""
    from app_support.display import record_label
    from app_support.links import config_from_query
    from app_support.state import BOUNDS, check_against
    rec_kind = str(link.get("rec", ""))
    label = rec = None
    if rec_kind.startswith("preset:"):
        name = rec_kind.removeprefix("preset:")
        if name not in PRESETS:
            st.caption(f":orange[the link names preset '{name}', which this lab does not have.]")
            return
        rec = stages.open_preset(name)
        label = f"preset: {name}"
    elif rec_kind == "gen":
        built = attempt(config_from_query, link, BOUNDS, what="reading the link")
        if built is None:
            return
        config, notes = built
        for note in notes:
            st.caption(f":orange[{note}]")
        c = attempt(resources.corpus, config.corpus, config.subset, what=f"loading {config.corpus}")
        if c is None or attempt(lambda: check_against(config, c) or True, what="checking the link's settings") is None:
            return
        # deterministic: the same config gives the same samples; the bar names each stage
        live = LiveProgress("Rebuilding the linked record", "link", show_canvas=False)
        out = None
        if attempt(stages.prepare, config, live, what="preparing the linked record") is not None:
            out = attempt(resources.generate, config, live, what="rebuilding the linked record")
        live.done()
        if out is not None:
            rec, label = out[0], record_label(config.to_dict(), "generate")
    else:
        return
    if rec is None:
        return
    add_record(label, rec)
    ss = st.session_state
    try:
        ss["ana_sample"] = min(max(int(str(link.get("sample", 0))), 0), len(rec) - 1)
        y, x = int(str(link.get("y"))), int(str(link.get("x")))
        h, w = rec.canvas_shape
        if 0 <= y < h and 0 <= x < w:
            ss["ana_y"], ss["ana_x"], ss["_ana_pixel_given"] = y, x, True
    except (TypeError, ValueError):
        st.caption(":orange[the link's sample or pixel is not a number; showing sample 0.]")


link = take_link("analysis")
if link:
    open_link(link)

if not records():
    mirror_query({})
    stages.no_record_picker("ana", "No record yet: generate one on the Generate page, or open a preset.")

labels = list(records())
if st.session_state.get("ana_record") not in labels:
    st.session_state["ana_record"] = labels[-1]
pins = pinned_records()
rc = st.columns([4, 1], vertical_alignment="bottom")
rc[0].selectbox("Record", labels, key="ana_record",
                format_func=lambda lab: ("📌 " if lab in pins else "") + lab)
current = st.session_state["ana_record"]


def _toggle_pin(label: str, key: str) -> None:
    if not set_pinned(label, bool(st.session_state.get(key))):
        st.session_state[key] = False
        st.toast(f"At most {MAX_RECORDS - 1} records can be pinned; unpin one first.", icon=":material/push_pin:")


pin_key = f"pin_{record_id(records()[current])[:10]}"
st.session_state[pin_key] = current in pins
rc[1].toggle("Pin", key=pin_key, on_change=_toggle_pin, args=(current, pin_key),
             help=f"A session keeps its newest {MAX_RECORDS} records; a pinned one is never removed.")
evicted = st.session_state.get("evicted_records", [])
st.caption(f"This session keeps its newest {MAX_RECORDS} records ({len(labels)} now, {len(pins)} pinned); "
           "the oldest unpinned one is removed when a new one arrives."
           + (f" Removed so far: {', '.join(evicted[-3:])}" + (f" and {len(evicted) - 3} more" if len(evicted) > 3
                                                              else "") + "." if evicted else ""))
record = records()[current]
cfg = record.config
if not record_query(current, cfg):
    st.caption("The address bar cannot rebuild this record (an upload or a completion); download it below to "
               "share it.")
st.caption(config_caption(cfg) + f" · {len(record)} samples")
corpus = attempt(resources.corpus, cfg.get("corpus"), cfg.get("subset"), what="loading the record's corpus")
if corpus is None:
    st.stop()
if cfg.get("corpus_size") not in (None, len(corpus)):
    st.error(f"this record was made on {cfg.get('corpus_size')} training images but corpus '{cfg.get('corpus')}' "
             f"here has {len(corpus)}; its sources cannot be shown. Regenerate it on this machine.")
    st.stop()
rid = record_id(record)

tab_sample, tab_batch = st.tabs(["One sample", "The whole batch"])

with tab_sample:
    ss_default("ana_sample", 0)
    st.session_state["ana_sample"] = min(max(int(st.session_state["ana_sample"]), 0), len(record) - 1)
    sc = st.columns([1, 3])
    sc[0].number_input("sample", 0, len(record) - 1, step=1, key="ana_sample")
    with sc[0]:
        views.pick_grid(record.images, "ana_sample", f"sel_ana_grid_{rid[:8]}",
                        tile_px=56 if record.canvas_shape[0] > 12 else 40)
        st.caption("Click a digit to analyse it.")
    n = int(st.session_state["ana_sample"])
    with sc[1]:
        st.markdown("**Replay the fill.** Rebuilt from the record: a pixel never changes once filled, so step *t* "
                    "is the final image masked by the first *t* entries of the fill order.")
        replay_view.replay(record, n, rid[:8])
    st.divider()
    st.markdown("**Overlays and pixel tracing.** Colour the canvas by one provenance layer; click a pixel "
                "to see where it came from and which constraints let it through.")
    choice = views.overlay_choice()
    oc = st.columns([1, 1])
    with oc[0]:
        y, x = views.overlay_canvas(record, n, rid, rid[:8], choice, tuple(corpus.class_names))
    with oc[1]:
        sampled = views.trace_source(record, n, y, x, corpus)
    if sampled:
        views.funnel_section(record, n, y, x, rid)
        st.page_link("pages/6_explainer.py", label="Animate this step by step", icon=":material/animation:")
    mirror_query({**record_query(current, record.config), "sample": str(n), "y": str(y), "x": str(x)})
    with st.expander("Top sources of this sample (image-ID map, class map, the five most used training images)",
                     expanded=True):
        from nps.lab.plots import trace_figure
        st.plotly_chart(trace_figure(record, n, corpus.train, class_names=tuple(corpus.class_names)),
                        key="ana_trace_figure")
        st.caption("Each source thumbnail is the training image, dimmed, with the pixels copied from it tinted in its "
                   "map colour, at the positions they were copied from.")
        views.source_picker(record, n, corpus.train, rid)
    if present.show_secondary():
        st.divider()
        st.markdown("**Honesty panel.**")
        views.honesty_panel(record, n, rid, corpus)

with tab_batch:
    from nps.lab.plots import composition_figure, heatmaps_figure, memorisation_figure
    ent = attempt(resources.entropy_metrics, rid, record, what="computing entropies")
    if ent is not None:
        m = st.columns(3)
        m[0].metric(f"class entropy (w={ent['entropy_window']})", f"{ent[CLASS_ENTROPY]:.3f} bits",
                    f"± {ent[CLASS_ENTROPY + STD]:.3f}", delta_color="off", delta_arrow="off",
                    help="low: each region comes from one class (coherent parts)")
        m[1].metric("image-ID entropy", f"{ent[IMAGE_ID_ENTROPY]:.3f} bits", f"± {ent[IMAGE_ID_ENTROPY + STD]:.3f}",
                    delta_color="off", delta_arrow="off",
                    help="high: regions are composed from many images (no copying)")
        ps = attempt(resources.pool_summary, rid, record, what="summarising pool sizes")
        if ps is not None:
            m[2].metric("median pool size", f"{ps['median']:.0f}", f"relaxed {ps['relaxed_rate']:.1%}",
                        delta_color="off", delta_arrow="off",
                        help="candidates each pixel was drawn from; relaxed: empty pool")
    maps = attempt(resources.entropy_maps, rid, record, what="computing entropy maps")
    ps = attempt(resources.pool_summary, rid, record, what="summarising pool sizes")
    if maps is not None and ps is not None:
        maps = dict(maps)
        st.plotly_chart(heatmaps_figure(maps, "bits"), key="ana_entropy_maps")
        st.caption(f"Mean over the {len(record)} samples of the window entropy at each position (a window of "
                   f"{ent['entropy_window'] if ent else 5}×{ent['entropy_window'] if ent else 5} pixels around it, "
                   "so only positions whose window fits the canvas have a value). Class entropy low: each region "
                   "is one class; image-ID entropy high: regions mix many images.")
        st.plotly_chart(heatmaps_figure({"pool size (mean of log10 over samples)": ps["log10_map"]},
                                        "pool size (windows, log scale)", log10=True).update_layout(width=560),
                        key="ana_pool_map", width="content")
        st.caption("Pool size: how many candidate windows passed every constraint at that position (geometric "
                   "mean over samples). Blank: the seed, copied whole from the reference, with no pool.")
    st.plotly_chart(composition_figure(record.source_index), key="ana_composition")
    comp = attempt(resources.composition, rid, record, what="computing composition")
    if comp is not None:
        s = comp["summary"]
        st.caption(f"Per sample: {s['n_sources']['mean']:.1f} source images on average; top source "
                   f"{s['top1_share']['mean']:.0%}; largest copy island {s['largest_island']['mean']:.1f} px; "
                   f"label purity {s['label_purity']['mean']:.0%}.")
    if st.toggle("Memorisation check (nearest-neighbour ratios against the training set)", key="ana_mem"):
        enc = cfg.get("encoder", "pca")
        rep = attempt(resources.memorisation, rid, cfg.get("corpus"), cfg.get("subset"), enc, record,
                      what="checking memorisation")
        if rep is not None:
            st.plotly_chart(memorisation_figure(rep), key="ana_memorisation")
            st.caption(" · ".join(f"{sp}: {rep.fraction_below(sp):.0%} of samples below 1/3 "
                                  f"(real test images {rep.fraction_below(sp, True):.0%})" for sp in rep.ratios))
    download_buttons(record, f"nps-{cfg.get('corpus')}-seed{cfg.get('seed')}", "ana")
