"""Every picture: the plotly figure builds and the PNG writer writes a valid PNG."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from nps.analysis import record_from_maps
from nps.analysis.memorisation import MemorisationReport
from nps.lab import plots


@pytest.fixture(scope="module")
def record():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(30, 8, 8), dtype=np.uint8)
    src = rng.integers(0, 30, size=(6, 8, 8))
    src[0, :4, :4] = 3  # a copy island
    src[1, 0, :] = -1  # given pixels
    return record_from_maps(src, train, np.arange(30) % 10, seed_size=2), train


def valid_png(path, min_size=(8, 8)):
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= min_size[0] and im.size[1] >= min_size[1]
        return im.size


def test_grid_and_colour_maps_are_exact():
    imgs = np.arange(4 * 2 * 2, dtype=np.uint8).reshape(4, 2, 2)
    g = plots.grid_array(imgs, ncol=2, pad=1)
    assert g.shape == (7, 7, 3) and np.array_equal(g[1:3, 4:6, 0], imgs[1])
    rgb, ids, counts = plots.id_map_rgb(np.array([[5, 5, 5], [2, 2, -1], [9, 7, 1]]), k=2)
    assert ids.tolist() == [5, 2] and counts.tolist() == [3, 2]
    assert (rgb[0, 0] == plots.TOP_COLOURS[0]).all() and (rgb[1, 0] == plots.TOP_COLOURS[1]).all()
    assert (rgb[1, 2] == 0).all()  # a given pixel is black
    assert (plots.class_map_rgb(np.array([[3, -1]]))[0, 0] == plots.TAB10[3]).all()


def test_thumbnails_tint_exactly_the_copied_pixels(record):
    rec, train = record
    thumbs = plots.thumbnails(rec, 0, train, k=5)
    sid, count, pic = thumbs[0]
    assert sid == 3 and count == int((rec.source_index[0] == 3).sum())
    grey = (plots.to_rgb(train[3][None])[0].astype(np.float64) * 0.6).astype(np.uint8)
    changed = (pic != grey).any(2)
    assert changed[rec.source_y[0][rec.source_index[0] == 3], rec.source_x[0][rec.source_index[0] == 3]].all()
    assert changed.sum() <= count


def test_figures_and_pngs(record, tmp_path):
    rec, train = record
    rng = np.random.default_rng(1)
    report = MemorisationReport({"pixels": rng.random(20)}, {"pixels": rng.random(50)},
                                {"pixels": np.zeros(20, np.int64)}, np.zeros(20, bool))
    maps = {"a": rng.random((8, 8)), "b": np.full((8, 8), np.nan)}
    rows = [{"eps": e, "window": w, "IS": e * w, "class_H": e} for w in (3, 5) for e in (0.1, 0.2)]
    figures = [
        plots.sample_grid_figure(rec.images, title="t"),
        plots.trace_figure(rec, 0, train),
        plots.class_map_figure(rec.source_label[0], tuple("0123456789")),
        plots.heatmaps_figure(maps),
        plots.composition_figure(rec.source_index),
        plots.compare_figure({"x": {"m": 1.0}, "y": {"m": 2.0}}, ["m"]),
        plots.memorisation_figure(report),
        plots.sweep_figure(rows, "eps", ["IS", "class_H"], group="window"),
    ]
    for fig in figures:
        assert isinstance(fig, go.Figure) and len(fig.data) >= 1
    images = [t for t in figures[1].data if t.type == "image"]
    assert len(images) == 3 + 5  # sample, two maps, five thumbnails
    writers = {
        "grid": lambda p: plots.save_sample_grid(rec.images, p),
        "fig2": lambda p: plots.save_ablation_grids({"SSD": rec.images, "all": rec.images}, p),
        "trace": lambda p: plots.save_trace(rec, 1, train, p),
        "classes": lambda p: plots.save_class_maps(rec.source_label, p),
        "ids": lambda p: plots.save_id_maps(rec.source_index, p),
        "heat": lambda p: plots.save_heatmaps(maps, p),
        "comp": lambda p: plots.save_composition(rec.source_index, p),
        "compare": lambda p: plots.save_compare({"x": {"m": 1.0}, "y": {"m": 2.0}}, ["m"], p),
        "memo": lambda p: plots.save_memorisation(report, p),
        "sweep": lambda p: plots.save_sweep(rows, "eps", ["IS", "class_H"], p, group="window"),
    }
    for name, write in writers.items():
        path = write(tmp_path / f"{name}.png")
        assert path.is_file(), name
        valid_png(path)
    # 6 images -> 3 columns x 2 rows of 8 px with 1 px gaps, upscaled 3x
    assert valid_png(tmp_path / "grid.png") == ((3 * (8 + 1) + 1) * 3, (2 * (8 + 1) + 1) * 3)


# --------------------------------------------------------------------------- keys, colour bars, titled axes
def _bar_titles(fig) -> list[str]:
    out = []
    for t in fig.data:
        if t.type == "heatmap":
            out.append(t.colorbar.title.text)
        elif t.type == "scatter" and t.marker is not None and t.marker.showscale:
            out.append(t.marker.colorbar.title.text)
    return out


def test_heatmaps_have_a_colour_bar_with_a_unit_each_and_titled_canvas_axes():
    rng = np.random.default_rng(0)
    maps = {"class entropy": rng.random((8, 6)), "image-ID entropy": rng.random((8, 6))}
    fig = plots.heatmaps_figure(maps, {"class entropy": "bits", "image-ID entropy": "bits"})
    assert _bar_titles(fig) == ["bits", "bits"]
    bars = [t.colorbar.x for t in fig.data]
    assert bars[0] < bars[1] <= 1.02  # each bar beside its own map, not stacked at the right edge
    assert [a.text for a in fig.layout.annotations] == list(maps)
    for ax in ("xaxis", "xaxis2"):
        assert fig.layout[ax].title.text == "x (pixel column)" and tuple(fig.layout[ax].range) == (-0.5, 5.5)
    for ax in ("yaxis", "yaxis2"):
        assert fig.layout[ax].title.text == "y (pixel row)" and tuple(fig.layout[ax].range) == (7.5, -0.5)
    assert fig.layout.yaxis2.scaleanchor == "x2"  # square pixels in every subplot
    pool = plots.heatmaps_figure({"pool": np.log10(rng.integers(1, 500, (8, 8)))}, "windows", log10=True)
    assert list(pool.data[0].colorbar.ticktext)[:3] == ["1", "10", "100"]


def test_funnel_has_a_titled_log_axis():
    fig = plots.funnel_figure([("every window", 92288), ("locality ∩ representation", 288), ("pool", 3)])
    assert fig.layout.xaxis.type == "log" and "log scale" in fig.layout.xaxis.title.text
    assert fig.layout.yaxis.automargin and fig.layout.title.text


def test_a_pool_of_one_window_is_a_visible_bar():
    """log10(1) = 0: the axis must start below 1 or the pool's bar has no length (plotly draws from the edge)."""
    rows = [("every window", 92288), ("locality", 2000), ("pool", 1)]
    lo, hi = plots.funnel_figure(rows).layout.xaxis.range
    assert np.log10(1) - lo >= 0.25 * (hi - lo) / np.log10(92288)  # at least a quarter decade's share drawn
    assert hi >= np.log10(92288)  # and the largest bar still fits
    assert all(np.log10(v) > lo for _, v in rows)  # every positive count ends inside the axis


