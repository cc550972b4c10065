"""The Ablations page's preset "Reproduce the README's ablation table" (and its quick alternative).

Both presets are ``python -m nps ablate`` command lines (:data:`nps.lab.ablation.PRESETS`) run by the
CLI's own code (:func:`nps.lab.ablation.run_preset`) and cached in ``cache/`` by content
(:func:`nps.lab.ablation.cached_run`), so a second visit shows the table at once.

The README's preset runs n = 128 samples per configuration, above the controls' n ≤ 64, on a
300-image subset the sidebar does not offer: it runs only where the operator allows it
(:func:`paper_scale_allowed`).  A hosted demo (``NPS_APP_READONLY=1``) offers the quick
preset (n = 32 on 200 images, within the controls' limits), the published table and the
command line instead.
"""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from nps.lab import ablation as A
from nps.lab.cost import format_seconds

#: the operator's switch for the README's preset: 1 allows it, 0 refuses it; unset: allowed unless hosted read-only
ENV = "NPS_APP_PAPER_ABLATION"
_OFF, _ON = ("0", "false", "no"), ("1", "true", "yes")


def paper_scale_allowed() -> tuple[bool, str]:
    """Whether the README's preset (n = 128, above the controls' n ≤ 64) may run here, and why not."""
    from app_support.sidebar import read_only
    value = os.environ.get(ENV, "").strip().lower()
    if value in _OFF:
        return False, f"the operator switched it off on this server ({ENV}=0)"
    if value in _ON:
        return True, ""
    if read_only():
        return False, (f"this is a hosted demo (NPS_APP_READONLY): its n = 128 is above the visitors' n ≤ 64; "
                       f"the operator can allow it with {ENV}=1")
    return True, ""


def corpus_hash() -> str | None:
    """MNIST's content hash (the cache key's corpus part), or None when MNIST is not present here."""
    from app_support import resources
    if "mnist" not in resources.available_corpora():
        return None
    return resources.corpus("mnist", None).content_hash


def cold_embedding() -> str | None:
    """A phrase when the full model's SimCLR embedding of MNIST is not cached yet (adds minutes), else None."""
    from app_support import stages
    _, _, cfg, _ = next(step for step in A.plan(A.PRESETS["readme"]) if step[3] == "full")
    return stages.cold_embedding(cfg)


def runner(preset: A.AblationPreset, report: Any) -> tuple[dict, bytes]:
    """What a click runs on a cache miss (tests patch it with a stand-in)."""
    return A.run_preset(preset, report)


class StageBar:
    """``report(stage, fraction)`` for :func:`nps.cli.ablate.run`: an ``st.progress`` bar naming each stage."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.bar = st.progress(0.0, text=f"{title}: starting…")
        self.stages: list[str] = []

    def __call__(self, stage: str, fraction: float) -> bool:
        head = stage.split(": sampling pixel")[0]
        if not self.stages or self.stages[-1] != head:
            self.stages.append(head)
        self.bar.progress(min(max(fraction, 0.0), 1.0), text=f"{self.title}: {stage}")
        return not st.session_state.get("stop_requested", False)


def _show_table(preset: A.AblationPreset, table: dict, png: bytes, published: dict, cached: bool) -> None:
    from app_support.tables import to_csv, to_markdown
    st.markdown(f"**{preset.title}**: {'from the results cache' if cached else 'just run'} "
                f"(`{table.get('command')}`, nps {table.get('version')}, {table.get('created')})")
    rows = A.table_rows(table, published if preset.readme else None)
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption("n per row; IS as mean ± std over 10 splits, FID with its 95 % bootstrap interval, entropies in bits "
               "over 5×5 windows as mean ± std over the n samples. Columns marked README are docs/ablation.json, "
               "the published run.")
    research = A.research_rows(table)
    if research:
        st.markdown("Table 3: distribution and copying metrics, 95 % bootstrap intervals (⚠: below its minimum n)")
        st.dataframe(research, hide_index=True, width="stretch")
    if preset.readme:
        diff = A.differences(table, published)
        if not diff:
            st.success("Every figure matches the README's (docs/ablation.json) exactly.", icon=":material/check:")
        else:
            why = A.why_different(table, published)
            st.warning(f"{len(diff)} figure(s) differ from the README's: " + "; ".join(diff[:8])
                       + (" …" if len(diff) > 8 else "") + ". "
                       + ("Why: " + "; ".join(why) + "." if why else
                          "Same engine and package version, so this is unexpected: please report it."),
                       icon=":material/difference:")
    else:
        st.info(f"Quick version: n = {preset.n} on a {preset.subset}-image subset, not the README's n = 128 on "
                "300 images, so its figures are not the README's (IS is capped by the split size; FID grows as n "
                "falls). They equal its command line's above (and the simclr rows of `python -m nps ablate "
                "--quick`) for the same seed.", icon=":material/info:")
    if png:
        st.image(png, caption="Figure 2: the same references and RNG streams, left to right SSD, SSD + loc, "
                              "SSD + loc + SSL (subset), the full model on all images")
    name = f"nps-ablation-{preset.name}"
    dc = st.columns(2)
    dc[0].download_button("Download this table (.csv)", to_csv(rows), file_name=f"{name}.csv", mime="text/csv",
                          key=f"dl_ablpre_{preset.name}_csv", on_click="ignore", icon=":material/table:")
    dc[1].download_button("Download this table (.md)", to_markdown(rows), file_name=f"{name}.md",
                          mime="text/markdown", key=f"dl_ablpre_{preset.name}_md", on_click="ignore",
                          icon=":material/description:")


def render() -> None:
    """The preset section (an expander, open when a result is cached): estimate before the click, the quick
    alternative, stage-named progress, the table beside the README's."""
    published = A.load_published()
    readme, quick = A.PRESETS["readme"], A.PRESETS["quick"]
    allowed, why_not = paper_scale_allowed()
    chash = corpus_hash()
    hits = {p.name: A.peek(p, chash) for p in (readme, quick)} if chash else {}
    open_ = bool(st.session_state.get("ablpre_shown") or any(hits.values()))
    with st.expander(f"{readme.title}: the paper's ablation at n = {readme.n}, as `python -m nps ablate` runs it",
                     expanded=open_, icon=":material/table_chart:"):
        _render(published, readme, quick, allowed, why_not, chash, hits)


