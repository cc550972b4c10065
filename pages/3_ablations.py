"""Ablations side by side: up to four constraint sets and encoders on the same references and seeds."""

from __future__ import annotations

import streamlit as st

from app_support import ablation_preset, lesson_view, resources, stages
from app_support.boot import entry_guard
from app_support.display import (
    record_label,
)
from app_support.sidebar import encoder_names
from app_support.state import (
    ABLATION_SETS,
    MAX_COLUMNS,
    build_config,
    check_against,
    is_splits,
    record_id,
)
from app_support.state import suggested_params as suggested
from app_support.tables import ablation_row, to_csv, to_markdown, unreliable
from app_support.toggles import constraint_toggles, default_toggles, enabled, owner_off, set_constraints, toggle_keys
from app_support.ui import (
    LiveProgress,
    add_record,
    attempt,
    lesson_banner,
    mirror_query,
    open_in_analysis,
    records,
    show_error,
    show_grid,
    sidebar_corpus,
    ss_default,
    stop_notice,
    take_link,
    view_result,
    warn_if_slow,
)
from nps.analysis.entropy import CLASS_ENTROPY, IMAGE_ID_ENTROPY, STD
from nps.constraints import chooses_images, default_names

entry_guard()
st.title("Ablations side by side")
settings = st.session_state["settings"]
corpus = sidebar_corpus(settings)

lesson_banner("abl_lesson", "The columns open below (or press Run all); look:")
ablation_preset.render()  # the README's table: `python -m nps ablate`'s runs, n = 128 (operator permitting)

ss_default("abl_ncols", 3)
ss_default("abl_n", 16)
ss_default("abl_metrics", True)
link = take_link("ablations")  # a permalink: ?n=32&cols=ssd|ssd.loc|ssd.loc.ssl&enc3=pixels
if link:
    try:
        if "n" in link:
            st.session_state["abl_n"] = min(max(int(str(link["n"])), 2), 64)
        cols_spec = [c for c in str(link.get("cols", "")).split("|") if c][:MAX_COLUMNS]
        if cols_spec:
            st.session_state["abl_ncols"] = len(cols_spec)
            for i, spec in enumerate(cols_spec):
                set_constraints(f"abl_{i}", spec.split("."))
        for i in range(MAX_COLUMNS):
            if f"enc{i + 1}" in link and str(link[f"enc{i + 1}"]) in encoder_names():
                st.session_state[f"abl_{i}_encoder"] = str(link[f"enc{i + 1}"])
    except ValueError:
        st.caption(":orange[the link's sample count is not a number; the default is used.]")
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

def column_caption(config: dict, n: int) -> str:
    """What a column is: training images (all or a subset), constraints, encoder and k (or none), n."""
    cons = list(config.get("constraints", ()))
    sub = config.get("subset")
    rep = f"{config.get('encoder')}, k = {config.get('k')}" if chooses_images(cons) else "no representation"
    return (f"{config.get('corpus')} · {'subset of ' + format(sub, ',') if sub else 'all'} training images · "
            f"{'+'.join(cons)} · {rep} · n = {n} · seed {config.get('seed')}")


ncols = int(st.session_state["abl_ncols"])
configs: list = []
cols = st.columns(ncols)
for i, col in enumerate(cols):
    default = ABLATION_SETS[i] if i < len(ABLATION_SETS) else default_names()
    with col:
        st.markdown(f"**Column {i + 1}**")
        default_toggles(f"abl_{i}", default)
        constraint_toggles(f"abl_{i}", widget="checkbox")
        ss_default(f"abl_{i}_encoder", settings["encoder"])
        if st.session_state[f"abl_{i}_encoder"] not in encoder_names():
            st.session_state[f"abl_{i}_encoder"] = settings["encoder"]
        st.selectbox("encoder", encoder_names(), key=f"abl_{i}_encoder", disabled=owner_off(f"abl_{i}", "encoder"))
        cons = enabled(f"abl_{i}")
        try:
            enc = st.session_state[f"abl_{i}_encoder"]
            cfg = build_config(settings, {**shared, "constraints": cons, "encoder": enc})
            check_against(cfg, corpus)
            if not lesson_view.notice(cfg, corpus):  # a shipped record answers at once; else the estimate
                warn_if_slow(cfg, corpus, {**toggle_keys(f"abl_{i}"), "n": "abl_n"}, f"abl{i}")
        except Exception as exc:  # one line per column
            show_error(exc, f"checking column {i + 1}")
            cfg = None
        configs.append(cfg)

ss = st.session_state
mirror_query({"n": str(int(ss["abl_n"])),
              "cols": "|".join(".".join(enabled(f"abl_{i}")) or "none" for i in range(ncols)),
              **{f"enc{i + 1}": str(ss[f"abl_{i}_encoder"]) for i in range(ncols)
                 if not owner_off(f"abl_{i}", "encoder")}})

