"""The window index in the cache and in memory: its key, its file, whether it is there, building it on use.

The index itself (:class:`nps.engine.search_index.WindowIndex`, :func:`nps.engine.search_index.build_index`)
is built once per (corpus, window, splits) and kept in ``cache/`` under the usual rules (atomic, content-keyed,
validated, :func:`nps.cache.cached_arrays`); the last two are also held in memory.  A corpus has two: the
*local* index, whose k-d splits favour the dimensions each position's queries know under locality, and the
*global* one (the Gaussian at every position) for runs without locality (:mod:`nps.engine.search_splits`,
:func:`local_splits`); both give the same results, each prunes better for its own runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from nps.cache import cached_arrays, content_key, entry_path
from nps.engine.search_index import GROUP, INDEX_VERSION, LEAF, WindowIndex, build_index
from nps.engine.search_splits import FLOOR, split_weights

log = logging.getLogger(__name__)

_INDEXES: dict[str, WindowIndex] = {}
# Indexes held in memory: the last two, and before another is loaded those held take at most half of
# this many bytes (one 60k MNIST index is 0.95 GB: a run that switches between its local and global
# index must not hold both).
HELD_BYTES = 1_200_000_000

# Corpora with at most this many windows (N * H * W) build their index on first use (about 6 s
# for 6,000 MNIST images on a 2-core machine at load 2; all 60k take about a minute); larger
# ones only use an index already in the cache (``build=True`` builds it, as ``python -m nps index``
# and the benchmark do).
BUILD_ON_USE = 5_000_000

INDEX_COMMAND = "python -m nps index"
INDEX_KIND = "windowindex"  # the cache entries' kind: windowindex-KEY.npz


SPLITS_VERSION = 1  # the local split weights' rule (nps.engine.search_splits): part of the local index's key


def local_splits(config) -> bool:
    """Whether a run of ``config`` (:class:`nps.config.GenerationConfig`) searches the local index (it uses
    locality) rather than the global one."""
    return config.uses("loc")


def index_key(corpus_hash: str, window: int, shape: tuple[int, ...], local: bool = True) -> str:
    """The cache key of the (``local`` or global) index of a corpus with content hash ``corpus_hash``;
    ``shape`` (N,C,Hp,Wp) padded.  The global index keeps the key it had before the local one existed."""
    parts = (INDEX_VERSION, corpus_hash, window, tuple(shape), LEAF, GROUP)
    return content_key("window-index", *parts, *(("local-splits", SPLITS_VERSION, FLOOR) if local else ()))


def index_path(corpus_hash: str, window: int, shape: tuple[int, ...], local: bool = True) -> Path:
    """Where the index of :func:`index_key` lives in the cache (whether or not it is there)."""
    return entry_path(INDEX_KIND, index_key(corpus_hash, window, shape, local))


def padded_shape(images: int, image_shape: tuple[int, ...], window: int) -> tuple[int, int, int, int]:
    """(N,C,H+2h,W+2h), h = window // 2: the shape of the engine's edge-padded corpus
    (:func:`nps.engine.sampler_setup.padded_corpus`), without padding anything."""
    h, w = image_shape[:2]
    c = image_shape[2] if len(image_shape) == 3 else 1
    half = window // 2
    return (int(images), int(c), int(h) + 2 * half, int(w) + 2 * half)


def builds_on_use(images: int, height: int, width: int) -> bool:
    """Whether a corpus is small enough (:data:`BUILD_ON_USE` windows) to build its index on first use."""
    return images * height * width <= BUILD_ON_USE


def index_cached(corpus_hash: str, window: int, shape: tuple[int, ...], local: bool = True) -> bool:
    """Whether the index is in memory or has a file in the cache; builds, loads and validates nothing.

    A damaged file counts as cached here; its first use finds it damaged and rebuilds it
    (or, above :data:`BUILD_ON_USE`, falls back to the dense scan, which makes the same draws).
    """
    return (index_key(corpus_hash, window, shape, local) in _INDEXES
            or index_path(corpus_hash, window, shape, local).is_file())


def missing_index_hint(images: int, command: str = f"{INDEX_COMMAND} --corpus NAME") -> str:
    """The one line that says a corpus of ``images`` images has no cached index, and how to build one."""
    return (f"no cached window index for this corpus ({images} images); using the dense scan, several times "
            f"slower: build one with `{command}` (about a minute for 60k MNIST)")


def window_index(corpus_hash: str, padded: np.ndarray, window: int, height: int, width: int,
                 build: bool | None = None, local: bool = True) -> WindowIndex | None:
    """The (cached) :class:`WindowIndex` of a corpus; the last two are kept in memory (:data:`HELD_BYTES`).

    Args:
        build: build it if it is not cached; None: only when the corpus is small
            (:data:`BUILD_ON_USE`).  Returns None when it is neither cached nor built.
            True also stores an index held in memory whose file has gone (the cache was
            cleared since), so that afterwards it is in the cache (``python -m nps index``).
        local: the local index (runs with locality, :func:`local_splits`) or the global one.
    """
    key = index_key(corpus_hash, window, padded.shape, local)
    path = index_path(corpus_hash, window, padded.shape, local)
    meta = {"window": window, "images": int(padded.shape[0]), "splits": "local" if local else "global"}
    if key in _INDEXES and build and not path.is_file():
        held = _INDEXES[key]
        cached_arrays(INDEX_KIND, key, lambda: dict(vars(held)), meta=meta)  # the same arrays: no rebuild
    if key not in _INDEXES:
        if build is None:
            build = builds_on_use(padded.shape[0], height, width)
        if not build and not path.is_file():
            log.info("%s", missing_index_hint(int(padded.shape[0])))
            return None
        while _INDEXES and (len(_INDEXES) >= 2 or sum(map(_held_bytes, _INDEXES.values())) > HELD_BYTES // 2):
            _INDEXES.pop(next(iter(_INDEXES)))  # the oldest first
        def make() -> dict[str, np.ndarray]:  # only on a miss: the weights replay the whole fill order
            weights = split_weights(height, width, window, padded.shape[1], local)
            return build_index(padded, window, height, width, weights=weights)
        arrays = cached_arrays(INDEX_KIND, key, make, meta=meta)
        _INDEXES[key] = WindowIndex(**arrays)
        log.info("window index: %d unique windows of %d", len(arrays["rep"]), arrays["uid"].size)
    return _INDEXES[key]


def _held_bytes(index: WindowIndex) -> int:
    return int(sum(a.nbytes for a in vars(index).values()))