def _render(published: dict, readme: A.AblationPreset, quick: A.AblationPreset, allowed: bool, why_not: str,
            chash: str | None, hits: dict) -> None:
    from app_support.ui import request_stop, show_error
    from nps.engine.sampler import Stopped
    st.markdown("The same command line as the CLI, run by the CLI's own code; the same seed gives the same "
                "figures:")
    st.code(readme.command(), language="bash")
    if chash is None:
        st.info("MNIST is not present on this server, so the presets cannot run here; the README's figures are "
                "below, and the command above makes them where MNIST is.")
    cold = cold_embedding() if chash and not all(hits.values()) else None
    cols = st.columns(2)
    clicked = None
    for col, preset in zip(cols, (readme, quick), strict=True):
        with col:
            can = chash is not None and (allowed or not preset.readme)
            if hits.get(preset.name):
                st.caption(f"n = {preset.n} per row, {preset.subset}-image subset: in the results cache, shown "
                           "at once.")
            else:
                secs = A.estimate_seconds(preset, cold_embedding=cold is not None)
                quick_secs = A.estimate_seconds(quick, cold_embedding=cold is not None)
                st.caption(f"n = {preset.n} per row, {preset.subset}-image subset. Estimate: "
                           f"{format_seconds(secs)} (nps.lab.cost, calibrated on this 2-core machine"
                           + (f"; includes {cold}" if cold else "") + ")."
                           + (f" Cheaper: the quick version, {format_seconds(quick_secs)}, not the README's n."
                              if preset.readme else ""))
            if preset.readme and not allowed:
                st.caption(f":orange[Not offered here: {why_not}. The README's figures are shown below; the "
                           "command above makes them.]")
            if st.button(preset.title, key=f"btn_ablpre_{preset.name}", disabled=not can,
                         type="primary" if preset.readme else "secondary",
                         icon=":material/table_chart:" if preset.readme else ":material/bolt:"):
                clicked = preset
            st.code(preset.command(), language="bash")
    shown = st.session_state.get("ablpre_shown")
    if clicked is not None and chash is not None:
        from app_support.sidebar import read_only
        from app_support.single_flight import single_flight
        was_cached = hits.get(clicked.name) is not None
        st.session_state["stop_requested"] = False
        with st.container(border=True):
            bar = StageBar(clicked.title)
            st.button("Stop", key="btn_ablpre_stop", on_click=request_stop, icon=":material/stop:")
            try:  # identical clicks of several visitors share one run (its stages replayed to each)
                (table, png), _ = single_flight(
                    f"ablation-preset|{A.cache_key(clicked, chash)}",
                    lambda relay: A.cached_run(clicked, chash, lambda s, f: relay((s, f)), runner=runner),
                    progress=lambda info: bar(*info))
            except Stopped:
                st.warning("Stopped; nothing was stored. Run it again to start over.")
                table = None
            except Exception as exc:
                show_error(exc, f"running {clicked.title.lower()}")
                table = None
            bar.bar.empty()
        if table is not None:
            if read_only():
                st.caption("Read-only server: this result is not stored, so the next visit runs it again.")
            st.session_state["ablpre_shown"] = clicked.name
            _show_table(clicked, table, png, published, cached=was_cached)
            return
    for name in ([shown] if shown else []) + ["readme", "quick"]:
        if hits.get(name):
            _show_table(A.PRESETS[name], *hits[name], published, cached=True)
            return
    st.markdown("**The README's figures** (docs/ablation.json, the run docs/ablation.md renders; "
                f"`{published.get('command')}`, nps {published.get('version')}, {published.get('created')}):")
    st.dataframe(A.table_rows(published), hide_index=True, width="stretch")
    st.dataframe(A.research_rows(published), hide_index=True, width="stretch")
