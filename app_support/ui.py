"""Small UI building blocks shared by the pages: errors, long work, records, downloads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import streamlit as st

from app_support.pages import PAGE, PERSIST_PREFIXES, hand_over  # PERSIST_PREFIXES: the page table's rule
from nps.errors import DataMissingError, NPSError
from nps.record import ProvenanceRecord

log = logging.getLogger("nps.app")
T = TypeVar("T")

MAX_RECORDS = 8  # records kept per session (each holds its images and provenance maps)


# --------------------------------------------------------------------------- errors
def show_error(exc: BaseException, what: str) -> None:
    """One ``st.error`` line for a failure, never a traceback (the server log keeps it).

    Absolute server paths in the message are shortened to their last part: a visitor
    learns which file is missing, not where the server keeps it.
    """
    from app_support.display import redact_paths
    from nps.engine.sampler import Stopped
    if isinstance(exc, Stopped):
        st.warning(f"Stopped: {exc}")
    elif isinstance(exc, DataMissingError):
        st.error(redact_paths(f"{exc}"), icon=":material/folder_off:")
    elif isinstance(exc, NPSError):
        st.error(redact_paths(f"{exc}"), icon=":material/error:")
    else:
        log.exception("unexpected error while %s", what)
        st.error(f"Something went wrong while {what} ({type(exc).__name__}: {redact_paths(str(exc)[:200])}). "
                 "Try smaller settings or another corpus; the full report is in the server log.",
                 icon=":material/bug_report:")


def attempt(fn: Callable[..., T], *args: Any, what: str = "working", **kwargs: Any) -> T | None:
    """Call ``fn``; on any error show it with :func:`show_error` and return None.

    Streamlit's own control flow (rerun, stop, page switch) derives from BaseException
    and passes through untouched.
    """
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # the app shows every failure as one line
        show_error(exc, what)
        return None


def sidebar_corpus(settings: dict) -> Any:
    """The corpus chosen in the shared sidebar; on failure the error is shown and the page stops."""
    from app_support import resources
    corpus = attempt(resources.corpus, settings["corpus"], settings["subset"], what="loading the corpus")
    if corpus is None:
        st.stop()
    return corpus


# --------------------------------------------------------------------------- widget state
def _apply_cheaper(changes: dict, keys: dict) -> None:
    """Button callback: set the widgets behind a cheaper alternative (before the script reruns)."""
    ss = st.session_state
    for field, value in changes.items():
        if field == "subset":
            ss["sb_subset"] = int(value)
        elif field == "constraints":  # switch on the constraints the alternative adds (their toggles)
            for name in value:
                if name in keys:
                    ss[keys[name]] = True
        elif field in keys:
            ss[keys[field]] = value


def warn_if_slow(config: Any, corpus: Any, keys: dict | None = None, key: str = "gen",
                 pixels: int | None = None) -> None:
    """The expected run time before the click (:mod:`nps.lab.cost`); a slow run gets cheaper alternatives.

    Args:
        keys: widget keys that realise an alternative on this page (a constraint's name: its
            toggle, from ``app_support.toggles.toggle_keys``; ``n``: the sample count); a subset is
            set in the shared sidebar.  Without a key an alternative is only named.
        key: a prefix for the buttons' keys (one notice per column on Ablations).
        pixels: pixels sampled per canvas (default: all but the seed; Complete passes its unknown count).
    """
    from app_support.stages import prepared
    from nps.constraints import active
    from nps.lab.cost import cheaper, estimate, format_seconds, index_state
    index = index_state(config, corpus)  # file names only
    est = estimate(config, len(corpus), corpus.image_shape, pixels, index)
    cold = "" if prepared(config) or not config.per_sample_pools() else (
        f" The first run on this server also embeds the {len(corpus):,} training images once with {config.encoder}"
        + (" (up to two minutes with SimCLR on 2 cores" if config.encoder == "simclr" else " (cached on disk")
        + "; the progress bar names each stage).")
    if not est.slow:
        st.caption(f":material/timer: Expected: {format_seconds(est.seconds)} "
                   f"({est.windows_per_pixel:,} candidate windows per pixel).{cold}")
        return
    with st.container(border=True):
        st.warning(f"Expected: **{format_seconds(est.seconds)}** on this 2-core machine: {est.windows_per_pixel:,} "
                   f"candidate windows per pixel ({len(corpus):,} images"
                   f"{'' if active(config, 'centres') else ', every position'}) × {est.pixels} pixels × {est.n} "
                   f"samples{_search_words(config, est, index)}.{cold}", icon=":material/hourglass_top:")
        alts = cheaper(config, len(corpus), corpus.image_shape, pixels=pixels, index=index)
        if alts:
            row = st.container(horizontal=True)
            for i, alt in enumerate(alts):
                label = f"Try {alt.what} ({format_seconds(alt.estimate.seconds)})"
                keys = keys or {}
                can = all(f == "subset" or f in keys or (f == "constraints" and all(
                    c in keys or config.uses(c) for c in alt.changes[f])) for f in alt.changes)
                if can:
                    row.button(label, key=f"btn_cheaper_{key}_{i}", on_click=_apply_cheaper,
                               args=(alt.changes, keys or {}), icon=":material/bolt:")
                else:
                    row.caption(label)


def _search_words(config: Any, est: Any, index: str) -> str:
    """How the estimate searches (the window index prunes, or why it does not), for the slow-run warning."""
    if est.search == "exact":
        return ", pruned by the exact window-index search" + (
            f" (its index is built first: {est.index_build_s:.0f} s)" if est.index_build_s >= 1 else "")
    if est.search == "approx":
        return ", searched approximately in the window index"
    if index == "missing":
        from nps.engine.window_cache import local_splits
        flag = "" if local_splits(config) else " --no-loc"
        return (" (no window index is cached for this corpus, so every window is scored; "
                f"`python -m nps index{flag}` builds one in about a minute and a half)")
    return ""


def lesson_banner(state_key: str, then: str) -> None:
    """The running lesson's question (if any) with an End button; ``then`` says what to do next."""
    from app_support.display import sentence
    from nps.lab.presets import get_lesson
    key = st.session_state.get(state_key)
    if not key:
        return
    lesson = get_lesson(key)
    with st.container(border=True):
        st.markdown(f"**Lesson: {sentence(lesson.title)}** {lesson.predict}")
        st.caption(f"{then} {lesson.look}")
        if st.button("End lesson", key=f"btn_end_{state_key}"):
            st.session_state[state_key] = None
            st.rerun()


