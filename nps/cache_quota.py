"""Keeping ``cache/`` bounded: the size quota, LRU eviction, pins and leftover temp files.

* **Quota.** ``$NPS_CACHE_QUOTA_MB`` (default 2048, ``off`` for none) bounds the bytes
  of every file under the cache folder.  :func:`enforce_quota` runs after each write
  (:func:`nps.cache.cached_arrays`) and evicts *derived entries* least recently used
  first, by mtime: every validated hit touches its entry, so mtime is the last use.
* **Derived entries** are the files the cache made itself: ``<kind>-<16 hex>.npz`` and
  ``<kind>-<16 hex>.safetensors`` (with its ``.json`` sidecar).  Anything else
  (the shipped ``README.md`` and ``.gitignore``, training checkpoints, a user's own
  files in a misdirected ``$NPS_CACHE_DIR``) counts towards the quota but is never
  evicted.  Neither is a *pinned* entry (a ``<entry>.pin`` marker, see :func:`pin`), nor
  one whose build lock is held (it is being built or rebuilt right now).
* **Temp files.** :func:`nps.cache.atomic_write` names its temp file
  ``.<name>.<pid>.<random>.tmp``.  One left by a killed writer is *stale* when that pid
  is no longer alive on this machine, or when it is older than :data:`STALE_AFTER_S`
  (pid reused, or an older name without a pid); a live writer's temp file is never
  touched.  :func:`clean_stale_temps` runs before each build; ``cache ls`` lists them.
* **Listing and clearing** (``nps cache ls`` / ``clear``, the Corpus page): :func:`list_entries`,
  :func:`clear`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nps.cache import META_KEY, cache_root, read_only
from nps.errors import NPSError

log = logging.getLogger("nps.cache")

DEFAULT_QUOTA_MB = 2048
STALE_AFTER_S = 3600.0  # a temp file this old is stale whoever wrote it (a write takes seconds)
_ENTRY = re.compile(r"^(?P<kind>.+)-(?P<key>[0-9a-f]{16})\.(?P<ext>npz|safetensors)$")
_TEMP = re.compile(r"^\.(?P<name>.+?)(?:\.(?P<pid>\d+))?\.[A-Za-z0-9_]+\.tmp$")


def quota_bytes() -> int | None:
    """The cache quota in bytes from ``$NPS_CACHE_QUOTA_MB`` (MiB; default 2048), None if ``off``.

    Raises:
        NPSError: the variable is set to something that is not a positive number or ``off``.
    """
    raw = os.environ.get("NPS_CACHE_QUOTA_MB", "").strip()
    if not raw:
        return DEFAULT_QUOTA_MB * 2**20
    if raw.lower() in ("off", "none", "unlimited"):
        return None
    try:
        mb = float(raw)
    except ValueError:
        mb = math.nan
    if not (math.isfinite(mb) and mb > 0):
        raise NPSError(f"NPS_CACHE_QUOTA_MB={raw!r} is not a positive number of megabytes; set it to e.g. 2048, "
                       "or to 'off' for no quota.")
    return int(mb * 2**20)


def usage(root: Path) -> int:
    """Bytes of every regular file under ``root`` (subfolders included)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):  # removed since the listing
                total += os.stat(os.path.join(folder, name), follow_symlinks=False).st_size
    return total


def is_derived(path: Path) -> bool:
    """Whether ``path`` is a cache-made entry (``<kind>-<16 hex>.npz|.safetensors``), so evictable."""
    return _ENTRY.match(Path(path).name) is not None


def _pin_path(path: Path) -> Path:
    return Path(str(path) + ".pin")


def is_pinned(path: Path) -> bool:
    return _pin_path(path).exists()


def _files_of(path: Path) -> list[Path]:
    """The entry and its sidecar: a safetensors entry keeps its metadata in ``<stem>.json``; an
    index entry may keep its faiss index in ``<stem>.faiss`` (memory-mapped, :mod:`nps.retrieval`)."""
    if path.suffix == ".safetensors":
        return [path, path.with_suffix(".json")]
    return [path, path.with_suffix(".faiss")]


