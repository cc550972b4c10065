"""Blank-context entries kept in the cache between processes (:mod:`nps.engine.search_blank`).

A process searches each blank context's kept set once (:data:`~nps.engine.search_blank.STORE`); a
fresh process (the next ``python -m nps generate``, a restarted app, a Ray worker) would search them
all again: 616 entries, about 5 s, for SSD + locality over 60k MNIST, and 44 entries, about 190 s, for
SSD alone.  So the entries of one search scope (the index's cache key, and everything of the config
but what only the samples differ in) are also kept in one cache entry, ``blankkept-KEY.npz``, written
at the end of a run that searched new ones and read on the first blank context of a later process.

The file holds every entry of the scope, concatenated:

- ``key_bytes`` (S,) uint8 and ``key_off`` (E+1,) int64: each entry's key (pool key + band digest);
- ``applies`` (E,) bool: False where the memo does not apply (the entry is None);
- for the P entries that apply, ``per_offset`` (sum O_i,) int64, ``bits`` (sum ceil(M_i/8),) uint8 and
  ``band_start`` (sum O_i + 1,) int64, each with its (P+1,) int64 ``*_off`` offsets, and
  ``fell_back`` (P,) int8 (-1: None, 0 or 1).

The usual cache rules hold: written atomically under a lock (merged with what another process wrote
meanwhile), content-keyed, checked on load (checksum, then :func:`unpack`'s consistency checks: a file
that fails them is ignored and searched again), never written read-only, and only where the quota
has room for it beside everything else (it never evicts).  An entry is
the same exact kept set whoever searched it, so reading it changes no draw.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np

from nps.cache import WriteError, atomic_save_npz, content_key, entry_path, file_lock, load_validated_npz, read_only
from nps.errors import NPSError

log = logging.getLogger(__name__)

BLANK_KIND = "blankkept"  # the cache entries' kind: blankkept-KEY.npz
# The kept sets' meaning: bump it when the search or the threshold rule changes what a kept set holds.
BLANK_VERSION = 1
_PARTS = ("per_offset", "bits", "band_start")
_DTYPES = {"per_offset": np.int64, "bits": np.uint8, "band_start": np.int64}


def scope_key(index_key: str, config_scope: bytes, search_name: str, prune: bool, accept: bool) -> str:
    """The cache key of one search scope's entries (see the module docstring)."""
    return content_key("blank-kept", BLANK_VERSION, index_key, config_scope.hex(), search_name, prune, accept)


def pack(entries: dict) -> dict[str, np.ndarray]:
    """The arrays of the module docstring for ``entries`` {key bytes: BlankKept or None}."""
    keys = list(entries)
    present = [e for e in entries.values() if e is not None]
    out = {"key_bytes": np.frombuffer(b"".join(keys), np.uint8).copy(),
           "key_off": np.cumsum([0, *map(len, keys)]).astype(np.int64),
           "applies": np.array([e is not None for e in entries.values()], bool),
           "fell_back": np.array([-1 if e.fell_back is None else int(e.fell_back[0]) for e in present], np.int8)}
    for name in _PARTS:
        parts = [getattr(e, name) for e in present]
        out[name] = np.concatenate(parts).astype(_DTYPES[name]) if parts else np.zeros(0, _DTYPES[name])
        out[f"{name}_off"] = np.cumsum([0, *map(len, parts)]).astype(np.int64)
    return out


def _offsets(off: np.ndarray, count: int, total: int, what: str) -> np.ndarray:
    if (off.dtype != np.int64 or off.shape != (count + 1,) or off[0] != 0 or off[-1] != total
            or (np.diff(off) < 0).any()):
        raise ValueError(f"{what} offsets do not cover their array")
    return off


