"""Corpus & encoder: what is available, statistics, a sample grid, encoder status, embedding map, cache."""

from __future__ import annotations

import os

import numpy as np
import streamlit as st

from app_support import corpus_choices, resources
from app_support.boot import entry_guard
from app_support.display import redact_paths
from app_support.sidebar import encoder_names, read_only
from app_support.state import display_scale, grid_picture
from app_support.ui import attempt, show_grid, sidebar_corpus, ss_default
from nps.config import resolve_encoder
from nps.corpora import CorpusStatus, parse_corpus_name

entry_guard()
st.title("Corpus & encoder")
settings = st.session_state["settings"]

st.subheader("Corpora on this machine")
rows = resources.corpus_table()
folders = corpus_choices.offered_folders()


def _available(r: CorpusStatus) -> str:
    if not r.available:
        return "no"
    if parse_corpus_name(r.name).entry.user_path:
        return f"{len(folders)} offered here" if folders else "CLI only"
    return "CLI only" if r.parameterised else "yes"


st.dataframe([{"corpus": r.name, "available": _available(r), "image shape": e.shape, "colour": e.colour,
               "details / how to get it": redact_paths(r.detail), "licence / source": e.licence}
              for r in rows for e in [parse_corpus_name(r.name).entry]], hide_index=True, width="stretch")
st.caption("The app never reads a folder path from a visitor. The server's operator may offer image folders "
           f"(`{corpus_choices.ENV}`, separated by `{os.pathsep}`); for those, "
           "the sidebar chooses the image size and gray or RGB. Any folder works from the command line: "
           "`--corpus \"folder:PATH?size=32&colour=rgb\"`.")

corpus = sidebar_corpus(settings)
info, sample = resources.corpus_overview(settings["corpus"], settings["subset"])

st.subheader(corpus_choices.label(info["name"]) + (f" (subset of {info['subset']:,})" if info["subset"] else ""))
m = st.columns(4)
m[0].metric("train images", f"{info['train']:,}")
m[1].metric("test images", f"{info['test']:,}")
m[2].metric("image shape", "×".join(map(str, info["image_shape"])))
m[3].metric("mean intensity", f"{info['mean_intensity']:.1f}")
c1, c2 = st.columns([1, 1])
with c1:
    show_grid(sample, caption="64 training images (a fixed random sample)", ncol=8)
with c2:
    import plotly.graph_objects as go
    counts = info["class_counts"]
    fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values()), marker_color="#4c78a8"))
    fig.update_layout(height=300, margin=dict(l=0, r=0, t=24, b=0), title="train images per class",
                      xaxis_title="class (label)", yaxis_title="train images", xaxis_type="category")
    st.plotly_chart(fig, key="cor_class_counts")
    st.caption(f"Source: {redact_paths(info['source'])} · licence: "
               f"{parse_corpus_name(info['name']).entry.licence}")

# --------------------------------------------------------------------------- encoders
st.subheader("Encoders")


def encoder_status(name: str) -> tuple[str, str]:
    """(status, detail) for an encoder on this corpus: built-in, shipped, trained here, or absent."""
    if name in ("pca", "pixels"):
        return "built-in", "fitted from the corpus on first use and cached (seconds)"
    if name == "simclr":
        from nps.encoders.simclr import weights_status  # shipped (manifest-verified), trained, absent or invalid
        return weights_status(corpus.name)
    if name == "auto":
        concrete = resolve_encoder("auto", corpus.name)
        return "default", (f"uses {concrete} for {corpus.name}: the encoder that measured best on this corpus "
                           "(the README's encoder table); records always name the concrete encoder")
    return "registered", "an encoder added to the registry by this installation"


st.dataframe([{"encoder": e, "status": s, "details": d} for e in encoder_names() for s, d in [encoder_status(e)]],
             hide_index=True, width="stretch")

with st.expander("Train SimCLR weights for this corpus (progress per epoch, with Stop)"):
    from nps.encoders.simclr import trained_path, weights_status
    wp = trained_path(corpus.name)  # <cache>/weights/: the app never writes into nps/weights/
    have, _detail = weights_status(corpus.name)
    if read_only():
        st.info("Training is switched off on this server (NPS_APP_READONLY).")
    elif have != "absent":
        st.info(f"Weights already exist ({have}); the app does not overwrite them. Retrain from the command "
                f"line: `python -m nps train-encoder --corpus {redact_paths(corpus.name)}`.")
    elif settings["subset"] is not None:
        st.info("Train on the whole corpus: set the subset in the sidebar to 'all' (weights are per corpus).")
    else:
        ss_default("cor_epochs", 2 if len(corpus) < 5000 else 1)
        st.slider("epochs", 1, 10, key="cor_epochs")
        st.caption(f"About {len(corpus) / 256 * 0.25:.0f}–{len(corpus) / 256 * 0.6:.0f} s per epoch on 2 CPU cores. "
                   "Stop ends the run after the current epoch; the checkpoint lets a later run resume.")
        if st.button("Train", key="btn_train_encoder", icon=":material/model_training:"):
            from app_support.ui import request_stop
            from nps.cache import cache_root
            from nps.encoders.simclr import save_weights
            from nps.encoders.train import TrainConfig, train_simclr, weights_meta
            st.session_state["stop_requested"] = False
            epochs = int(st.session_state["cor_epochs"])
            cfg = TrainConfig(epochs=epochs, seed=int(settings["seed"]))
            ckpt = cache_root() / "checkpoints" / f"app-{wp.stem}.pt"
            bar = st.progress(0.0, text="training: starting…")
            st.button("Stop", key="btn_stop_train", on_click=request_stop)
            model = None
            for e in range(epochs):
                if st.session_state.get("stop_requested"):
                    break
                out = attempt(train_simclr, corpus, cfg, checkpoint=ckpt, resume=e > 0, progress=False,
                              stop_after=e + 1, what=f"training epoch {e + 1}")
                if out is None:
                    break
                model, report = out
                last = report["history"][-1]
                bar.progress((e + 1) / epochs, text=f"epoch {e + 1}/{epochs}: loss {last['loss']:.3f}, "
                                                   f"monitor kNN {last['monitor_knn']}")
            else:
                if model is not None:
                    save_weights(wp, model.backbone, weights_meta(corpus, cfg, model))
                    resources.encoder.clear()
                    st.success(f"Saved {wp.name}; choose 'simclr' in the sidebar to use it.")

