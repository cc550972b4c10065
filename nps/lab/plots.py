"""Every picture of the lab, as a plotly figure (``*_figure``) and a PNG writer (``save_*``).

The Streamlit app calls the ``*_figure`` functions; the CLI and the report call the
``save_*`` ones.  Image-like pictures (grids, provenance maps) are composed as uint8
arrays and written with PIL; charts are drawn with matplotlib (Agg backend).

Colour conventions: in an image-ID map the five most used sources of a sample get
the strong colours of :data:`TOP_COLOURS` (the same colours frame their thumbnails
and tint the pixels copied from them); other sources get a muted hue derived from
their id; given pixels (id -1) are black.  Class maps use the tab10 palette.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np

from nps.lab.plots_maps import canvas_figure, funnel_figure, heatmaps_figure  # noqa: F401 - part of this API

TOP_COLOURS = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180]], np.uint8)
TAB10 = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                  [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]], np.uint8)


# --------------------------------------------------------------------------- arrays
def to_rgb(images: np.ndarray) -> np.ndarray:
    """(N,H,W) or (N,H,W,C) uint8 -> (N,H,W,3) uint8."""
    a = np.asarray(images)
    if a.ndim == 3:
        return np.repeat(a[..., None], 3, axis=3)
    return a[..., :3] if a.shape[3] >= 3 else np.repeat(a[..., :1], 3, axis=3)


def grid_array(images: np.ndarray, ncol: int | None = None, pad: int = 1, pad_value: int = 96) -> np.ndarray:
    """Tile (N,H,W[,C]) uint8 images into one (Hg,Wg,3) uint8 picture, row-major."""
    rgb = to_rgb(images)
    n, h, w = rgb.shape[:3]
    ncol = ncol or int(np.ceil(np.sqrt(max(n, 1))))
    nrow = int(np.ceil(n / ncol)) if n else 1
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, 3), pad_value, np.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = rgb[i]
    return out


def upscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscale of (H,W,3) by an integer factor (pixels stay crisp)."""
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)


def _muted(ids: np.ndarray) -> np.ndarray:
    hue = (np.asarray(ids, np.float64) * 0.618033988749895) % 1.0
    return np.array([colorsys.hsv_to_rgb(h, 0.35, 0.85) for h in hue]).reshape(-1, 3) * 255