@dataclass(frozen=True)
class Derived:
    path: Path
    size: int
    last_used: float  # mtime: set by the build and by every validated hit


def derived_entries(root: Path) -> list[Derived]:
    """The evictable-in-principle entries at the top of ``root``, least recently used first."""
    out = []
    for p in Path(root).iterdir():
        if not is_derived(p):
            continue
        try:
            st = p.stat()
            size = sum(f.stat().st_size for f in _files_of(p) if f.exists())
        except OSError:  # removed by another process since the listing
            continue
        out.append(Derived(p, size, st.st_mtime))
    out.sort(key=lambda d: (d.last_used, d.path.name))
    return out


def _evict(path: Path) -> bool:
    """Remove an entry unless its build lock is held (someone is building it now)."""
    lock = Path(str(path) + ".lock")
    try:
        f = open(lock, "rb")  # noqa: SIM115 - closed below; "rb" never creates a lock file
    except FileNotFoundError:
        f = None  # never locked: nobody is building it (a builder creates the lock first)
    except OSError:
        return False
    try:
        if f is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # held: a build of this entry is in progress
        for p in _files_of(path):
            p.unlink(missing_ok=True)
        return True
    except OSError as exc:
        log.warning("could not evict cache entry %s (%s)", path.name, exc.strerror or exc)
        return False
    finally:
        if f is not None:
            f.close()  # also releases the lock


def enforce_quota(root: Path, quota: int | None = None, keep: Path | None = None) -> list[Path]:
    """Evict least-recently-used derived entries until ``root`` uses at most ``quota`` bytes.

    Never evicts ``keep`` (the entry just written), pinned entries, entries whose
    build lock is held, or files that are not derived entries.  Logs one WARNING
    naming what was evicted, and one if the folder is still over its quota.

    Args:
        quota: bytes; default :func:`quota_bytes`; None means no quota.
    Returns:
        the evicted entry paths, oldest use first.
    """
    root = Path(root)
    if quota is None:
        quota = quota_bytes()
        if quota is None:
            return []
    used = usage(root)
    if used <= quota:
        return []
    evicted: list[Path] = []
    freed = 0
    for d in derived_entries(root):
        if used - freed <= quota:
            break
        if (keep is not None and d.path == Path(keep)) or is_pinned(d.path):
            continue
        if _evict(d.path):
            evicted.append(d.path)
            freed += d.size
    if evicted:
        log.warning("cache %s was over its %.0f MB quota: evicted %d least-recently-used entr%s (%.1f MB): %s",
                    root, quota / 2**20, len(evicted), "y" if len(evicted) == 1 else "ies", freed / 2**20,
                    ", ".join(p.name for p in evicted))
    if used - freed > quota:
        log.warning("cache %s still uses %.1f MB of its %.0f MB quota: the rest is pinned, in use or not a "
                    "derived entry; raise NPS_CACHE_QUOTA_MB or `python -m nps cache unpin`.",
                    root, (used - freed) / 2**20, quota / 2**20)
    return evicted


def pin(path: Path) -> Path:
    """Mark an entry as never evicted (an empty ``<entry>.pin`` file); returns the marker."""
    marker = _pin_path(path)
    marker.touch()
    return marker


def unpin(path: Path) -> bool:
    """Remove an entry's pin; True if it was pinned."""
    marker = _pin_path(path)
    existed = marker.exists()
    marker.unlink(missing_ok=True)
    return existed


# --------------------------------------------------------------------------- temp files
@dataclass(frozen=True)
class TempFile:
    path: Path
    size: int
    age_s: float
    pid: int | None  # the writer, when the name records it
    stale: bool  # writer gone, or older than STALE_AFTER_S


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OverflowError:
        return False
    return True


