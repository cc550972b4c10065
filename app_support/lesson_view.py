"""The app's side of the shipped lesson records (:mod:`nps.lab.lesson_records`): open, caption, re-run live.

A run whose config matches a shipped record (the lessons, and the first view of each
constraint toggle on MNIST at the default settings) is answered by that record at once,
after it passed the checks of :func:`nps.lab.lesson_records.open_shipped`; the caption says it
is precomputed, names its config (subset included) and offers "Re-run live" with the
:mod:`nps.lab.cost` estimate.  A refused record is one line, and the page falls back to its
live run, with the estimate shown before the click.

Session keys: ``<key>_rerun_live`` (a Re-run live click, for the page's run key ``gen`` or
``abl<i>``) and ``<page>_autorun`` (set by a lesson card: open the shipped record on
arrival, without a click).
"""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from nps.config import GenerationConfig
from nps.errors import NPSError
from nps.lab import lesson_records
from nps.lab.cost import estimate, format_seconds, index_state
from nps.record import ProvenanceRecord


def match(config: GenerationConfig | None) -> lesson_records.ShippedRun | None:
    """The shipped run answering ``config``, if its file ships (nothing is hashed or validated yet)."""
    if config is None:
        return None
    run = lesson_records.find(config)
    return run if run is not None and lesson_records.available(run.name) else None


def live_estimate(config: GenerationConfig, corpus: Any) -> str:
    """The expected time of a live run of ``config`` ("about 9 min").

    A shipped record needs no embedding, but a live run with representation does, once per
    server (up to two minutes with SimCLR on MNIST here): said when its pools are not built yet.
    """
    from app_support.stages import prepared
    text = format_seconds(estimate(config, len(corpus), corpus.image_shape, index=index_state(config, corpus)).seconds)
    if config.per_sample_pools() and not prepared(config):
        text += f", plus embedding {len(corpus):,} images once"
    return text


def notice(config: GenerationConfig | None, corpus: Any) -> bool:
    """Before the click: say that a precomputed record answers ``config`` (True), or nothing (False).

    The caller shows :func:`app_support.ui.warn_if_slow` when this returns False.
    """
    run = match(config)
    if run is None:
        return False
    st.caption(f":material/bolt: **Precomputed** ({run.what}): a record of exactly these settings ships with the "
               f"lab, so the run button opens it at once. A live run would take {live_estimate(config, corpus)} "
               "here; the result offers it.")
    return True


def take(key: str) -> bool:
    """Pop a one-shot flag from the session (``gen_rerun_live``, ``abl_autorun`` ...)."""
    return bool(st.session_state.pop(key, False))


def open_record(run: lesson_records.ShippedRun, corpus: Any) -> tuple[ProvenanceRecord, float] | None:
    """The shipped record, checked against ``corpus``, and the seconds opening it took; None if refused.

    A refusal is one line; the caller then runs live (on a click) or waits for one.
    """
    t0 = time.perf_counter()
    try:
        rec = lesson_records.open_shipped(run.name, corpus)
    except NPSError as exc:
        st.warning(f"The precomputed record was refused, so this runs live ({live_estimate(run.config, corpus)} "
                   f"here): {exc}", icon=":material/gpp_maybe:")
        return None
    return rec, time.perf_counter() - t0


def result_note(name: str, key: str, corpus: Any) -> None:
    """Under a result served from a shipped record: what it is, and a "Re-run live" button with the estimate."""
    run = lesson_records.RUNS.get(name)
    if run is None:
        return
    st.caption(":material/inventory_2: " + lesson_records.caption(run))
    st.button(f"Re-run live ({live_estimate(run.config, corpus)})", key=f"btn_rerun_live_{key}",
              icon=":material/replay:", on_click=st.session_state.__setitem__, args=(f"{key}_rerun_live", True),
              help="Generate these samples now with the engine instead of opening the shipped record "
                   "(the result is the same record; this shows the run itself).")


def card_note(lesson: Any, settings: dict) -> str:
    """One line for a lesson card: how long its first result takes on the sidebar's corpus, before the click.

    Reads no corpus: on MNIST the answer comes from the shipped records; elsewhere the
    target page shows its estimate before its run button.
    """
    from app_support.state import build_config, suggested_params
    configs = lesson_configs(lesson, settings, suggested_params((28, 28)))
    if lesson.page == "analysis":
        return (f":material/timer: Opens the {lesson.controls.get('preset', 'digits')} preset: about a second once "
                "built; the first time on a fresh server it is built, a few seconds.")
    if not configs or settings.get("corpus") != "mnist":
        return (":material/timer: Runs live on this corpus; the page shows the expected time before you press run.")
    runs = [match(build_config(settings | {"subset": c.get("subset")}, c)) for c in configs]
    if not all(runs):
        return ":material/timer: Runs live; the page shows the expected time before you press run."
    sub = lesson.controls.get("subset")
    try:
        live = sum(estimate(r.config, lesson_records.corpus_size(r.name), (28, 28)).seconds for r in runs)
    except NPSError:  # a damaged manifest: the page itself refuses the record with its one line
        return ":material/timer: The page shows the expected time before you press run."
    where = f"a {sub:,}-image subset" if sub else "all training images"
    return (f":material/bolt: Opens a precomputed record at once ({where}, n = {runs[0].config.n}); "
            f"a live re-run: {format_seconds(live)}.")


def lesson_configs(lesson: Any, settings: dict, base: dict) -> list[dict]:
    """The page parameters a lesson sets, one dict per run (one, or one per ablation column)."""
    ctl = dict(lesson.controls)
    common = {**base, "n": ctl.get("n", 16), "batch_size": ctl.get("n", 16)}
    if "subset" in ctl:
        common["subset"] = ctl["subset"]
    else:
        common["subset"] = settings.get("subset")
    if lesson.page == "generate":
        return [{**common, "constraints": ctl.get("constraints", ("ssd", "loc", "ssl"))}]
    if lesson.page == "ablations":
        return [{**common, "constraints": cols} for cols in ctl.get("columns", [])]
    return []