def test_every_overlay_has_a_key(record):
    from nps.lab.overlays import LAYER_NOTES, LAYERS, colourise, overlay_key, overlay_layers
    rec, _ = record
    names = tuple(f"digit {i}" for i in range(10))
    layers = overlay_layers(rec, 1)
    for name in LAYERS:
        key = overlay_key(rec, 1, name, names)
        assert key.note.startswith(LAYER_NOTES[name][:20])
        fig = plots.canvas_figure(layers[name], key, (2, 3))
        if key.continuous:
            assert key.unit and _bar_titles(fig) == [key.unit]
            assert not fig.layout.showlegend
        else:
            legend = [t.name for t in fig.data[2:]]  # after the picture and the clickable points
            assert legend == [label for label, _ in key.entries] and fig.layout.showlegend
    cls = overlay_key(rec, 1, "class", names)
    present = sorted(set(rec.source_label[1][rec.source_index[1] >= 0].tolist()))
    assert [label for label, _ in cls.entries][:len(present)] == [names[i] for i in present]
    assert cls.entries[len(present)][0].startswith("given pixel")  # sample 1 has given pixels (black)
    assert all(tuple(plots.TAB10[i]) == rgb for i, (_, rgb) in zip(present, cls.entries))
    ids = overlay_key(rec, 0, "image-ID")
    assert ids.entries[0] == (f"#3 ({int((rec.source_index[0] == 3).sum())} px)", tuple(plots.TOP_COLOURS[0]))
    pool = overlay_key(rec, 1, "pool size")
    assert pool.log10 and pool.vmin == 0
    # The key's range is the one that coloured the layer.
    isl = overlay_key(rec, 0, "copy islands")
    from nps.lab.overlays import island_size_map
    sizes = np.where(rec.source_index[0] >= 0, island_size_map(rec.source_index[0]), np.nan).astype(float)
    assert np.array_equal(layers_of(rec, 0)["copy islands"], colourise(sizes, isl.vmin, isl.vmax, isl.cmap))
    assert isl.vmax == np.nanmax(sizes) >= 16  # at least the 4x4 island of sample 0