def ss_default(key: str, value: Any) -> None:
    """Give a widget key its starting value once (widgets are then created without ``value=``)."""
    if key not in st.session_state:
        st.session_state[key] = value


def close_sidebar_on_phone(page: str) -> None:
    """After a page switch on a narrow screen, fold the sidebar away so the new page is visible.

    Streamlit folds it only for a sidebar link clicked on a phone it recognises by its user
    agent; a narrow window, a tablet or an in-page button (a lesson, "Open in Analysis") left
    it open over the page.  The script is ours and constant (no visitor input in it); it runs
    once per page switch, never on the first load (Streamlit's "auto" starts folded there).
    """
    ss = st.session_state
    if ss.get("_shown_page") == page:
        return
    first = "_shown_page" not in ss
    ss["_shown_page"] = page
    if first:
        return
    ss["_page_switches"] = switches = ss.get("_page_switches", 0) + 1
    st.html(f"""<script>/* page switch {switches} */
(() => {{
  const fold = (tries) => {{
    if (!window.matchMedia("(max-width: 768px)").matches) return;
    const bar = document.querySelector('[data-testid="stSidebar"]');
    if (bar && bar.getAttribute("aria-expanded") !== "false" && bar.getAttribute("data-collapsed") !== "true") {{
      const btn = document.querySelector('[data-testid="stSidebarCollapseButton"] button, '
                                         + 'button[aria-label="Collapse sidebar"]');
      if (btn) {{ btn.click(); return; }}
    }}
    if (tries > 0) setTimeout(() => fold(tries - 1), 150);
  }};
  fold(6);
}})();
</script>""", unsafe_allow_javascript=True)


