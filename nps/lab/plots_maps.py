"""Map-like plotly figures with their keys: the overlay canvas, heat maps, the constraint funnel.

Every map here carries what a reader needs to decode it: a colour bar with its unit
(or a categorical key), titled axes in canvas coordinates (pixel row y, column x, the
range clamped to the canvas), and a title.  Colour scales are sampled from the same
matplotlib colour maps that :func:`nps.lab.overlays.colourise` uses, so a bar matches its
picture exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from nps.lab.overlays import OverlayKey

AXIS_X = "x (pixel column)"
AXIS_Y = "y (pixel row)"


def colourscale(cmap: str, steps: int = 11) -> list[list]:
    """A plotly colour scale sampled from matplotlib's ``cmap``: [[t, "rgb(r,g,b)"], ...]."""
    import matplotlib
    cm = matplotlib.colormaps[cmap]
    out = []
    for t in np.linspace(0.0, 1.0, steps):
        r, g, b = (np.asarray(cm(t)[:3]) * 255).astype(int)
        out.append([float(t), f"rgb({r},{g},{b})"])
    return out


def log_ticks(vmax: float) -> dict:
    """Colour-bar ticks for log10 values, labelled with the counts (1, 10, 100, ...)."""
    top = int(np.ceil(max(vmax, 1.0)))
    vals = list(range(0, top + 1))
    return {"tickvals": vals, "ticktext": [f"{10 ** v:,}" for v in vals]}


def _canvas_axes(fig, h: int, w: int, row: int | None = None, col: int | None = None,
                 anchor: str = "x", titles: bool = True) -> None:
    """Clamp a subplot's axes to the h x w canvas (square pixels, y down) and title them."""
    kw = {} if row is None else {"row": row, "col": col}
    fig.update_xaxes(range=[-0.5, w - 0.5], constrain="domain", title_text=AXIS_X if titles else None,
                     showgrid=False, zeroline=False, **kw)
    fig.update_yaxes(range=[h - 0.5, -0.5], constrain="domain", scaleanchor=anchor, scaleratio=1,
                     title_text=AXIS_Y if titles else None, showgrid=False, zeroline=False, **kw)


