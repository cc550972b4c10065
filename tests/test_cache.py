"""The derived-artefact cache: hits, misses, stale and damaged entries, concurrency, CLI."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from nps import cache, cache_quota
from nps.cache import (
    atomic_save_npz,
    cache_root,
    cached_arrays,
    content_key,
    load_validated_npz,
)
from nps.cache_quota import (
    clear,
    list_entries,
)
from nps.cli import main
from nps.cli.cache import human_size
from nps.errors import NPSError


class Builder:
    """A build() that counts its calls."""

    def __init__(self, value: float = 1.0, n: int = 1000) -> None:
        self.calls = 0
        self.value = value
        self.n = n

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        return {"x": np.full((self.n,), self.value, np.float32), "ids": np.arange(7, dtype=np.int64)}


def _entry(root: Path, kind: str, key: str) -> Path:
    return root / f"{kind}-{key}.npz"


def _tmp_files(root: Path) -> list[Path]:
    return sorted(root.glob(".*.tmp"))


# --------------------------------------------------------------------------- keys and root

def test_cache_root_honours_env(cache_dir: Path) -> None:
    assert cache_root() == cache_dir


def test_content_key_is_deterministic_and_content_sensitive() -> None:
    a = np.arange(6, dtype=np.int64)
    assert content_key("x", a, 3) == content_key("x", a.copy(), 3)
    assert len(content_key("x")) == 16
    assert content_key("x", a) != content_key("x", a + 1)                 # content
    assert content_key("x", a) != content_key("x", a.astype(np.int32))    # dtype
    assert content_key("x", a) != content_key("x", a.reshape(2, 3))       # shape, same bytes
    assert content_key("x", 3) != content_key("x", "3")                   # repr distinguishes types
    assert content_key("ab", "c") != content_key("a", "bc")               # parts are delimited


# --------------------------------------------------------------------------- hit / miss / stale

def test_hit_builds_once_and_returns_the_same_arrays(tmp_path: Path) -> None:
    build = Builder(2.5)
    first = cached_arrays("demo", "k1", build, meta={"corpus": "digits"}, root=tmp_path)
    second = cached_arrays("demo", "k1", build, root=tmp_path)
    assert build.calls == 1
    assert set(first) == set(second) == {"x", "ids"}
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
        assert first[name].dtype == second[name].dtype
    assert _entry(tmp_path, "demo", "k1").is_file()


def test_miss_on_another_key_builds_again(tmp_path: Path) -> None:
    build = Builder()
    cached_arrays("demo", "k1", build, root=tmp_path)
    cached_arrays("demo", "k2", build, root=tmp_path)
    cached_arrays("other", "k1", build, root=tmp_path)
    assert build.calls == 3
    assert {e.path.name for e in list_entries(tmp_path)} == {"demo-k1.npz", "demo-k2.npz", "other-k1.npz"}


def test_stale_key_is_rebuilt_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cached_arrays("demo", "old", Builder(1.0), root=tmp_path)
    # The same file now sits under another key's name: its stored key no longer matches.
    shutil.copy(_entry(tmp_path, "demo", "old"), _entry(tmp_path, "demo", "new"))
    build = Builder(7.0)
    with caplog.at_level(logging.WARNING, logger="nps.cache"):
        got = cached_arrays("demo", "new", build, root=tmp_path)
    assert build.calls == 1
    assert float(got["x"][0]) == 7.0
    assert any("stale" in r.getMessage() and "demo-new.npz" in r.getMessage() for r in caplog.records)
    arrays, meta = load_validated_npz(_entry(tmp_path, "demo", "new"), "new")
    assert meta["key"] == "new" and float(arrays["x"][0]) == 7.0


# --------------------------------------------------------------------------- damaged files

def _damage_and_reload(tmp_path: Path, caplog: pytest.LogCaptureFixture, damage) -> Builder:
    path = _entry(tmp_path, "demo", "k")
    cached_arrays("demo", "k", Builder(1.0), root=tmp_path)
    damage(path)
    build = Builder(1.0)
    with caplog.at_level(logging.WARNING, logger="nps.cache"):
        got = cached_arrays("demo", "k", build, root=tmp_path)
    assert build.calls == 1, "a damaged entry must be rebuilt, not trusted"
    np.testing.assert_array_equal(got["x"], np.ones(1000, np.float32))
    assert load_validated_npz(path, "k") is not None, "the rebuilt entry must be valid"
    return build


def test_truncated_file_is_rebuilt_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def truncate(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    _damage_and_reload(tmp_path, caplog, truncate)
    assert any("demo-k.npz" in r.getMessage() and "rebuilding" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


def test_flipped_byte_is_rebuilt_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def flip(path: Path) -> None:
        data = bytearray(path.read_bytes())
        i = data.index(np.ones(1, np.float32).tobytes()) + 400  # inside the x array's data
        data[i] ^= 0x01
        path.write_bytes(bytes(data))

    _damage_and_reload(tmp_path, caplog, flip)
    assert any("demo-k.npz" in r.getMessage() and "rebuilding" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


def test_no_single_byte_flip_is_ever_trusted(tmp_path: Path) -> None:
    """Every one-byte corruption of an entry is either rejected or harmless (same arrays)."""
    path = tmp_path / "tiny-k.npz"
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([3, 1, 2], np.int64)}
    atomic_save_npz(path, arrays, {"key": "k"})
    raw = path.read_bytes()
    rejected = tried = 0
    logging.getLogger("nps.cache").disabled = True  # hundreds of warnings are expected here
    try:
        # Every other byte (half the time on a shared machine), with alternating bit patterns.
        for i in range(0, len(raw), 2):
            bad = bytearray(raw)
            bad[i] ^= 0xFF if i % 4 == 0 else 0x01
            tried += 1
            path.write_bytes(bytes(bad))
            got = load_validated_npz(path, "k")  # must never raise
            if got is None:
                rejected += 1
                continue
            assert set(got[0]) == set(arrays), f"byte {i}"
            for name in arrays:
                assert got[0][name].dtype == arrays[name].dtype, f"byte {i}"
                np.testing.assert_array_equal(got[0][name], arrays[name], err_msg=f"byte {i}")
    finally:
        logging.getLogger("nps.cache").disabled = False
    assert rejected > tried // 2  # most bytes matter; the rest are zip padding/timestamps


def test_checksum_mismatch_is_rejected(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A file that parses (zip CRCs fine) but whose arrays differ from the stored sha256."""
    good = tmp_path / "demo-k.npz"
    atomic_save_npz(good, {"x": np.zeros(4, np.float32)}, {"key": "k"})
    with np.load(good) as z:
        meta = str(z["__meta__"])
    np.savez(good, x=np.ones(4, np.float32), __meta__=np.array(meta))
    with caplog.at_level(logging.WARNING, logger="nps.cache"):
        assert load_validated_npz(good, "k") is None
    assert any("checksum" in r.getMessage() for r in caplog.records)