def persist_page_state() -> None:
    """Keep page widget values across page switches (Streamlit drops state of unrendered widgets)."""
    for key in list(st.session_state.keys()):
        if isinstance(key, str) and key.startswith(PERSIST_PREFIXES):
            st.session_state[key] = st.session_state[key]


# --------------------------------------------------------------------------- long work with stop
def request_stop() -> None:
    st.session_state["stop_requested"] = True


def stop_notice() -> None:
    """After a Stop click (which reruns the script), say that the work stopped."""
    if st.session_state.pop("stop_requested", False):
        st.warning("Stopped at your request; nothing was kept from that run.", icon=":material/stop_circle:")


class LiveProgress:
    """A progress bar, a live canvas and a Stop button for one long computation.

    The instance is the ``progress`` callback of :func:`nps.engine.sampler.generate`: it
    redraws every call and returns False once Stop was pressed (the sampler then
    raises ``Stopped``).  Pressing Stop also reruns the script, which ends the run
    at its next redraw; :func:`stop_notice` then reports it.
    """

    def __init__(self, label: str, key: str, show_canvas: bool = True, scale: int = 4) -> None:
        st.session_state["stop_requested"] = False
        self.label = label
        self.slot = st.empty()
        box = self.slot.container(border=True)
        cols = box.columns([5, 1])
        self.bar = cols[0].progress(0.0, text=f"{label}: starting…")
        cols[1].button("Stop", key=f"btn_stop_{key}", on_click=request_stop, icon=":material/stop:")
        self.canvas = box.empty() if show_canvas else None
        self.box = box
        self.scale = scale
        self._drawn = 0.0
        self.prefix = ""

    def stage(self, text: str) -> None:
        """Name the stage under way (e.g. "stage 3/5: embedding 70,000 images…") before sampling starts.

        The stage text stays as a prefix of the sampling lines ("stage 5/5: sampling pixel 40/720").
        """
        self.bar.progress(0.0, text=f"{self.label}: {text}")
        head = text.split(":", 1)[0]
        self.prefix = f"{head}: " if head.startswith("stage") else ""

    def __call__(self, info: Any) -> bool:
        import time
        now = time.monotonic()
        last = info.step >= info.total and info.batch + 1 >= info.n_batches
        if now - self._drawn < 0.25 and not last:  # redraw at most 4 times a second
            return not st.session_state.get("stop_requested", False)
        self._drawn = now
        frac = (info.batch + info.step / max(info.total, 1)) / max(info.n_batches, 1)
        batch = f" (batch {info.batch + 1}/{info.n_batches})" if info.n_batches > 1 else ""
        self.bar.progress(min(frac, 1.0), text=f"{self.label}: {self.prefix}sampling pixel {info.step}/{info.total}"
                                                + batch)
        if self.canvas is not None:
            from app_support.state import grid_picture
            self.canvas.image(grid_picture(info.canvas, self.scale), caption="live canvas (filling shell by shell)")
        return not st.session_state.get("stop_requested", False)

    def done(self) -> None:
        self.slot.empty()


# --------------------------------------------------------------------------- records in this session
def add_record(label: str, record: ProvenanceRecord, make_current: bool = True) -> None:
    """Remember a record for the Analysis page.

    The newest :data:`MAX_RECORDS` are kept, plus any the visitor pinned.  A record that
    has to go is named in a toast and in the Analysis page's record list, never dropped
    silently.
    """
    from app_support.display import records_to_evict
    recs: dict = st.session_state.setdefault("records", {})
    recs.pop(label, None)
    recs[label] = record
    for old in records_to_evict(list(recs), pinned_records(), MAX_RECORDS):
        recs.pop(old, None)
        st.session_state.setdefault("evicted_records", []).append(old)
        st.toast(f"Removed the oldest record '{old}': a session keeps {MAX_RECORDS}. "
                 "Pin a record on the Analysis page to keep it.", icon=":material/delete_sweep:")
    if make_current:
        hand_over(st.session_state, "analysis", record=label)


def records() -> dict[str, ProvenanceRecord]:
    return st.session_state.get("records", {})


