"""Presentation mode: large pictures for a projector (a sidebar toggle, ``sb_present``).

On, it scales the whole page's type up (Streamlit sizes everything in rem), widens the
main column to the screen, doubles sample grids and the traced canvas, enlarges the
replay frame, and hides secondary panels (command lines, downloads, the upload box,
the honesty panel), so a class at the back of a room sees the pictures.
"""

from __future__ import annotations

import streamlit as st

SCALE = 2  # grids and canvases grow by this factor

_STYLE = """<style>
html { font-size: 125%; }
[data-testid="stMainBlockContainer"] { max-width: 100%; padding-left: 1.5rem; padding-right: 1.5rem; }
</style>"""


def presenting() -> bool:
    """Whether the visitor switched presentation mode on (sidebar)."""
    return bool(st.session_state.get("sb_present", False))


def apply() -> None:
    """Called by the entry script on every run: the larger type and full width when presenting."""
    if presenting():
        st.html(_STYLE)


def show_secondary() -> bool:
    """Whether secondary panels (CLI, downloads, uploads, honesty) are drawn: not while presenting."""
    return not presenting()
