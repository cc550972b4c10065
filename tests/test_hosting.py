"""Hosting the lab for strangers: what a visitor can make the server compute and store.

Each test backs a claim of the README's "Hosting it as a demo" section:

* uploaded records are held to the controls' limits before anything is built
  (``test_upload_*``, ``test_builders_refuse_*``);
* ``cache/`` stays under its quota under repeated uploads (``test_quota_holds_*``);
* with ``NPS_APP_READONLY=1`` visitors write nothing to ``cache/`` (``test_read_only_*``);
* identical concurrent runs share one computation (``test_single_flight_*``,
  ``test_six_identical_generates_*``);
* library warnings reach the server log (``test_server_log_*``).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from nps.config import GenerationConfig
from nps.errors import NPSError

SMALL = {"corpus": "digits", "n": 2, "window": 3, "seed_size": 2, "radius": 1, "k": 8, "encoder": "pca",
         "batch_size": 2}


@pytest.fixture
def fresh_resources():
    """The app's resource layer with empty in-memory caches (so builds really happen)."""
    import streamlit as st

    from app_support import resources
    st.cache_resource.clear()
    st.cache_data.clear()
    yield resources
    st.cache_resource.clear()
    st.cache_data.clear()


def _record(built_on: int | None = None, **config_changes):
    """A real digits record made on subset ``built_on``, its config then edited by ``config_changes``."""
    from nps.corpora import load_corpus
    from nps.engine.sampler import generate
    rec = generate(GenerationConfig(subset=built_on, **SMALL), load_corpus("digits", built_on))
    if config_changes:
        rec = dataclasses.replace(rec, config={**rec.config, **config_changes})
    return rec


def _upload_bytes(rec) -> bytes:
    from app_support.state import record_npz_bytes
    return record_npz_bytes(rec)


def _files(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in root.iterdir()}


# --------------------------------------------------------------------------- upload validation
BAD_CONFIGS = [
    ({"subset": 17}, "subset 17 is not one of the app's subset sizes"),
    ({"subset": "200"}, "subset '200'"),
    ({"subset": True}, "subset True"),
    ({"subset": 200.0}, None),  # JSON 200.0 == 200 is a float: refused (no fractional subsets)
    ({"encoder": "../../evil"}, "encoder '../../evil' is not one the app offers"),
    ({"encoder": 3}, "encoder 3"),
    ({"corpus": "folder:/etc"}, "corpus 'folder:/etc' is not one the app offers"),
    ({"corpus": "cifar10"}, "corpus 'cifar10'"),
    ({"corpus": None}, "corpus None"),
    ({"k": 100_000}, "k = 100000 is outside the app's range 1..512 (it takes an integer)"),
    ({"k": "8"}, "k = '8'"),
    ({"k": 8.5}, "k = 8.5"),
    ({"window": 99}, "window = 99"),
    ({"n": 10**9}, "n = 1000000000"),
    ({"seed": -1}, "seed = -1"),
    ({"sigma": float("nan")}, "sigma = nan"),
    ({"eps": 1e30}, "eps = 1e+30"),
    ({"ssl_eps": -1.0}, "ssl_eps = -1.0"),
    ({"radius": None}, "radius is null"),
    ({"constraints": "ssd"}, "constraints 'ssd'"),
    ({"constraints": ["ssd", "rm -rf"]}, "constraints"),
    ({"ssl_mode": "both"}, "ssl mode 'both'"),
    ({"device": "cuda"}, "device 'cuda'"),
    ({"reference": "0"}, "reference = '0'"),
    ({"label": 1.5}, "label = 1.5"),
    ({"max_ssd": "big"}, "max_ssd = 'big'"),
    ({"include_reference": "yes"}, "include_reference = 'yes'"),
]


