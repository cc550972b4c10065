"""A pool shared by the batch (a class label's images) through the whole-corpus window index.

The index (:mod:`nps.engine.search_index`) is built over every training image; a shared pool S
is a subset of them.  Nothing about its geometry changes: a leaf's or group's box holds every
window of the corpus it covers, so it holds those of S too, and its lower bound stays valid.
What changes is which occurrences may be drawn:

* the multiplicity of unique window u at its position p becomes
  ``count_S[u] = #{n in S : uid[p, n] = u}`` (zero for a window no image of S holds there,
  which the search then scores +inf, as it does a window whose only occurrence is the
  sample's reference);
* the draw admits only the images of S (an image mask), so the drawn occurrence is the
  ``rank``-th image of S, in ascending corpus id, holding the window: the same canonical
  order (centre offset, then pool slot) as the dense scan of the pool, because S is ascending;
* groups and leaves holding no window of S are skipped before their bounds are computed.

:func:`pool_counts` makes these arrays once per pool content (keyed by a hash of its ids) and
keeps the last :data:`KEEP` of them on the search, so a run's steps share them.
"""

from __future__ import annotations

import hashlib

import numpy as np

KEEP = 2  # pools whose arrays a search keeps (a run has one; the app may alternate two)


def pool_counts(search, subset: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None,
                                                              dict[str, np.ndarray] | None]:
    """(count (U,), images (N,) bool, live) of the pool ``subset`` for ``search``'s index.

    Args:
        search: an :class:`nps.engine.search.ExactSearch` (its ``index`` and ``pools`` cache).
        subset: (P,) int64 strictly ascending corpus ids, or None (every image: the index's own
            counts, no mask).
    Returns:
        count: (U,) uint16 (int32 for pools of 65,536 images or more) multiplicity of each unique
            window among the pool's images; images: (N,) bool the pool's images; live: {"groups": (G,)
            bool, "leaves": (L,) bool} those holding one of their windows.  For None: ``index.count``,
            None, None.
    """
    index = search.index
    if subset is None:
        return index.count, None, None
    subset = np.ascontiguousarray(subset, np.int64)
    key = pool_key(subset)
    if key not in search.pools:
        if len(subset) > 1 and not (np.diff(subset) > 0).all():
            raise ValueError("a shared pool's ids must be strictly ascending (the canonical draw order)")
        while len(search.pools) >= KEEP:
            search.pools.pop(next(iter(search.pools)))
        search.pools[key] = _counts(index, subset)
    return search.pools[key]


def pool_key(subset: np.ndarray | None) -> bytes:
    """A 16-byte key of the pool ``subset`` (b"": every image), as :func:`pool_counts` keys its arrays."""
    if subset is None:
        return b""
    return hashlib.blake2b(np.ascontiguousarray(subset, np.int64).tobytes(), digest_size=16).digest()


def _counts(index, subset: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """:func:`pool_counts` computed: a bincount per position (no (U,) int64 temporary: U is 30M for MNIST)."""
    n_pos, n_images = index.uid.shape
    count = np.zeros(len(index.rep), np.uint16 if len(subset) < 1 << 16 else np.int32)
    for p in range(n_pos):
        a, b = int(index.pos_off[p]), int(index.pos_off[p + 1])
        count[a:b] = np.bincount(index.uid[p, subset] - a, minlength=b - a)
    images = np.zeros(n_images, bool)
    images[subset] = True
    present = np.flatnonzero(count)  # unique windows some image of the pool holds
    leaf = np.searchsorted(index.leaf_off, present, side="right") - 1
    group = np.searchsorted(index.group_off, leaf, side="right") - 1
    live = {"leaves": np.zeros(len(index.leaf_off) - 1, bool), "groups": np.zeros(len(index.group_off) - 1, bool)}
    live["leaves"][leaf] = True
    live["groups"][group] = True
    return count, images, live