def id_map_rgb(source_index: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour an (H,W) image-ID map; returns (H,W,3) uint8, top-k ids and their pixel counts."""
    from nps.analysis.composition import top_sources
    src = np.asarray(source_index)
    ids, counts = top_sources(src, k)
    uniq, inv = np.unique(src, return_inverse=True)
    pal = _muted(uniq).astype(np.uint8)
    for rank, sid in enumerate(ids):
        pal[uniq == sid] = TOP_COLOURS[rank % len(TOP_COLOURS)]
    pal[uniq < 0] = 0
    return pal[inv.reshape(src.shape)], ids, counts


def class_map_rgb(source_label: np.ndarray) -> np.ndarray:
    """(H,W) labels -> (H,W,3) uint8 in tab10 (labels mod 10); -1 is black."""
    lab = np.asarray(source_label)
    out = TAB10[np.mod(lab, 10)]
    out[lab < 0] = 0
    return out


def thumbnails(record, n: int, train: np.ndarray, k: int = 5) -> list[tuple[int, int, np.ndarray]]:
    """Top-k sources of sample n: (train id, pixels copied, (H,W,3) uint8 picture).

    The picture is the training image dimmed to grey, with the pixels that were copied
    from it (at their source positions) tinted in the source's map colour.
    """
    _, ids, counts = id_map_rgb(record.source_index[n], k)
    out = []
    for rank, (sid, cnt) in enumerate(zip(ids, counts)):
        pic = (to_rgb(train[sid][None])[0].astype(np.float64) * 0.6).astype(np.uint8)
        m = record.source_index[n] == sid
        ys, xs = record.source_y[n][m], record.source_x[n][m]
        colour = TOP_COLOURS[rank % len(TOP_COLOURS)].astype(np.float64)
        pic[ys, xs] = (0.45 * to_rgb(train[sid][None])[0][ys, xs] + 0.55 * colour).astype(np.uint8)
        out.append((int(sid), int(cnt), pic))
    return out


# --------------------------------------------------------------------------- PIL helpers
def _save_rgb(rgb: np.ndarray, path: str | Path) -> Path:
    from PIL import Image

    from nps.cache import atomic_write
    # A full disk is one line (WriteError), never half a picture.
    image = Image.fromarray(np.ascontiguousarray(rgb, np.uint8))
    return atomic_write(Path(path), lambda f: image.save(f, format="PNG"))


def _captioned(panels: list[tuple[str, np.ndarray]], scale: int, gap: int = 6) -> np.ndarray:
    """Panels upscaled and laid side by side, each with a caption above (PIL default font)."""
    from PIL import Image, ImageDraw
    ups = [upscale(p, scale) for _, p in panels]
    cap_h = 14
    width = sum(u.shape[1] for u in ups) + gap * (len(ups) + 1)
    height = max(u.shape[0] for u in ups) + cap_h + 2 * gap
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = gap
    for (title, _), u in zip(panels, ups):
        draw.text((x, gap // 2), title, fill=(0, 0, 0))
        canvas.paste(Image.fromarray(u), (x, gap + cap_h))
        x += u.shape[1] + gap
    return np.asarray(canvas)


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255)
                           for r in rows])


# --------------------------------------------------------------------------- sample grid
def sample_grid_figure(images: np.ndarray, ncol: int | None = None, title: str | None = None):
    import plotly.graph_objects as go
    fig = go.Figure(go.Image(z=grid_array(images, ncol)))
    fig.update_layout(title=title, margin=dict(l=0, r=0, t=30 if title else 0, b=0))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def save_sample_grid(images: np.ndarray, path: str | Path, ncol: int | None = None, scale: int = 3) -> Path:
    return _save_rgb(upscale(grid_array(images, ncol), scale), path)


def save_ablation_grids(grids: dict[str, np.ndarray], path: str | Path, ncol: int = 8, scale: int = 2) -> Path:
    """Figure-2 layout: one sample grid per configuration, side by side, captioned."""
    return _save_rgb(_captioned([(t, grid_array(g[: ncol * ncol], ncol)) for t, g in grids.items()], scale), path)


# --------------------------------------------------------------------------- provenance of one sample
def trace_panels(record, n: int, train: np.ndarray, k: int = 5) -> tuple[list, list]:
    """(top row, bottom row) of (caption, (H,W,3) uint8) panels for sample n."""
    idmap = id_map_rgb(record.source_index[n], k)[0]
    total = max(int((record.source_index[n] >= 0).sum()), 1)
    top = [(f"sample {int(record.sample_id[n])}", to_rgb(record.images[n][None])[0]),
           (f"image-ID map ({len(np.unique(record.source_index[n][record.source_index[n] >= 0]))} src)", idmap),
           ("class map", class_map_rgb(record.source_label[n]))]
    bottom = [(f"#{sid} {cnt / total:.0%}", pic) for sid, cnt, pic in thumbnails(record, n, train, k)]
    return top, bottom


def trace_figure(record, n: int, train: np.ndarray, k: int = 5,
                 class_names: tuple[str, ...] = ()):
    """Sample, its image-ID and class maps (with the class key), and its top-k sources, copied pixels tinted."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    top, bottom = trace_panels(record, n, train, k)
    cols = max(len(top), len(bottom), 1)
    titles = [t for t, _ in top] + [""] * (cols - len(top)) + [t for t, _ in bottom]
    fig = make_subplots(rows=2, cols=cols, subplot_titles=titles, vertical_spacing=0.08)
    for row, panels in ((1, top), (2, bottom)):
        for c, (_, pic) in enumerate(panels):
            fig.add_trace(go.Image(z=pic), row=row, col=c + 1)
    # The class map's key: one square per label present (a legend entry with no data drawn).
    labels = record.source_label[n]
    for lab in np.unique(labels[labels >= 0]):
        name = class_names[lab] if lab < len(class_names) else str(lab)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"class {name}", hoverinfo="skip",
                                 marker=dict(symbol="square", size=12, color="rgb({},{},{})".format(*TAB10[lab % 10]))))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(margin=dict(l=0, r=0, t=40, b=0), height=420, showlegend=True,
                      legend=dict(title=dict(text="class map"), itemclick=False, itemdoubleclick=False))
    return fig


def save_trace(record, n: int, train: np.ndarray, path: str | Path, k: int = 5, scale: int = 5) -> Path:
    top, bottom = trace_panels(record, n, train, k)
    rows = [_captioned(top, scale)] + ([_captioned(bottom, scale)] if bottom else [])
    return _save_rgb(_stack(rows), path)