# --------------------------------------------------------------------------- embedding map
st.subheader("Embedding map")
ec = st.columns([1, 1, 2])
ss_default("cor_method", "PCA")
ss_default("cor_points", 600)
ec[0].radio("projection", ["PCA", "t-SNE"], key="cor_method", horizontal=True)
ec[1].select_slider("points", [200, 400, 600, 1000, 2000], key="cor_points")
ec[2].caption(f"Encoder **{settings['encoder']}** (sidebar). Hover a point for its id and label; click or lasso "
              "points to see their thumbnails below.")
emb = attempt(resources.embedding_map, settings["corpus"], settings["subset"], settings["encoder"],
              st.session_state["cor_method"], int(st.session_state["cor_points"]), what="embedding the corpus")
if emb is not None:
    import plotly.graph_objects as go
    names = corpus.class_names
    fig = go.Figure()
    for lab in np.unique(emb["labels"]):
        sel = emb["labels"] == lab
        fig.add_trace(go.Scattergl(x=emb["xy"][sel, 0], y=emb["xy"][sel, 1], mode="markers",
                                   name=names[int(lab)] if lab < len(names) else str(lab),
                                   customdata=emb["ids"][sel], marker=dict(size=6, opacity=0.8),
                                   hovertemplate="train #%{customdata}<extra>%{fullData.name}</extra>"))
    axis = "PC" if st.session_state["cor_method"] == "PCA" else "t-SNE "
    fig.update_layout(height=460, margin=dict(l=0, r=0, t=10, b=0), legend_title_text="label (class)",
                      xaxis_title=f"{axis}1 (no unit)", yaxis_title=f"{axis}2 (no unit)")
    event = st.plotly_chart(fig, key="sel_embedding", on_select="rerun", selection_mode=("points", "box", "lasso"))
    picked = [int(p["customdata"]) for p in (event.selection.points if event else []) if "customdata" in p][:16]
    if picked:
        tc = st.columns(min(len(picked), 8))
        for j, i in enumerate(picked):
            tc[j % len(tc)].image(grid_picture(corpus.train[i][None], display_scale(corpus.image_shape, 84)),
                                  caption=f"#{i}: {names[int(corpus.train_labels[i])]}")

# --------------------------------------------------------------------------- cache
st.subheader("Cache (indexes and other derived files)")
from nps.cache import cache_root  # noqa: E402
from nps.cache_quota import clear, list_entries  # noqa: E402

entries = list_entries()
st.caption(f"the server's {cache_root().name}/ folder · {len(entries)} entries · "
           f"{sum(e.size for e in entries) / 1e6:.1f} MB")
st.dataframe([{"kind": e.kind, "key": e.key, "MB": round(e.size / 1e6, 2),
               "built (s)": e.meta.get("built_s"), "created": e.meta.get("created")} for e in entries],
             hide_index=True, width="stretch")
bc = st.columns(3)
if bc[0].button(f"Build the index for {corpus_choices.label(settings['corpus'])} / {settings['encoder']}",
                key="btn_build_index"):
    from nps.retrieval import source_index
    enc = attempt(resources.encoder, settings["encoder"], settings["corpus"], settings["subset"],
                  what="fitting the encoder")
    if enc is not None:
        with st.spinner("Embedding and indexing…"):
            built = attempt(source_index, corpus, enc, what="building the index")
        if built is not None:
            st.success(f"Index ready: {built[0].train.shape[0]:,} × {built[0].train.shape[1]} embeddings "
                       f"(key {built[0].key}).")
if not read_only():
    keys = [e.key for e in entries]
    ss_default("cor_clear_key", keys[0] if keys else None)
    if st.session_state["cor_clear_key"] not in keys:
        st.session_state["cor_clear_key"] = keys[0] if keys else None
    bc[1].selectbox("entry", keys, key="cor_clear_key", label_visibility="collapsed")
    if bc[2].button("Clear this entry", key="btn_clear_entry", disabled=not keys):
        removed = attempt(clear, st.session_state["cor_clear_key"], what="clearing the cache entry")
        if removed is not None:  # a read-only cache folder: one st.error line, kept on screen
            st.toast(f"Removed {len(removed)} file(s); they are rebuilt when next needed.")
            st.rerun()
