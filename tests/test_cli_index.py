"""`python -m nps index`: builds the index a run looks up, says when it is cached, never drops it silently."""

from __future__ import annotations

import numpy as np
import pytest

import nps.engine.window_cache as search_index
from nps.cache_quota import is_pinned
from nps.cli import main
from nps.config import GenerationConfig
from nps.engine.sampler import Sampler

TINY = ["--corpus", "digits", "--window", "3", "--seed-size", "2", "--n", "2", "--constraints", "ssd,loc"]


@pytest.fixture
def large(monkeypatch):
    """Digits counts as a large corpus (no index built on use) and no index is held in memory."""
    monkeypatch.setattr(search_index, "BUILD_ON_USE", 0)
    monkeypatch.setattr(search_index, "_INDEXES", {})


def _entries(cache_dir, kind="windowindex"):
    return sorted(cache_dir.glob(f"{kind}-*.npz"))


def test_index_builds_then_says_already_cached(digits, cache_dir, large, capsys):
    assert main(["index", "--corpus", "digits"]) == 0
    out = capsys.readouterr().out
    [path] = _entries(cache_dir)
    assert "window index of digits: 1442 images, window 7:" in out and "built in" in out
    assert f"of {1442 * 8 * 8:,} (" in out and str(path) in out and "already cached" not in out
    assert len(out.strip().splitlines()) == 1  # one summary
    search_index._INDEXES.clear()  # a new process: found on disk
    assert main(["index", "--corpus", "digits"]) == 0
    out = capsys.readouterr().out
    assert "already cached" in out and "built in" not in out
    assert _entries(cache_dir) == [path] and not is_pinned(path)


def test_index_is_the_one_the_sampler_looks_up(digits, cache_dir, large):
    """After `nps index`, a sampler above BUILD_ON_USE (build=None) finds the index instead of the dense scan."""
    cfg = GenerationConfig(corpus="digits", window=5, seed_size=2, n=2, batch_size=2, constraints="ssd,loc",
                           search="exact")
    assert Sampler(cfg, digits).exact_search() is None  # nothing cached yet: the dense scan
    assert main(["index", "--corpus", "digits", "--window", "5"]) == 0
    search_index._INDEXES.clear()  # only the file may serve the lookup
    assert Sampler(cfg, digits).exact_search() is not None
    assert Sampler(cfg.replace(window=3), digits).exact_search() is None  # another window: another index


def test_runs_without_locality_look_up_the_global_index(digits, cache_dir, large, tmp_path, capsys):
    """SSD alone searches the global index (`--no-loc`), SSD + locality the local one: two entries, and each
    run's hint names its own command."""
    cfg = GenerationConfig(corpus="digits", window=5, seed_size=2, n=2, batch_size=2, constraints="ssd",
                           search="exact")
    assert main(["index", "--corpus", "digits", "--window", "5"]) == 0  # the local one
    assert "local window index of digits" in capsys.readouterr().out
    search_index._INDEXES.clear()
    assert Sampler(cfg, digits).exact_search() is None  # SSD alone does not take the local index
    argv = ["generate", *TINY[:-1], "ssd", "--window", "5", "--search", "exact", "--out", str(tmp_path / "s.npz")]
    assert main(argv) == 0
    [hint] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("hint:")]
    assert "`python -m nps index --corpus digits --window 5 --no-loc`" in hint
    assert main(["index", "--corpus", "digits", "--window", "5", "--no-loc"]) == 0
    assert "global window index of digits" in capsys.readouterr().out
    assert len(_entries(cache_dir)) == 2
    search_index._INDEXES.clear()
    local = Sampler(cfg.replace(constraints="ssd,loc"), digits).exact_search().index
    glob = Sampler(cfg, digits).exact_search().index
    assert set(vars(local)) == set(vars(glob))
    assert np.array_equal(local.pos_off, glob.pos_off)  # the same unique windows at each position ...
    assert not np.array_equal(local.rep, glob.rep)  # ... in another k-d order


def test_a_large_index_is_dropped_from_memory_before_another_loads(digits, cache_dir, monkeypatch):
    """Two small indexes stay in memory; one above half of HELD_BYTES goes before the next is loaded."""
    monkeypatch.setattr(search_index, "_INDEXES", {})
    cfg = GenerationConfig(corpus="digits", window=3, seed_size=2, n=1, batch_size=1, constraints="ssd,loc",
                           search="exact")
    Sampler(cfg, digits).exact_search()
    Sampler(cfg.replace(constraints="ssd"), digits).exact_search()
    assert len(search_index._INDEXES) == 2  # the local and the global index of digits
    least = min(map(search_index._held_bytes, search_index._INDEXES.values()))
    monkeypatch.setattr(search_index, "HELD_BYTES", 2 * least - 2)  # either one alone is above half of it
    Sampler(cfg.replace(window=5), digits).exact_search()
    assert list(search_index._INDEXES) == [search_index.index_key(digits.content_hash, 5, (1442, 1, 12, 12))]