def class_map_figure(source_label: np.ndarray, class_names: tuple[str, ...] = ()):
    """One class map with a legend of the labels present."""
    import plotly.graph_objects as go
    fig = go.Figure(go.Image(z=class_map_rgb(source_label)))
    for lab in np.unique(source_label[source_label >= 0]):
        name = class_names[lab] if lab < len(class_names) else str(lab)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name,
                                 marker=dict(color="rgb({},{},{})".format(*TAB10[lab % 10]), size=10)))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(margin=dict(l=0, r=0, t=0, b=0), showlegend=True)
    return fig


def save_class_maps(labels: np.ndarray, path: str | Path, ncol: int | None = None, scale: int = 3) -> Path:
    """Grid of class maps of (N,H,W) label maps."""
    return _save_rgb(upscale(grid_array(np.stack([class_map_rgb(m) for m in labels]), ncol), scale), path)


def save_id_maps(source_index: np.ndarray, path: str | Path, ncol: int | None = None, scale: int = 3) -> Path:
    """Grid of image-ID maps of (N,H,W) source maps."""
    return _save_rgb(upscale(grid_array(np.stack([id_map_rgb(m)[0] for m in source_index]), ncol), scale), path)


# --------------------------------------------------------------------------- charts (matplotlib for PNG)
def _mpl():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save_mpl(fig, path: str | Path) -> Path:
    from nps.cache import atomic_write
    try:
        return atomic_write(Path(path), lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    finally:
        _mpl().close(fig)


def save_heatmaps(maps: dict[str, np.ndarray], path: str | Path, colorbar: str = "bits") -> Path:
    plt = _mpl()
    fig, axes = plt.subplots(1, max(len(maps), 1), figsize=(3.2 * max(len(maps), 1), 3), squeeze=False)
    for ax, (title, m) in zip(axes[0], maps.items()):
        lo, hi = (float(np.nanmin(m)), float(np.nanmax(m))) if np.isfinite(m).any() else (0.0, 1.0)
        im = ax.imshow(m, cmap="viridis", vmin=lo, vmax=hi if hi > lo else lo + 1.0)  # a constant map stays dark
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046, label=colorbar)
    return _save_mpl(fig, path)


def _composition_shares(comp_or_src: np.ndarray) -> np.ndarray:
    """(N,H,W) source maps -> (N,3) shares of top-1, sources 2..5, the rest (sorted by top-1)."""
    from nps.analysis.composition import top_sources
    rows = []
    for m in comp_or_src:
        _, counts = top_sources(m, 5)
        total = max(int((m >= 0).sum()), 1)
        top1 = counts[0] / total if len(counts) else 0.0
        top5 = counts.sum() / total if len(counts) else 0.0
        rows.append((top1, top5 - top1, 1 - top5))
    rows = np.array(rows).reshape(-1, 3)
    return rows[np.argsort(-rows[:, 0], kind="stable")]


COMPOSITION_PARTS = ("top-1 source", "sources 2-5", "other sources")


def composition_figure(source_index: np.ndarray):
    """Stacked bars, one per sample: share of pixels from the top-1, next 4 and other sources."""
    import plotly.graph_objects as go
    shares = _composition_shares(source_index)
    fig = go.Figure([go.Bar(y=shares[:, j], name=name) for j, name in enumerate(COMPOSITION_PARTS)])
    fig.update_layout(barmode="stack", xaxis_title="sample (sorted by top-1 share)", yaxis_title="share of pixels",
                      title=f"Where each sample's pixels come from (n = {len(shares)})",
                      legend_title_text="pixels copied from")
    return fig


def save_composition(source_index: np.ndarray, path: str | Path) -> Path:
    plt = _mpl()
    shares = _composition_shares(source_index)
    fig, ax = plt.subplots(figsize=(7, 2.8))
    x, bottom = np.arange(len(shares)), np.zeros(len(shares))
    for j, name in enumerate(COMPOSITION_PARTS):
        ax.bar(x, shares[:, j], bottom=bottom, width=1.0, label=name)
        bottom += shares[:, j]
    ax.set(xlabel="sample (sorted by top-1 share)", ylabel="share of pixels", ylim=(0, 1))
    ax.legend(fontsize=8, loc="upper right")
    return _save_mpl(fig, path)


