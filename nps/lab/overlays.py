"""Provenance overlays of one sample: the colour layers and the key that explains each.

An overlay colours every pixel of a sample by one fact of its provenance.  Each layer
comes with a :class:`OverlayKey` that says how to read it: a categorical key (class ->
colour, top sources -> colour) or a continuous scale (colour map, range, unit), and one
line saying what the layer means.  The app draws the key beside the canvas; the same
numbers colour the layer, so the key cannot drift from the picture.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from nps.record import ProvenanceRecord

LAYERS = ("image-ID", "class", "copy islands", "pool size", "entropy")

#: One line beside each layer: what it shows and how to read it.
LAYER_NOTES: dict[str, str] = {
    "image-ID": "Each colour is one training image the pixels were copied from; the five most used sources get "
                "the strong colours, every other source a pale hue of its own. Many colours: a patchwork, "
                "not a copy.",
    "class": "The label of the training image each pixel came from. One colour across a digit: its parts all "
             "come from images of one class.",
    "copy islands": "A copy island is a 4-connected region copied from one training image; the colour is its size "
                    "in pixels. Large islands mean large pieces copied whole (the honesty panel reports the "
                    "largest).",
    "pool size": "Pool size is how many candidate windows passed every enabled constraint for this pixel; it was "
                 "drawn uniformly from them. 1 means the constraints left no choice.",
    "entropy": "Image-ID entropy of the window around each pixel: 0 bits where one image supplied the whole "
               "window, high where many images meet.",
}


@dataclass(frozen=True)
class OverlayKey:
    """How to read one overlay.

    Attributes:
        name: the layer (one of :data:`LAYERS`).
        note: one line on what it shows.
        entries: categorical key, (label, (r, g, b)) pairs; empty for a continuous layer.
        cmap: matplotlib colour-map name of a continuous layer ("" for categorical).
        vmin, vmax: the colour range, in ``unit`` (for pool size: log10 of the count).
        unit: what the colour bar measures.
        log10: the values are log10 of counts (a colour bar labels ticks with the counts).
    """

    name: str
    note: str
    entries: tuple[tuple[str, tuple[int, int, int]], ...] = field(default_factory=tuple)
    cmap: str = ""
    vmin: float = 0.0
    vmax: float = 1.0
    unit: str = ""
    log10: bool = False

    @property
    def continuous(self) -> bool:
        return bool(self.cmap)


def colourise(values: np.ndarray, vmin: float | None = None, vmax: float | None = None,
              cmap: str = "viridis") -> np.ndarray:
    """(H,W) float -> (H,W,3) uint8 through a matplotlib colour map; NaN -> black."""
    import matplotlib
    v = np.asarray(values, np.float64)
    finite = np.isfinite(v)
    lo = float(np.nanmin(v)) if vmin is None and finite.any() else (vmin or 0.0)
    hi = float(np.nanmax(v)) if vmax is None and finite.any() else (vmax if vmax is not None else 1.0)
    t = np.clip((np.where(finite, v, lo) - lo) / max(hi - lo, 1e-12), 0, 1)
    rgb = (matplotlib.colormaps[cmap](t)[..., :3] * 255).astype(np.uint8)
    rgb[~finite] = 0
    return rgb


def island_size_map(source_index: np.ndarray) -> np.ndarray:
    """(H,W) int64: size of the 4-connected single-source region each pixel belongs to (0: given)."""
    from nps.analysis.composition import island_sizes
    return island_sizes(np.asarray(source_index)[None])[0]


def _scales(record: ProvenanceRecord, n: int, entropy_window: int) -> dict[str, tuple[np.ndarray, OverlayKey]]:
    """The continuous layers of sample n: (H,W) float64 values (NaN: given pixel) and their keys."""
    from nps.analysis.entropy import entropy_map
    src = record.source_index[n]
    valid = src >= 0
    win = min(entropy_window, *record.canvas_shape)
    ent = entropy_map(src[None], win, valid[None])[0]
    pool = np.where(valid, np.log10(np.maximum(record.pool_size[n], 1).astype(np.float64)), np.nan)
    islands = np.where(valid, island_size_map(src).astype(np.float64), np.nan)
    top_island = float(np.nanmax(islands)) if valid.any() else 2.0
    top_pool = float(np.nanmax(pool)) if valid.any() else 1.0
    return {
        "copy islands": (islands, OverlayKey("copy islands", LAYER_NOTES["copy islands"], cmap="magma", vmin=1.0,
                                             vmax=max(top_island, 2.0), unit="island size (pixels)")),
        "pool size": (pool, OverlayKey("pool size", LAYER_NOTES["pool size"], cmap="viridis", vmin=0.0,
                                       vmax=max(top_pool, 1.0), unit="pool size (windows, log scale)", log10=True)),
        "entropy": (ent, OverlayKey("entropy", LAYER_NOTES["entropy"] + f" Window {win}×{win}.", cmap="viridis",
                                    vmin=0.0, vmax=float(np.log2(win * win)), unit=f"image-ID entropy, {win}×{win} "
                                                                                  "window (bits)")),
    }


def overlay_layers(record: ProvenanceRecord, n: int, entropy_window: int = 5) -> dict[str, np.ndarray]:
    """Each overlay of sample n as (H,W,3) uint8, keyed by :data:`LAYERS`."""
    from nps.lab.plots import class_map_rgb, id_map_rgb
    src = record.source_index[n]
    out = {"image-ID": id_map_rgb(src)[0], "class": class_map_rgb(record.source_label[n])}
    for name, (values, key) in _scales(record, n, entropy_window).items():
        out[name] = colourise(values, key.vmin, key.vmax, key.cmap)
    return {name: out[name] for name in LAYERS}


def overlay_key(record: ProvenanceRecord, n: int, name: str, class_names: tuple[str, ...] = (),
                entropy_window: int = 5) -> OverlayKey:
    """The key of layer ``name`` for sample n (the colours of :func:`overlay_layers`)."""
    from nps.lab.plots import TAB10, TOP_COLOURS, id_map_rgb
    src = record.source_index[n]
    given = bool((src < 0).any())
    black = (("given pixel (not sampled)", (0, 0, 0)),) if given else ()
    if name == "class":
        labels = np.unique(record.source_label[n][src >= 0])
        entries = tuple((class_names[lab] if 0 <= lab < len(class_names) else str(lab),
                         tuple(int(c) for c in TAB10[lab % 10])) for lab in labels)
        return OverlayKey(name, LAYER_NOTES[name], entries + black)
    if name == "image-ID":
        _, ids, counts = id_map_rgb(src)
        entries = tuple((f"#{sid} ({cnt} px)", tuple(int(c) for c in TOP_COLOURS[r % len(TOP_COLOURS)]))
                        for r, (sid, cnt) in enumerate(zip(ids, counts)))
        rest = int((src >= 0).sum() - counts.sum())
        pale = (("other sources, one pale hue each" + (f" ({rest} px)" if rest else ""), (190, 200, 170)),)
        return OverlayKey(name, LAYER_NOTES[name], entries + (pale if rest else ()) + black)
    scales = _scales(record, n, entropy_window)
    if name not in scales:
        raise KeyError(f"unknown overlay '{name}'; choose one of {', '.join(LAYERS)}")
    return scales[name][1]


def compose_overlay(image: np.ndarray, layers: Mapping[str, np.ndarray], chosen: Iterable[str],
                    alpha: float = 0.6) -> np.ndarray:
    """Blend the chosen layers over the sample, in :data:`LAYERS` order.

    Args:
        image: (H,W[,C]) uint8 sample.
        alpha: weight of each layer over what lies below (1: the layer alone).
    Returns:
        (H,W,3) uint8; with nothing chosen, the sample itself in RGB.
    """
    from nps.lab.plots import to_rgb
    out = to_rgb(np.asarray(image)[None])[0].astype(np.float64)
    chosen = [c for c in LAYERS if c in set(chosen)]
    for name in chosen:
        out = (1 - alpha) * out + alpha * layers[name].astype(np.float64)
    return np.clip(out, 0, 255).astype(np.uint8)