def test_the_global_index_keeps_the_key_it_had_before_the_local_one():
    """Indexes cached before the local splits existed serve runs without locality unchanged."""
    from nps.cache import content_key
    shape = (100, 1, 34, 34)
    before = content_key("window-index", 3, "abc", 7, shape, 8, 16)  # the version-3 key, as it was
    assert search_index.index_key("abc", 7, shape, local=False) == before
    assert search_index.index_key("abc", 7, shape) != before


def test_generate_hints_at_the_command_only_when_no_index_is_cached(digits, cache_dir, large, tmp_path, capsys):
    argv = ["generate", *TINY, "--search", "exact", "--out", str(tmp_path / "s.npz")]
    assert main(argv) == 0
    hint = [line for line in capsys.readouterr().out.splitlines() if line.startswith("hint:")]
    assert len(hint) == 1 and "no cached window index" in hint[0] and "dense scan" in hint[0]
    assert "`python -m nps index --corpus digits --window 3`" in hint[0]
    assert not _entries(cache_dir)  # the hint built nothing
    assert main(["index", "--corpus", "digits", "--window", "3"]) == 0
    capsys.readouterr()
    assert main(argv) == 0
    assert "hint:" not in capsys.readouterr().out
    assert main([*argv[:-2], "--search", "brute", "--out", str(tmp_path / "b.npz")]) == 0  # brute: no index used
    assert "hint:" not in capsys.readouterr().out


def test_missing_index_line_covers_label_pools_and_not_knn_pools(digits, cache_dir, large):
    from nps.cli.index import missing_index_line
    base = GenerationConfig(corpus="digits", window=3, seed_size=2, search="exact")
    assert missing_index_line(base.replace(constraints=("ssd", "loc")), digits) is not None
    assert missing_index_line(base.replace(constraints=("ssd", "loc", "ssl"), label=3), digits) is not None
    approx = missing_index_line(base.replace(constraints=("ssd", "loc"), search="approx"), digits)
    assert "--window 3 --approx`" in approx
    assert missing_index_line(base.replace(constraints=("ssd", "loc", "ssl")), digits) is None  # k-NN pools
    assert missing_index_line(base.replace(constraints=("ssd", "loc"), search="brute"), digits) is None


def test_small_corpora_get_no_hint(digits, cache_dir, monkeypatch):
    from nps.cli.index import missing_index_line
    monkeypatch.setattr(search_index, "_INDEXES", {})
    cfg = GenerationConfig(corpus="digits", window=3, seed_size=2, search="exact", constraints=("ssd", "loc"))
    assert missing_index_line(cfg, digits) is None  # 92k windows: built on first use


def test_pin_and_approx(digits, cache_dir, large, capsys):
    assert main(["index", "--corpus", "digits", "--subset", "200", "--window", "3", "--approx", "--pin"]) == 0
    out = capsys.readouterr().out
    [index], [centroids] = _entries(cache_dir), _entries(cache_dir, "windowcentroids")
    assert is_pinned(index) and is_pinned(centroids)
    assert "200 images" in out and "(subset 200)" in out and "centroids" in out and "pinned" in out


def test_an_index_held_in_memory_is_stored_again_after_its_file_went(digits, cache_dir, large, capsys):
    assert main(["index", "--corpus", "digits", "--window", "3"]) == 0
    [path] = _entries(cache_dir)
    path.unlink()  # `cache clear` while the index is still in this process's memory
    assert main(["index", "--corpus", "digits", "--window", "3"]) == 0
    assert path.is_file()


@pytest.mark.parametrize(("quota", "what"), [("0.1", "takes more than"), ("1", "built but not kept")])
def test_an_index_above_the_quota_is_one_error_with_the_fix(quota, what, digits, cache_dir, large, capsys,
                                                             monkeypatch):
    monkeypatch.setenv("NPS_CACHE_QUOTA_MB", quota)  # digits' window-7 index is 3.2 MB; its map alone 0.35 MB
    assert main(["index", "--corpus", "digits"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error:") and what in err and "NPS_CACHE_QUOTA_MB=" in err
    assert "python -m nps index --corpus digits" in err
    assert not _entries(cache_dir)


def test_read_only_cache_is_refused_before_any_work(digits, cache_dir, large, capsys, monkeypatch):
    monkeypatch.setenv("NPS_CACHE_READONLY", "1")
    assert main(["index", "--corpus", "digits"]) == 2
    assert "read-only" in capsys.readouterr().err and not _entries(cache_dir)


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["index", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--pin" in out and "--window" in out and "--approx" in out and "--no-loc" in out


@pytest.mark.parametrize(("argv", "what"), [(["--window", "4"], "--window"), (["--window", "9"], "larger than"),
                                            (["--subset", "0"], "--subset"), (["--corpus", "nope"], "unknown corpus"),
                                            (["--bogus"], "unrecognized")])
def test_bad_flags_are_one_line(argv, what, cache_dir, capsys):
    try:
        rc = main(["index", "--corpus", "digits", *argv])
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and what in err[0]
    assert not _entries(cache_dir)