def canvas_figure(pic: np.ndarray, key: OverlayKey | None = None, pixel: tuple[int, int] | None = None,
                  height: int = 380, title: str | None = None, hover: np.ndarray | None = None):
    """One sample (under an overlay) with its key, a clickable point per pixel and the selected pixel outlined.

    Args:
        pic: (H,W,3) uint8, the picture to show.
        key: the overlay's key (a legend of colours, or a colour bar with its unit); None: no overlay.
        pixel: (y, x) to outline in red.
        hover: (H,W) str, one hover line per pixel (e.g. :func:`app_support.display.pixel_hover`);
            None shows the coordinates.
    """
    import plotly.graph_objects as go
    h, w = pic.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    fig = go.Figure(go.Image(z=pic, hoverinfo="skip", name="canvas"))
    # Near-invisible points make every pixel clickable (a plotly image trace emits no selection events).
    fig.add_trace(go.Scatter(x=xx.ravel(), y=yy.ravel(), mode="markers", name="pixels", showlegend=False,
                             marker=dict(size=max(4, 300 // max(h, w)), opacity=0.01, color="white"),
                             text=None if hover is None else np.asarray(hover, object).ravel().tolist(),
                             hovertemplate=("y=%{y}, x=%{x}" if hover is None else "%{text}") + "<extra></extra>"))
    if pixel is not None:
        y, x = pixel
        fig.add_shape(type="rect", x0=x - 0.5, x1=x + 0.5, y0=y - 0.5, y1=y + 0.5,
                      line=dict(color="#ff3b3b", width=3))
    if key is not None and key.continuous:
        bar = dict(title=dict(text=key.unit, side="right"), thickness=14, len=0.9)
        if key.log10:
            bar.update(log_ticks(key.vmax))
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                                 name=key.unit,
                                 marker=dict(colorscale=colourscale(key.cmap), cmin=key.vmin, cmax=key.vmax,
                                             color=[key.vmin], showscale=True, colorbar=bar)))
    elif key is not None:
        for label, rgb in key.entries:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=label, hoverinfo="skip",
                                     marker=dict(symbol="square", size=12, color="rgb({},{},{})".format(*rgb),
                                                 line=dict(color="#888", width=1))))
        # Below the canvas, so the key does not squeeze the picture.
        fig.update_layout(legend=dict(title=dict(text=key.name + ":"), orientation="h", x=0, y=-0.02,
                                      yanchor="top", itemclick=False, itemdoubleclick=False))
    _canvas_axes(fig, h, w, titles=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    legend_rows = 0 if key is None or key.continuous else (len(key.entries) + 2) // 3
    fig.update_layout(margin=dict(l=0, r=0, t=28 if title else 0, b=0), height=height + 22 * legend_rows,
                      dragmode=False,
                      clickmode="event+select", title=title, showlegend=key is not None and not key.continuous,
                      plot_bgcolor="white")
    return fig


def heatmaps_figure(maps: Mapping[str, np.ndarray], colorbar: str | Mapping[str, str] = "bits",
                    log10: bool = False):
    """Side-by-side heat maps of (H,W) float maps, each with its own colour bar and unit.

    Args:
        maps: title -> (H,W) float map (NaN: no value, drawn blank).
        colorbar: the unit of every map, or one per title.
        log10: the maps hold log10 of counts; the colour bars are labelled with the counts.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    names = list(maps)
    k = max(len(names), 1)
    fig = make_subplots(rows=1, cols=k, subplot_titles=names, horizontal_spacing=0.14 if k > 1 else 0.0)
    for c, name in enumerate(names):
        m = np.asarray(maps[name], np.float64)
        unit = colorbar if isinstance(colorbar, str) else colorbar.get(name, "")
        axis = "" if c == 0 else str(c + 1)
        dom = fig.layout[f"xaxis{axis}"].domain
        bar = dict(title=dict(text=unit, side="right"), x=dom[1] + 0.01, thickness=12, len=0.9)
        finite = m[np.isfinite(m)]
        if log10 and finite.size:
            bar.update(log_ticks(float(finite.max())))
        fig.add_trace(go.Heatmap(z=m, colorscale=colourscale("viridis"), colorbar=bar, name=name,
                                 hovertemplate="y=%{y}, x=%{x}: %{z:.3g} " + unit + "<extra></extra>"),
                      row=1, col=c + 1)
        h, w = m.shape[:2]
        _canvas_axes(fig, h, w, row=1, col=c + 1, anchor=f"x{axis}")
    fig.update_layout(margin=dict(l=0, r=40, t=40, b=0), height=340, plot_bgcolor="white")
    return fig


#: A log axis of counts starts at half a window: log10(1) = 0, so a pool of one window would
#: otherwise be a bar of zero length (invisible); from 0.5 it is 0.3 decades long.
LOG_COUNT_FLOOR = 0.5


def log_count_range(max_count: int) -> list[float]:
    """The range, in log10 units, of a log axis of window counts 0.5 .. max_count (plus a margin).

    Plotly draws a bar on a log axis from the axis's left edge, so every count >= 1
    spans at least log10(1 / LOG_COUNT_FLOOR) = 0.3 decades of the plot; 0 draws nothing.
    """
    return [float(np.log10(LOG_COUNT_FLOOR)), float(np.log10(max(int(max_count), 2))) + 0.15]


def funnel_figure(rows: list[tuple[str, int]], title: str = "Candidate windows surviving each constraint"):
    """Horizontal bars on a log axis: how many candidate windows each constraint lets through.

    The axis starts at half a window (:func:`log_count_range`), so a pool of 1 is a visible bar.
    """
    import plotly.graph_objects as go
    counts = [max(int(v), 0) for _, v in rows]
    fig = go.Figure(go.Bar(x=counts, y=[k for k, _ in rows], orientation="h",
                           text=[f"{int(v):,}" for _, v in rows], textposition="auto", marker_color="#4c78a8",
                           hovertemplate="%{y}: %{x:,} windows<extra></extra>"))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=36, b=0), title=title,
                      xaxis=dict(type="log", title_text="candidate windows (log scale)",
                                 range=log_count_range(max(counts, default=1))),
                      yaxis=dict(autorange="reversed", automargin=True, title_text=None, ticksuffix="  "))
    return fig


def grid_figure(images: np.ndarray, ncol: int | None = None, selected: int | None = None,
                tile_px: int = 56, hover: list[str] | None = None):
    """A grid of samples in which a click on a tile selects it (selection events carry the index).

    Args:
        images: (N,H,W[,C]) uint8.
        selected: index to outline in red.
        tile_px: displayed size of one tile; the figure is exactly ncol x nrow tiles, so a
            square marker of that size covers each tile and any click on it hits its point.
        hover: one hover line per tile (default "sample i: click to select").
    """
    import plotly.graph_objects as go

    from nps.lab.plots import grid_array
    n, h, w = np.asarray(images).shape[:3]
    ncol = ncol or int(np.ceil(np.sqrt(max(n, 1))))
    nrow = int(np.ceil(n / ncol)) if n else 1
    pic = grid_array(images, ncol)
    idx = np.arange(n)
    r, c = np.divmod(idx, ncol)
    cx, cy = 1 + c * (w + 1) + (w - 1) / 2, 1 + r * (h + 1) + (h - 1) / 2  # tile centres (1-px gaps)
    fig = go.Figure(go.Image(z=pic, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=cx, y=cy, mode="markers", customdata=idx, name="samples", showlegend=False,
                             marker=dict(symbol="square", size=tile_px * 0.95, opacity=0.01, color="white"),
                             text=hover, hovertemplate=("sample %{customdata}: click to select" if hover is None
                                                        else "%{text}") + "<extra></extra>"))
    if selected is not None and 0 <= selected < n:
        sr, sc = divmod(int(selected), ncol)
        x0, y0 = sc * (w + 1) + 0.5, sr * (h + 1) + 0.5
        fig.add_shape(type="rect", x0=x0 - 0.5, x1=x0 + w + 0.5, y0=y0 - 0.5, y1=y0 + h + 0.5,
                      line=dict(color="#ff3b3b", width=3))
    gh, gw = pic.shape[:2]
    fig.update_xaxes(visible=False, range=[-0.5, gw - 0.5])
    fig.update_yaxes(visible=False, range=[gh - 0.5, -0.5], scaleanchor="x")
    fig.update_layout(margin=dict(l=0, r=0, t=0, b=0), width=ncol * tile_px, height=nrow * tile_px,
                      dragmode=False, clickmode="event+select", plot_bgcolor="white")
    return fig


def grid_index_from_points(points: list, n: int) -> int | None:
    """The sample index of the last clicked tile of a :func:`grid_figure` selection event, if valid."""
    for p in reversed(list(points or [])):
        try:
            i = int(p["customdata"] if not isinstance(p["customdata"], list) else p["customdata"][0])
        except (KeyError, TypeError, ValueError, IndexError):
            continue
        if 0 <= i < n:
            return i
    return None