stop_notice()
results: dict = view_result("ablations", settings)  # column -> its last run, for this corpus and subset
run_one = [cols[i].button("Run", key=f"btn_abl_run_{i}") for i in range(ncols)]
autorun = lesson_view.take("abl_autorun")  # a lesson just opened this page
for i, cfg in enumerate(configs):
    rerun_live = lesson_view.take(f"abl{i}_rerun_live")
    shipped = lesson_view.match(cfg) if not rerun_live else None
    if cfg is None or not (run_all or run_one[i] or rerun_live or (autorun and shipped is not None)):
        continue
    if shipped is not None:  # precomputed: opened, not run
        with cols[i]:
            opened = lesson_view.open_record(shipped, corpus)
        if opened is not None:
            label = record_label(cfg.to_dict(), f"ablation {i + 1}")
            add_record(label, opened[0], make_current=False)
            results[i] = {"label": label, "seconds": opened[1], "cached": False, "config": cfg, "shipped": shipped.name}
            continue
        if not (run_all or run_one[i]):
            continue
    with cols[i]:
        live = LiveProgress(f"Column {i + 1}", f"abl{i}", show_canvas=False)
        try:
            stages.prepare(cfg, live)
            rec, seconds, cached = resources.generate(cfg, progress=live)
        except Exception as exc:
            live.done()
            show_error(exc, f"running column {i + 1}")
            if type(exc).__name__ == "Stopped":
                break
            continue
        live.done()
    label = record_label(cfg.to_dict(), f"ablation {i + 1}")
    add_record(label, rec, make_current=False)
    results[i] = {"label": label, "seconds": seconds, "cached": cached, "config": cfg}

table: list[dict] = []
shown = [i for i in range(ncols) if results.get(i) is not None and results[i]["label"] in records()]
for i in shown:  # every column's grid first, so none waits for another's metrics
    res, rec = results[i], records()[results[i]["label"]]
    with cols[i]:
        if configs[i] is not None and res["config"] != configs[i]:
            st.caption(":orange[settings changed since this run; press Run to update]")
        show_grid(rec.images, ncol=4, scale=2 if rec.canvas_shape[0] > 12 else 5)
        st.caption(column_caption(rec.config, len(rec)))
        if res.get("shipped"):
            lesson_view.result_note(res["shipped"], f"abl{i}", corpus)
for i in shown:
    col, res = cols[i], results[i]
    rec = records()[res["label"]]
    n = len(rec)
    with col:
        rid = record_id(rec)
        ent = attempt(resources.entropy_metrics, rid, rec, what="computing entropies")
        if not res.get("shipped"):  # a shipped record's opening time is no sampling time
            st.metric("time per image", f"{res['seconds'] / n * 1000:.0f} ms",
                      "from the results cache" if res["cached"] else None, delta_color="off", delta_arrow="off")
        if ent is not None:
            st.metric("class entropy", f"{ent[CLASS_ENTROPY]:.3f} bits", f"± {ent[CLASS_ENTROPY + STD]:.3f}",
                      delta_color="off", delta_arrow="off", help=f"mean ± std over the n = {n} samples")
            st.metric("image-ID entropy", f"{ent[IMAGE_ID_ENTROPY]:.3f} bits", f"± {ent[IMAGE_ID_ENTROPY + STD]:.3f}",
                      delta_color="off", delta_arrow="off", help=f"mean ± std over the n = {n} samples")
        sc = None
        if st.session_state["abl_metrics"]:
            sc = attempt(resources.classifier_scores, rid, rec.config["corpus"], rec, what="scoring the samples")
            if sc is not None:
                s, r = sc["samples"], sc["real"]
                why = unreliable("is", n)
                if why:  # greyed out, with the reason, instead of a misleading "± 0.00"
                    st.markdown(f"Inception Score (n = {n})  \n:gray[{s['is_mean']:.2f}, not comparable: {why}]")
                else:
                    st.metric(f"Inception Score (n = {n})", f"{s['is_mean']:.2f} ± {s['is_std']:.2f}",
                              f"real ceiling {r['is_mean']:.2f} (same n)", delta_color="off", delta_arrow="off",
                              help=f"mean ± std over {is_splits(n)} splits; real: as many test images, scored alike")
                why = unreliable("fid", n)
                if why:
                    st.markdown(f"classifier FID (n = {n})  \n:gray[{s['fid']:.1f}, not comparable: {why}]")
                else:
                    st.metric(f"classifier FID (n = {n})", f"{s['fid']:.1f}", f"real {r['fid']:.1f} (same n)",
                              delta_color="off", delta_arrow="off")
        if st.button("Open in Analysis", key=f"btn_abl_open_{i}"):
            open_in_analysis(res["label"], 0)
    row = ablation_row(i + 1, res["label"], rec.config, n, res["seconds"], ent, sc)
    if res.get("shipped"):  # opened, not sampled: no time per image to report
        row["ms/image"] = None
        row["notes"] = "; ".join(x for x in ("precomputed (shipped record)", row.get("notes")) if x)
    table.append(row)

if table:
    st.subheader("Metrics of every column")
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption("One row per column, the same numbers as above. A blank metric was computed from too few samples "
               "to compare; the notes column says why (raise 'samples per column'). Entropies in bits over "
               "5×5 windows; IS and FID from the project's classifier, with as many real test images scored the "
               "same way.")
    dc = st.columns(2)
    dc[0].download_button("Download the table (.csv)", to_csv(table), file_name="nps-ablation.csv",
                          mime="text/csv", key="dl_abl_csv", on_click="ignore", icon=":material/table:")
    dc[1].download_button("Download the table (.md)", to_markdown(table), file_name="nps-ablation.md",
                          mime="text/markdown", key="dl_abl_md", on_click="ignore", icon=":material/description:")
