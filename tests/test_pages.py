"""The one page table (app_support.pages) is what the entry file, the persistence rule and pages/ hold."""

from __future__ import annotations

import ast
from pathlib import Path

from app_support import pages as table

ROOT = Path(__file__).resolve().parents[1]


def test_every_page_file_is_in_the_table_and_every_entry_is_a_file():
    on_disk = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))
    assert sorted(p.file for p in table.PAGES) == on_disk
    assert len({p.key for p in table.PAGES}) == len(table.PAGES)
    assert sum(p.default for p in table.PAGES) == 1


def test_url_paths_are_the_ones_streamlit_infers_from_the_file_names():
    # app_support.boot's rerun through the entry script relies on this (a first request for /generate)
    for p in table.PAGES:
        assert p.url_path == table.inferred_url_path(p.file), p


def test_the_entry_file_builds_its_navigation_from_the_table_alone():
    tree = ast.parse((ROOT / "streamlit_app.py").read_text())
    pages_literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                      and n.value.startswith("pages/")]
    assert pages_literals == [], "streamlit_app.py names a page file; add it to app_support.pages.PAGES instead"
    imports = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("app_support.pages", "PAGES") in imports


def test_persistence_keeps_exactly_the_sidebar_and_the_page_prefixes():
    from app_support import ui
    prefixes = [p.prefix for p in table.PAGES if p.prefix]
    assert (table.SIDEBAR_PREFIX, *prefixes) == ui.PERSIST_PREFIXES
    assert len(set(prefixes)) == len(prefixes)
    for a in ui.PERSIST_PREFIXES:  # no prefix swallows another page's keys
        assert not any(b != a and b.startswith(a) for b in ui.PERSIST_PREFIXES)


def test_hand_over_sets_the_target_pages_keys_and_refuses_unknown_pages():
    import pytest
    state: dict = {}
    table.hand_over(state, "generate", eps=0.1, autorun=True)
    assert state == {"gen_eps": 0.1, "gen_autorun": True}
    with pytest.raises(KeyError):
        table.hand_over(state, "nowhere", x=1)
    with pytest.raises(KeyError):
        table.widget_key("welcome", "x")  # the welcome page keeps no widget state


def test_no_page_writes_another_pages_keys_by_hand():
    # pages set another page's widgets only through hand_over (the welcome page's lessons do)
    for p in table.PAGES:
        src = (ROOT / p.file).read_text()
        for other in table.PAGES:
            if other is p or not other.prefix:
                continue
            for pattern in (f'ss["{other.prefix}', f'ss[f"{other.prefix}', f'session_state["{other.prefix}',
                            f'session_state[f"{other.prefix}'):
                assert pattern not in src, f"{p.file} writes {other.key}'s keys by hand ({pattern}); use hand_over"
