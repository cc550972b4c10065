"""The derived-artefact cache (``cache/``).

Every entry is one ``.npz`` file named ``<kind>-<key>.npz`` where ``key`` is a
content hash of everything the entry depends on.  Entries are:

* written atomically: a temp file in the same folder, fsync, then ``os.replace``,
  so a build killed midway never leaves a file that is later read;
* validated before use: the entry stores its own key and a sha256 of its arrays;
  a missing, truncated, stale or corrupt file is rebuilt with a warning;
* built under a file lock, so two processes building the same entry at once
  build it once and never corrupt it;
* bounded: after each write the least-recently-used derived entries are evicted
  until the folder fits its quota (``$NPS_CACHE_QUOTA_MB``, default 2048; see
  :mod:`nps.cache_quota`);
* never written in read-only mode (``$NPS_CACHE_READONLY=1``, or the app's
  ``$NPS_APP_READONLY=1``): a missing entry is built in memory and not stored.

:func:`atomic_write` is the project's one writer of finished files (cache entries,
records, embeddings, weights): temp file in the same folder, fsync, the umask's mode (or a given one),
``os.replace``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from nps.errors import NPSError

log = logging.getLogger(__name__)

#: the member of every entry that holds its JSON facts (key, kind, digest, build time)
META_KEY = "__meta__"


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()
_OFF = ("", "0", "false", "no")  # exactly app_support.sidebar.read_only's rule: the app and its cache agree


class WriteError(NPSError):
    """A file could not be written; the one-line message names it, the reason and the fix."""


def read_only() -> bool:
    """Whether this process must not write the cache (``NPS_CACHE_READONLY`` or ``NPS_APP_READONLY``).

    The app's read-only switch implies the cache's, so a public demo server writes
    nothing to ``cache/``; the host pre-warms it from a shell without either variable.
    """
    return any(os.environ.get(v, "") not in _OFF for v in ("NPS_CACHE_READONLY", "NPS_APP_READONLY"))


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file under this process's umask."""
    return 0o666 & ~_UMASK


def _temp_prefix(path: Path) -> str:
    """The hidden temp-file prefix for ``path``: ``.<name>.<pid>.``, the name cut so the temp name stays legal.

    A final name of up to 255 bytes is legal, but ``.<name>.<pid>.<random>.tmp`` is about
    25 bytes longer: uncut, a long ``--out`` passed every check and failed after the run.
    """
    return f".{path.name[:100]}.{os.getpid()}."


def check_name(path: str | Path) -> None:
    """Raise WriteError if ``path``'s file name is longer than its folder allows (before any work)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    size = len(os.fsencode(path.name))
    if size > limit or len(os.fsencode(str(path))) > 4000:
        raise WriteError(f"cannot write '{str(path)[:80]}…': the file name is too long ({size} bytes; this folder "
                         f"allows {limit}); choose a shorter name.")


def probe_writable(path: str | Path) -> None:
    """Check, before any work, that a file can really be created beside ``path``.

    ``os.access`` answers yes to root even on a read-only mount or a full disk, so this
    creates (and at once removes) a hidden temp file in the target folder.

    Raises:
        WriteError: ``path`` is a folder, or the folder does not take a new file.
    """
    path = Path(path)
    check_name(path)
    try:
        is_dir = path.is_dir()
    except OSError as exc:
        raise WriteError(f"cannot write '{path}' ({exc.strerror or exc}); choose another path.") from None
    if is_dir:
        raise WriteError(f"cannot write '{path}': it is a folder; give a file name.")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=folder)
    except OSError as exc:
        raise WriteError(f"cannot write into '{folder}' ({exc.strerror or exc}); choose a writable path.") from None
    os.close(fd)
    os.unlink(tmp)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], mode: int | None = None) -> Path:
    """Write a file atomically: ``write(f)`` into a temp file in the same folder, then rename.

    The project's one file writer (records, cache entries, shipped weights and manifests,
    trained models).  The temp file is ``.<name>.<pid>.<random>.tmp`` (hidden, and naming its
    writer so a leftover of a killed writer can be recognised, see :mod:`nps.cache_quota`); it is
    fsynced, given ``mode`` (default :func:`file_mode`, what a plain ``open`` would give; ``mkstemp``
    alone makes it 0600) and ``os.replace``-d over ``path``, so a reader sees the old file or the
    complete new one, never a part.

    Raises:
        WriteError: any ``OSError`` (unwritable folder, disk full ...), as one line;
            the temp file is removed.  Other exceptions from ``write`` propagate, also
            after removing the temp file.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OSError):
            reason = exc.strerror or type(exc).__name__
            raise WriteError(f"cannot write '{path}' ({reason}); choose a writable folder with free space.") from None
        raise
    return path


