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
``record_version``        0-d int64               :data:`RECORD_VERSION`
========================  ======================  ==============================================

Invariant: ``images[n,y,x] == train[source_index[n,y,x], source_y[n,y,x], source_x[n,y,x]]``
for every pixel with ``source_index >= 0``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from nps.errors import NPSError

RECORD_VERSION = 1
# The sampler's semantics: bumped whenever the same config and corpus would give a different
# record, so cached records (presets, app results) made by an older engine are never served.
# 2: the reference is left out of the candidates in every constraint set.
ENGINE_VERSION = 2
PER_PIXEL = ("source_index", "source_y", "source_x", "source_label", "pool_size", "relaxed")


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

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def canvas_shape(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "config"}
        out["config"] = np.array(json.dumps(self.config, sort_keys=True))
        out["record_version"] = np.array(RECORD_VERSION, np.int64)
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
        from nps.cache import atomic_write  # the project's one writer: same mode as the cache, fsynced
        return atomic_write(path, lambda f: np.savez_compressed(f, **self.to_arrays()))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ProvenanceRecord:
        missing = [f.name for f in fields(cls) if f.name not in arrays]
        if missing:
            raise NPSError(f"not a provenance record: missing {', '.join(missing)}; "
                           "make records with `python -m nps generate`.")
        version = int(arrays.get("record_version", RECORD_VERSION))
        if version > RECORD_VERSION:
            raise NPSError(f"record version {version} is newer than this nps ({RECORD_VERSION}); upgrade nps.")
        kw = {f.name: np.asarray(arrays[f.name]) for f in fields(cls) if f.name != "config"}
        kw["config"] = json.loads(str(arrays["config"]))
        rec = cls(**kw)
        rec.validate()
        return rec

    @classmethod
    def load(cls, path: str | Path) -> ProvenanceRecord:
        path = Path(path)
        if not path.is_file():
            raise NPSError(f"record '{path}' does not exist; make one with `python -m nps generate --out {path}`.")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:
            raise NPSError(f"'{path}' is not a readable .npz record ({type(exc).__name__}).") from None
        return cls.from_arrays(arrays)

    def validate(self) -> None:
        """Check shapes and dtypes against the contract; raise NPSError if broken."""
        n, h, w = self.images.shape[:3]
        if self.images.dtype != np.uint8:
            raise NPSError(f"record images must be uint8, got {self.images.dtype}.")
        for name in PER_PIXEL:
            if getattr(self, name).shape != (n, h, w):
                raise NPSError(f"record key {name} has shape {getattr(self, name).shape}, expected {(n, h, w)}.")
        if self.reference.shape != (n,) or self.sample_id.shape != (n,):
            raise NPSError("record keys reference and sample_id must have shape (N,).")
        if self.order.shape != (h * w, 2):
            raise NPSError(f"record key order has shape {self.order.shape}, expected {(h * w, 2)}.")

    def select(self, rows: np.ndarray | slice | list[int]) -> ProvenanceRecord:
        """A record of a subset of samples (same config and order)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("images", "reference", "sample_id", *PER_PIXEL):
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
        if strip(r.config) != strip(first.config) or not np.array_equal(r.order, first.order):
            raise NPSError("records come from different configs; only shards of one run can be merged.")
    ids = np.concatenate([r.sample_id for r in records])
    if len(np.unique(ids)) != len(ids):
        raise NPSError("records overlap (a sample_id appears twice); merge disjoint shards only.")
    rows = np.argsort(ids, kind="stable")
    kw = {}
    for name in ("images", "reference", "sample_id", *PER_PIXEL):
        kw[name] = np.concatenate([getattr(r, name) for r in records])[rows]
    config = dict(first.config)
    config["n"] = len(ids)
    return ProvenanceRecord(order=first.order, shell=first.shell, config=config, **kw)


def check_provenance(record: ProvenanceRecord, train: np.ndarray) -> int:
    """Count pixels that break the provenance invariant (0 means the record is exact).

    Args:
        train: (N_train,H,W[,C]) uint8, the corpus train split the record points into.
    """
    src = record.source_index
    ok = src >= 0
    copied = train[src[ok], record.source_y[ok], record.source_x[ok]]
    return int((copied != record.images[ok]).reshape(len(copied), -1).any(1).sum())
