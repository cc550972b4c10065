"""The shared sidebar: corpus, subset, encoder and RNG seed, mirrored in the URL.

It is drawn by the entry script on every run, so its widgets (keys ``sb_*``) keep
their values across pages.  On a session's first run the URL's query string
(``?corpus=digits&subset=all&encoder=pca&seed=3``) seeds them; afterwards every run
writes them back, so the address bar always holds a shareable link to the view.
A folder corpus the operator offers (:mod:`app_support.corpus_choices`) adds its image
size and colour (``sb_size``, ``sb_colour``; ``&size=32&colour=rgb`` in the URL), and
the pages see the full corpus name, e.g. ``folder:PATH?size=32&colour=rgb``.
"""

from __future__ import annotations

import os

import streamlit as st

from app_support import corpus_choices, resources
from app_support.state import BOUNDS, SIDEBAR_KEYS, SUBSET_CHOICES, sidebar_from_query, sidebar_to_query
from nps.config import DEFAULTS, resolve_encoder


def read_only() -> bool:
    """A hosted demo can set NPS_APP_READONLY=1: no training, no cache clearing."""
    return os.environ.get("NPS_APP_READONLY", "") not in ("", "0", "false", "no")


def encoder_names() -> list[str]:
    """"auto" (the measured best for the corpus) first, then every registered encoder."""
    from nps.encoders import ENCODERS
    return ["auto", *sorted(ENCODERS)]


def _apply_query(available: list[str]) -> None:
    defaults = {"corpus": "mnist" if "mnist" in available else (available[0] if available else "digits"),
                "subset": None, "encoder": DEFAULTS["encoder"], "seed": DEFAULTS["seed"]}
    settings, notes = sidebar_from_query(st.query_params.to_dict(), available, encoder_names(), defaults)
    settings["subset"] = settings["subset"] or 0  # the widget shows 0 as "all" (None reads as "no choice")
    for k in SIDEBAR_KEYS:
        key = f"sb_{k}"
        if k in st.query_params or key not in st.session_state:
            st.session_state[key] = settings[k]
    size, colour, more = corpus_choices.from_query(st.query_params.get("size"), st.query_params.get("colour"))
    for key, value, given in (("sb_size", size, "size"), ("sb_colour", colour, "colour")):
        if given in st.query_params or key not in st.session_state:
            st.session_state[key] = value
    st.session_state["_query_notes"] = notes + more


def sidebar() -> dict:
    """Draw the sidebar; return the settings dict (``corpus``, ``subset``, ``encoder``, ``seed``)."""
    available = resources.sidebar_corpora()
    if not st.session_state.get("_query_applied"):
        _apply_query(available)
        st.session_state["_query_applied"] = True
    if st.session_state.get("sb_corpus") not in available and available:
        st.session_state["sb_corpus"] = available[0]
    with st.sidebar:
        st.markdown("### Shared settings")
        st.selectbox("Corpus", available, key="sb_corpus", format_func=corpus_choices.label,
                     help="Only corpora present on this machine are listed; the Corpus page says how to get the rest.")
        is_folder = corpus_choices.split(st.session_state.get("sb_corpus") or "") is not None
        if is_folder:  # an operator's folder: the visitor picks the canvas size and colour, nothing else
            st.session_state.setdefault("sb_size", corpus_choices.DEFAULT_SIZE)
            st.session_state.setdefault("sb_colour", corpus_choices.DEFAULT_COLOUR)
            c = st.columns(2)
            c[0].selectbox("Image size", corpus_choices.SIZES, key="sb_size", format_func=lambda v: f"{v}×{v}",
                           help="Every image of the folder is resized to this square (bilinear).")
            c[1].radio("Colour", corpus_choices.COLOURS, key="sb_colour", horizontal=True,
                       help="gray: one channel (luma); rgb: three channels, copied pixel for pixel.")
        st.selectbox("Subset (training images)", [v or 0 for v in SUBSET_CHOICES], key="sb_subset",
                     format_func=lambda v: "all" if not v else f"{v:,}",
                     help="A class-stratified subset makes everything faster; image ids then index the subset.")
        corpus_name = st.session_state.get("sb_corpus") or "mnist"
        st.selectbox("Encoder (representation)", encoder_names(), key="sb_encoder",
                     format_func=lambda v: f"auto ({resolve_encoder('auto', corpus_name)})" if v == "auto" else v,
                     help="Used by the representation constraint (ssl). auto picks the encoder that measured best "
                          "for this corpus (simclr for mnist, pca elsewhere); simclr needs "
                          "trained weights.")
        lo, hi = BOUNDS["seed"]
        st.number_input("RNG seed", min_value=int(lo), max_value=int(hi), step=1, key="sb_seed",
                        help="Same seed and settings give bit-identical samples.")
        for note in st.session_state.pop("_query_notes", []):
            st.caption(f":orange[{note}]")
        st.caption("These choices apply to every page and are kept in the page address, so a link reopens "
                   "this view.")
        st.toggle("Presentation mode", key="sb_present",
                  help="For a projector: larger type, pictures and grids; secondary panels (command lines, "
                       "downloads, uploads, the honesty panel) are hidden.")
    settings = {k: st.session_state[f"sb_{k}"] for k in SIDEBAR_KEYS}
    settings["seed"] = int(settings["seed"])
    settings["subset"] = int(settings["subset"]) or None
    query = sidebar_to_query(settings)
    if is_folder:
        query.update(size=str(st.session_state["sb_size"]), colour=str(st.session_state["sb_colour"]))
        settings["corpus"] = corpus_choices.folder_name(settings["corpus"], int(st.session_state["sb_size"]),
                                                        str(st.session_state["sb_colour"]))
    else:
        for k in ("size", "colour"):
            if k in st.query_params:
                del st.query_params[k]
    for k, v in query.items():
        if st.query_params.get(k) != v:
            st.query_params[k] = v
    settings["encoder"] = resolve_encoder(settings["encoder"], settings["corpus"])  # pages see a concrete name
    return settings
