"""Source composition of each sample: how many training images it is made of, and how.

Per sample (pixels with ``source_index < 0`` -- given pixels of a completion -- are
left out of every count):

* ``n_sources``: distinct source images;
* ``top1_share`` / ``top5_share``: share of pixels copied from the 1 / 5 most used sources;
* ``largest_island``: pixels in the largest 4-connected region copied from a single
  source image (a "copy island"; memorisation shows as one island covering the canvas),
  and ``island_share`` = that over the counted pixels;
* ``label_purity``: share of pixels whose source label equals the sample's majority label;
* ``reference_share`` (records only): share of generated pixels copied from the sample's
  own reference image -- a regrown reference is a copy, not a composition.
"""

from __future__ import annotations

import numpy as np

from nps.errors import NPSError

FIELDS = ("n_sources", "top1_share", "top5_share", "largest_island", "island_share", "label_purity")


def island_sizes(source_index: np.ndarray) -> np.ndarray:
    """Size of the 4-connected single-source region (copy island) each pixel belongs to.

    All maps are labelled at once: a graph with an edge between 4-neighbours that
    hold the same (valid) source id, whose connected components (scipy.sparse.csgraph)
    are the islands.  The one copy-island algorithm: :func:`copy_islands` and the app's
    overlay (:func:`nps.lab.overlays.island_size_map`) read it.

    Args:
        source_index: (N,H,W) int; values < 0 are not part of any island.
    Returns:
        (N,H,W) int64 island size of every pixel, 0 where ``source_index < 0``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    src = np.asarray(source_index)
    if src.ndim != 3:
        raise NPSError(f"source maps must be (N,H,W), got shape {src.shape}.")
    n, h, w = src.shape
    if not n * h * w:
        return np.zeros(src.shape, np.int64)
    ids = np.arange(n * h * w).reshape(n, h, w)
    valid = src >= 0
    right = (src[:, :, 1:] == src[:, :, :-1]) & valid[:, :, 1:]
    down = (src[:, 1:, :] == src[:, :-1, :]) & valid[:, 1:, :]
    a = np.concatenate([ids[:, :, :-1][right], ids[:, :-1, :][down]])
    b = np.concatenate([ids[:, :, 1:][right], ids[:, 1:, :][down]])
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n * h * w,) * 2)
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    return np.where(valid.ravel(), sizes[comp], 0).reshape(n, h, w).astype(np.int64)


def copy_islands(source_index: np.ndarray) -> np.ndarray:
    """Largest copy island of every map, in pixels (:func:`island_sizes`' maximum).

    Args:
        source_index: (N,H,W) int; values < 0 are not part of any island.
    Returns:
        (N,) int64 largest island size (0 for a map with no valid pixel).
    """
    sizes = island_sizes(source_index)
    n = len(sizes)
    return sizes.reshape(n, -1).max(1) if sizes.size else np.zeros(n, np.int64)


def top_sources(source_index: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The k most used sources of one map.

    Args:
        source_index: (H,W) int map; values < 0 ignored.
    Returns:
        ids (k',) int64 and pixel counts (k',) int64, most used first (ties: lower id
        first); k' = min(k, distinct sources).
    """
    vals = np.asarray(source_index).ravel()
    vals = vals[vals >= 0]
    ids, counts = np.unique(vals, return_counts=True)
    order = np.lexsort((ids, -counts))[:k]
    return ids[order].astype(np.int64), counts[order].astype(np.int64)


def composition(source_index: np.ndarray, source_label: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample composition statistics (see the module docstring).

    Args:
        source_index, source_label: (N,H,W) int maps.
    Returns:
        dict of (N,) arrays keyed by :data:`FIELDS`; shares are float64 in [0,1].
    """
    src = np.asarray(source_index)
    lab = np.asarray(source_label)
    n = len(src)
    out = {f: np.zeros(n, np.float64) for f in FIELDS}
    for i in range(n):  # a loop over samples only; each step is vectorised over pixels
        valid = src[i] >= 0
        total = int(valid.sum())
        if total == 0:
            continue
        _, counts = np.unique(src[i][valid], return_counts=True)
        counts = np.sort(counts)[::-1]
        _, lab_counts = np.unique(lab[i][valid], return_counts=True)
        out["n_sources"][i] = len(counts)
        out["top1_share"][i] = counts[0] / total
        out["top5_share"][i] = counts[:5].sum() / total
        out["label_purity"][i] = lab_counts.max() / total
    islands = copy_islands(src)
    out["largest_island"] = islands.astype(np.float64)
    totals = np.maximum((src >= 0).reshape(n, -1).sum(1), 1)
    out["island_share"] = islands / totals
    out["n_sources"] = out["n_sources"].astype(np.int64)
    out["largest_island"] = islands
    return out


def reference_share(record) -> np.ndarray:
    """(N,) share of each sample's generated (non-seed) pixels copied from its own reference image.

    High values mean the sampler regrew the conditioning image around its seed patch
    (a copy, not a composition); NaN-free: 0 for samples without a reference.
    """
    from nps.analysis.entropy import seed_mask
    gen = (record.source_index >= 0) & ~seed_mask(record)[None]
    ref = np.asarray(record.reference)[:, None, None]
    hits = (record.source_index == ref) & gen & (ref >= 0)
    return hits.reshape(len(hits), -1).sum(1) / np.maximum(gen.reshape(len(gen), -1).sum(1), 1)


def record_composition(record) -> dict[str, np.ndarray]:
    """:func:`composition` of a :class:`~nps.record.ProvenanceRecord`, plus ``reference_share``."""
    out = composition(record.source_index, record.source_label)
    out["reference_share"] = reference_share(record)
    return out


def summarise(comp: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """mean, std, min, median, max of each field over samples."""
    out = {}
    for f, v in comp.items():
        v = np.asarray(v, np.float64)
        out[f] = ({"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
                   "median": float(np.median(v)), "max": float(v.max())} if len(v) else {})
    return out
