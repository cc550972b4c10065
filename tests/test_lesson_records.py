"""The shipped lesson records (nps/lessons/): manifest, refusal, bit-identical regeneration, and the app's use.

The records are MNIST runs (n = 16, seed 0); tests that need MNIST skip without it.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from nps.errors import NPSError
from nps.lab import lesson_records as lr

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")


def _mnist(subset=None):
    from nps.corpora import load_corpus
    from nps.errors import DataMissingError
    try:
        return load_corpus("mnist", subset)
    except DataMissingError as exc:
        pytest.skip(f"MNIST is not installed here: {exc}")


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """A copy of nps/lessons/ that a test may damage; lesson_records reads it instead of the real one."""
    folder = tmp_path / "lessons"
    shutil.copytree(lr.LESSONS_DIR, folder)
    monkeypatch.setattr(lr, "LESSONS_DIR", folder)
    return folder


# --------------------------------------------------------------------------- the shipped files
def test_every_run_ships_with_its_hash_and_is_small():
    files = lr.read_manifest()
    assert set(files) == {f"{name}.npz" for name in lr.RUNS}
    total = 0
    for name, run in lr.RUNS.items():
        lr.verify_file(name)  # sha256 against the manifest
        entry = files[f"{name}.npz"]
        assert entry["bytes"] == lr.path(name).stat().st_size
        # (a manifest written before an opt-in field existed reads it as its default: result_fields)
        assert lr.result_fields(entry["config"]) == lr.result_fields(run.config)
        assert set(entry["config"]) <= set(lr.result_fields(run.config))
        assert entry["corpus_size"] == (run.config.subset or 60000)
        total += entry["bytes"]
    assert total < 600_000, f"the shipped lesson records take {total:,} bytes"


def test_a_flipped_byte_is_refused(shipped_copy):
    p = shipped_copy / "mnist1k-ssd-loc.npz"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(NPSError, match="does not match its sha256") as err:
        lr.open_shipped("mnist1k-ssd-loc", corpus=None)
    assert "\n" not in str(err.value) and "lessons build --only mnist1k-ssd-loc" in str(err.value)


def test_a_missing_or_unlisted_file_and_a_damaged_manifest_are_refused(shipped_copy):
    (shipped_copy / "mnist1k-full.npz").unlink()
    with pytest.raises(NPSError, match="is missing"):
        lr.verify_file("mnist1k-full")
    doc = json.loads((shipped_copy / lr.MANIFEST_NAME).read_text())
    del doc["files"]["mnist-loc-ssl.npz"]
    (shipped_copy / lr.MANIFEST_NAME).write_text(json.dumps(doc))
    with pytest.raises(NPSError, match="not listed"):
        lr.verify_file("mnist-loc-ssl")
    (shipped_copy / lr.MANIFEST_NAME).write_text("{not json")
    with pytest.raises(NPSError, match=r"manifest .* is damaged"):
        lr.read_manifest()


def test_a_record_that_breaks_provenance_is_refused_even_with_a_matching_hash(shipped_copy):
    """The hash says the file is the shipped one; the provenance check says it fits this corpus."""
    from nps.record import ProvenanceRecord
    from nps.shipped import manifest_entry
    corpus = _mnist(1000)
    name = "mnist1k-ssd-loc"
    rec = ProvenanceRecord.load(lr.path(name))
    rec.images = rec.images.copy()
    rec.images[3, 14, 14] ^= 0xFF  # one pixel no longer its recorded source's
    rec.save(lr.path(name))
    doc = json.loads((shipped_copy / lr.MANIFEST_NAME).read_text())
    doc["files"][f"{name}.npz"].update(manifest_entry(lr.path(name)))
    (shipped_copy / lr.MANIFEST_NAME).write_text(json.dumps(doc))
    with pytest.raises(NPSError, match="does not match this corpus"):
        lr.open_shipped(name, corpus)
    with pytest.raises(NPSError, match="made on 1000 training images"):
        lr.open_shipped("mnist1k-full", _mnist(2000))


@pytest.mark.parametrize("name", ["mnist1k-ssd-loc", "mnist1k-full", "mnist-full-ms"])
def test_a_shipped_sample_regenerates_bit_identically(name):
    """One of the 16 samples, regenerated alone (batch 1) with the record's config, equals the shipped one.

    One shared-pool run (no representation), one per-sample-pool run (the full model,
    SimCLR) and the multi-scale one (its coarse level too): the cheapest; generation is a
    pure function of (config, corpus, sample id).
    """
    from nps.engine.sampler import generate
    from nps.record import COARSE, PER_SAMPLE
    run = lr.RUNS[name]
    corpus = _mnist(run.config.subset)
    shipped = lr.open_shipped(name, corpus)
    again = generate(run.config.replace(batch_size=1), corpus, sample_ids=np.array([13]))
    row = int(np.flatnonzero(shipped.sample_id == 13)[0])
    for key in PER_SAMPLE:
        assert np.array_equal(getattr(again, key)[0], getattr(shipped, key)[row]), key
    assert np.array_equal(again.order, shipped.order)
    for key in COARSE if shipped.coarse_images is not None else ():  # multi-scale: its coarse level too
        assert np.array_equal(getattr(again, key)[0], getattr(shipped, key)[row]), key


def test_find_answers_the_app_configs_and_nothing_else():
    from app_support.state import build_config, suggested_params
    side = {"corpus": "mnist", "subset": None, "encoder": "auto", "seed": 0}
    page = {**suggested_params((28, 28)), "n": 16, "batch_size": 16, "sigma": None, "ssl_mode": "reference",
            "label": None, "reference": None}
    for cons, name in [(("ssd", "loc", "ssl"), "mnist-full"), (("ssd", "ssl"), "mnist-ssd-ssl"),
                       (("ssd", "loc"), "mnist-ssd-loc"), (("loc", "ssl"), "mnist-loc-ssl"),
                       (("ssd", "loc", "ssl", "ms"), "mnist-full-ms")]:
        assert lr.find(build_config(side, {**page, "constraints": cons})).name == name
    ms = build_config(side, {**page, "constraints": ("ssd", "loc", "ssl", "ms")})
    assert lr.find(ms.replace(ms_eps=1.0)) is None and lr.find(ms.replace(ms_window=5)) is None  # ms's own fields
    one_k = build_config({**side, "subset": 1000}, {**page, "constraints": ("ssd",), "batch_size": 4})
    assert lr.find(one_k).name == "mnist1k-ssd"  # the batch size does not change a record
    assert lr.find(build_config(side, {**page, "constraints": ("ssd",)})) is None  # all 60k: not shipped
    assert lr.find(build_config({**side, "seed": 1}, {**page, "constraints": ("ssd", "ssl")})) is None
    assert lr.find(build_config(side, {**page, "n": 15, "constraints": ("ssd", "ssl")})) is None


def test_cli_verify_and_an_unknown_name(capsys):
    from nps.cli import main
    assert main(["lessons", "verify", "--only", "mnist1k-ssd-loc"]) == 0
    assert "provenance exact" in capsys.readouterr().out
    with pytest.raises(SystemExit) as ex:
        main(["lessons", "build", "--only", "nope"])
    assert ex.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


# --------------------------------------------------------------------------- the app
@pytest.fixture
def mnist_app(monkeypatch):
    """AppTest on MNIST (the default corpus); nps.engine.sampler.generate is recorded (and still runs)."""
    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    import nps.engine.sampler
    _mnist()
    init = PagesManager.__init__

    def v2_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", v2_init)
    real = nps.engine.sampler.generate
    calls: list = []

    def spy(config, corpus=None, **kw):
        calls.append(config)
        return real(config, corpus, **kw)

    monkeypatch.setattr(nps.engine.sampler, "generate", spy)
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["corpus"] = "mnist"
    at.query_params["seed"] = "0"
    at.calls = calls
    return at


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _start(at, lesson: str) -> float:
    at.run()
    t0 = time.perf_counter()
    at.button(key=f"btn_lesson_{lesson}").click().run()
    return time.perf_counter() - t0


def test_lesson_cards_state_their_wait_before_the_click(mnist_app):
    mnist_app.run()
    _ok(mnist_app)
    notes = [c.value for c in mnist_app.caption if "precomputed record at once" in c.value]
    assert len(notes) == 4  # no-locality, ssd-only, three-ablations, multi-scale
    assert all("a live re-run: about" in n for n in notes)
    assert sum("1,000-image subset" in n for n in notes) == 2
    assert any("preset: about a second once built" in c.value and "a few seconds" in c.value
               for c in mnist_app.caption)


def test_no_locality_lesson_opens_the_shipped_record_at_once(mnist_app):
    _start(mnist_app, "no-locality")
    _ok(mnist_app)
    at = mnist_app
    assert at.title[0].value == "Generate" and not at.calls  # opened, nothing sampled
    rec = at.session_state["records"][at.session_state["ana_record"]]
    shipped = lr.open_shipped("mnist-ssd-ssl", _mnist())
    assert np.array_equal(rec.images, shipped.images)
    cap = next(c.value for c in at.caption if "Precomputed (locality off)" in c.value)
    assert "all training images" in cap and "ssd+ssl" in cap and "n = 16" in cap
    rerun = at.button(key="btn_rerun_live_gen")
    assert rerun.label.startswith("Re-run live (about ")


def test_ssd_only_lesson_pins_its_subset_and_says_so(mnist_app):
    _start(mnist_app, "ssd-only")
    _ok(mnist_app)
    at = mnist_app
    assert at.sidebar.selectbox(key="sb_subset").value == 1000 and not at.calls
    assert any("a 1,000-image subset" in c.value and "Precomputed (appearance alone)" in c.value for c in at.caption)
    banner = [c.value for c in at.caption if c.value.startswith("The result opens below")]
    assert banner and "1,000-image subset" in banner[0]  # the lesson says it pins a subset


def test_ablation_lesson_opens_three_precomputed_columns(mnist_app):
    _start(mnist_app, "three-ablations")
    _ok(mnist_app)
    at = mnist_app
    assert at.title[0].value == "Ablations side by side" and not at.calls
    results = at.session_state["view_results"]["ablations|mnist|1000"]
    assert sorted(results) == [0, 1, 2] and [r["shipped"] for r in (results[0], results[1], results[2])] == [
        "mnist1k-ssd", "mnist1k-ssd-loc", "mnist1k-full"]
    assert all(at.button(key=f"btn_rerun_live_abl{i}").label.startswith("Re-run live") for i in range(3))


def test_multi_scale_lesson_opens_two_precomputed_columns_and_says_ms_does_not_help(mnist_app):
    _start(mnist_app, "multi-scale")
    _ok(mnist_app)
    at = mnist_app
    assert at.title[0].value == "Ablations side by side" and not at.calls
    assert at.sidebar.selectbox(key="sb_subset").value == 0  # all training images
    results = at.session_state["view_results"]["ablations|mnist|all"]
    assert [results[i]["shipped"] for i in sorted(results)] == ["mnist-full", "mnist-full-ms"]
    cap = next(c.value for c in at.caption if "Precomputed (full model + multi-scale)" in c.value)
    assert "ssd+loc+ssl+ms" in cap and "all training images" in cap and "n = 16" in cap
    assert "ms_eps = 0.5, ms_window = 3" in cap  # the fourth constraint's own settings are named too
    rerun = at.button(key="btn_rerun_live_abl1").label  # a live run would embed 60k images first: said
    assert rerun.startswith("Re-run live (") and "plus embedding 60,000 images once" in rerun
    banner = next(c.value for c in at.caption if c.value.startswith("The columns open below"))
    assert "does not help" in banner and "FID is worse" in banner  # the README's measurement, not a promise
    ms = at.session_state["records"][results[1]["label"]]
    assert ms.coarse_images is not None and ms.coarse_images.shape == (16, 14, 14)  # the coarse level ships too


def test_toggle_first_view_is_precomputed(mnist_app):
    at = mnist_app
    at.run()
    at.switch_page("pages/2_generate.py").run()
    at.toggle(key="gen_ssd").set_value(False).run()  # appearance off: loc + ssl
    assert any("**Precomputed** (appearance off)" in c.value for c in at.caption)
    at.toggle(key="gen_ssd").set_value(True)
    at.toggle(key="gen_ssl").set_value(False).run()  # representation off: minutes live
    assert any("**Precomputed** (representation off)" in c.value and "would take about" in c.value
               for c in at.caption)
    assert not [w for w in at.warning if "Expected" in w.value]  # no slow-run warning: the click is instant
    at.button(key="btn_generate").click().run()
    _ok(at)
    assert not at.calls and at.session_state["view_results"]["generate|mnist|all"]["shipped"] == "mnist-ssd-loc"
    at.toggle(key="gen_ssl").set_value(True)
    at.toggle(key="gen_ms").set_value(True).run()  # the fourth constraint's toggle, on the full model
    assert any("**Precomputed** (full model + multi-scale)" in c.value for c in at.caption)
    at.button(key="btn_generate").click().run()
    _ok(at)
    assert not at.calls and at.session_state["view_results"]["generate|mnist|all"]["shipped"] == "mnist-full-ms"


def test_re_run_live_runs_the_engine_and_gives_the_same_record(mnist_app):
    at = mnist_app
    at.query_params["subset"] = "1000"  # the default view there is the shipped mnist1k-full
    at.run()
    at.switch_page("pages/2_generate.py").run()
    at.button(key="btn_generate").click().run()
    _ok(at)
    result = at.session_state["view_results"]["generate|mnist|1000"]
    assert not at.calls and result["shipped"] == "mnist1k-full"
    shipped = at.session_state["records"][result["label"]]
    at.button(key="btn_rerun_live_gen").click().run()
    _ok(at)
    assert len(at.calls) == 1 and at.calls[0].subset == 1000
    result = at.session_state["view_results"]["generate|mnist|1000"]
    live = at.session_state["records"][result["label"]]
    assert result["shipped"] is None and np.array_equal(live.images, shipped.images)
    assert np.array_equal(live.source_index, shipped.source_index)


def test_a_refused_record_falls_back_to_a_live_run(mnist_app, shipped_copy):
    p = shipped_copy / "mnist1k-full.npz"
    data = p.read_bytes()
    p.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    at = mnist_app
    at.query_params["subset"] = "1000"
    at.run()
    at.switch_page("pages/2_generate.py").run()
    at.button(key="btn_generate").click().run()
    _ok(at)
    warn = [w.value for w in at.warning if "refused" in w.value]
    assert len(warn) == 1 and "sha256" in warn[0] and "runs live (" in warn[0]
    assert len(at.calls) == 1  # and it ran live
    assert at.session_state["view_results"]["generate|mnist|1000"]["shipped"] is None


def test_complete_shows_an_estimate_and_a_cheaper_fill_before_the_click(mnist_app):
    at = mnist_app
    at.run()
    at.switch_page("pages/5_complete.py").run()
    _ok(at)
    assert any("Expected:" in c.value for c in at.caption)  # the full model: a second or so
    at.toggle(key="cmp_ssl").set_value(False)
    at.toggle(key="cmp_loc").set_value(False).run()  # appearance alone over 60k images
    warn = [w.value for w in at.warning if "Expected" in w.value]
    assert warn and "every position" in warn[0]
    offers = [b for b in at.button if b.key and b.key.startswith("btn_cheaper_cmp_")]
    assert any("locality on" in b.label for b in offers) and any("subset" in b.label for b in offers)
    next(b for b in offers if "locality" in b.label).click().run()
    assert at.toggle(key="cmp_loc").value and not at.calls


def test_mnist_preset_opens_the_shipped_record_from_an_empty_cache(cache_dir, monkeypatch):
    """The MNIST 4x4 preset is the full-model lesson record: shown and opened cold without embedding or sampling."""
    import nps.engine.sampler
    from nps.lab import presets

    def forbidden(*a, **k):
        raise AssertionError("the preset must be opened, not generated")

    monkeypatch.setattr(nps.engine.sampler, "generate", forbidden)
    assert presets.is_built("mnist-4x4") and not presets.get_preset("mnist-4x4").path.exists()
    shown = presets.read_built("mnist-4x4")  # the Welcome card's grid: hash + validator, no corpus
    rec = presets.load_preset("mnist-4x4", _mnist())
    assert np.array_equal(shown.images, rec.images)
    assert np.array_equal(rec.images, lr.open_shipped("mnist-full", _mnist()).images)
    assert not list(cache_dir.glob("embeddings-*"))  # nothing was embedded
