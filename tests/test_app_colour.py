"""Colour in the app: a folder the operator offers ($NPS_APP_FOLDERS), its size and colour chosen in the sidebar.

The helpers of :mod:`app_support.corpus_choices` are pinned directly; then the real app
(AppTest) opens a colour folder the test writes from a link, shows it on the Corpus page
without the server's path, and generates from it: the page hands the sampler the
canonical ``folder:PATH?size=16&colour=rgb`` and the result is RGB with exact provenance.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from app_support import corpus_choices
from nps.errors import NPSError

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")


def write_colour_folder(root: Path) -> Path:
    from PIL import Image
    yy, xx = np.mgrid[:20, :20]
    for c, base in (("warm", (210, 60, 40)), ("cool", (40, 90, 220))):
        (root / c).mkdir(parents=True)
        for i in range(6):
            a = np.stack([np.clip(b * (0.55 + 0.45 * np.sin((xx + 2 * i) / 3.0 + ch) * np.cos(yy / 4.0)), 0, 255)
                          for ch, b in enumerate(base)], -1).astype(np.uint8)
            Image.fromarray(a, "RGB").save(root / c / f"{i}.png")
    return root


def test_offered_folders_come_only_from_the_operator(tmp_path: Path) -> None:
    import os
    (tmp_path / "a").mkdir()
    listed = os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "nope"), f"{tmp_path / 'a'}?size=8", ""])
    assert corpus_choices.offered_folders(listed) == [f"folder:{tmp_path / 'a'}"]
    names = corpus_choices.offered([f"folder:{tmp_path / 'a'}"])
    assert len(names) == len(corpus_choices.SIZES) * len(corpus_choices.COLOURS) == len(set(names))
    assert f"folder:{tmp_path / 'a'}" in names and f"folder:{tmp_path / 'a'}?size=32&colour=rgb" in names
    assert corpus_choices.label(f"folder:{tmp_path / 'a'}?size=32&colour=rgb") == "folder: a, 32×32 rgb"
    assert corpus_choices.split("digits") is None and corpus_choices.split("folder:/x?size=16") == ("folder:/x", 16,
                                                                                                     "gray")
    assert corpus_choices.from_query("64", "rgb") == (64, "rgb", [])
    size, colour, notes = corpus_choices.from_query("300", "blue")
    assert (size, colour) == (28, "gray") and len(notes) == 2


def test_a_folder_not_offered_is_refused(tmp_path: Path) -> None:
    from app_support.limits import check_app_choices
    offered = corpus_choices.offered([f"folder:{tmp_path}"])
    check_app_choices(f"folder:{tmp_path}?size=16&colour=rgb", None, None, offered, [])
    for name in (f"folder:{tmp_path}?size=17", "folder:/etc?colour=rgb", f"folder:{tmp_path}?colour=rgb&size=16"):
        with pytest.raises(NPSError, match="is not one the app offers"):
            check_app_choices(name, None, None, offered, [])


@pytest.fixture
def colour_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # yields (AppTest, folder)
    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest
    init = PagesManager.__init__

    def v2_init(self, *args, **kwargs) -> None:  # as tests/test_app.py: multipage v2
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", v2_init)
    root = write_colour_folder(tmp_path / "imgs")
    monkeypatch.setenv(corpus_choices.ENV, str(root))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(corpus=f"folder:{root}", size="16", colour="rgb", seed="0")
    import logging
    before = list(logging.getLogger("nps").handlers)
    yield at, root
    # AppTest counts as a running server, so app_support.resources installs its server log on the
    # nps logger; left there it writes WARNING lines into later CLI tests' stderr (their one-line checks).
    logging.getLogger("nps").handlers[:] = before


def test_colour_folder_in_the_app(colour_app, monkeypatch: pytest.MonkeyPatch) -> None:
    import nps.engine.sampler
    from nps.provenance import check_provenance
    at, root = colour_app
    calls = []
    real = nps.engine.sampler.generate

    def spy(config, corpus=None, **kw):
        out = real(config, corpus, **kw)
        calls.append((config, corpus, out))
        return out
    monkeypatch.setattr(nps.engine.sampler, "generate", spy)

    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.selectbox(key="sb_corpus").value == f"folder:{root}"
    assert at.sidebar.selectbox(key="sb_size").value == 16 and at.sidebar.radio(key="sb_colour").value == "rgb"
    name = f"folder:{root}?size=16&colour=rgb"
    assert at.session_state["settings"]["corpus"] == name

    at.switch_page("pages/1_corpus.py").run()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    assert "folder: imgs, 16×16 rgb" in [s.value for s in at.subheader]
    assert {m.label: m.value for m in at.metric}["image shape"] == "16×16×3"
    texts = "\n".join(str(e.value) for kind in ("markdown", "caption", "subheader", "info") for e in at.get(kind))
    assert not re.search(r"(?<![\w.:/])/(usr|work|home|tmp|root|opt|var)/", texts), texts

    at.switch_page("pages/2_generate.py").run()
    at.slider(key="gen_n").set_value(2)
    at.number_input(key="gen_k").set_value(4).run()  # the folder has 10 train images
    at.button(key="btn_generate").click().run()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    config, corpus, record = calls[-1]
    assert config.corpus == name and corpus.image_shape == (16, 16, 3)
    assert record.images.shape == (2, 16, 16, 3) and check_provenance(record, corpus.train) == 0