def temp_files(root: Path, now: float | None = None) -> list[TempFile]:
    """Hidden ``.*.tmp`` files under ``root``: writes in progress or leftovers of killed writers."""
    now = time.time() if now is None else now
    out = []
    for p in sorted(Path(root).glob(".*.tmp")):
        try:
            st = p.stat()
        except OSError:
            continue
        m = _TEMP.match(p.name)
        pid = int(m["pid"]) if m and m["pid"] else None
        age = max(0.0, now - st.st_mtime)
        gone = pid is not None and pid != os.getpid() and not _alive(pid)
        out.append(TempFile(p, st.st_size, age, pid, gone or age > STALE_AFTER_S))
    return out


def clean_stale_temps(root: Path) -> list[Path]:
    """Remove stale temp files (see :func:`temp_files`); returns what was removed."""
    removed = []
    for t in temp_files(root):
        if t.stale:
            with contextlib.suppress(OSError):
                t.path.unlink()
                removed.append(t.path)
    if removed:
        log.info("removed %d leftover temp file%s of interrupted writes: %s", len(removed),
                 "" if len(removed) == 1 else "s", ", ".join(p.name for p in removed))
    return removed


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    kind: str
    key: str
    size: int
    meta: dict
    mtime: float = 0.0  # last use (the quota's LRU clock), as listed


def list_entries(root: Path | None = None) -> list[CacheEntry]:
    """Every ``.npz`` entry under the cache root, newest first."""
    root = Path(root) if root is not None else cache_root()
    out = []
    for p in root.glob("*.npz"):
        try:
            st = p.stat()
        except OSError:  # removed by another process since the glob
            continue
        kind, _, key = p.stem.rpartition("-")
        meta: dict = {}
        if not stat.S_ISREG(st.st_mode):  # a FIFO named like an entry would block np.load (and `cache ls`) forever
            out.append((st.st_mtime, CacheEntry(p, kind or p.stem, key, 0, meta, st.st_mtime)))
            continue
        with contextlib.suppress(Exception), np.load(p, allow_pickle=False) as z:
            if META_KEY in z.files:
                loaded = json.loads(str(z[META_KEY]))
                meta = loaded if isinstance(loaded, dict) else {}
        out.append((st.st_mtime, CacheEntry(p, kind or p.stem, key, st.st_size, meta, st.st_mtime)))
    out.sort(key=lambda t: (-t[0], t[1].path.name))
    return [e for _, e in out]


def clear(key: str | None = None, root: Path | None = None) -> list[Path]:
    """Remove entries whose key (or file name) starts with ``key``; all if None.

    Pinned entries are removed too (clearing is explicit; pins only stop eviction),
    with their pin markers and lock files.

    Returns:
        the removed paths.
    Raises:
        ValueError: ``key`` is the empty string (it would match everything).
        NPSError: the cache is read-only (:func:`read_only`) or a file cannot be removed.
    """
    if key is not None and not key:
        raise ValueError("an empty key would match every entry; pass None to clear all")
    root = Path(root) if root is not None else cache_root()
    if read_only():
        raise NPSError(f"the cache {root} is read-only here (NPS_CACHE_READONLY or NPS_APP_READONLY is set); "
                       "unset it to clear the cache.")
    removed = []
    try:
        for e in list_entries(root):
            if key is None or e.key.startswith(key) or e.path.name.startswith(key):
                e.path.unlink(missing_ok=True)
                e.path.with_suffix(".faiss").unlink(missing_ok=True)  # a memory-mapped index's sidecar
                for suffix in (".lock", ".pin"):
                    Path(str(e.path) + suffix).unlink(missing_ok=True)
                removed.append(e.path)
        if key is None:
            # Leftovers of killed builds (temp files are never read), orphaned locks and pins.
            for p in [*root.glob(".*.tmp"), *root.glob("*.npz.lock"), *root.glob("*.npz.pin"), *root.glob("*.faiss")]:
                p.unlink(missing_ok=True)
    except OSError as exc:
        done = f" ({len(removed)} removed before that)" if removed else ""
        raise NPSError(f"cannot remove '{Path(exc.filename or root).name}' from {root} "
                       f"({exc.strerror or type(exc).__name__}){done}; the cache folder is not writable by "
                       "this user: run as its owner, or point NPS_CACHE_DIR elsewhere.") from None
    return removed
