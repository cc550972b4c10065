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

from nps import cache
from nps.cache import (
    atomic_save_npz,
    cache_root,
    cached_arrays,
    clear,
    content_key,
    list_entries,
    load_validated_npz,
)
from nps.cli import main


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


def test_two_concurrent_builders_build_once_and_leave_a_valid_file(tmp_path: Path) -> None:
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