def test_wrong_shape_or_dtype_is_rejected(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = tmp_path / "demo-k.npz"
    atomic_save_npz(good, {"x": np.zeros((2, 3), np.float32)}, {"key": "k"})
    with np.load(good) as z:
        meta = str(z["__meta__"])
    assert json.loads(meta)["arrays"] == {"x": {"shape": [2, 3], "dtype": "<f4"}}
    for bad in (np.zeros((3, 2), np.float32), np.zeros((2, 3), np.float64)):
        np.savez(good, x=bad, __meta__=np.array(meta))
        with caplog.at_level(logging.WARNING, logger="nps.cache"):
            assert load_validated_npz(good, "k") is None
    assert sum("shape or dtype" in r.getMessage() for r in caplog.records) == 2


# --------------------------------------------------------------------------- atomicity

def test_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    def build() -> dict[str, np.ndarray]:
        raise RuntimeError("killed midway")

    with pytest.raises(RuntimeError, match="killed midway"):
        cached_arrays("demo", "k", build, root=tmp_path)
    assert not _entry(tmp_path, "demo", "k").exists()
    assert _tmp_files(tmp_path) == []
    assert list_entries(tmp_path) == []
    ok = Builder(3.0)
    assert float(cached_arrays("demo", "k", ok, root=tmp_path)["x"][0]) == 3.0 and ok.calls == 1


def test_failed_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_savez(f, **arrays) -> None:
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.np, "savez", broken_savez)
    build = Builder(5.0)
    got = cached_arrays("demo", "k", build, root=tmp_path)  # the caller still gets its arrays
    assert float(got["x"][0]) == 5.0
    assert not _entry(tmp_path, "demo", "k").exists()
    assert _tmp_files(tmp_path) == []


