"""The constraint toggles and plug-in parameter widgets, generated from the registry (:mod:`nps.constraints`).

Every page that lets a visitor switch constraints (Generate, Ablations, Complete) draws
them here, so a newly registered constraint gets its toggle (key ``{prefix}_{name}``,
label ``title (name)``, its help) and the widgets of its fields (from their ``app`` range
in :data:`nps.config.FIELDS`) on every page without a page edit.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from nps.config import FIELDS, plugin_fields
from nps.constraints import names, registered


def toggle_keys(prefix: str) -> dict[str, str]:
    """{constraint name: its toggle's session key} on the page with widget ``prefix``."""
    return {n: f"{prefix}_{n}" for n in names()}


def set_constraints(prefix: str, constraints: Any) -> None:
    """Set the page's toggles to exactly ``constraints`` (a lesson, a link)."""
    chosen = set(constraints)
    for n in names():
        st.session_state[f"{prefix}_{n}"] = n in chosen


def default_toggles(prefix: str, on: Any = None) -> None:
    """Give every toggle its starting value once: ``on`` (a constraint set) or each one's ``default_on``."""
    for c in registered():
        key = f"{prefix}_{c.name}"
        if key not in st.session_state:
            st.session_state[key] = c.name in on if on is not None else c.default_on


def enabled(prefix: str) -> tuple[str, ...]:
    """The constraints switched on, in canonical order."""
    return tuple(n for n in names() if st.session_state.get(f"{prefix}_{n}"))


def owner_off(prefix: str, field: str) -> bool:
    """Whether the constraint owning ``field`` is switched off on this page (its widgets are then disabled)."""
    owner = FIELDS[field].owner
    return owner is not None and not st.session_state.get(f"{prefix}_{owner}", False)


def constraint_toggles(prefix: str, page: str = "generate", widget: str = "toggle") -> tuple[str, ...]:
    """One toggle (or checkbox) per registered constraint, side by side; returns the enabled set.

    Args:
        page: "complete" uses each constraint's ``help_complete`` (what it means for a fill).
        widget: "toggle" or "checkbox" (the Ablations columns).
    """
    default_toggles(prefix)
    cons = registered()
    if widget == "checkbox":
        for c in cons:
            st.checkbox(c.name, key=f"{prefix}_{c.name}", help=f"{c.title}: {c.help}")
        return enabled(prefix)
    for col, c in zip(st.columns(len(cons)), cons):
        col.toggle(f"{c.title} ({c.name})", key=f"{prefix}_{c.name}",
                   help=(c.help_complete or c.help) if page == "complete" else c.help)
    return enabled(prefix)


def plugin_params(prefix: str) -> dict[str, Any]:
    """Widgets for the fields of plug-in constraints (their ``app`` ranges); returns {field: value}.

    Built-in fields have their hand-laid widgets on the pages; a plug-in's appear here, so
    its parameters reach the config without a page edit.
    """
    out: dict[str, Any] = {}
    fields = [f for f in plugin_fields() if f.app is not None and f.kind in ("int", "float")]
    if not fields:
        return out
    cols = st.columns(min(4, len(fields)))
    for i, f in enumerate(fields):
        key = f"{prefix}_{f.name}"
        lo, hi = f.app
        cast = int if f.kind == "int" else float
        if key not in st.session_state:
            st.session_state[key] = cast(f.default if f.default is not None else lo)
        st.session_state[key] = cast(min(max(st.session_state[key], lo), hi))
        cols[i % len(cols)].number_input(f"{f.name.replace('_', ' ')} ({f.owner})", cast(lo), cast(hi), key=key,
                                         help=f.help.replace(" (default: %(default)s)", ""),
                                         disabled=owner_off(prefix, f.name))
        out[f.name] = cast(st.session_state[key])
    return out