def layers_of(rec, n):
    from nps.lab.overlays import overlay_layers
    return overlay_layers(rec, n)


def test_charts_have_titled_axes(record):
    rec, train = record
    comp = plots.composition_figure(rec.source_index)
    assert comp.layout.xaxis.title.text and comp.layout.yaxis.title.text and "n = 6" in comp.layout.title.text
    cmp_ = plots.compare_figure({"x": {"m": 1.0}}, ["m"])
    assert cmp_.layout.xaxis.title.text and cmp_.layout.yaxis.title.text
    rows = [{"eps": e, "IS": e} for e in (0.1, 0.2)]
    sw = plots.sweep_figure(rows, "eps", ["IS"])
    assert sw.layout.xaxis.title.text == "eps" and sw.layout.yaxis.title.text == "IS"
    tr = plots.trace_figure(rec, 0, train, class_names=tuple("0123456789"))
    keys = [t.name for t in tr.data if t.type == "scatter"]
    present = sorted(set(rec.source_label[0][rec.source_index[0] >= 0].tolist()))
    assert keys == [f"class {i}" for i in present]


def test_grid_figure_points_cover_the_tiles_and_map_back():
    from nps.lab.plots_maps import grid_figure, grid_index_from_points
    imgs = np.zeros((6, 8, 8), np.uint8)
    fig = grid_figure(imgs, ncol=3, selected=4, tile_px=50)
    pts = fig.data[1]
    assert list(pts.customdata) == list(range(6))
    assert (pts.x[4], pts.y[4]) == (1 + 1 * 9 + 3.5, 1 + 1 * 9 + 3.5)  # tile (row 1, col 1) centre
    assert fig.layout.width == 150 and fig.layout.height == 100  # exactly the tiles: markers cover them
    rect = fig.layout.shapes[0]
    assert rect.x0 < pts.x[4] < rect.x1 and rect.y0 < pts.y[4] < rect.y1
    assert grid_index_from_points([{"customdata": 1}, {"customdata": 5}], 6) == 5
    assert grid_index_from_points([{"customdata": [2]}], 6) == 2
    assert grid_index_from_points([{"customdata": 9}], 6) is None and grid_index_from_points([], 6) is None