@pytest.mark.parametrize(("changes", "needle"), BAD_CONFIGS)
def test_upload_config_outside_the_controls_is_one_line(changes: dict, needle: str | None) -> None:
    from app_support.limits import check_app_config
    cfg = {**GenerationConfig(**SMALL).to_dict(), **changes}
    with pytest.raises(NPSError) as exc:
        check_app_config(cfg, ["mnist", "digits"], ["pca", "pixels", "simclr"])
    msg = str(exc.value)
    assert "\n" not in msg
    if needle:
        assert needle in msg, msg


def test_upload_config_within_the_controls_passes_and_drops_data_root() -> None:
    from app_support.limits import check_app_config
    from app_support.state import SUBSET_CHOICES
    for subset in SUBSET_CHOICES:
        cfg = {**GenerationConfig(subset=subset, **SMALL).to_dict(), "data_root": "/somewhere/else"}
        gen = check_app_config(cfg, ["digits"], ["pca"])
        assert gen.subset == subset and gen.data_root is None
    auto = {**GenerationConfig(**SMALL).to_dict(), "encoder": "auto"}  # a hand-made config: what it would run
    assert check_app_config(auto, ["digits"], ["pca"]).encoder == "pca"
    with pytest.raises(NPSError, match="not a JSON object"):
        check_app_config(["not", "a", "dict"], ["digits"], ["pca"])  # type: ignore[arg-type]


