"""The window index in the cache and in memory: its key, its file, whether it is there, building it on use.

The index itself (:class:`nps.engine.search_index.WindowIndex`, :func:`nps.engine.search_index.build_index`)
is built once per (corpus, window) and kept in ``cache/`` under the usual rules (atomic, content-keyed,
validated, :func:`nps.cache.cached_arrays`); the last two are also held in memory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from nps.cache import cached_arrays, content_key, entry_path
from nps.engine.search_index import GROUP, INDEX_VERSION, LEAF, WindowIndex, build_index

log = logging.getLogger(__name__)

_INDEXES: dict[str, WindowIndex] = {}

# Corpora with at most this many windows (N * H * W) build their index on first use (about 6 s
# for 6,000 MNIST images on a 2-core machine at load 2; all 60k take about a minute); larger
# ones only use an index already in the cache (``build=True`` builds it, as ``python -m nps index``
# and the benchmark do).
BUILD_ON_USE = 5_000_000

INDEX_COMMAND = "python -m nps index"
INDEX_KIND = "windowindex"  # the cache entries' kind: windowindex-KEY.npz


def index_key(corpus_hash: str, window: int, shape: tuple[int, ...]) -> str:
    """The cache key of the index of a corpus with content hash ``corpus_hash``; ``shape`` (N,C,Hp,Wp) padded."""
    return content_key("window-index", INDEX_VERSION, corpus_hash, window, tuple(shape), LEAF, GROUP)


def index_path(corpus_hash: str, window: int, shape: tuple[int, ...]) -> Path:
    """Where the index of :func:`index_key` lives in the cache (whether or not it is there)."""
    return entry_path(INDEX_KIND, index_key(corpus_hash, window, shape))


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


def index_cached(corpus_hash: str, window: int, shape: tuple[int, ...]) -> bool:
    """Whether the index is in memory or has a file in the cache; builds, loads and validates nothing.

    A damaged file counts as cached here; its first use finds it damaged and rebuilds it
    (or, above :data:`BUILD_ON_USE`, falls back to the dense scan, which makes the same draws).
    """
    return index_key(corpus_hash, window, shape) in _INDEXES or index_path(corpus_hash, window, shape).is_file()


def missing_index_hint(images: int, command: str = f"{INDEX_COMMAND} --corpus NAME") -> str:
    """The one line that says a corpus of ``images`` images has no cached index, and how to build one."""
    return (f"no cached window index for this corpus ({images} images); using the dense scan, several times "
            f"slower: build one with `{command}` (about a minute for 60k MNIST)")


def window_index(corpus_hash: str, padded: np.ndarray, window: int, height: int, width: int,
                 build: bool | None = None) -> WindowIndex | None:
    """The (cached) :class:`WindowIndex` of a corpus; kept in memory for the last two corpora.

    Args:
        build: build it if it is not cached; None: only when the corpus is small
            (:data:`BUILD_ON_USE`).  Returns None when it is neither cached nor built.
            True also stores an index held in memory whose file has gone (the cache was
            cleared since), so that afterwards it is in the cache (``python -m nps index``).
    """
    key = index_key(corpus_hash, window, padded.shape)
    meta = {"window": window, "images": int(padded.shape[0])}
    if key in _INDEXES and build and not index_path(corpus_hash, window, padded.shape).is_file():
        held = _INDEXES[key]
        cached_arrays(INDEX_KIND, key, lambda: dict(vars(held)), meta=meta)  # the same arrays: no rebuild
    if key not in _INDEXES:
        if build is None:
            build = builds_on_use(padded.shape[0], height, width)
        if not build and not index_path(corpus_hash, window, padded.shape).is_file():
            log.info("%s", missing_index_hint(int(padded.shape[0])))
            return None
        arrays = cached_arrays(INDEX_KIND, key, lambda: build_index(padded, window, height, width), meta=meta)
        while len(_INDEXES) >= 2:
            _INDEXES.pop(next(iter(_INDEXES)))
        _INDEXES[key] = WindowIndex(**arrays)
        log.info("window index: %d unique windows of %d", len(arrays["rep"]), arrays["uid"].size)
    return _INDEXES[key]