def unpack(arrays: dict[str, np.ndarray]) -> dict:
    """{key bytes: BlankKept or None} from :func:`pack`'s arrays.

    Raises:
        ValueError: a missing array, a wrong dtype, or offsets and lengths that do not agree.
    """
    from nps.engine.search_blank import BlankKept
    need = {"key_bytes", "key_off", "applies", "fell_back", *_PARTS, *(f"{p}_off" for p in _PARTS)}
    if not need <= set(arrays):
        raise ValueError(f"missing arrays {sorted(need - set(arrays))}")
    applies = arrays["applies"]
    if applies.dtype != bool or applies.ndim != 1 or arrays["key_bytes"].dtype != np.uint8:
        raise ValueError("applies or key_bytes has the wrong dtype")
    key_off = _offsets(arrays["key_off"], len(applies), len(arrays["key_bytes"]), "key")
    present = int(applies.sum())
    fell = arrays["fell_back"]
    if fell.dtype != np.int8 or fell.shape != (present,) or not np.isin(fell, (-1, 0, 1)).all():
        raise ValueError("fell_back is not one of -1, 0, 1 per entry")
    cols = {}
    for name in _PARTS:
        if arrays[name].dtype != _DTYPES[name] or arrays[name].ndim != 1:
            raise ValueError(f"{name} has the wrong dtype")
        off = _offsets(arrays[f"{name}_off"], present, len(arrays[name]), name)
        cols[name] = [arrays[name][a:b] for a, b in itertools.pairwise(off)]
    found = []
    for i in range(present):
        per_offset, bits, band_start = cols["per_offset"][i], cols["bits"][i], cols["band_start"][i]
        if (len(band_start) != len(per_offset) + 1 or band_start[0] != 0 or (np.diff(band_start) < 0).any()
                or len(bits) != (int(band_start[-1]) + 7) // 8 or (per_offset < 0).any()):
            raise ValueError(f"entry {i}'s band, bits and counts do not agree")
        found.append(BlankKept(per_offset, bits, band_start, None if fell[i] < 0 else np.array([bool(fell[i])])))
    raw, kept = arrays["key_bytes"].tobytes(), iter(found)
    return {raw[a:b]: (next(kept) if ok else None) for (a, b), ok in zip(itertools.pairwise(key_off), applies)}


def load(key: str, quiet: bool = False) -> dict:
    """The scope's entries in the cache ({} when there are none, or the file is damaged: logged unless
    ``quiet``, as when it is about to be overwritten)."""
    path = entry_path(BLANK_KIND, key)
    hit = load_validated_npz(path, key, quiet=quiet, touch=not quiet)
    if hit is None:
        return {}
    try:
        entries = unpack(hit[0])
        if not quiet:
            log.info("read %d blank-context kept sets from %s", len(entries), path.name)
        return entries
    except ValueError as exc:
        if not quiet:
            log.warning("cache entry %s is inconsistent (%s); searching its blank contexts again", path.name, exc)
        return {}


def save(key: str, entries: dict) -> bool:
    """Merge ``entries`` into the scope's cache entry (ours win); whether it was written.

    These files only save time, so one is stored only where it fits the quota beside what is there: it
    never evicts another entry (the window index it belongs to least of all; the app holds that in
    memory for hours without touching its file).  Never raises for the cache: read-only mode, a bad
    quota, a folder that cannot be locked or written, or no room leave the file as it was (logged).
    """
    from nps import cache_quota

    if read_only() or not entries:
        return False
    path = entry_path(BLANK_KIND, key)
    try:
        quota = cache_quota.quota_bytes()
        with file_lock(path):
            merged = {**load(key, quiet=True), **entries}
            arrays = pack(merged)
            size = sum(a.nbytes for a in arrays.values())
            old = path.stat().st_size if path.is_file() else 0
            if quota is not None and cache_quota.usage(path.parent) - old + size > quota:
                log.info("not storing %d blank-context kept sets (%.1f MB): the cache has no room for them under "
                         "its quota without evicting other entries (raise NPS_CACHE_QUOTA_MB to keep them)",
                         len(merged), size / 2**20)
                return False
            atomic_save_npz(path, arrays, {"key": key, "kind": BLANK_KIND, "entries": len(merged)})
            log.info("stored %d blank-context kept sets (%.1f MB) in %s", len(merged), size / 2**20, path.name)
    except (OSError, WriteError, NPSError) as exc:
        log.warning("could not store the blank-context entries %s (%s); continuing without", path.name, exc)
        return False
    return True
