"""NPS lab: the Streamlit app (``streamlit run streamlit_app.py``).

The entry script defines the navigation over ``pages/`` and draws the shared
sidebar (corpus, subset, encoder, seed), which therefore persists across pages and
is mirrored in the URL.  Pages are thin: every computation is a call into ``nps``.
Nothing heavy is imported or loaded here, so the first screen appears at once.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")  # a shared demo host: keep BLAS from grabbing every core

from pathlib import Path

import streamlit as st

from app_support import present
from app_support.pages import PAGES as PAGE_TABLE
from app_support.sidebar import sidebar
from app_support.ui import close_sidebar_on_phone, persist_page_state, remember_link

# A bundled PNG, served by this server: a ":material/...:" favicon is fetched from an external font
# host on every page load, which an offline classroom cannot reach (page icons in the menu are fine:
# Streamlit ships that font).
FAVICON = Path(__file__).resolve().parent / "app_support" / "favicon.png"
st.set_page_config(page_title="NPS lab", page_icon=str(FAVICON), layout="wide", initial_sidebar_state="auto")


def _import_engine() -> None:
    # Only third-party leaves, which never import our modules: a page importing nps.* at the same
    # time then simply waits on torch's import lock instead of risking a cross-thread import cycle.
    import plotly.graph_objects  # noqa: F401, I001  # first: Welcome's preset grid is a plotly figure
    import faiss  # noqa: F401
    import torch  # noqa: F401


@st.cache_resource(show_spinner=False)
def _warm_up() -> bool:
    """Once per server: import torch and faiss in the background (about 3-4 s on 2 cores).

    The first screen needs none of them, so it still appears at once; by the time a
    visitor presses Generate the imports are done.
    """
    import threading
    threading.Thread(target=_import_engine, name="nps-warm-up", daemon=True).start()
    return True

@st.cache_resource(show_spinner=False)
def _warm_corpus(name: str, subset: int | None) -> bool:
    """Once per server and sidebar corpus: load it in the background while the visitor reads the page.

    Loading MNIST takes 2-3 s on 2 busy cores; a lesson or a Generate click needs it
    first.  The loader module is imported here, in the script thread, so the thread
    imports nothing of ours; a failure is left to the page that needs the corpus (it
    shows the one-line error).
    """
    import logging
    import threading

    import app_support.limits  # noqa: F401
    import nps.corpora  # noqa: F401
    import nps.encoders  # noqa: F401
    from app_support import resources

    def load() -> None:
        try:
            resources.corpus(name, subset)
        except Exception as exc:  # the page that needs it reports it
            logging.getLogger("nps.app").info("background load of corpus %s failed: %s", name, exc)

    threading.Thread(target=load, name="nps-warm-corpus", daemon=True).start()
    return True


PAGES = [st.Page(p.file, title=p.title, icon=p.icon, url_path=p.url_path, default=p.default) for p in PAGE_TABLE]
page = st.navigation(PAGES)
_warm_up()
persist_page_state()
remember_link(page.url_path)  # before the sidebar rewrites the address bar
st.session_state["settings"] = sidebar()
_warm_corpus(st.session_state["settings"]["corpus"], st.session_state["settings"]["subset"])
present.apply()  # presentation mode: larger type and full width
close_sidebar_on_phone(page.url_path)
page.run()
