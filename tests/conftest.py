"""Shared fixtures.

* Every test session gets its own cache folder ($NPS_CACHE_DIR), so tests never
  read or write the project's cache/ and start from a known state.  Tests that
  need an empty cache of their own use the ``cache_dir`` fixture.
* Small corpora (``digits``) are loaded once per session.
"""

from __future__ import annotations

import os

# Four engineers share two cores: keep BLAS/OpenMP to one thread unless told otherwise.
# Set before numpy/torch/faiss are imported by any test module.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys
from pathlib import Path

import numpy as np
import pytest

_REAL_MAIN = sys.modules.get("__main__")


@pytest.fixture(autouse=True)
def _restore_main_module():
    """Put pytest's own ``__main__`` and the ``nps`` logger's handlers back after every test.

    Streamlit's script runner (AppTest included) installs each page as a fake
    ``sys.modules["__main__"]`` and leaves it there.  A ``spawn`` child started later
    in the same session then re-ran that page as its main module (in bare mode, with
    torch), and sometimes aborted at exit ("terminate called without an active
    exception"): the CI failure of test_two_concurrent_builders... on 2026-12-01.
    """
    import logging
    nps_log = logging.getLogger("nps")
    handlers, level = list(nps_log.handlers), nps_log.level
    yield
    if _REAL_MAIN is not None and sys.modules.get("__main__") is not _REAL_MAIN:
        sys.modules["__main__"] = _REAL_MAIN
    # The app attaches its log handler to "nps" when it runs (AppTest counts); a later CLI
    # test would then see the app's WARNING lines in its stderr.
    nps_log.handlers[:], nps_log.level = handlers, level


@pytest.fixture(scope="session", autouse=True)
def _session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point NPS_CACHE_DIR at a fresh folder for the whole session (restored afterwards)."""
    root = tmp_path_factory.mktemp("nps-cache")
    old = os.environ.get("NPS_CACHE_DIR")
    os.environ["NPS_CACHE_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("NPS_CACHE_DIR", None)
    else:
        os.environ["NPS_CACHE_DIR"] = old


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder for one test (NPS_CACHE_DIR points at it)."""
    root = tmp_path / "cache"
    root.mkdir()
    monkeypatch.setenv("NPS_CACHE_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits: 1442 train / 355 test images, uint8, labels 0..9."""
    from nps.corpora import load_corpus
    return load_corpus("digits")


@pytest.fixture(scope="session")
def digits_small():
    """A 200-image class-stratified subset of ``digits`` (about 20 per class)."""
    from nps.corpora import load_corpus
    return load_corpus("digits", subset=200)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)