def pinned_records() -> set[str]:
    """Labels the visitor pinned: never evicted (at most MAX_RECORDS - 1, so a new record always fits)."""
    return st.session_state.setdefault("pinned_records", set())


def set_pinned(label: str, pinned: bool) -> bool:
    """Pin or unpin a record; returns False when the pin was refused (too many pinned)."""
    pins = pinned_records()
    if not pinned:
        pins.discard(label)
        return True
    if label not in pins and len(pins) >= MAX_RECORDS - 1:
        return False
    pins.add(label)
    return True


# --------------------------------------------------------------------------- permalinks
def remember_link(page: str) -> None:
    """On a session's first run, keep the URL's query and the page it opened (a permalink to apply once)."""
    ss = st.session_state
    if "_link_page" not in ss:
        ss["_link_page"] = page
        ss["_link"] = st.query_params.to_dict()


def take_link(page: str) -> dict | None:
    """The permalink's query if the session opened on ``page`` and it was not applied yet (then never again)."""
    ss = st.session_state
    if ss.get("_link_page") != page or ss.get("_link") is None:
        return None
    link = ss["_link"]
    ss["_link"] = None
    return link


def mirror_query(params: dict[str, str]) -> None:
    """Write a page's own parameters into the address bar, dropping those of other pages.

    The sidebar's keys (corpus, subset, encoder, seed) are left to the sidebar.
    """
    from app_support.state import SIDEBAR_KEYS
    for key in list(st.query_params.keys()):
        if key not in SIDEBAR_KEYS and key not in params:
            del st.query_params[key]
    for key, value in params.items():
        if st.query_params.get(key) != value:
            st.query_params[key] = value


# --------------------------------------------------------------------------- results of a view
def view_result(page: str, settings: dict) -> dict:
    """The results a page produced for the sidebar's corpus and subset (a mutable dict).

    Keyed by (page, corpus, subset), so a digits grid never shows under "Result" on the
    MNIST page, and switching back finds the digits one again.
    """
    from app_support.display import view_key
    store: dict = st.session_state.setdefault("view_results", {})
    return store.setdefault(view_key(page, settings), {})


def open_in_analysis(label: str, sample: int = 0, pixel: tuple[int, int] | None = None) -> None:
    """Select a record and sample for the Analysis page and go there."""
    hand_over(st.session_state, "analysis", record=label, sample=int(sample))
    if pixel is not None:
        hand_over(st.session_state, "analysis", y=int(pixel[0]), x=int(pixel[1]))
        st.session_state["_ana_pixel_given"] = True
    st.switch_page(PAGE["analysis"].file)


# --------------------------------------------------------------------------- pictures and downloads
def show_grid(images: np.ndarray, caption: str | None = None, scale: int | None = None,
              ncol: int | None = None) -> None:
    from app_support.state import display_scale, grid_picture
    s = scale or max(2, display_scale(images.shape[1:], 56))
    st.image(grid_picture(images, s, ncol), caption=caption)


def download_buttons(record: ProvenanceRecord, stem: str, key: str) -> None:
    """Record (.npz) and grid (.png) downloads; clicking does not rerun the page (state is kept).

    Hidden in presentation mode (:mod:`app_support.present`).
    """
    from app_support.present import show_secondary
    if not show_secondary():
        return
    from app_support.state import grid_picture, png_bytes, record_npz_bytes
    c1, c2 = st.columns(2)
    c1.download_button("Download record (.npz)", data=record_npz_bytes(record), file_name=f"{stem}.npz",
                       mime="application/octet-stream", key=f"dl_npz_{key}", on_click="ignore",
                       icon=":material/download:")
    c2.download_button("Download grid (.png)", data=png_bytes(grid_picture(record.images, 4)),
                       file_name=f"{stem}.png", mime="image/png", key=f"dl_png_{key}", on_click="ignore",
                       icon=":material/image:")


def config_caption(config: dict) -> str:
    from app_support.display import constraint_label
    return (f"{config.get('corpus')} · {constraint_label(config.get('constraints', ()))} · "
            f"{config.get('encoder')} · w={config.get('window')} ε={config.get('eps')} R={config.get('radius')} "
            f"k={config.get('k')} · seed {config.get('seed')}")
