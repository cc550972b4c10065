"""The provenance record: the contract between sampler, analysis and app.

A record is an ``.npz`` (written with ``np.savez``, loadable with
``allow_pickle=False``) holding, for N samples on an H x W canvas:

========================  ======================  ==============================================
key                       shape, dtype            meaning
========================  ======================  ==============================================
``images``                (N,H,W[,C]) uint8       the samples
``source_index``          (N,H,W) int64           train row each pixel was copied from (-1: given)
``source_y``/``source_x`` (N,H,W) int64           position in that source image
``source_label``          (N,H,W) int64           label of the source image (-1: given)
``pool_size``             (N,H,W) int64           candidates the pixel was drawn from (1 for seed)
``relaxed``               (N,H,W) bool            the pool was empty and locality was relaxed
``reference``             (N,) int64              the conditioning train image, -1 if none
``order``                 (H*W,2) int64           fill order (y, x); seed/known pixels first
``config``                0-d str                 JSON: every parameter, corpus size, version
``sample_id``             (N,) int64              index of each sample in its run (for merging)
``shell``                 (H*W,) int64            shell of each ``order`` entry (0 = seed)
``train_ids``             (S,) int64              version 2, runs on a ``--subset`` only: the
                                                  full-corpus train id of each subset row
``coarse_images``         (N,h,w[,C]) uint8       version 3, multi-scale (``ms``) runs only: the
                                                  half-resolution canvas (h = H//2, w = W//2)
``coarse_source_index``   (N,h,w) int64           train row each coarse pixel was copied from, in
``coarse_source_y``/``_x``                        the half-resolution corpus (:func:`nps.provenance.half_train`)
``record_version``        0-d int64               :data:`RECORD_VERSION`
========================  ======================  ==============================================

Invariant: ``images[n,y,x] == train[source_index[n,y,x], source_y[n,y,x], source_x[n,y,x]]``
for every pixel with ``source_index >= 0``, where ``train`` is the run's corpus (the
subset); against the full corpus it holds with ``train_ids[source_index]``
(:func:`nps.provenance.full_source_index`,
:func:`~nps.provenance.check_provenance_full`), so a record is checkable
from the record alone.  A multi-scale record holds the same for its coarse level against
``half_train(train)`` (:func:`nps.provenance.check_provenance_coarse`).

Every reader goes through :meth:`ProvenanceRecord.from_arrays`, which validates keys,
dtypes, shapes, value ranges and the config against :func:`nps.config.check_types`
(:meth:`ProvenanceRecord.validate`), so a malformed file is one :class:`NPSError` line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from nps.errors import NPSError

# 2: records of a --subset run store ``train_ids`` (subset row -> full-corpus train id),
#    so that provenance can be checked against the full corpus from the record alone;
#    version-1 records are still read (without the row map).
# 3: multi-scale runs (the ``ms`` constraint, nps.constraints.multiscale) store their coarse level
#    (coarse_images, coarse_source_index/_y/_x); records without it read as before.
RECORD_VERSION = 3
# The sampler's semantics: bumped whenever the same config and corpus would give a different
# record, so cached records (presets, app results) made by an older engine are never served.
# 2: the reference is left out of the candidates in every constraint set.
# 3: the threshold scales max(d_min, 0), not a float32-negative d_min (nps.engine.selection.thresholds),
#    so a pixel whose minimum rounded below zero may keep a few more near-exact matches.
# 4: every appearance decision is the float64 definition's (nps.engine.certify): float32 scores too close
#    to the threshold are recomputed, so brute and exact search, any batch size and any device agree
#    (on MNIST 1 of 64 full-model samples changed).
ENGINE_VERSION = 4
PER_PIXEL = ("source_index", "source_y", "source_x", "source_label", "pool_size", "relaxed")
PER_SAMPLE = ("images", "reference", "sample_id", *PER_PIXEL)
#: Arrays every record holds (``train_ids`` and ``record_version`` are optional).
REQUIRED = (*PER_SAMPLE, "order", "config", "shell")
#: The coarse level of a multi-scale run (version 3; all four or none).
COARSE = ("coarse_images", "coarse_source_index", "coarse_source_y", "coarse_source_x")
#: Every member a reader looks at; other members of a file are never decompressed.
KEYS = (*REQUIRED, "train_ids", "record_version", *COARSE)
MAX_SIDE = 4096  # canvas side beyond any corpus; bounds what validation allocates


@dataclass(eq=False)
class ProvenanceRecord:
    images: np.ndarray
    source_index: np.ndarray
    source_y: np.ndarray
    source_x: np.ndarray
    source_label: np.ndarray
    pool_size: np.ndarray
    relaxed: np.ndarray
    reference: np.ndarray
    order: np.ndarray
    config: dict
    sample_id: np.ndarray
    shell: np.ndarray
    train_ids: np.ndarray | None = None
    version: int = field(default=RECORD_VERSION)
    coarse_images: np.ndarray | None = None
    coarse_source_index: np.ndarray | None = None
    coarse_source_y: np.ndarray | None = None
    coarse_source_x: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def canvas_shape(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {name: getattr(self, name) for name in REQUIRED if name != "config"}
        out["config"] = np.array(json.dumps(self.config, sort_keys=True))
        if self.train_ids is not None:
            out["train_ids"] = np.asarray(self.train_ids, np.int64)
        # A version-1 record re-saved (merged, selected) stays version 1: it has no row map.
        out["record_version"] = np.array(self.version, np.int64)
        if self.coarse_images is not None:
            out.update({name: getattr(self, name) for name in COARSE})
        return out

    def save(self, path: str | Path) -> Path:
        """Write atomically (:func:`nps.cache.atomic_write`: temp file, fsync, umask mode, rename).

        Raises:
            NPSError: the path cannot be written.
        """
        path = Path(path)
        if path.suffix != ".npz":
            raise NPSError(f"output '{path}' must end in .npz.")
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise NPSError(f"cannot write '{path}': folder '{folder}' does not exist; create it first.")
        self.validate()  # nps never writes a record that its own readers would refuse
        from nps.cache import atomic_write  # the project's one writer: same mode as the cache, fsynced
        return atomic_write(path, lambda f: np.savez_compressed(f, **self.to_arrays()))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ProvenanceRecord:
        """A validated record from its arrays (an ``np.load`` of a record file).

        Raises:
            NPSError: one line naming the first problem (missing key, dtype, shape, range,
                config) and how to get a good record.
        """
        missing = [name for name in REQUIRED if name not in arrays]
        if missing:
            raise NPSError(f"not a provenance record: missing {', '.join(missing)}; "
                           "make records with `python -m nps generate`.")
        version = RECORD_VERSION
        if "record_version" in arrays:
            v = np.asarray(arrays["record_version"])
            if v.shape != () or v.dtype.kind not in "iu":
                raise NPSError("record key record_version must be a 0-d integer; the file is damaged.")
            version = int(v)
        if not 1 <= version <= RECORD_VERSION:
            if version > RECORD_VERSION:
                raise NPSError(f"record version {version} is newer than this nps ({RECORD_VERSION}); upgrade nps.")
            raise NPSError(f"record version {version} is unknown; the file is damaged.")
        raw = np.asarray(arrays["config"])
        if raw.shape != () or raw.dtype.kind != "U":
            raise NPSError("record key config must be a 0-d JSON string; the file is damaged.")
        try:
            config = json.loads(str(raw), parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise NPSError("record config is not valid JSON; the file is damaged.") from None
        if not isinstance(config, dict):
            raise NPSError(f"record config must be a JSON object, got {type(config).__name__}.")
        kw = {name: np.asarray(arrays[name]) for name in REQUIRED if name != "config"}
        ids = arrays.get("train_ids")
        coarse = {name: np.asarray(arrays[name]) for name in COARSE if name in arrays}
        rec = cls(**kw, config=config, train_ids=None if ids is None else np.asarray(ids), version=version, **coarse)
        rec.validate()
        # Integer keys of any width are accepted; downstream code sees the contract's int64.
        for name in ("source_index", "source_y", "source_x", "source_label", "pool_size", "reference",
                     "sample_id", "order", "shell"):
            setattr(rec, name, getattr(rec, name).astype(np.int64, copy=False))
        if rec.train_ids is not None:
            rec.train_ids = rec.train_ids.astype(np.int64, copy=False)
        for name in COARSE[1:]:
            if getattr(rec, name) is not None:
                setattr(rec, name, getattr(rec, name).astype(np.int64, copy=False))
        return rec

    @classmethod
    def load(cls, path: str | Path) -> ProvenanceRecord:
        """Read and validate a record file (bounded memory: :func:`read_record_arrays`)."""
        path = Path(path)
        if not path.is_file():
            raise NPSError(f"record '{path}' does not exist; make one with `python -m nps generate --out {path}`.")
        return cls.from_arrays(read_record_arrays(path, f"record '{path}'"))

    def validate(self, corpus_size: int | None = None) -> None:
        """Check the record against the contract; raise a one-line NPSError if broken.

        Keys' dtypes and shapes, value ranges (ids within the corpus, positions within the
        canvas, ``order`` a permutation of the canvas, ``shell`` monotone), and the config
        (a JSON object whose GenerationConfig fields have their types; other keys are kept,
        so newer records with extra facts still load).

        Args:
            corpus_size: the train rows ids must stay below (default: the config's
                ``corpus_size``, when it has one).
        """
        from nps.config import GenerationConfig, check_types

        def fail(msg: str) -> None:
            raise NPSError(f"malformed record: {msg}; regenerate it with `python -m nps generate`.")

        images = self.images
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim not in (3, 4):
            fail(f"images must be a uint8 (N,H,W[,C]) array, got {getattr(images, 'dtype', '?')} "
                 f"{getattr(images, 'shape', '?')}")
        n, h, w = images.shape[:3]
        if n == 0:
            fail("it holds no samples")
        if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE) or (images.ndim == 4 and not 1 <= images.shape[3] <= 4):
            fail(f"images have an impossible shape {images.shape}")
        for name in PER_PIXEL:
            a = getattr(self, name)
            if a.shape != (n, h, w):
                fail(f"{name} has shape {a.shape}, expected {(n, h, w)}")
            if name == "relaxed":
                if a.dtype != np.bool_:
                    fail(f"relaxed must be bool, got {a.dtype}")
            elif a.dtype.kind not in "iu":
                fail(f"{name} must be integers, got {a.dtype}")
        for name in ("reference", "sample_id"):
            a = getattr(self, name)
            if a.shape != (n,) or a.dtype.kind not in "iu":
                fail(f"{name} must be an (N,) = ({n},) integer array, got {a.dtype} {a.shape}")
        if self.order.shape != (h * w, 2) or self.order.dtype.kind not in "iu":
            fail(f"order must be an (H*W,2) = ({h * w}, 2) integer array, got {self.order.dtype} {self.order.shape}")
        if self.shell.shape != (h * w,) or self.shell.dtype.kind not in "iu":
            fail(f"shell must be an (H*W,) = ({h * w},) integer array, got {self.shell.dtype} {self.shell.shape}")
        if not isinstance(self.config, dict):
            fail("config must be a JSON object")
        try:
            check_types(self.config)
            GenerationConfig.from_dict(self.config)  # constraint names and the rest of the schema
        except NPSError as exc:
            fail(str(exc).rstrip("."))
        size = corpus_size if corpus_size is not None else self.config.get("corpus_size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            fail(f"config corpus_size {size!r} must be a positive integer")
        shape = self.config.get("image_shape")
        if shape is not None and not (isinstance(shape, list) and 2 <= len(shape) <= 3 and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)):
            fail(f"config image_shape {shape!r:.60} must be a list of 2 or 3 positive integers")
        for name, kind in (("engine", int), ("sigma_used", float), ("pool_key", str), ("version", str)):
            v = self.config.get(name)  # facts a reader shows; a wrong type must not reach a format string
            if v is not None and (isinstance(v, bool) or not isinstance(v, kind if kind is not float else int | float)):
                fail(f"config {name} {v!r:.60} must be {'a number' if kind is float else kind.__name__}")
        for name in (*PER_PIXEL[:-1], "reference", "sample_id", "order", "shell", "train_ids"):
            a = getattr(self, name)  # uint64 past int64 would wrap to negative ids in the int64 contract
            if a is not None and a.dtype == np.uint64 and a.size and a.max() > np.iinfo(np.int64).max:
                fail(f"{name} holds values past the int64 range")
        if shape is not None and list(shape) != list(images.shape[1:]) and list(shape) != [h, w, 1]:
            fail(f"config image_shape {shape} does not match the images {list(images.shape[1:])}")
        src = self.source_index.astype(np.int64, copy=False)
        if src.min() < -1 or (size is not None and src.max() >= size):
            hi = f"{size - 1}" if size is not None else "the corpus size - 1"
            fail(f"source_index holds {int(src.min() if src.min() < -1 else src.max())}, outside -1..{hi}")
        ok = src >= 0
        for name, side in (("source_y", h), ("source_x", w)):
            v = getattr(self, name)[ok]
            if v.size and (v.min() < 0 or v.max() >= side):
                fail(f"{name} holds positions outside the {h}x{w} canvas")
        pool = self.pool_size
        if pool.min() < 0 or (ok.any() and pool[ok].min() < 1):
            fail("pool_size must be >= 1 for copied pixels and >= 0 for given ones")
        ref = self.reference.astype(np.int64, copy=False)
        if ref.min() < -1 or (size is not None and ref.max() >= size):
            fail("reference holds ids outside -1..corpus size - 1")
        sid = self.sample_id.astype(np.int64, copy=False)
        if sid.min() < 0 or len(np.unique(sid)) != n:
            fail("sample_id must be distinct non-negative integers")
        order = self.order.astype(np.int64, copy=False)
        if (order.min() < 0 or order[:, 0].max() >= h or order[:, 1].max() >= w
                or len(np.unique(order[:, 0] * w + order[:, 1])) != h * w):
            fail(f"order must list every pixel of the {h}x{w} canvas exactly once")
        shell = self.shell.astype(np.int64, copy=False)
        if shell.min() < 0 or (np.diff(shell) < 0).any():
            fail("shell must be non-negative and non-decreasing along order")
        if self.train_ids is not None:
            ids = self.train_ids
            if ids.ndim != 1 or ids.dtype.kind not in "iu" or len(ids) == 0:
                fail(f"train_ids must be a 1-d integer array, got {ids.dtype} {ids.shape}")
            if ids.min() < 0 or (np.diff(ids.astype(np.int64)) <= 0).any():
                fail("train_ids must be increasing non-negative full-corpus ids")
            if size is not None and len(ids) != size:
                fail(f"train_ids has {len(ids)} rows but the corpus has {size}")
            if src.max() >= len(ids):
                fail("source_index points past the rows of train_ids")
        elif self.version >= 2 and self.config.get("subset") is not None:
            fail("a version-2 record of a --subset run must carry train_ids")
        have = [name for name in COARSE if getattr(self, name) is not None]
        if have:
            if len(have) != len(COARSE):
                fail(f"a multi-scale record needs all of {', '.join(COARSE)}, not only {', '.join(have)}")
            ci = self.coarse_images
            shape = (n, h // 2, w // 2)
            if ci.dtype != np.uint8 or tuple(ci.shape[:3]) != shape or ci.shape[3:] != images.shape[3:]:
                fail(f"coarse_images must be uint8 {shape + tuple(images.shape[3:])}, got {ci.dtype} {ci.shape}")
            for name, side in (("coarse_source_index", None), ("coarse_source_y", h // 2), ("coarse_source_x", w // 2)):
                a = getattr(self, name)
                if a.shape != shape or a.dtype.kind not in "iu":
                    fail(f"{name} must be an integer {shape} array, got {a.dtype} {a.shape}")
                hi = (size if size is not None else 2**62) if side is None else side
                if a.size and (a.min() < 0 or a.max() >= hi):
                    fail(f"{name} holds values outside 0..{hi - 1}")

    def select(self, rows: np.ndarray | slice | list[int]) -> ProvenanceRecord:
        """A record of a subset of samples (same config and order)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in (*PER_SAMPLE, *COARSE):
            if kw[name] is not None:
                kw[name] = kw[name][rows]
        return ProvenanceRecord(**kw)

    def canvas_at(self, n: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Replay: sample n after ``step`` entries of ``order`` (no recompute).

        Returns:
            image: (H,W[,C]) uint8 with unfilled pixels 0; known: (H,W) bool.
        """
        known = np.zeros(self.canvas_shape, bool)
        ys, xs = self.order[:step].T
        known[ys, xs] = True
        img = self.images[n].copy()
        img[~known] = 0
        return img, known


def read_record_arrays(source: str | Path | bytes, what: str, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """The arrays of a record file or its bytes, read by :func:`nps.safe_npz.read_npz` (no pickles).

    Only the record's own keys are read, and only within ``max_bytes`` unpacked (default:
    half the memory available now), so a small crafted file cannot make the reader
    allocate gigabytes (a zip bomb).

    Raises:
        NPSError: not an npz, a zip bomb, an object array, damaged data (one line).
    """
    from nps.safe_npz import read_npz
    if max_bytes is None:
        from nps.memory import available_memory
        have = available_memory()
        max_bytes = have // 2 if have else 8 << 30
    return read_npz(source, KEYS, max_bytes, what, "make records with `python -m nps generate`")


def merge(records: list[ProvenanceRecord]) -> ProvenanceRecord:
    """Concatenate shards of one run (same config up to ``n``), ordered by sample_id.

    Raises:
        NPSError: the shards come from different configs, orders or overlap.
    """
    if not records:
        raise NPSError("nothing to merge.")
    def strip(c: dict) -> dict:
        return {k: v for k, v in c.items() if k not in ("n", "batch_size", "device", "sample_offset")}
    first = records[0]
    for r in records[1:]:
        if strip(r.config) != strip(first.config) or not np.array_equal(r.order, first.order) \
                or not np.array_equal(r.shell, first.shell):  # the merged record keeps one fill order and shells
            raise NPSError("records come from different configs; only shards of one run can be merged.")
        if r.canvas_shape != first.canvas_shape or r.images.shape[3:] != first.images.shape[3:]:
            raise NPSError("records have different canvases; only shards of one run can be merged.")
        if (r.train_ids is None) != (first.train_ids is None) or (
                r.train_ids is not None and not np.array_equal(r.train_ids, first.train_ids)):
            raise NPSError("records come from different corpus subsets; only shards of one run can be merged.")
    ids = np.concatenate([r.sample_id for r in records])
    if len(np.unique(ids)) != len(ids):
        raise NPSError("records overlap (a sample_id appears twice); merge disjoint shards only.")
    if len({r.coarse_images is None for r in records}) > 1:
        raise NPSError("some records have a coarse level and some do not; only shards of one run can be merged.")
    rows = np.argsort(ids, kind="stable")
    kw = {}
    for name in (*PER_SAMPLE, *(COARSE if first.coarse_images is not None else ())):
        kw[name] = np.concatenate([getattr(r, name) for r in records])[rows]
    config = dict(first.config)
    config["n"] = len(ids)
    return ProvenanceRecord(order=first.order, shell=first.shell, config=config, train_ids=first.train_ids,
                            version=min(r.version for r in records), **kw)


def _refuse_constant(name: str) -> float:
    """json parse_constant: NaN/Infinity are not JSON and no config field means anything at them."""
    raise ValueError(name)


def load_record(path: str | Path) -> ProvenanceRecord:
    """Read and validate a record file (:meth:`ProvenanceRecord.load`; ``nps.load_record``)."""
    return ProvenanceRecord.load(path)


def save_record(record: ProvenanceRecord, path: str | Path) -> Path:
    """Validate and write ``record`` atomically (:meth:`ProvenanceRecord.save`; ``nps.save_record``)."""
    return record.save(path)
