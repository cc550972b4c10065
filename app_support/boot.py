"""Make sure every page runs under the entry script, whatever URL a visitor opens first.

The issue asks for the pages in a folder called ``pages/``.  Streamlit treats that
folder name specially (multipage "v1" mode): until the first ``st.navigation`` call
of the server process, a request for ``/corpus`` runs ``pages/1_corpus.py`` *without*
the entry script, so the shared sidebar would be missing.  :func:`entry_guard` at the
top of each page detects that mode, leaves it for good (as ``st.navigation`` does)
and reruns; the rerun goes through ``streamlit_app.py`` to the same page, because
our ``url_path`` values equal the ones Streamlit infers from the file names.
"""

from __future__ import annotations

import streamlit as st


def _in_v1_mode() -> bool:
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a future Streamlit without the v1 mode
        return False
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        return True
    return False


def entry_guard() -> None:
    """Call first in every page: rerun through the entry script if it was skipped."""
    if _in_v1_mode():
        st.rerun()
    if "settings" not in st.session_state:
        st.error("Start the lab with `streamlit run streamlit_app.py` (the pages need its sidebar).")
        st.stop()
