"""Complete: hide part of an image and let the sampler fill it back (Efros-Leung hole filling)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app_support import resources, views
from app_support.boot import entry_guard
from app_support.ui import (
    LiveProgress,
    add_record,
    attempt,
    config_caption,
    download_buttons,
    open_in_analysis,
    show_error,
    sidebar_corpus,
    ss_default,
    stop_notice,
    view_result,
)
from nps.app_state import (
    MASKS,
    MAX_UPLOAD_MB,
    UPLOAD_TYPES,
    build_config,
    check_against,
    display_scale,
    image_from_upload,
    masked_preview,
    record_id,
    record_label,
    suggested_params,
    unknown_mask,
)
from nps.plots import to_rgb, upscale

entry_guard()
st.title("Complete")
st.markdown("Give the sampler part of an image and it fills in the rest from the corpus, pixel by pixel, under the "
            "same constraints: Efros & Leung's hole filling. Known pixels stay as they are (their source is "
            "recorded as −1); every filled pixel is traced like any generated one.")
settings = st.session_state["settings"]
corpus = sidebar_corpus(settings)
h, w = corpus.image_shape[:2]
scale = display_scale(corpus.image_shape, 196)

ss_default("cmp_source", "test image")
ss_default("cmp_test_id", 0)
ss_default("cmp_mask", "bottom half")
st.radio("image", ["test image", "upload"], key="cmp_source", horizontal=True,
         help="a held-out test image (not in the training corpus), or your own picture")
image = None
if st.session_state["cmp_source"] == "test image":
    st.session_state["cmp_test_id"] = min(max(int(st.session_state["cmp_test_id"]), 0), len(corpus.test) - 1)
    st.number_input("test image id", 0, len(corpus.test) - 1, step=1, key="cmp_test_id")
    image = np.asarray(corpus.test[int(st.session_state["cmp_test_id"])])
else:
    up = st.file_uploader(f"a small picture ({', '.join(UPLOAD_TYPES)}, up to {MAX_UPLOAD_MB} MB); it is "
                          f"centre-cropped and resized to {h}×{w}", type=list(UPLOAD_TYPES), key="upload_picture")
    if up is not None:
        image = attempt(image_from_upload, up.getvalue(), corpus.image_shape, what="reading the picture")
        if image is not None and st.toggle("invert (dark strokes on light paper)", key="cmp_invert"):
            image = 255 - image
if image is None:
    st.info("Choose a test image or upload a picture.")
    st.stop()

mc = st.columns([1, 1, 1])
mc[0].selectbox("unknown region", MASKS, key="cmp_mask")
rect = None
if st.session_state["cmp_mask"] == "rectangle":
    ss_default("cmp_rows", (h // 4, 3 * h // 4))
    ss_default("cmp_cols", (w // 4, 3 * w // 4))
    mc[0].slider("rows", 0, h, key="cmp_rows")
    mc[0].slider("columns", 0, w, key="cmp_cols")
    (y0, y1), (x0, x1) = st.session_state["cmp_rows"], st.session_state["cmp_cols"]
    rect = (int(y0), int(y1), int(x0), int(x1))
unknown = attempt(unknown_mask, st.session_state["cmp_mask"], h, w, rect, what="building the mask")
if unknown is None:
    st.stop()
mc[1].image(upscale(to_rgb(image[None])[0], scale), caption="the image")
mc[2].image(upscale(masked_preview(image, unknown), scale), caption=f"red: {int(unknown.sum())} pixels to synthesise")

# Same parameters as the Generate page when it was used on this canvas size, else the defaults.
base = suggested_params(corpus.image_shape)
params = {k: st.session_state.get(f"gen_{k}", v) for k, v in base.items()}
if st.session_state.get("gen_shape") != [h, w]:
    params = dict(base)
cons = tuple(c for c in ("ssd", "loc", "ssl") if st.session_state.get(f"gen_{c}", True))
config = None
try:
    config = build_config(settings, {**params, "constraints": cons, "n": 1, "batch_size": 1})
    check_against(config, corpus)
except Exception as exc:  # noqa: BLE001
    show_error(exc, "checking the parameters")
st.caption("Constraints and parameters come from the Generate page: "
           + (config_caption(config.to_dict()) if config is not None else "(invalid)"))

stop_notice()
if st.button("Fill the unknown region", type="primary", key="btn_complete", disabled=config is None,
             icon=":material/auto_fix_high:"):
    try:
        from nps.complete import complete
    except ImportError:
        st.error("This build of nps has no completion engine (nps.complete); update the project.")
    else:
        live = LiveProgress("Filling", "cmp", scale=scale // 2 or 1)
        try:
            rec = complete(config, resources.corpus(config.corpus, config.subset), image, ~unknown,
                           progress=live)
        except Exception as exc:  # noqa: BLE001
            live.done()
            show_error(exc, "filling the image")
        else:
            live.done()
            label = record_label(config.to_dict(), f"complete ({st.session_state['cmp_mask']})")
            add_record(label, rec, make_current=False)
            view_result("complete", settings).update(label=label)

last = view_result("complete", settings).get("label")
recs = st.session_state.get("records", {})
if last and last in recs:
    rec = recs[last]
    rid = record_id(rec)
    st.subheader("Result")
    rc = st.columns([1, 2])
    with rc[0]:
        st.image(upscale(to_rgb(rec.images[:1])[0], scale), caption="completed")
        if st.button("Trace it in Analysis", key="btn_cmp_open"):
            open_in_analysis(last, 0)
    with rc[1]:
        views.replay(rec, 0, "cmp" + rid[:6])
    download_buttons(rec, f"nps-complete-{config.corpus if config else 'record'}", "cmp")
