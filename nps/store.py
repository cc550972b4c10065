"""The corpus store: a corpus written once to disk as memory-mapped arrays.

A stored corpus is a folder ``<store root>/corpus-<key>/`` holding

==================  =====================  ===========================================
file                shape, dtype           meaning
==================  =====================  ===========================================
``train.npy``       (N,H,W[,C]) uint8      train images; the image id is the row
``labels.npy``      (N,) uint8             train labels
``ids.npy``         (N,) int64             the row each image derives from in its base
                                           corpus (``arange(N)`` for a plain corpus)
``test.npy``        (M,H,W[,C]) uint8      test images
``test_labels.npy`` (M,) uint8             test labels
``manifest.json``   JSON                   name, key, shapes, class names, source and the
                                           :attr:`Corpus.content_hash` of the data
==================  =====================  ===========================================

Opening it (:func:`open_store`) maps ``train.npy`` with ``np.load(mmap_mode="r")``: nothing
is read until a row is used, so a corpus of millions costs no memory until the sampler
touches it.  The rules are :mod:`nps.cache`'s:

* **atomic**: the arrays are written into a hidden temp folder, fsynced, and renamed into
  place, so a killed build leaves no folder that is later read;
* **validated**: a store is used only if its manifest parses, names the expected key and
  every file has exactly the manifest's shape and dtype; ``verify=True`` also recomputes the
  content hash (reads every byte);
* **single build**: the build holds :func:`nps.cache.file_lock`, so two processes
  building the same corpus at once build it once;
* **bounded**: under ``cache/`` the store counts towards the quota; before a build the
  least-recently-used derived entries are evicted to make room, and a store that cannot
  fit is refused with one line (raise ``NPS_CACHE_QUOTA_MB`` or put the store elsewhere);
* **read-only mode** writes nothing: a missing store is built in memory if it is small
  (:data:`MAX_IN_MEMORY_BYTES`), refused with one line otherwise.

``$NPS_STORE_DIR`` moves the store (e.g. to storage shared by the nodes of a Ray cluster);
the default is ``cache/store``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nps.cache import atomic_write, cache_root, file_lock, read_only
from nps.corpora import Corpus
from nps.errors import NPSError

log = logging.getLogger(__name__)

STORE_VERSION = 1
FILES = ("train", "labels", "ids", "test", "test_labels")
MAX_IN_MEMORY_BYTES = 256 * 2**20


def store_root() -> Path:
    """``$NPS_STORE_DIR``, or ``store/`` inside the cache folder."""
    env = os.environ.get("NPS_STORE_DIR")
    root = Path(env).expanduser() if env else cache_root() / "store"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NPSError(f"cannot create the corpus store {root} ({exc.strerror}); set NPS_STORE_DIR to a "
                       "writable folder.") from None
    return root


@dataclass(frozen=True)
class StoreSpec:
    """What a store will hold, known before any image is made.

    Attributes:
        key: 16 hex chars naming the store (a hash of everything the data depends on).
        name: the corpus name (``mnist-deformed:1000000`` ...).
        n: train images; image_shape: (H,W) or (H,W,C).
        test, test_labels: (M,H,W[,C]) uint8 and (M,) int64, small enough to hold.
        class_names, source: as in :class:`Corpus`.
    """

    key: str
    name: str
    n: int
    image_shape: tuple[int, ...]
    test: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    source: str

    @property
    def nbytes(self) -> int:
        return self.n * (int(np.prod(self.image_shape)) + 1 + 8) + self.test.nbytes + len(self.test_labels)


# (start, stop) -> (images (S,H,W[,C]) uint8, labels (S,) int64, ids (S,) int64) for rows start..stop-1.
ChunkFn = Callable[[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]


class _Hasher:
    """:attr:`Corpus.content_hash` computed while streaming, so a store never rereads what it wrote."""

    def __init__(self, spec: StoreSpec) -> None:
        self.h = hashlib.sha256()
        train_shape = (spec.n, *spec.image_shape)
        self.h.update(repr((train_shape, "uint8", None, spec.test.shape, "uint8")).encode())

    def update(self, a: np.ndarray) -> None:
        self.h.update(np.ascontiguousarray(a).data)

    def finish(self, spec: StoreSpec, labels: np.ndarray) -> str:
        self.update(spec.test)
        self.update(np.asarray(labels, np.int64))
        self.update(np.asarray(spec.test_labels, np.int64))
        return self.h.hexdigest()[:16]


def _folder(spec_key: str, root: Path | None = None) -> Path:
    return (root or store_root()) / f"corpus-{spec_key}"


def _check_fits(root: Path, need: int) -> None:
    """Make room for ``need`` bytes under the cache quota (evicting LRU entries), or refuse."""
    from nps import cache_quota
    cache = cache_root().resolve()
    if not root.resolve().is_relative_to(cache):
        return  # outside cache/: shared storage, the user's to size
    quota = cache_quota.quota_bytes()
    if quota is None:
        return
    if need > quota:
        raise NPSError(f"the corpus store needs {need / 2**20:.0f} MB, more than the whole cache quota "
                       f"({quota / 2**20:.0f} MB); raise NPS_CACHE_QUOTA_MB or set NPS_STORE_DIR to a folder "
                       "outside the cache.")
    cache_quota.enforce_quota(cache, quota - need)


def _clean_stale(root: Path) -> None:
    """Remove temp folders of killed builds (``.corpus-<key>.<pid>.tmp`` whose pid is gone)."""
    for p in root.glob(".corpus-*.tmp"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(p.name.rsplit(".", 2)[-2])
            try:
                os.kill(pid, 0)
                continue  # alive: its writer is still at work
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            shutil.rmtree(p, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(spec: StoreSpec, chunks: ChunkFn, chunk: int, progress: bool) -> Path:
    from tqdm import tqdm
    root = store_root()
    final = _folder(spec.key, root)
    _check_fits(root, spec.nbytes)
    _clean_stale(root)
    tmp = root / f".corpus-{spec.key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        t0 = time.perf_counter()
        labels = np.empty(spec.n, np.int64)
        ids = np.empty(spec.n, np.int64)
        hasher = _Hasher(spec)
        bar = tqdm(total=spec.n, unit="img", desc=f"store {spec.name}", disable=not progress or None)
        # Plain appends after the .npy header, not a writable memmap: dirty mapped pages would
        # count towards this process's RSS (the whole corpus by the end).
        with open(tmp / "train.npy", "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                                     "shape": (spec.n, *spec.image_shape)})
            for s in range(0, spec.n, chunk):
                e = min(spec.n, s + chunk)
                x, y, i = chunks(s, e)
                if x.shape != (e - s, *spec.image_shape) or x.dtype != np.uint8 or y.shape != (e - s,):
                    raise ValueError(f"chunk {s}:{e} has images {x.dtype} {x.shape}, labels {y.shape}")
                x = np.ascontiguousarray(x)
                f.write(x.data)
                labels[s:e], ids[s:e] = y, i
                hasher.update(x)
                bar.update(e - s)
        bar.close()
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise ValueError("labels must fit in uint8")
        np.save(tmp / "ids.npy", ids)
        np.save(tmp / "labels.npy", labels.astype(np.uint8))
        np.save(tmp / "test.npy", np.ascontiguousarray(spec.test, np.uint8))
        np.save(tmp / "test_labels.npy", np.asarray(spec.test_labels).astype(np.uint8))
        manifest = {
            "store_version": STORE_VERSION, "key": spec.key, "name": spec.name, "n": spec.n,
            "image_shape": list(spec.image_shape), "test_n": len(spec.test), "class_names": list(spec.class_names),
            "source": spec.source, "content_hash": hasher.finish(spec, labels),
            "built_s": round(time.perf_counter() - t0, 2), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        for name in FILES:
            _fsync(tmp / f"{name}.npy")
        atomic_write(tmp / "manifest.json", lambda f: f.write(json.dumps(manifest, indent=1).encode()))
        _fsync(tmp)
        if final.exists():  # an invalid leftover (a valid one was returned before the build)
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync(root)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise NPSError(f"cannot write the corpus store {final} ({exc.strerror or exc}); free disk space or "
                           "set NPS_STORE_DIR to a writable folder.") from None
        raise
    log.info("stored %s (%d images) in %s in %.1fs", spec.name, spec.n, final, manifest["built_s"])
    return final


def open_store(folder: Path, key: str | None = None, verify: bool = False) -> Corpus:
    """Open a stored corpus; ``train`` is a read-only memmap (nothing is read until used).

    Raises:
        NPSError: the folder is not an intact store (or not the one ``key`` names).
    """
    folder = Path(folder)
    bad = f"corpus store {folder} is damaged"
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        if not isinstance(manifest, dict) or manifest.get("store_version") != STORE_VERSION:
            raise ValueError("manifest version")
        if key is not None and manifest.get("key") != key:
            raise ValueError(f"key {manifest.get('key')} is not {key}")
        n, shape, m = int(manifest["n"]), tuple(manifest["image_shape"]), int(manifest["test_n"])
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in FILES}
        want = {"train": ((n, *shape), np.uint8), "labels": ((n,), np.uint8), "ids": ((n,), np.int64),
                "test": ((m, *shape), np.uint8), "test_labels": ((m,), np.uint8)}
        for name, (s, dt) in want.items():
            if arrays[name].shape != s or arrays[name].dtype != dt:
                raise ValueError(f"{name}.npy is {arrays[name].dtype} {arrays[name].shape}, expected {s}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NPSError(f"{bad} ({exc}); remove it (`rm -r {folder}`) and it is rebuilt on next use.") from None
    corpus = Corpus(manifest["name"], arrays["train"], np.asarray(arrays["labels"], np.int64),
                    np.asarray(arrays["test"]), np.asarray(arrays["test_labels"], np.int64),
                    tuple(manifest["class_names"]), None, f"{manifest['source']} (store {folder})")
    if verify:
        if corpus.content_hash != manifest["content_hash"]:
            raise NPSError(f"{bad} (content hash {corpus.content_hash}, manifest says {manifest['content_hash']}); "
                           f"remove it (`rm -r {folder}`) and it is rebuilt on next use.")
    else:
        # The hash was computed while writing; rereading N images on every open would undo the mmap.
        corpus.__dict__["content_hash"] = manifest["content_hash"]
    corpus.__dict__["source_ids"] = arrays["ids"]
    return corpus


def _in_memory(spec: StoreSpec, chunks: ChunkFn, chunk: int) -> Corpus:
    if spec.nbytes > MAX_IN_MEMORY_BYTES:
        raise NPSError(f"corpus '{spec.name}' is not stored yet and this cache is read-only; build it once "
                       "without NPS_CACHE_READONLY / NPS_APP_READONLY (or point NPS_STORE_DIR at a built store).")
    parts = [chunks(s, min(spec.n, s + chunk)) for s in range(0, spec.n, chunk)]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts]).astype(np.int64)
    log.info("read-only cache: built %s in memory, not storing it", spec.name)
    return Corpus(spec.name, x, y, spec.test, np.asarray(spec.test_labels, np.int64), spec.class_names, None,
                  spec.source)


def stored(spec: StoreSpec, chunks: ChunkFn, chunk: int = 65536, progress: bool = True) -> Corpus:
    """The corpus ``spec`` describes, from the store; built once (chunk by chunk) if missing or damaged.

    Args:
        chunks: makes rows ``start..stop-1`` (see :data:`ChunkFn`); called in order, at most
            ``chunk`` rows at a time, so the build holds one chunk in memory.
        progress: show a tqdm bar while building (stderr; off when not a terminal).
    """
    root = store_root()
    final = _folder(spec.key, root)
    if (final / "manifest.json").is_file():
        try:
            return open_store(final, spec.key)
        except NPSError as exc:
            log.warning("%s; rebuilding it", exc)
    if read_only():
        return _in_memory(spec, chunks, chunk)
    with file_lock(root / f"corpus-{spec.key}"):
        if (final / "manifest.json").is_file():  # built by another process while we waited
            with contextlib.suppress(NPSError):
                return open_store(final, spec.key)
        _write(spec, chunks, chunk, progress)
    return open_store(final, spec.key)


def store_corpus(corpus: Corpus, chunk: int = 65536, progress: bool = False) -> Corpus:
    """Write any loaded corpus into the store (once) and return its memory-mapped twin.

    The twin has the same arrays and the same :attr:`Corpus.content_hash`, so every cache
    key made from one is valid for the other.
    """
    spec = StoreSpec(corpus.content_hash, corpus.name, len(corpus), corpus.image_shape, np.asarray(corpus.test),
                     np.asarray(corpus.test_labels), corpus.class_names, corpus.source)
    ids = getattr(corpus, "source_ids", None)

    def rows(s: int, e: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i = np.arange(s, e, dtype=np.int64) if ids is None else np.asarray(ids[s:e], np.int64)
        return np.asarray(corpus.train[s:e]), np.asarray(corpus.train_labels[s:e], np.int64), i

    out = stored(spec, rows, chunk, progress)
    if corpus.subset is not None:  # the hash covers the subset size; keep the twin's equal
        out = Corpus(out.name, out.train, out.train_labels, out.test, out.test_labels, out.class_names,
                     corpus.subset, out.source)
        out.__dict__["content_hash"] = corpus.content_hash
    return out


def iter_chunks(corpus: Corpus, chunk: int = 65536) -> Iterator[tuple[int, np.ndarray]]:
    """(start, (S,H,W[,C]) uint8) blocks of ``corpus.train``: the whole-corpus path without loading it whole.

    A memory-mapped train split is read with plain file reads, so a pass over millions of
    images leaves no mapped pages behind (they would count towards the RSS).
    """
    train = corpus.train
    if not isinstance(train, np.memmap) or train.filename is None:
        for s in range(0, len(corpus), chunk):
            yield s, np.asarray(train[s:s + chunk])
        return
    row = int(np.prod(train.shape[1:]))
    with open(train.filename, "rb") as f:
        for s in range(0, len(train), chunk):
            e = min(len(train), s + chunk)
            f.seek(train.offset + s * row)
            yield s, np.fromfile(f, np.uint8, (e - s) * row).reshape(e - s, *train.shape[1:])


def encode_in_chunks(encoder, corpus: Corpus, chunk: int = 65536) -> np.ndarray:  # an Encoder
    """``encoder.encode(corpus.train)`` as (N,D) float32, in chunks for a stored corpus (bit-identical).

    ``chunk`` is a multiple of the encoder's batch (1024), so the batches are the same.
    """
    if not isinstance(corpus.train, np.memmap):
        return np.asarray(encoder.encode(corpus.train), np.float32)
    return np.concatenate([np.asarray(encoder.encode(x), np.float32) for _, x in iter_chunks(corpus, chunk)])