def _die_before_rename(root: str) -> None:
    """Child process: write an entry's temp file completely, then get SIGKILLed before the rename."""
    import nps.cache as c

    def kill(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    c.os.replace = kill  # this process dies at the rename
    c.cached_arrays("demo", "k", lambda: {"x": np.full(1000, 9.0, np.float32)}, root=Path(root))


def test_build_killed_before_rename_is_never_read(tmp_path: Path) -> None:
    _assert_spawn_children_will_not_rerun_a_page()
    ctx = multiprocessing.get_context("spawn")
    p = ctx.Process(target=_die_before_rename, args=(str(tmp_path),))
    p.start()
    p.join(120)
    assert p.exitcode == -signal.SIGKILL
    assert not _entry(tmp_path, "demo", "k").exists()
    assert len(_tmp_files(tmp_path)) == 1  # the orphan, complete but never renamed
    assert list_entries(tmp_path) == []
    build = Builder(1.0)
    got = cached_arrays("demo", "k", build, root=tmp_path)
    assert build.calls == 1 and float(got["x"][0]) == 1.0  # built afresh, the orphan ignored
    clear(None, tmp_path)
    assert _tmp_files(tmp_path) == [] and list(tmp_path.iterdir()) == []


def _concurrent_builder(root: str, log_path: str, barrier, results) -> None:
    """Child process: build the same entry as its sibling, at the same moment."""
    from nps.cache import cached_arrays as ca

    def build() -> dict[str, np.ndarray]:
        with open(log_path, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # widen the window in which an unlocked second builder would collide
        return {"x": np.arange(200_000, dtype=np.float64), "y": np.eye(50, dtype=np.float32)}

    barrier.wait()
    arrays = ca("demo", "shared", build, meta={"who": os.getpid()}, root=Path(root))
    results.put((float(arrays["x"].sum()), float(arrays["y"].sum())))


def _assert_spawn_children_will_not_rerun_a_page() -> None:
    """A spawn child imports ``__main__.__file__``; after an AppTest that was a Streamlit page.

    conftest's ``_restore_main_module`` puts pytest's own back after every test.
    """
    import sys
    main_file = str(getattr(sys.modules.get("__main__"), "__file__", "") or "")
    repo = Path(__file__).resolve().parents[1]
    assert not main_file.startswith(str(repo / "pages")) and not main_file.endswith("streamlit_app.py"), main_file


def test_two_concurrent_builders_build_once_and_leave_a_valid_file(tmp_path: Path) -> None:
    _assert_spawn_children_will_not_rerun_a_page()
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    log_path = tmp_path / "builds.log"
    procs = [ctx.Process(target=_concurrent_builder, args=(str(tmp_path), str(log_path), barrier, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    expected = (float(np.arange(200_000, dtype=np.float64).sum()), 50.0)
    assert got == [expected, expected]
    # The file lock serialises the builders: the second found the first's entry.
    assert len(log_path.read_text().split()) == 1
    hit = load_validated_npz(_entry(tmp_path, "demo", "shared"), "shared")
    assert hit is not None
    np.testing.assert_array_equal(hit[0]["x"], np.arange(200_000, dtype=np.float64))
    assert _tmp_files(tmp_path) == []


def test_unlockable_cache_still_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    """A read-only cache folder (the lock file cannot be created) degrades to no caching."""
    def no_lock(path: Path) -> None:
        raise PermissionError(13, "Permission denied", str(path) + ".lock")

    monkeypatch.setattr(cache, "file_lock", no_lock)
    build = Builder(4.0)
    with caplog.at_level(logging.WARNING, logger="nps.cache"):
        got = cached_arrays("demo", "k", build, root=tmp_path)
    assert float(got["x"][0]) == 4.0 and build.calls == 1
    assert any("without caching" in r.getMessage() for r in caplog.records)
    assert not _entry(tmp_path, "demo", "k").exists()


def test_bad_kind_or_key_is_refused(tmp_path: Path) -> None:
    for kind, key in (("", "k"), ("demo", ""), ("a/b", "k"), ("demo", "k-1"), ("demo", "../x")):
        with pytest.raises(ValueError):
            cached_arrays(kind, key, Builder(), root=tmp_path)


# --------------------------------------------------------------------------- list and clear

def test_list_entries_reports_kind_key_size_meta_newest_first(tmp_path: Path) -> None:
    cached_arrays("embeddings", "aaa1", Builder(), meta={"corpus": "digits", "subset": 100}, root=tmp_path)
    cached_arrays("index", "bbb2", Builder(n=5000), meta={"index_kind": "ivf"}, root=tmp_path)
    now = time.time()
    os.utime(_entry(tmp_path, "embeddings", "aaa1"), (now - 100, now - 100))
    entries = list_entries(tmp_path)
    assert [(e.kind, e.key) for e in entries] == [("index", "bbb2"), ("embeddings", "aaa1")]
    for e in entries:
        assert e.size == e.path.stat().st_size > 0
        assert e.meta["key"] == e.key and e.meta["kind"] == e.kind
        assert "created" in e.meta and "sha256" in e.meta
    assert entries[1].meta["corpus"] == "digits" and entries[1].meta["subset"] == 100
    assert entries[0].meta["arrays"]["x"] == {"shape": [5000], "dtype": "<f4"}
    (tmp_path / "junk-zzz9.npz").write_bytes(b"not a zip")  # listed, with empty meta
    assert {e.key: e.meta for e in list_entries(tmp_path)}["zzz9"] == {}


def test_clear_by_key_by_kind_and_all(tmp_path: Path) -> None:
    for kind, key in (("embeddings", "aaa1"), ("embeddings", "abc2"), ("index", "ccc3"), ("pca", "ddd4")):
        cached_arrays(kind, key, Builder(), root=tmp_path)
    (tmp_path / ".pca-ddd4.npz.123.tmp").write_bytes(b"orphan")
    assert [p.name for p in clear("aaa", tmp_path)] == ["embeddings-aaa1.npz"]
    assert sorted(p.name for p in clear("index", tmp_path)) == ["index-ccc3.npz"]  # file-name prefix
    assert {e.key for e in list_entries(tmp_path)} == {"abc2", "ddd4"}
    assert clear("nothing-matches", tmp_path) == []
    with pytest.raises(ValueError):
        clear("", tmp_path)
    assert len(clear(None, tmp_path)) == 2
    assert list(tmp_path.iterdir()) == []  # entries, lock files and temp files all gone


# --------------------------------------------------------------------------- CLI

@pytest.mark.parametrize("argv", [["cache", "--help"], ["cache", "ls", "--help"], ["cache", "clear", "--help"]])
def test_cache_help_exits_0(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


def _one_error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(("argv", "needle"), [
    (["cache", "clear"], "--all"),
    (["cache"], "cache ls"),
    (["cache", "clear", "no-such-key"], "no cache entry matches"),
])
def test_cache_bad_input_exits_2_with_one_line(argv: list[str], needle: str, cache_dir: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    assert needle in _one_error_line(capsys)


def test_cache_clear_all_and_key_together_is_a_usage_error(cache_dir: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["cache", "clear", "--all", "abc"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_cache_ls_and_clear_cli(cache_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["cache", "ls"]) == 0
    assert "empty" in capsys.readouterr().out
    cached_arrays("embeddings", "feed1234", Builder(), meta={"corpus": "digits", "encoder": "pca-x"})
    cached_arrays("index", "beef5678", Builder(), meta={"index_kind": "hnsw"})
    assert main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    assert "feed1234" in out and "beef5678" in out
    assert "corpus=digits" in out and "encoder=pca-x" in out and "index_kind=hnsw" in out
    assert "2 entries" in out
    assert main(["cache", "ls", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["key"] for r in rows} == {"feed1234", "beef5678"}
    assert main(["cache", "clear", "feed"]) == 0
    assert "embeddings-feed1234.npz" in capsys.readouterr().out
    assert [e.key for e in list_entries()] == ["beef5678"]
    assert main(["cache", "clear", "--all"]) == 0
    assert list_entries() == []


# --------------------------------------------------------------------------- one writer, one mode

def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_one_atomic_writer_gives_records_embeddings_weights_and_entries_one_mode(tmp_path: Path,
                                                                                  digits) -> None:
    """Records used to be 0600 (mkstemp's mode) while cache entries were 0644."""
    import torch

    from nps.cli.embed import save_npz_atomic
    from nps.config import GenerationConfig
    from nps.encoders.simclr import save_weights
    from nps.engine.sampler import generate

    expected = cache.file_mode()
    assert expected == 0o666 & ~cache._UMASK
    cached_arrays("demo", "k", Builder(), root=tmp_path)
    rec = generate(GenerationConfig(corpus="digits", n=1, window=3, seed_size=2, radius=1, k=8, encoder="pca",
                                    constraints=("ssd", "loc")), digits)
    written = [_entry(tmp_path, "demo", "k"), rec.save(tmp_path / "rec.npz")]
    save_npz_atomic(tmp_path / "emb.npz", {"x": np.zeros(3, np.float32)})
    save_weights(tmp_path / "w.safetensors", torch.nn.Linear(2, 2), {"corpus": "digits"})
    written += [tmp_path / "emb.npz", tmp_path / "w.safetensors"]
    assert {p.name: _mode(p) for p in written} == {p.name: expected for p in written}
    assert _tmp_files(tmp_path) == []


def test_atomic_write_failure_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    def half(f) -> None:
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(cache.WriteError, match=r"cannot write .*x\.bin.*No space left on device") as exc:
        cache.atomic_write(tmp_path / "x.bin", half)
    assert "\n" not in str(exc.value)
    with pytest.raises(cache.WriteError, match="No such file or directory"):
        cache.atomic_write(tmp_path / "missing" / "x.bin", lambda f: f.write(b"x"))
    with pytest.raises(KeyError):  # a bug in the writer is not dressed up as a user error, and cleaned up
        cache.atomic_write(tmp_path / "y.bin", lambda f: {}["nope"])
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- quota and LRU eviction

def _kb_builder(kb: int, value: float = 1.0) -> Builder:
    return Builder(value, n=kb * 256)  # float32: 1 KiB per 256 values


def _keys(root: Path) -> set[str]:
    return {e.key for e in list_entries(root)}


def test_quota_evicts_least_recently_used_and_a_hit_counts_as_use(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("NPS_CACHE_QUOTA_MB", str(250 / 1024))  # 250 KiB: two 100 KiB entries fit, not three
    k = [content_key("entry", i) for i in range(4)]
    cached_arrays("demo", k[0], _kb_builder(100), root=tmp_path)
    time.sleep(0.02)
    cached_arrays("demo", k[1], _kb_builder(100), root=tmp_path)
    time.sleep(0.02)
    again = _kb_builder(100)
    cached_arrays("demo", k[0], again, root=tmp_path)  # a hit: k0 becomes the most recently used
    assert again.calls == 0
    time.sleep(0.02)
    with caplog.at_level(logging.WARNING, logger="nps.cache"):
        cached_arrays("demo", k[2], _kb_builder(100), root=tmp_path)
    assert _keys(tmp_path) == {k[0], k[2]}  # k1 was the least recently used
    assert any("evicted 1 least-recently-used entry" in r.getMessage() and f"demo-{k[1]}.npz" in r.getMessage()
               for r in caplog.records)
    assert cache_quota.usage(tmp_path) <= cache_quota.quota_bytes()


def test_quota_never_evicts_shipped_pinned_locked_or_foreign_files(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("NPS_CACHE_QUOTA_MB", "off")  # set up first, then squeeze
    (tmp_path / "README.md").write_text("shipped\n" * 7700)  # ~60 KiB
    (tmp_path / ".gitignore").write_text("*\n")
    (tmp_path / "my-record.npz").write_bytes(b"x" * 20_000)  # not <kind>-<16 hex>: someone's own file
    pinned, locked, old, new = (content_key(w) for w in ("pinned", "locked", "old", "new"))
    for key in (pinned, locked, old):
        cached_arrays("demo", key, _kb_builder(40), root=tmp_path)
    cache_quota.pin(_entry(tmp_path, "demo", pinned))
    past = time.time() - 1000
    for key in (pinned, locked, old):
        os.utime(_entry(tmp_path, "demo", key), (past, past))  # all three older than anything else
    monkeypatch.setenv("NPS_CACHE_QUOTA_MB", str(150 / 1024))
    with cache.file_lock(_entry(tmp_path, "demo", locked)), caplog.at_level(logging.WARNING, logger="nps.cache"):
        cached_arrays("demo", new, _kb_builder(40), root=tmp_path)  # meanwhile `locked` is being rebuilt
    assert not _entry(tmp_path, "demo", old).exists()
    for key in (pinned, locked, new):
        assert _entry(tmp_path, "demo", key).exists()
    assert (tmp_path / "README.md").exists() and (tmp_path / ".gitignore").exists()
    assert (tmp_path / "my-record.npz").exists()
    assert any("still uses" in r.getMessage() for r in caplog.records)  # over quota, and it says why
    # Released and unpinned, both become evictable again; the newest entry stays.
    cache_quota.unpin(_entry(tmp_path, "demo", pinned))
    evicted = cache_quota.enforce_quota(tmp_path)
    assert {p.name for p in evicted} == {f"demo-{pinned}.npz", f"demo-{locked}.npz"}
    assert _entry(tmp_path, "demo", new).exists() and (tmp_path / "my-record.npz").exists()
    assert cache_quota.usage(tmp_path) <= cache_quota.quota_bytes()


def test_an_entry_larger_than_the_quota_is_used_not_stored(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPS_CACHE_QUOTA_MB", str(10 / 1024))
    got = cached_arrays("demo", content_key("big"), _kb_builder(100, 2.0), root=tmp_path)
    assert float(got["x"][0]) == 2.0
    assert list_entries(tmp_path) == []


@pytest.mark.parametrize("raw", ["lots", "-1", "0", "nan", "inf"])
def test_bad_quota_setting_is_one_line_before_any_build(raw: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPS_CACHE_QUOTA_MB", raw)
    build = Builder()
    with pytest.raises(NPSError, match="NPS_CACHE_QUOTA_MB"):
        cached_arrays("demo", content_key("q"), build, root=tmp_path)
    assert build.calls == 0


def test_quota_default_and_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NPS_CACHE_QUOTA_MB", raising=False)
    assert cache_quota.quota_bytes() == 2048 * 2**20
    monkeypatch.setenv("NPS_CACHE_QUOTA_MB", "off")
    assert cache_quota.quota_bytes() is None


# --------------------------------------------------------------------------- read-only mode

def test_read_only_switch_agrees_with_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from app_support.sidebar import read_only as app_read_only
    for value in ("", "0", "false", "no", "1", "yes", "True", "False", "2", " "):
        monkeypatch.setenv("NPS_APP_READONLY", value)
        monkeypatch.delenv("NPS_CACHE_READONLY", raising=False)
        assert cache.read_only() == app_read_only(), value


@pytest.mark.parametrize("var", ["NPS_CACHE_READONLY", "NPS_APP_READONLY"])
def test_read_only_cache_builds_in_memory_and_writes_nothing(var: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    hit_key = content_key("warm")
    cached_arrays("demo", hit_key, Builder(7.0), root=tmp_path)  # pre-warmed by the host
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    monkeypatch.setenv(var, "1")
    build = Builder(3.0)
    assert float(cached_arrays("demo", content_key("cold"), build, root=tmp_path)["x"][0]) == 3.0
    assert float(cached_arrays("demo", hit_key, Builder(), root=tmp_path)["x"][0]) == 7.0  # hits still work
    assert build.calls == 1
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before  # no file made, none touched
    with pytest.raises(NPSError, match="read-only"):
        clear(None, tmp_path)


# --------------------------------------------------------------------------- temp files of killed writers

def test_stale_temp_files_are_listed_and_removed_by_the_next_build(tmp_path: Path, cache_dir: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    ctx = multiprocessing.get_context("spawn")
    p = ctx.Process(target=_die_before_rename, args=(str(cache_dir),))
    p.start()
    p.join(120)
    assert p.exitcode == -signal.SIGKILL
    orphan = _tmp_files(cache_dir)
    assert len(orphan) == 1 and f".{p.pid}." in orphan[0].name  # the name says who wrote it
    live = cache_dir / f".demo-live.npz.{os.getpid()}.abcd1234.tmp"  # a write in progress in this process
    live.write_bytes(b"partial")
    legacy = cache_dir / ".demo-old.npz.abcd1234.tmp"  # no pid in the name: stale only by age
    legacy.write_bytes(b"x")
    assert main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    assert orphan[0].name in out and live.name in out and "3 temp files" in out
    assert "stale: its writer is gone" in out and f"a write in progress by pid {os.getpid()}" in out
    cached_arrays("demo", "other", Builder(), root=cache_dir)  # the next build cleans up
    assert not orphan[0].exists()
    assert live.exists() and legacy.exists()
    old = time.time() - cache_quota.STALE_AFTER_S - 10
    os.utime(legacy, (old, old))
    cached_arrays("demo", "third", Builder(), root=cache_dir)
    assert not legacy.exists() and live.exists()


# --------------------------------------------------------------------------- CLI edge cases

def test_cache_clear_on_a_read_only_folder_is_one_line(cache_dir: Path, capsys: pytest.CaptureFixture) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    cached_arrays("embeddings", "feed1234", Builder())
    cache_dir.chmod(0o555)
    try:
        assert main(["cache", "clear", "--all"]) == 2
        line = _one_error_line(capsys)
        assert "not writable" in line and "embeddings-feed1234.npz" in line
    finally:
        cache_dir.chmod(0o755)
    assert [e.key for e in list_entries()] == ["feed1234"]


def test_cache_clear_when_an_unlink_fails_is_one_line(cache_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    """The same path as a read-only folder, for a test run as root (which ignores permissions)."""
    cached_arrays("embeddings", "feed1234", Builder())

    def refuse(self, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)
    assert main(["cache", "clear", "feed"]) == 2
    line = _one_error_line(capsys)
    assert "embeddings-feed1234.npz" in line and "Permission denied" in line and "not writable" in line


@pytest.mark.parametrize(("argv", "needle"), [
    (["cache", "clear", ""], "KEY is empty"),
    (["cache", "clear", "   "], "KEY is empty"),
    (["cache", "clear", "zzzz"], "no cache entry matches 'zzzz'"),
    (["cache", "pin", "zzzz"], "no cache entry matches 'zzzz'"),
    (["cache", "pin"], "--all"),
    (["cache", "unpin", ""], "KEY is empty"),
])
def test_cache_key_edge_cases_are_one_line(argv: list[str], needle: str, cache_dir: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    cached_arrays("embeddings", "feed1234", Builder())
    assert main(argv) == 2
    assert needle in _one_error_line(capsys)
    assert [e.key for e in list_entries()] == ["feed1234"]


def test_cache_clear_under_read_only_mode_is_one_line(cache_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    cached_arrays("embeddings", "feed1234", Builder())
    monkeypatch.setenv("NPS_APP_READONLY", "1")
    assert main(["cache", "clear", "--all"]) == 2
    assert "read-only" in _one_error_line(capsys)
    assert [e.key for e in list_entries()] == ["feed1234"]


def test_cache_ls_shows_usage_against_the_quota_and_pins(cache_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("NPS_CACHE_QUOTA_MB", "1")
    cached_arrays("embeddings", "feed1234", Builder())
    cached_arrays("index", "beef5678", Builder())
    assert main(["cache", "pin", "feed"]) == 0
    assert "pinned embeddings-feed1234.npz" in capsys.readouterr().out
    assert main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    used = cache_quota.usage(cache_dir)
    assert f"2 entries, {human_size(used)} used of a 1.0 MB quota" in out
    assert "embeddings (pinned)" in out and "index (pinned)" not in out
    assert main(["cache", "ls", "--json"]) == 0
    rows = {r["key"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["feed1234"]["pinned"] is True and rows["beef5678"]["pinned"] is False
    assert main(["cache", "unpin", "--all"]) == 0
    assert not cache_quota.is_pinned(_entry(cache_dir, "embeddings", "feed1234"))


# --------------------------------------------------------------------------- logging reaches the terminal

def test_cli_shows_a_rebuilt_entry_warning_on_the_terminal(tmp_path: Path) -> None:
    """A real `python -m nps` process: the library's WARNING must reach stderr (not only caplog)."""
    import subprocess
    import sys

    root = tmp_path / "cache"
    env = {**os.environ, "NPS_CACHE_DIR": str(root), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = tmp_path / "e.npz"
    cmd = [sys.executable, "-m", "nps", "embed", "--corpus", "digits", "--encoder", "pca", "--out", str(out)]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert first.returncode == 0, first.stderr
    entry = next(root.glob("pca-*.npz"))
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.write_bytes(bytes(data))
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, second.stderr
    assert f"WARNING nps.cache: cache entry {entry.name}" in second.stderr and "rebuilding it" in second.stderr
    assert "Traceback" not in second.stderr


def test_cache_ls_with_a_bad_quota_setting_is_one_line(cache_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    cached_arrays("embeddings", "feed1234", Builder())
    monkeypatch.setenv("NPS_CACHE_QUOTA_MB", "2GB")
    assert main(["cache", "ls"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no half table before the error
    assert captured.err.startswith("error: NPS_CACHE_QUOTA_MB='2GB'") and captured.err.count("\n") == 1