def compare_figure(table: dict[str, dict[str, float]], metrics: list[str]):
    """Grouped bars: one group per metric, one bar per configuration (values as given)."""
    import plotly.graph_objects as go
    fig = go.Figure([go.Bar(name=cfg, x=metrics, y=[row.get(m, np.nan) for m in metrics])
                     for cfg, row in table.items()])
    fig.update_layout(barmode="group", xaxis_title="metric", yaxis_title="value (units as named)",
                      legend_title_text="configuration", title="Metrics by configuration")
    return fig


def save_compare(table: dict[str, dict[str, float]], metrics: list[str], path: str | Path) -> Path:
    plt = _mpl()
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics), 2.8), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        ax.bar(range(len(table)), [row.get(m, np.nan) for row in table.values()],
               color=[f"C{i}" for i in range(len(table))])
        ax.set_title(m, fontsize=9)
        ax.set_xticks(range(len(table)), list(table), rotation=45, ha="right", fontsize=7)
    return _save_mpl(fig, path)


def memorisation_figure(report):
    """Histograms of nearest/second-nearest ratios: samples vs real test images, per space."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    spaces = list(report.ratios)
    fig = make_subplots(rows=1, cols=len(spaces), subplot_titles=spaces)
    for c, s in enumerate(spaces):
        for who, r, colour in (("samples", report.ratios[s], "#d62728"),
                               ("real test", report.real_ratios[s], "#7f7f7f")):
            fig.add_trace(go.Histogram(x=r, name=who, histnorm="probability", xbins=dict(start=0, end=1, size=0.04),
                                       marker_color=colour, opacity=0.6, showlegend=c == 0), row=1, col=c + 1)
        fig.add_vline(x=report.threshold, line_dash="dash", row=1, col=c + 1)
    fig.update_layout(barmode="overlay", title="Nearest / second-nearest training distance (dashed: 1/3)",
                      legend_title_text="images")
    fig.update_xaxes(title_text="d(nearest) / d(second nearest)")
    fig.update_yaxes(title_text="share of images", col=1)
    return fig


def save_memorisation(report, path: str | Path) -> Path:
    plt = _mpl()
    spaces = list(report.ratios)
    fig, axes = plt.subplots(1, len(spaces), figsize=(3.6 * len(spaces), 2.8), squeeze=False)
    bins = np.linspace(0, 1, 26)
    for ax, s in zip(axes[0], spaces):
        ax.hist(report.real_ratios[s], bins=bins, density=True, alpha=0.5, color="grey", label="real test")
        ax.hist(report.ratios[s], bins=bins, density=True, alpha=0.6, color="C3", label="samples")
        ax.axvline(report.threshold, ls="--", color="k", lw=1)
        ax.set(title=f"{s}: below 1/3 {report.fraction_below(s):.1%} (real {report.fraction_below(s, True):.1%})",
               xlabel="d(nearest) / d(2nd nearest)")
        ax.title.set_fontsize(8)
        ax.legend(fontsize=7)
    return _save_mpl(fig, path)


# --------------------------------------------------------------------------- sweep
def sweep_figure(rows: list[dict], x: str, metrics: list[str], group: str | None = None):
    """One panel per metric: metric vs parameter ``x``, one line per value of ``group``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics)
    for c, m in enumerate(metrics):
        for g, sel in _groups(rows, group):
            fig.add_trace(go.Scatter(x=[r[x] for r in sel], y=[r.get(m) for r in sel], mode="lines+markers",
                                     name=g, legendgroup=g, showlegend=c == 0), row=1, col=c + 1)
        fig.update_xaxes(title_text=x, row=1, col=c + 1)
        fig.update_yaxes(title_text=m, row=1, col=c + 1)
    return fig


def _groups(rows: list[dict], group: str | None) -> list[tuple[str, list[dict]]]:
    if group is None:
        return [("all", rows)]
    keys = list(dict.fromkeys(str(r[group]) for r in rows))
    # A private group key ("_group", already "a=1, b=2") is shown as its value alone.
    return [(k if group.startswith("_") else f"{group}={k}", [r for r in rows if str(r[group]) == k]) for k in keys]


def save_sweep(rows: list[dict], x: str, metrics: list[str], path: str | Path, group: str | None = None) -> Path:
    plt = _mpl()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 2.8), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for g, sel in _groups(rows, group):
            ax.plot([str(r[x]) for r in sel], [r.get(m, np.nan) for r in sel], marker="o", label=g)
        ax.set_title(m, fontsize=9)
        ax.set_xlabel(x)
    if group is not None:
        axes[0][-1].legend(fontsize=7)
    return _save_mpl(fig, path)
