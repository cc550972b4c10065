"""Complete: hide part of an image and let the sampler fill it back (Efros-Leung hole filling)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app_support import replay_view, stages
from app_support.boot import entry_guard
from app_support.display import (
    given_filled_picture,
    record_label,
)
from app_support.links import params_from_query, params_to_query
from app_support.state import (
    BOUNDS,
    MASKS,
    MAX_UPLOAD_MB,
    UPLOAD_TYPES,
    build_config,
    check_against,
    display_scale,
    image_from_upload,
    masked_preview,
    png_bytes,
    record_id,
    suggested_params,
    unknown_mask,
)
from app_support.toggles import constraint_toggles, default_toggles, enabled, owner_off, plugin_params, set_constraints
from app_support.ui import (
    LiveProgress,
    add_record,
    attempt,
    config_caption,
    download_buttons,
    mirror_query,
    open_in_analysis,
    show_error,
    sidebar_corpus,
    ss_default,
    stop_notice,
    take_link,
    view_result,
    warn_if_slow,
)
from nps.lab.plots import to_rgb, upscale

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
link = take_link("complete")  # a permalink: the test image, the mask and (below) the constraints
if link:
    try:
        if "test" in link:
            st.session_state["cmp_source"] = "test image"
            st.session_state["cmp_test_id"] = int(str(link["test"]))
    except ValueError:
        st.caption(f":orange[the link's test image '{link['test']}' is not a number; showing test image 0.]")
    if str(link.get("mask", "")) in MASKS:
        st.session_state["cmp_mask"] = str(link["mask"])
st.radio("image", ["test image", "upload", "draw"], key="cmp_source", horizontal=True,
         help="a held-out test image (not in the training corpus), your own picture, or one you draw")
image = None
if st.session_state["cmp_source"] == "test image":
    st.session_state["cmp_test_id"] = min(max(int(st.session_state["cmp_test_id"]), 0), len(corpus.test) - 1)
    st.number_input("test image id", 0, len(corpus.test) - 1, step=1, key="cmp_test_id")
    image = np.asarray(corpus.test[int(st.session_state["cmp_test_id"])])
elif st.session_state["cmp_source"] == "draw":
    try:  # optional: a maintained drawing component (checked with Streamlit 1.67), not a requirement
        from streamlit_drawable_canvas import st_canvas
    except ImportError:
        st.info("Drawing needs the optional package `streamlit-drawable-canvas` (0.13 or later, for Streamlit "
                "1.53+): `pip install streamlit-drawable-canvas`, then restart the lab. Until then, upload a "
                "picture or use a test image.", icon=":material/draw:")
    else:
        st.caption(f"Draw white strokes on black; the drawing is scaled down to {h}×{w}. Then hide part of it "
                   "below and let the sampler fill it back.")
        drawn = st_canvas(stroke_width=max(8, 196 // max(h, w) * 2), stroke_color="#ffffff",
                          background_color="#000000", height=196, width=196, drawing_mode="freedraw",
                          key="draw_canvas", return_image_data=True)  # not cmp_*: never re-assigned
        data = getattr(drawn, "image_data", None)
        if data is not None and np.asarray(data)[..., :3].any():
            rgb = np.ascontiguousarray(np.asarray(data)[..., :3], np.uint8)
            image = attempt(image_from_upload, png_bytes(rgb), corpus.image_shape, what="reading the drawing")
else:
    up = st.file_uploader(f"a small picture ({', '.join(UPLOAD_TYPES)}, up to {MAX_UPLOAD_MB} MB); it is "
                          f"centre-cropped and resized to {h}×{w}", type=list(UPLOAD_TYPES), key="upload_picture")
    if up is not None:
        image = attempt(image_from_upload, up.getvalue(), corpus.image_shape, what="reading the picture")
        if image is not None and st.toggle("invert (dark strokes on light paper)", key="cmp_invert"):
            image = 255 - image
if image is None:
    st.info("Choose a test image, upload a picture or draw one.")
    st.stop()


def paint_mask(image: np.ndarray, where) -> np.ndarray | None:
    """The region the visitor paints over ``image`` (a second canvas mode), as an (h,w) bool mask."""
    from app_support.display import painted_mask
    try:
        from streamlit_drawable_canvas import st_canvas
    except ImportError:
        where.info("Painting the mask needs the optional package `streamlit-drawable-canvas` (0.13 or later); "
                   "choose another region meanwhile.", icon=":material/format_paint:")
        return None
    shown = upscale(to_rgb(image[None])[0], scale)
    with where:
        st.caption("Paint over the part to hide (red); the sampler fills what you painted.")
        painted = st_canvas(fill_color="rgba(255, 60, 60, 0.55)", stroke_width=max(6, 2 * scale),
                            stroke_color="rgba(255, 60, 60, 0.55)", background_color="rgba(0, 0, 0, 0)",
                            background_image=png_bytes(shown),
                            height=scale * h, width=scale * w, drawing_mode="freedraw", key="paint_canvas",
                            return_image_data=True)
    data = getattr(painted, "image_data", None)
    mask = painted_mask(data, h, w, shown) if data is not None else np.zeros((h, w), bool)
    if not mask.any():
        where.info("Nothing painted yet.", icon=":material/format_paint:")
        return None
    if mask.all():
        where.warning("Everything is painted: leave some of the image as context.")
        return None
    return mask


PAINT = "paint it"  # a mask the visitor paints on the image (not one of app_support.state.MASKS)
mc = st.columns([1, 1, 1])
if st.session_state["cmp_mask"] not in (*MASKS, PAINT):
    st.session_state["cmp_mask"] = MASKS[0]
mc[0].selectbox("unknown region", [*MASKS, PAINT], key="cmp_mask",
                help=f"'{PAINT}': paint the region to hide over the image with the mouse or a finger")
rect = None
if st.session_state["cmp_mask"] == "rectangle":
    ss_default("cmp_rows", (h // 4, 3 * h // 4))
    ss_default("cmp_cols", (w // 4, 3 * w // 4))
    mc[0].slider("rows", 0, h, key="cmp_rows")
    mc[0].slider("columns", 0, w, key="cmp_cols")
    (y0, y1), (x0, x1) = st.session_state["cmp_rows"], st.session_state["cmp_cols"]
    rect = (int(y0), int(y1), int(x0), int(x1))
if st.session_state["cmp_mask"] == PAINT:
    unknown = paint_mask(image, mc[0])
else:
    unknown = attempt(unknown_mask, st.session_state["cmp_mask"], h, w, rect, what="building the mask")
if unknown is None:
    st.stop()
mc[1].image(upscale(to_rgb(image[None])[0], scale), caption="the image")
mc[2].image(upscale(masked_preview(image, unknown), scale), caption=f"red: {int(unknown.sum())} pixels to synthesise")

# This page's own constraints and parameters (keys cmp_*): it never reads another page's settings,
# so a lesson left running on Generate cannot silently change what Complete does.
if st.session_state.get("cmp_shape") != [h, w]:
    for k, v in suggested_params(corpus.image_shape).items():
        st.session_state[f"cmp_{k}"] = v
    st.session_state["cmp_shape"] = [h, w]
default_toggles("cmp")
if link:
    fields, notes = params_from_query(link, bounds=BOUNDS)
    for name, value in fields.items():
        if name == "constraints":
            set_constraints("cmp", value)
        elif name in ("window", "eps", "radius", "k"):
            st.session_state[f"cmp_{name}"] = value
    for note in notes:
        st.caption(f":orange[{note}]")
st.markdown("**Constraints for the fill**")
constraint_toggles("cmp", page="complete")  # one per registered constraint (nps.constraints)
extra = plugin_params("cmp")
with st.expander("Parameters"):
    side = min(h, w)
    windows = [v for v in range(int(BOUNDS["window"][0]), int(BOUNDS["window"][1]) + 1, 2) if v <= side]
    if st.session_state["cmp_window"] not in windows:
        st.session_state["cmp_window"] = windows[0]
    st.session_state["cmp_radius"] = int(min(max(st.session_state["cmp_radius"], 0), BOUNDS["radius"][1]))
    st.session_state["cmp_k"] = int(min(max(st.session_state["cmp_k"], 1), min(BOUNDS["k"][1], len(corpus) - 1)))
    pc = st.columns(4)
    pc[0].select_slider("window w", windows, key="cmp_window")
    pc[1].slider("ε (SSD threshold)", float(BOUNDS["eps"][0]), float(BOUNDS["eps"][1]), step=0.01, key="cmp_eps")
    pc[2].slider("radius R", int(BOUNDS["radius"][0]), int(BOUNDS["radius"][1]), key="cmp_radius",
                 disabled=owner_off("cmp", "radius"))
    pc[3].number_input("k (semantic pool)", 1, int(min(BOUNDS["k"][1], len(corpus) - 1)), step=8, key="cmp_k",
                       disabled=owner_off("cmp", "k"))
cons = enabled("cmp")
query = params_to_query({"constraints": cons, **{f: st.session_state[f"cmp_{f}"] for f in ("window", "eps", "radius",
                                                                                          "k")}})
if st.session_state["cmp_source"] == "test image":
    query.update(test=str(int(st.session_state["cmp_test_id"])), mask=str(st.session_state["cmp_mask"]))
mirror_query(query)
params = {k: st.session_state[f"cmp_{k}"] for k in ("window", "eps", "radius", "k", "seed_size")}
config = None
try:
    config = build_config(settings, {**params, **extra, "constraints": cons, "n": 1, "batch_size": 1})
    check_against(config, corpus)
except Exception as exc:
    show_error(exc, "checking the parameters")
    config = None
if config is not None:
    st.caption("This fill: " + config_caption(config.to_dict()))
    warn_if_slow(config, corpus, {"loc": "cmp_loc"}, "cmp", pixels=int(unknown.sum()))  # before the click

stop_notice()
if st.button("Fill the unknown region", type="primary", key="btn_complete", disabled=config is None,
             icon=":material/auto_fix_high:"):
    import nps  # the public API: nps.complete is nps.engine.sampler.complete
    live = LiveProgress("Filling", "cmp", scale=scale // 2 or 1)
    try:
        rec = nps.complete(config, stages.prepare(config, live), image, ~unknown, progress=live)
    except Exception as exc:
        live.done()
        show_error(exc, "filling the image")
    else:
        live.done()
        label = record_label(config.to_dict(), f"complete ({st.session_state['cmp_mask']})")
        add_record(label, rec, make_current=False)
        view_result("complete", settings).update(
            label=label, original=to_rgb(np.asarray(image)[None])[0],
            is_test=st.session_state["cmp_source"] == "test image")

last = view_result("complete", settings).get("label")
recs = st.session_state.get("records", {})
if last and last in recs:
    rec = recs[last]
    rid = record_id(rec)
    res = view_result("complete", settings)
    st.subheader("Result")
    given = rec.source_index[0] < 0
    panels = []
    if res.get("original") is not None:
        panels.append((res["original"], "the original" + (" (a held-out test image)" if res.get("is_test") else "")))
    panels.append((masked_preview(rec.images[0], ~given), f"given: {int(given.sum())} px (red: hidden)"))
    panels.append((to_rgb(rec.images[:1])[0], "completed"))
    panels.append((given_filled_picture(rec.images[0], given),
                   f"completed, the {int((~given).sum())} filled pixels tinted blue"))
    pc = st.columns(len(panels))
    for col, (pic, cap) in zip(pc, panels):
        col.image(upscale(pic, scale), caption=cap)
    if res.get("original") is not None:
        orig = np.asarray(res["original"], np.float64)
        done = to_rgb(rec.images[:1])[0].astype(np.float64)
        diff = np.abs(orig - done).mean(-1)[~given]
        st.caption(f"In the filled region the completion differs from the original by {diff.mean():.1f} grey "
                   f"levels on average (0-255); {float((diff < 32).mean()):.0%} of its pixels are within 32. The "
                   "sampler never saw the hidden part: it copies plausible pixels, not the original ones.")
    rc = st.columns([1, 2])
    with rc[0]:
        if st.button("Trace it in Analysis", key="btn_cmp_open"):
            open_in_analysis(last, 0)
    with rc[1]:
        replay_view.replay(rec, 0, "cmp" + rid[:6])
    download_buttons(rec, f"nps-complete-{rec.config.get('corpus', 'record')}", "cmp")
