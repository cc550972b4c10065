"""Multi-scale (``ms``, nps/constraints/multiscale.py): coarse to fine through the constraint seam.

The coarse level is the unchanged sampler on the half-resolution corpus; the full level
admits only pool images whose coarse window around p/2 matches.  Every pixel, coarse ones
included, is traced exactly; the engine agrees with the plain reference pixel for pixel and
the funnel replays the record's pools.
"""

from __future__ import annotations

import numpy as np
import pytest

from nps.config import GenerationConfig
from nps.errors import NPSError
from nps.provenance import check_provenance, check_provenance_coarse, half_train
from nps.record import ProvenanceRecord, merge

SMALL = dict(corpus="digits", window=3, seed_size=2, k=12, batch_size=4, encoder="pca")


def _cfg(**kw) -> GenerationConfig:
    return GenerationConfig.make(**{**SMALL, "n": 5, "seed": 7, "constraints": "ssd,loc,ssl,ms", **kw})


@pytest.fixture(scope="module")
def rec(digits) -> ProvenanceRecord:
    from nps.engine.sampler import generate
    return generate(_cfg(), digits)


def test_half_train_is_the_rounded_block_mean():
    t = np.array([[[0, 1, 255, 255], [2, 2, 255, 254], [9, 9, 9, 9], [9, 9, 9, 10]]], np.uint8)
    assert half_train(t).tolist() == [[[1, 255], [9, 9]]]  # (5+2)//4 = 1, (1019+2)//4 = 255, (37+2)//4 = 9


def test_record_holds_an_exact_coarse_level(rec, digits):
    assert rec.version == 3 and rec.coarse_images.shape == (5, 4, 4)
    assert check_provenance(rec, digits.train) == 0 and check_provenance_coarse(rec, digits.train) == 0
    assert rec.config["constraints"] == ["ssd", "loc", "ssl", "ms"] and rec.config["ms_eps"] == 0.5
    # the coarse canvas starts from the reference's coarse seed, like the full one
    assert (rec.coarse_source_index[:, 1:3, 1:3] == rec.reference[:, None, None]).any()


def test_engine_equals_plain_reference_with_multiscale(rec, digits):
    from nps.engine.reference_impl import generate_plain
    plain = generate_plain(_cfg(), digits)
    for key in ("images", "source_index", "source_y", "source_x", "pool_size"):
        assert np.array_equal(getattr(rec, key), plain[key]), key


def test_multiscale_narrows_the_pools_of_the_full_model(rec, digits):
    from nps.engine.sampler import generate
    full = generate(_cfg(constraints="ssd,loc,ssl"), digits)
    assert np.array_equal(full.reference, rec.reference)  # same references and seeds
    sampled = rec.shell[np.argsort(np.arange(len(rec.order)))] > 0
    ys, xs = rec.order[sampled].T
    assert rec.pool_size[:, ys, xs].mean() < full.pool_size[:, ys, xs].mean()
    # every sampled pixel's source image passed the coarse rule at its p/2
    from nps.constraints import get
    from nps.engine.sampler_pool import SemanticPools
    cfg = _cfg()
    pool_ids = SemanticPools.build(cfg, digits).for_references(rec.reference)
    ms = get("ms")
    for n in range(len(rec)):
        state = ms.replay(cfg, digits, rec, n, pool_ids[n:n + 1])
        for y, x in zip(ys, xs):
            allowed = pool_ids[n][ms.admit(state, int(y), int(x))[0]]
            assert rec.source_index[n, y, x] in allowed


def test_funnel_replays_the_multiscale_pool(rec, digits):
    from nps.lab.funnel import ranked_candidates
    steps = np.flatnonzero(rec.shell > 0)
    for step in steps[::7]:
        y, x = (int(v) for v in rec.order[step])
        ranked = ranked_candidates(rec, digits, 2, y, x)
        assert ranked.funnel.final == rec.pool_size[2, y, x]
        assert ranked.kept[ranked.drawn]


def test_record_round_trip_select_and_merge(rec, tmp_path):
    from nps.engine.sampler import generate
    path = rec.save(tmp_path / "ms.npz")
    back = ProvenanceRecord.load(path)
    assert np.array_equal(back.coarse_images, rec.coarse_images)
    assert np.array_equal(back.coarse_source_x, rec.coarse_source_x)
    one = rec.select([1, 3])
    assert np.array_equal(one.coarse_images, rec.coarse_images[[1, 3]])
    from nps.corpora import load_corpus
    digits = load_corpus("digits")
    a = generate(_cfg(), digits, sample_ids=np.arange(0, 2))
    b = generate(_cfg(), digits, sample_ids=np.arange(2, 5))
    both = merge([b, a])
    for key in ("images", "coarse_images", "coarse_source_index"):
        assert np.array_equal(getattr(both, key), getattr(rec, key)), key
    arrays = rec.to_arrays()
    del arrays["coarse_source_y"]
    with pytest.raises(NPSError, match="needs all of"):
        ProvenanceRecord.from_arrays(arrays)


def test_multiscale_needs_per_sample_pools(digits):
    from nps.engine.sampler import generate
    with pytest.raises(NPSError, match="needs ssl"):
        generate(_cfg(constraints="ssd,loc,ms"), digits)
    with pytest.raises(NPSError, match="must be odd"):
        generate(_cfg(ms_window=4), digits)


def test_generate_cli_end_to_end(tmp_path, capsys):
    from nps.cli import main
    out = tmp_path / "ms.npz"
    code = main(["generate", "--corpus", "digits", "--window", "3", "--seed-size", "2", "--k", "12", "--n", "3",
                 "--encoder", "pca", "--constraints", "ssd,loc,ssl,ms", "--ms-eps", "0.3", "--out", str(out)])
    assert code == 0 and "provenance check: exact" in capsys.readouterr().out
    rec = ProvenanceRecord.load(out)
    assert rec.coarse_images is not None and rec.config["ms_eps"] == 0.3
    assert main(["trace", str(out), "--corpus", "digits", "--y", "0", "--x", "0"]) == 0


def test_app_toggle_generates_a_multiscale_record(monkeypatch):
    from pathlib import Path

    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest
    init = PagesManager.__init__

    def v2_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", v2_init)
    st.cache_data.clear()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "streamlit_app.py"), default_timeout=120)
    at.query_params["corpus"] = "digits"
    at.run()
    at.switch_page("pages/2_generate.py").run()
    toggle = at.toggle(key="gen_ms")
    assert toggle.label == "multi-scale (ms)" and toggle.value is False
    toggle.set_value(True).run()
    at.number_input(key="gen_ms_eps").set_value(0.25)
    at.slider(key="gen_n").set_value(2)
    at.button(key="btn_generate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    label = at.session_state["view_results"]["generate|digits|all"]["label"]
    rec = at.session_state["records"][label]
    assert rec.coarse_images is not None and rec.config["ms_eps"] == 0.25
    assert any("--constraints ssd,loc,ssl,ms" in c.value and "--ms-eps 0.25" in c.value for c in at.code)
