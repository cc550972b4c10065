"""Ablations side by side: up to four constraint sets and encoders on the same references and seeds."""

from __future__ import annotations

import streamlit as st

from app_support import resources
from app_support.boot import entry_guard
from app_support.sidebar import encoder_names
from app_support.ui import (
    LiveProgress,
    add_record,
    attempt,
    lesson_banner,
    open_in_analysis,
    records,
    show_error,
    show_grid,
    sidebar_corpus,
    ss_default,
    stop_notice,
    view_result,
    warn_if_slow,
)
from nps.app_state import ABLATION_SETS, MAX_COLUMNS, build_config, check_against, record_id, record_label
from nps.app_state import suggested_params as suggested

entry_guard()
st.title("Ablations side by side")
settings = st.session_state["settings"]
corpus = sidebar_corpus(settings)

lesson_banner("abl_lesson", "Then press Run all and look:")

ss_default("abl_ncols", 3)
ss_default("abl_n", 16)
ss_default("abl_metrics", True)
top = st.columns([1, 1, 2, 1], vertical_alignment="bottom")
top[0].slider("columns", 1, MAX_COLUMNS, key="abl_ncols")
top[1].slider("samples per column", 2, 64, key="abl_n")
top[2].toggle("Score IS / FID with the corpus classifier", key="abl_metrics",
              help="Inception Score from the project's classifier, with real test images scored the same way as "
                   "the ceiling. On digits the classifier is trained once on first use (~20 s).")
run_all = top[3].button("Run all columns", type="primary", key="btn_abl_run_all", icon=":material/play_arrow:")

# Shared parameters: those of the Generate page if it was used, else the canvas-size defaults.
base = suggested(corpus.image_shape)
shared = {k: st.session_state.get(f"gen_{k}", v) for k, v in base.items()}
if st.session_state.get("gen_shape") != list(corpus.image_shape[:2]):
    shared = dict(base)
shared.update(n=int(st.session_state["abl_n"]), batch_size=min(64, int(st.session_state["abl_n"])))
st.caption(f"Shared by every column: seed {settings['seed']} (so the same references and per-pixel draws), "
           + ", ".join(f"{k}={v}" for k, v in shared.items() if k not in ("n", "batch_size"))
           + ". Change them on the Generate page.")

ncols = int(st.session_state["abl_ncols"])
configs: list = []
cols = st.columns(ncols)
for i, col in enumerate(cols):
    default = ABLATION_SETS[i] if i < len(ABLATION_SETS) else ("ssd", "loc", "ssl")
    with col:
        st.markdown(f"**Column {i + 1}**")
        for c in ("ssd", "loc", "ssl"):
            ss_default(f"abl_{i}_{c}", c in default)
            st.checkbox(c, key=f"abl_{i}_{c}")
        ss_default(f"abl_{i}_encoder", settings["encoder"])
        if st.session_state[f"abl_{i}_encoder"] not in encoder_names():
            st.session_state[f"abl_{i}_encoder"] = settings["encoder"]
        st.selectbox("encoder", encoder_names(), key=f"abl_{i}_encoder",
                     disabled=not st.session_state[f"abl_{i}_ssl"])
        cons = tuple(c for c in ("ssd", "loc", "ssl") if st.session_state[f"abl_{i}_{c}"])
        try:
            enc = st.session_state[f"abl_{i}_encoder"]
            cfg = build_config(settings, {**shared, "constraints": cons, "encoder": enc})
            check_against(cfg, corpus)
            warn_if_slow(cfg, corpus)
        except Exception as exc:  # noqa: BLE001 - one line per column
            show_error(exc, f"checking column {i + 1}")
            cfg = None
        configs.append(cfg)

stop_notice()
results: dict = view_result("ablations", settings)  # column -> its last run, for this corpus and subset
run_one = [cols[i].button("Run", key=f"btn_abl_run_{i}") for i in range(ncols)]
for i, cfg in enumerate(configs):
    if cfg is None or not (run_all or run_one[i]):
        continue
    with cols[i]:
        live = LiveProgress(f"Column {i + 1}", f"abl{i}", show_canvas=False)
        try:
            rec, seconds, cached = resources.generate(cfg, progress=live)
        except Exception as exc:  # noqa: BLE001
            live.done()
            show_error(exc, f"running column {i + 1}")
            if type(exc).__name__ == "Stopped":
                break
            continue
        live.done()
    label = record_label(cfg.to_dict(), f"ablation {i + 1}")
    add_record(label, rec, make_current=False)
    results[i] = {"label": label, "seconds": seconds, "cached": cached, "config": cfg}

for i, col in enumerate(cols):
    res = results.get(i)
    if res is None or res["label"] not in records():
        continue
    rec = records()[res["label"]]
    with col:
        if configs[i] is not None and res["config"] != configs[i]:
            st.caption(":orange[settings changed since this run; press Run to update]")
        show_grid(rec.images, ncol=4, scale=2 if rec.canvas_shape[0] > 12 else 5)
        rid = record_id(rec)
        ent = attempt(resources.entropy_metrics, rid, rec, what="computing entropies")
        st.metric("time per image", f"{res['seconds'] / len(rec) * 1000:.0f} ms",
                  "from the results cache" if res["cached"] else None, delta_color="off", delta_arrow="off")
        if ent is not None:
            st.metric("class entropy", f"{ent['class_entropy']:.3f} bits", f"± {ent['class_entropy_std']:.3f}",
                      delta_color="off", delta_arrow="off")
            st.metric("image-ID entropy", f"{ent['id_entropy']:.3f} bits", f"± {ent['id_entropy_std']:.3f}",
                      delta_color="off", delta_arrow="off")
        if st.session_state["abl_metrics"]:
            sc = attempt(resources.classifier_scores, rid, rec.config["corpus"], rec, what="scoring the samples")
            if sc is not None:
                s, r = sc["samples"], sc["real"]
                st.metric("Inception Score", f"{s['is_mean']:.2f} ± {s['is_std']:.2f}",
                          f"real ceiling {r['is_mean']:.2f}", delta_color="off", delta_arrow="off")
                st.metric("classifier FID", f"{s['fid']:.1f}", f"real {r['fid']:.1f}", delta_color="off",
                          delta_arrow="off")
        if st.button("Open in Analysis", key=f"btn_abl_open_{i}"):
            open_in_analysis(res["label"], 0)
