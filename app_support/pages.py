"""The one table of the app's pages: file, address, title, icon and widget-key prefix.

Everything that needs to know the pages reads :data:`PAGES`: the entry file
(``streamlit_app.py`` builds its ``st.navigation`` from it), the persistence rule
(:data:`PERSIST_PREFIXES`, :func:`app_support.ui.persist_page_state`), the lessons and links that
open a page with values set (:func:`hand_over`), and the tests (``tests/test_pages.py``).

Two rules a new page must keep, checked by those tests:

* its ``url_path`` is the one Streamlit infers from its file name (``pages/2_generate.py`` ->
  ``generate``), so a first request for ``/generate`` reruns through the entry script to the
  same page (:mod:`app_support.boot`);
* its widget keys start with its ``prefix``, so they keep their values when the visitor
  switches pages, and another page sets them only through :func:`hand_over`.

No streamlit import: the table is read by tests and tools alone.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    """One page of the lab.

    Attributes:
        key: the page's name in code (``"generate"``); also its ``url_path``.
        file: the script, relative to the repository root.
        title, icon: what the navigation shows (``icon``: a ``:material/...:`` name).
        prefix: the start of every widget key of the page (``"gen_"``), or "" for a page whose
            widgets keep nothing across page switches.
        default: the page ``/`` opens.
    """

    key: str
    file: str
    title: str
    icon: str
    prefix: str = ""
    default: bool = False

    @property
    def url_path(self) -> str:
        return self.key


PAGES: tuple[PageSpec, ...] = (
    PageSpec("welcome", "pages/0_welcome.py", "Welcome", ":material/school:", default=True),
    PageSpec("corpus", "pages/1_corpus.py", "Corpus & encoder", ":material/dataset:", "cor_"),
    PageSpec("generate", "pages/2_generate.py", "Generate", ":material/brush:", "gen_"),
    PageSpec("ablations", "pages/3_ablations.py", "Ablations", ":material/view_column:", "abl_"),
    PageSpec("analysis", "pages/4_analysis.py", "Analysis & tracing", ":material/troubleshoot:", "ana_"),
    PageSpec("complete", "pages/5_complete.py", "Complete", ":material/auto_fix_high:", "cmp_"),
    PageSpec("explainer", "pages/6_explainer.py", "Step explainer", ":material/animation:", "exp_"),
)
PAGE: dict[str, PageSpec] = {p.key: p for p in PAGES}
#: The shared sidebar's widget-key prefix (the sidebar is on every page, so it is no page's).
SIDEBAR_PREFIX = "sb_"
#: Widget keys with these prefixes keep their values when the visitor switches pages.
PERSIST_PREFIXES: tuple[str, ...] = (SIDEBAR_PREFIX, *(p.prefix for p in PAGES if p.prefix))


def inferred_url_path(file: str) -> str:
    """The ``url_path`` Streamlit infers from a page file name: ``pages/2_generate.py`` -> ``generate``."""
    stem = file.rsplit("/", 1)[-1].removesuffix(".py")
    return re.sub(r"^[0-9]+[_ -]*", "", stem)


def widget_key(page: str, name: str) -> str:
    """The session key of widget ``name`` on ``page`` (``widget_key("generate", "eps")`` is ``"gen_eps"``).

    Raises:
        KeyError: ``page`` is not in :data:`PAGES` or keeps no widget state.
    """
    prefix = PAGE[page].prefix
    if not prefix:
        raise KeyError(f"page '{page}' has no widget-key prefix")
    return prefix + name


def hand_over(state: MutableMapping[str, object], page: str, **values: object) -> None:
    """Set widgets of another page before going there (a lesson, a link, "open in Analysis").

    The one way a page writes another page's session keys: ``hand_over(st.session_state,
    "generate", eps=0.1, autorun=True)`` sets ``gen_eps`` and ``gen_autorun``.
    """
    for name, value in values.items():
        state[widget_key(page, name)] = value
