"""Analysis & tracing: replay, overlays, pixel tracing with the constraint funnel, honesty, batch plots."""

from __future__ import annotations

import streamlit as st

from app_support import resources, views
from app_support.boot import entry_guard
from app_support.ui import add_record, attempt, config_caption, download_buttons, records, show_grid, ss_default
from nps.app_state import record_id
from nps.corpora import CORPUS_NAMES
from nps.presets import PRESETS, get_lesson, load_preset

RECORD_MB = 50
entry_guard()
st.title("Analysis & tracing")

lesson_key = st.session_state.get("ana_lesson")
if lesson_key:
    lesson = get_lesson(lesson_key)
    with st.container(border=True):
        st.markdown(f"**Lesson: {lesson.title}.** {lesson.predict}")
        st.caption(f"Then look: {lesson.look}")
        if st.button("End lesson", key="btn_end_ana_lesson"):
            st.session_state["ana_lesson"] = None
            st.rerun()

with st.expander("Open a record file (.npz)"):
    up = st.file_uploader("record", type=["npz"], key="upload_record", label_visibility="collapsed",
                          help=f"a record written by `python -m nps generate` or this app (up to {RECORD_MB} MB)")
    if up is not None and st.session_state.get("_uploaded_name") != (up.name, up.size):
        rec = attempt(resources.uploaded_record, up.getvalue(), RECORD_MB, what="reading the uploaded record")
        if rec is not None:
            if rec.config.get("corpus") not in CORPUS_NAMES:
                st.error(f"this record was made on corpus '{rec.config.get('corpus')}', which the app cannot open "
                         f"(it opens {', '.join(CORPUS_NAMES)}); analyse it with `python -m nps evaluate`.")
            else:
                add_record(f"upload: {up.name}", rec)
                st.session_state["_uploaded_name"] = (up.name, up.size)

if not records():
    st.info("No record yet: generate one on the Generate page, or open a preset.")
    pc = st.columns(len(PRESETS))
    for col, preset in zip(pc, PRESETS.values()):
        if col.button(f"Open preset: {preset.title}", key=f"btn_ana_preset_{preset.name}"):
            cfg = preset.config
            c = attempt(resources.corpus, cfg.corpus, cfg.subset, what=f"loading {cfg.corpus}")
            rec = attempt(load_preset, preset.name, c, what=f"building preset {preset.name}") if c else None
            if rec is not None:
                add_record(f"preset: {preset.name}", rec)
                st.rerun()
    st.stop()

labels = list(records())
if st.session_state.get("ana_record") not in labels:
    st.session_state["ana_record"] = labels[-1]
st.selectbox("Record", labels, key="ana_record")
record = records()[st.session_state["ana_record"]]
cfg = record.config
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
        show_grid(record.images, scale=2 if record.canvas_shape[0] > 12 else 5)
    n = int(st.session_state["ana_sample"])
    with sc[1]:
        st.markdown("**Replay the fill.** Rebuilt from the record: a pixel never changes once filled, so step *t* "
                    "is the final image masked by the first *t* entries of the fill order.")
        views.replay(record, n, rid[:8])
    st.divider()
    st.markdown("**Overlays and pixel tracing.** Tick overlays to colour the canvas by provenance; click a pixel "
                "to see where it came from and which constraints let it through.")
    chosen = views.overlay_choice()
    oc = st.columns([1, 1])
    with oc[0]:
        y, x = views.overlay_canvas(record, n, rid, rid[:8], chosen)
    with oc[1]:
        sampled = views.trace_source(record, n, y, x, corpus)
    if sampled:
        views.funnel_section(record, n, y, x, rid)
        st.page_link("pages/6_explainer.py", label="Animate this step by step", icon=":material/animation:")
    with st.expander("Top sources of this sample (image-ID map, class map, the five most used training images)"):
        from nps.plots import trace_figure
        st.plotly_chart(trace_figure(record, n, corpus.train), key="ana_trace_figure")
        st.caption("Each source thumbnail is the training image, dimmed, with the pixels copied from it tinted in its "
                   "map colour, at the positions they were copied from.")
    st.divider()
    st.markdown("**Honesty panel.**")
    views.honesty_panel(record, n, rid, corpus)

with tab_batch:
    from nps.plots import composition_figure, heatmaps_figure, memorisation_figure
    ent = attempt(resources.entropy_metrics, rid, record, what="computing entropies")
    if ent is not None:
        m = st.columns(3)
        m[0].metric(f"class entropy (w={ent['entropy_window']})", f"{ent['class_entropy']:.3f} bits",
                    f"± {ent['class_entropy_std']:.3f}", delta_color="off", delta_arrow="off",
                    help="low: each region comes from one class (coherent parts)")
        m[1].metric("image-ID entropy", f"{ent['id_entropy']:.3f} bits", f"± {ent['id_entropy_std']:.3f}",
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
        st.plotly_chart(heatmaps_figure(maps), key="ana_entropy_maps")
        st.plotly_chart(heatmaps_figure({"log10 pool size (mean over samples)": ps["log10_map"]}, "log10"),
                        key="ana_pool_map")
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