def write_text(path: str | Path, text: str, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) through :func:`atomic_write`: a full disk is one WriteError line, never half a file."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), mode)


def cache_root() -> Path:
    """The cache folder: ``$NPS_CACHE_DIR`` or ``cache/`` at the project root."""
    env = os.environ.get("NPS_CACHE_DIR")
    root = Path(env) if env else Path(__file__).resolve().parents[1] / "cache"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NPSError(f"cannot create the cache folder {root} ({exc.strerror}); "
                       "set NPS_CACHE_DIR to a writable folder.") from None
    return root


def content_key(*parts: object) -> str:
    """A 16-hex-char sha256 of the parts' reprs (bytes and arrays hashed by content)."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(repr((p.shape, str(p.dtype))).encode())
            h.update(np.ascontiguousarray(p).data)
        elif isinstance(p, bytes | bytearray):
            h.update(p)
        else:
            h.update(repr(p).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(repr((a.shape, str(a.dtype))).encode())
        h.update(a.data)
    return h.hexdigest()


def atomic_save_npz(path: Path, arrays: dict[str, np.ndarray], meta: dict | None = None) -> None:
    """Write arrays (and a JSON ``meta`` with their sha256) to ``path`` atomically.

    Raises:
        WriteError: the file cannot be written (see :func:`atomic_write`).
    """
    path = Path(path)
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    meta = dict(meta or {})
    meta["sha256"] = _arrays_digest(arrays)
    meta["arrays"] = {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()}
    payload = dict(arrays)
    # default=str: a numpy scalar or a Path in the caller's meta must not lose a finished build.
    payload[META_KEY] = np.array(json.dumps(meta, sort_keys=True, default=str))
    atomic_write(path, lambda f: np.savez(f, **payload))


def load_validated_npz(path: Path, key: str | None = None, quiet: bool = False,
                       touch: bool = True) -> tuple[dict[str, np.ndarray], dict] | None:
    """Load an entry written by :func:`atomic_save_npz` if it is intact.

    Checks, in order: the file parses (zip CRCs included), its stored key equals
    ``key``, every array has the stored shape and dtype, and the arrays hash to
    the stored sha256.  Never raises for a damaged file; logs a warning for one
    (unless ``quiet``).  A valid entry is ``touch``-ed (its mtime set to now), so the
    quota's least-recently-used eviction sees every use, not just the build.

    Returns:
        (arrays, meta), or None if the file is absent, unreadable, has another key,
        or its arrays do not match the stored shapes, dtypes or sha256.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z[META_KEY]))
            if not isinstance(meta, dict):
                raise ValueError("meta is not a JSON object")
            arrays = {k: z[k] for k in z.files if k != META_KEY}
    except Exception as exc:  # a flipped byte can surface as almost any exception
        if not quiet:
            log.warning("cache entry %s is unreadable (%s: %s); rebuilding it", path.name, type(exc).__name__, exc)
        return None
    if key is not None and meta.get("key") != key:
        if not quiet:
            log.warning("cache entry %s is stale (key %s, expected %s); rebuilding it",
                        path.name, meta.get("key"), key)
        return None
    layout = {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()}
    if "arrays" in meta and meta["arrays"] != layout:
        if not quiet:
            log.warning("cache entry %s has arrays of the wrong shape or dtype; rebuilding it", path.name)
        return None
    if meta.get("sha256") != _arrays_digest(arrays):
        if not quiet:
            log.warning("cache entry %s failed its checksum; rebuilding it", path.name)
        return None
    if touch and not read_only():
        with contextlib.suppress(OSError):  # a read-only folder: LRU order is then moot (nothing is written)
            os.utime(path)
    return arrays, meta


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` + ``.lock`` (blocks until free)."""
    lock_path = Path(str(path) + ".lock")
    with open(lock_path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def entry_path(kind: str, key: str, root: Path | None = None) -> Path:
    """Where :func:`cached_arrays` keeps the entry ``<kind>-<key>.npz`` (whether or not it is there)."""
    return (Path(root) if root is not None else cache_root()) / f"{kind}-{key}.npz"


def cached_arrays(kind: str, key: str, build: Callable[[], dict[str, np.ndarray]],
                  meta: dict | None = None, root: Path | None = None) -> dict[str, np.ndarray]:
    """Return the entry ``<kind>-<key>.npz``, building and storing it if needed.

    A build first removes stale temp files of killed writers; a write is followed by
    quota enforcement (:func:`nps.cache_quota.enforce_quota`, which never evicts this
    entry).  In :func:`read_only` mode nothing is locked, touched or written: a miss is
    built in memory and returned.

    Args:
        kind: a short word for what it is ("embeddings", "index", "pca", ...).
        key: the content hash of the inputs (see :func:`content_key`).
        build: makes the arrays when the entry is missing or invalid.
        meta: extra JSON-able facts to store (shown by ``nps cache ls``).
    Raises:
        NPSError: ``$NPS_CACHE_QUOTA_MB`` is not a number (before any build).
    """
    from nps import cache_quota

    if not kind or not key or "/" in kind or "/" in key or "-" in key:
        raise ValueError(f"bad cache kind/key {kind!r}/{key!r}: no '/' in either and no '-' in the key")
    path = entry_path(kind, key, root)
    root = path.parent
    if path.is_file():
        hit = load_validated_npz(path, key)
        if hit is not None:
            log.debug("cache hit %s", path.name)
            return hit[0]
    if read_only():
        log.info("read-only cache: building %s in memory, not storing it (pre-warm it by running the same "
                 "work once without NPS_APP_READONLY / NPS_CACHE_READONLY)", path.name)
        return build()
    quota = cache_quota.quota_bytes()
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(path))
        except OSError as exc:  # e.g. a read-only cache folder: still give the caller its arrays
            log.warning("cannot lock cache entry %s (%s); building it without caching", path.name, exc)
            return build()
        # Another process may have built it while we waited for the lock.  A damaged
        # file was already reported above, so only a fresh, valid one counts here.
        if path.is_file():
            hit = load_validated_npz(path, key, quiet=True)
            if hit is not None:
                return hit[0]
        cache_quota.clean_stale_temps(root)
        t0 = time.perf_counter()
        arrays = {name: np.asarray(a) for name, a in build().items()}
        info = dict(meta or {})
        info.update(key=key, kind=kind, built_s=round(time.perf_counter() - t0, 3),
                    created=time.strftime("%Y-%m-%dT%H:%M:%S"))
        size = sum(a.nbytes for a in arrays.values())
        if quota is not None and size > quota:
            log.warning("cache entry %s (%.1f MB) is larger than the whole cache quota (%.0f MB); using it "
                        "without storing it (raise NPS_CACHE_QUOTA_MB to keep it)", path.name, size / 2**20,
                        quota / 2**20)
            return arrays
        try:
            atomic_save_npz(path, arrays, info)
        except WriteError as exc:
            log.warning("could not write cache entry %s (%s); continuing without caching", path.name, exc)
            return arrays
        log.info("cache built %s in %.2fs", path.name, info["built_s"])
        if quota is not None:
            cache_quota.enforce_quota(root, quota, keep=path)
        return arrays