def test_upload_is_refused_before_anything_is_built(fresh_resources, cache_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import nps.corpora
    data = _upload_bytes(_record(17))  # the attack: a real record on a subset no control offers
    good = _upload_bytes(_record(200))
    before = _files(cache_dir)

    def forbidden(*a, **k):
        raise AssertionError("an out-of-bounds upload must not load a corpus")

    monkeypatch.setattr(nps.corpora, "load_corpus", forbidden)
    with pytest.raises(NPSError, match="cannot be analysed here: subset 17"):
        fresh_resources.uploaded_record(data)
    assert _files(cache_dir) == before
    monkeypatch.undo()
    assert fresh_resources.uploaded_record(good).config["subset"] == 200


@pytest.mark.parametrize(("call", "needle"), [
    (lambda r: r.corpus("digits", 17), "subset 17"),
    (lambda r: r.corpus("folder:/etc", None), "corpus 'folder:/etc'"),
    (lambda r: r.encoder("nope", "digits", None), "encoder 'nope'"),
    (lambda r: r.pools(GenerationConfig(subset=33, **SMALL)), "subset 33"),
    (lambda r: r.pools(GenerationConfig(**{**SMALL, "k": 5000})), "k = 5000"),
    (lambda r: r.pools(GenerationConfig(subset=200, **{**SMALL, "k": 400})), "larger than the corpus allows"),
])
def test_builders_refuse_what_the_controls_do_not_offer(fresh_resources, cache_dir: Path, call,
                                                        needle: str) -> None:
    """Defence in depth: every resource that builds checks its corpus, subset and encoder itself."""
    with pytest.raises(NPSError, match=needle):
        call(fresh_resources)
    assert _files(cache_dir) == {}


def test_analysis_page_upload_shows_one_error_and_builds_nothing(cache_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The real page under AppTest, with the file uploader handing it a crafted record."""
    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    init = PagesManager.__init__

    def v2_init(self, *args, **kwargs):  # as in tests/test_app.py
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", v2_init)
    payload = {"data": _upload_bytes(_record(17, encoder="pixels"))}
    good = _upload_bytes(_record(200))
    npz_before = {p.name for p in cache_dir.glob("*.npz")}

    class Upload:
        name = "crafted.npz"

        @property
        def size(self) -> int:
            return len(payload["data"])

        def getvalue(self) -> bytes:
            return payload["data"]

    real = st.file_uploader
    monkeypatch.setattr(st, "file_uploader",
                        lambda label, *a, **k: Upload() if k.get("key") == "upload_record" else real(label, *a, **k))
    st.cache_data.clear()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "streamlit_app.py"), default_timeout=120)
    at.query_params["corpus"] = "digits"
    at.run()
    at.switch_page("pages/4_analysis.py").run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "subset 17 is not one of the app's subset sizes" in errors[0], errors
    assert "\n" not in errors[0]
    assert not at.session_state["records"] if "records" in at.session_state else True
    assert {p.name for p in cache_dir.glob("*.npz")} == npz_before
    payload["data"] = good  # a record within the controls is opened
    at.run()
    assert not at.error, [e.value for e in at.error]
    assert list(at.session_state["records"]) == ["upload: crafted.npz"]


# --------------------------------------------------------------------------- quota under repeated uploads
def _analyse(resources, rec) -> None:
    """What opening a record and using the Analysis page builds: the funnel's pools, the memorisation check."""
    from app_support.state import record_id
    cfg = GenerationConfig.from_dict(rec.config)
    resources.pools(cfg)
    resources.memorisation(record_id(rec), cfg.corpus, cfg.subset, cfg.encoder, rec)


def test_quota_holds_under_repeated_uploads(fresh_resources, cache_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from nps.cache_quota import quota_bytes, usage
    quota_mb = 0.3  # digits: about 0.65 MB for all four subsets' PCA fits and embedding tables
    monkeypatch.setenv("NPS_CACHE_QUOTA_MB", str(quota_mb))
    built = set()
    for _ in range(2):
        for subset in (200, 500, 1000, None):
            rec = fresh_resources.uploaded_record(_upload_bytes(_record(subset)))
            _analyse(fresh_resources, rec)
            built |= {p.name for p in cache_dir.glob("*.npz")}
            assert usage(cache_dir) <= quota_bytes(), f"{usage(cache_dir)} bytes after subset {subset}"
            fresh_resources.st.cache_resource.clear()  # a new server process: everything from disk or rebuilt
    assert len(built) > len(list(cache_dir.glob("*.npz")))  # entries were really built, then evicted
    with pytest.raises(NPSError):  # and out-of-bounds uploads add nothing at all
        fresh_resources.uploaded_record(_upload_bytes(_record(200, subset=201)))


def test_read_only_visitors_write_nothing_to_the_cache(fresh_resources, cache_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (cache_dir / "README.md").write_text("shipped\n")
    before = _files(cache_dir)
    monkeypatch.setenv("NPS_APP_READONLY", "1")
    for subset in (200, None):
        rec = fresh_resources.uploaded_record(_upload_bytes(_record(subset)))
        _analyse(fresh_resources, rec)
        cfg = GenerationConfig(subset=subset, **{**SMALL, "seed": 5})
        got, _, cached = fresh_resources.generate(cfg)  # a visitor's own run: kept in memory only
        assert len(got) == 2 and not cached
    assert _files(cache_dir) == before


# --------------------------------------------------------------------------- single flight
class _Info:
    step = 1


def _run_threads(n: int, target) -> list:
    out: list = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = ("ok", target(i))
        except Exception as exc:  # collected for the assertions
            out[i] = ("error", exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a caller never returned (deadlock)"
    return out


def test_single_flight_computes_once_for_concurrent_identical_keys(fresh_resources) -> None:
    calls = []

    def compute(relay):
        calls.append(threading.get_ident())
        relay(_Info())
        time.sleep(0.5)
        return object()

    out = _run_threads(6, lambda i: fresh_resources.single_flight("same", compute, lambda info: True))
    assert len(calls) == 1
    results = {id(r[1][0]) for r in out}
    assert len(results) == 1 and sorted(r[1][1] for r in out) == [False] + [True] * 5


def test_single_flight_errors_reach_every_waiter(fresh_resources) -> None:
    calls = []

    def compute(relay):
        calls.append(1)
        time.sleep(0.4)
        raise NPSError("k = 9 is larger than the corpus allows")

    out = _run_threads(6, lambda i: fresh_resources.single_flight("bad", compute))
    assert len(calls) == 1
    assert all(kind == "error" and "larger than the corpus" in str(exc) for kind, exc in out)


def test_single_flight_stop_of_a_waiter_or_the_leader_never_deadlocks(fresh_resources) -> None:
    from nps.engine.sampler import Stopped
    calls = []
    started = threading.Event()

    def compute(relay):
        calls.append(1)
        for _ in range(8):
            if relay(_Info()) is False:
                raise Stopped("stopped at your request")
            started.set()
            time.sleep(0.05)
        return "record"

    def visitor(i: int):
        if i == 0:  # the leader presses Stop at once
            return fresh_resources.single_flight("run", compute, lambda info: False)
        started.wait(5) if i > 2 else time.sleep(0.01)
        return fresh_resources.single_flight("run", compute, (lambda info: False) if i == 1 else (lambda info: True))

    out = _run_threads(5, visitor)
    assert out[0][0] == "error" and isinstance(out[0][1], Stopped)
    kinds = [o[0] for o in out[2:]]
    assert kinds == ["ok", "ok", "ok"] and all(o[1][0] == "record" for o in out[2:])
    assert out[1][0] == "ok" or isinstance(out[1][1], Stopped)  # a waiter's own Stop ends only its wait
    assert 2 <= len(calls) <= 3  # the stopped leader's run, then one (maybe the stopped waiter's) that finished
    from app_support.single_flight import _flights
    assert _flights == {}


def test_six_identical_generates_share_one_run(fresh_resources, monkeypatch: pytest.MonkeyPatch) -> None:
    import nps.engine.sampler
    real = nps.engine.sampler.generate
    calls = []

    def slow(config, corpus=None, **kw):
        calls.append(config)
        time.sleep(0.5)  # long enough that all six arrive while it runs
        return real(config, corpus, **kw)

    monkeypatch.setattr(nps.engine.sampler, "generate", slow)
    cfg = GenerationConfig(**{**SMALL, "seed": 11})
    fresh_resources.pools(cfg)  # warm resources, so the six threads race on the generation itself
    fresh_resources.corpus("digits", None)
    out = _run_threads(6, lambda i: fresh_resources.generate(cfg))
    assert len(calls) == 1
    assert all(kind == "ok" for kind, _ in out)
    images = {r[0].images.tobytes() for _, r in out}
    assert len(images) == 1
    assert sorted(r[2] for _, r in out) == [False] + [True] * 5  # five were served another's run


# --------------------------------------------------------------------------- logging
def test_server_log_receives_nps_warnings(fresh_resources, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit configures only its own loggers; ``nps`` has a NullHandler, so without this, silence."""
    from streamlit import runtime

    from nps.cache import atomic_save_npz, load_validated_npz
    logger = logging.getLogger("nps")
    old_handlers, old_level = list(logger.handlers), logger.level
    try:
        buf = io.StringIO()
        handler = fresh_resources.install_server_log(buf)
        assert fresh_resources.install_server_log() is handler  # idempotent: one handler, one line per message
        path = tmp_path / "demo-k.npz"
        atomic_save_npz(path, {"x": np.zeros(10, np.float32)}, {"key": "k"})
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        assert load_validated_npz(path, "k") is None
        lines = buf.getvalue().splitlines()
        assert len(lines) == 1 and "WARNING nps.cache: cache entry demo-k.npz" in lines[0], lines
        logging.getLogger("nps.app").error("unexpected error while generating")  # what app_support.ui logs
        assert "ERROR nps.app: unexpected error while generating" in buf.getvalue()
        # At server start (a real runtime) the handler is installed without being asked.
        logger.handlers[:] = old_handlers
        monkeypatch.setattr(runtime, "exists", lambda: True)
        fresh_resources._at_server_start()
        assert any(isinstance(h, fresh_resources._ServerLog) for h in logger.handlers)
    finally:
        logger.handlers[:] = old_handlers
        logger.setLevel(old_level)
