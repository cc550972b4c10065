"""The step explainer's animated figure: pictures and charts from :class:`nps.lab.explainer.StepFrame` s.

Pure numpy + plotly (no streamlit), so it is testable on its own.  The whole top row
(context | ranked candidates | canvas) is one composed picture per animation frame,
drawn at exactly its on-screen pixel size, so pixels stay square and the figure never
changes size while it plays.  The animation runs in the browser (plotly frames with
their own play / pause buttons, speeds and slider): no script rerun per frame.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

import numpy as np

from nps.lab.explainer import StepFrame
from nps.lab.plots import to_rgb
from nps.lab.plots_maps import log_count_range

# Geometry of the figure, in screen pixels (fixed: the picture must not shrink during play).
WIDTH, HEIGHT = 980, 750  # fits the main column of a 1440 px wide window with the sidebar open
MARGIN = dict(l=10, r=10, t=118, b=92)  # top: player controls, the beat caption, panel titles
TOP_H = 280  # the composed picture row
PLOT_W = WIDTH - MARGIN["l"] - MARGIN["r"]
PLOT_H = HEIGHT - MARGIN["t"] - MARGIN["b"]
PICTURE_DOMAIN = (1 - TOP_H / PLOT_H, 1.0)
CHART_DOMAIN = (0.0, 1 - (TOP_H + 64) / PLOT_H)
CTX_X, THUMB_X, CANVAS_X = (0, 230), (262, 686), (712, PLOT_W)  # panel spans inside the picture
COLS, ROWS = 8, 6  # thumbnail grid (48 windows)
PHASES = ("context", "rank", "draw", "fly 1", "fly 2", "land")


@dataclass(frozen=True)
class Geometry:
    """Where everything sits: the figure's size, the picture's panels, the charts' domains.

    Boxes are (y0, x0, height, width) in picture pixels; domains are paper fractions.
    :data:`WIDE` is one row (context | candidates | canvas) over two charts side by side;
    :data:`NARROW` (320 px, inside a 360 px phone) stacks them: context and canvas, then the candidates,
    then the ranked chart over the funnel, with the beat caption wrapped.
    """

    width: int
    height: int
    margin: dict
    top_h: int
    ctx: tuple[int, int, int, int]
    thumbs: tuple[int, int, int, int]
    canvas: tuple[int, int, int, int]
    cols: int
    rows: int
    chart_x: tuple[float, float]
    chart_y: tuple[float, float]
    funnel_x: tuple[float, float]
    funnel_y: tuple[float, float]
    funnel_title_x: float
    title_gap: float  # paper fraction between a chart's top and its title
    wrap: int | None  # characters per line of the beat caption and the key (None: as written)
    font: int  # panel titles and the beat caption
    play_label: str  # "▶ Play {}" or "▶ {}"

    @property
    def plot_w(self) -> int:
        return self.width - self.margin["l"] - self.margin["r"]

    @property
    def plot_h(self) -> int:
        return self.height - self.margin["t"] - self.margin["b"]

    @property
    def picture_domain(self) -> tuple[float, float]:
        return (1 - self.top_h / self.plot_h, 1.0)


WIDE = Geometry(WIDTH, HEIGHT, MARGIN, TOP_H, (24, CTX_X[0], TOP_H - 30, CTX_X[1] - CTX_X[0]),
                (18, THUMB_X[0], TOP_H - 24, THUMB_X[1] - THUMB_X[0]),
                (24, CANVAS_X[0], TOP_H - 30, CANVAS_X[1] - CANVAS_X[0]), COLS, ROWS,
                (0.11, 0.52), CHART_DOMAIN, (0.72, 1.0), CHART_DOMAIN, 0.72, 0.075, None, 13, "▶ Play {}")
_N_PLOT_H = 870  # narrow: picture 380, legend and title 70, ranked chart 200, axis and title 90, funnel 130
NARROW = Geometry(320, 170 + _N_PLOT_H + 170, dict(l=6, r=6, t=170, b=170), 380, (24, 0, 150, 148),
                  (220, 0, 152, 308), (24, 160, 150, 148), 8, 4,
                  (0.14, 0.98), (220 / _N_PLOT_H, 420 / _N_PLOT_H), (0.46, 0.95), (0.0, 130 / _N_PLOT_H), 0.0,
                  50 / _N_PLOT_H, 46, 11, "▶ {}")  # 320 px: inside the main column of a 360 px phone


WHITE = np.array([255, 255, 255], np.uint8)
KEPT = np.array([44, 160, 44], np.uint8)      # green: in the pool
REJECTED = np.array([190, 190, 190], np.uint8)  # grey: above the threshold
DRAWN = np.array([255, 176, 0], np.uint8)      # gold: the window the record says was drawn
TARGET = np.array([230, 40, 40], np.uint8)     # red: the pixel being filled
UNFILLED = np.array([38, 44, 92], np.uint8)    # dark blue: not yet filled (as on the Analysis page)
HATCH = (np.array([205, 205, 215], np.uint8), np.array([150, 150, 165], np.uint8))


@dataclass
class Layout:
    """Where things sit in the composed picture (pixels, origin top left)."""

    ctx_cell: int
    ctx_origin: tuple[int, int]
    thumb_scale: int
    thumb_pitch: tuple[int, int]
    canvas_cell: int
    canvas_origin: tuple[int, int]
    geo: Geometry = None  # type: ignore[assignment]  # set by layout_for

    def thumb_origin(self, i: int) -> tuple[int, int]:
        r, c = divmod(i, self.geo.cols)
        return (self.geo.thumbs[0] + r * self.thumb_pitch[0], self.geo.thumbs[1] + c * self.thumb_pitch[1])


def layout_for(window: int, canvas_shape: tuple[int, int], geo: Geometry = WIDE) -> Layout:
    """Cell sizes that fit the window and the canvas into the fixed panels of ``geo``."""
    (cy0, cx0, ch, cw_), (_, _, th, tw), (ky0, kx0, kh, kw) = geo.ctx, geo.thumbs, geo.canvas
    ctx_cell = min(64, min(cw_, ch) // window)
    pitch = (th // geo.rows, tw // geo.cols)
    thumb_scale = max(1, (min(pitch) - 8) // window)
    h, w = canvas_shape
    canvas_cell = max(1, min(kw // w, kh // h))
    ctx_px = ctx_cell * window
    cw = canvas_cell * w
    return Layout(ctx_cell, (cy0 + (ch - ctx_px) // 2, cx0 + (cw_ - ctx_px) // 2), thumb_scale, pitch, canvas_cell,
                  (ky0 + (kh - canvas_cell * h) // 2, kx0 + (kw - cw) // 2), geo)


def _box(pic: np.ndarray, y0: int, x0: int, hgt: int, wid: int, colour: np.ndarray, t: int) -> None:
    """Draw a t-pixel rectangle outline just outside the box (y0, x0, hgt, wid)."""
    ys, xs = slice(max(y0 - t, 0), y0 + hgt + t), slice(max(x0 - t, 0), x0 + wid + t)
    pic[ys, max(x0 - t, 0):x0] = colour
    pic[ys, x0 + wid:x0 + wid + t] = colour
    pic[max(y0 - t, 0):y0, xs] = colour
    pic[y0 + hgt:y0 + hgt + t, xs] = colour


def _cells(rgb: np.ndarray, cell: int) -> np.ndarray:
    return np.repeat(np.repeat(rgb, cell, 0), cell, 1)


def _hatched(hgt: int, wid: int, period: int = 8) -> np.ndarray:
    yy, xx = np.mgrid[0:hgt, 0:wid]
    stripe = ((yy + xx) // (period // 2)) % 2 == 0
    return np.where(stripe[..., None], HATCH[0], HATCH[1]).astype(np.uint8)


def context_picture(f: StepFrame, cell: int, landed: bool) -> np.ndarray:
    """(w*cell, w*cell, 3) uint8: the masked context, unknown cells hatched, the target outlined."""
    w = f.known.shape[0]
    rgb = _cells(to_rgb(f.context[None])[0], cell)
    mask = _cells(f.known[..., None], cell)[..., 0]
    rgb = np.where(mask[..., None], rgb, _hatched(*mask.shape))
    c = w // 2
    if landed:
        rgb[c * cell:(c + 1) * cell, c * cell:(c + 1) * cell] = to_rgb(f.value.reshape(1, 1, 1, -1))[0, 0, 0]
    rgb[::cell, :] = rgb[::cell, :] // 2 + 60  # faint grid lines between cells
    rgb[:, ::cell] = rgb[:, ::cell] // 2 + 60
    return rgb


def canvas_picture(f: StepFrame, cell: int, landed: bool) -> np.ndarray:
    """(H*cell, W*cell, 3) uint8: the canvas before the step (unfilled dark blue), or after it."""
    rgb = to_rgb(f.canvas[None])[0].copy()
    filled = f.filled.copy()
    if landed:
        rgb[f.y, f.x] = to_rgb(f.value.reshape(1, 1, 1, -1))[0, 0, 0]
        filled[f.y, f.x] = True
    rgb[~filled] = UNFILLED
    return _cells(rgb, cell)


def compose(f: StepFrame, lay: Layout, phase: str) -> np.ndarray:
    """(top_h, plot_w, 3) uint8: the picture of one animation frame (in ``lay.geo``)."""
    pic = np.empty((lay.geo.top_h, lay.geo.plot_w, 3), np.uint8)
    pic[:] = WHITE
    w = f.known.shape[0]
    landed = phase == "land"
    oy, ox = lay.ctx_origin
    ctx = context_picture(f, lay.ctx_cell, landed)
    pic[oy:oy + ctx.shape[0], ox:ox + ctx.shape[1]] = ctx
    c = w // 2
    _box(pic, oy + c * lay.ctx_cell, ox + c * lay.ctx_cell, lay.ctx_cell, lay.ctx_cell, TARGET, 3)
    # Thumbnails: the top 47 or 48 by SSD, and the drawn window in the last cell if it ranks lower.
    n_cells = lay.geo.cols * lay.geo.rows
    show = list(range(min(len(f.windows), n_cells)))
    if f.drawn >= n_cells:
        show[-1] = f.drawn
    s = lay.thumb_scale
    for cell_i, i in enumerate(show):
        ty, tx = lay.thumb_origin(cell_i)
        thumb = _cells(to_rgb(f.windows[i][None])[0], s)
        colour = REJECTED
        if phase != "context":
            colour = KEPT if f.kept[i] else REJECTED
            if not f.kept[i]:
                thumb = (thumb.astype(np.int16) // 2 + 110).astype(np.uint8)  # faded: above the threshold
        pic[ty:ty + thumb.shape[0], tx:tx + thumb.shape[1]] = thumb
        drawn = i == f.drawn and phase not in ("context", "rank")
        _box(pic, ty, tx, thumb.shape[0], thumb.shape[1], DRAWN if drawn else colour, 4 if drawn else 2)
    cy, cx = lay.canvas_origin
    can = canvas_picture(f, lay.canvas_cell, landed)
    pic[cy:cy + can.shape[0], cx:cx + can.shape[1]] = can
    cc = lay.canvas_cell
    # The context window on the canvas (orange) and the target pixel (red).
    y0, x0 = max(f.y - c, 0), max(f.x - c, 0)
    y1, x1 = min(f.y + c + 1, f.canvas.shape[0]), min(f.x + c + 1, f.canvas.shape[1])
    _box(pic, cy + y0 * cc, cx + x0 * cc, (y1 - y0) * cc, (x1 - x0) * cc, DRAWN, 2)
    _box(pic, cy + f.y * cc, cx + f.x * cc, cc, cc, TARGET, 3)
    if phase.startswith("fly"):
        _fly(pic, f, lay, show, 1 / 3 if phase == "fly 1" else 2 / 3)
    return pic


def _fly(pic: np.ndarray, f: StepFrame, lay: Layout, show: list[int], t: float) -> None:
    """The drawn window's centre pixel on its way from the thumbnail to the canvas (fraction t)."""
    w = f.known.shape[0]
    ty, tx = lay.thumb_origin(show.index(f.drawn) if f.drawn in show else len(show) - 1)
    s = lay.thumb_scale
    a = np.array([ty + (w // 2) * s + s / 2, tx + (w // 2) * s + s / 2])
    cy, cx = lay.canvas_origin
    cc = lay.canvas_cell
    b = np.array([cy + f.y * cc + cc / 2, cx + f.x * cc + cc / 2])
    size = round(float(2 * s + (2 * cc - 2 * s) * t)) + 6  # drawn twice life size, so the eye can follow it
    py, px = (a + (b - a) * t - size / 2).astype(int)
    py, px = int(np.clip(py, 0, lay.geo.top_h - size)), int(np.clip(px, 0, lay.geo.plot_w - size))
    pic[py:py + size, px:px + size] = to_rgb(f.value.reshape(1, 1, 1, -1))[0, 0, 0]
    _box(pic, py, px, size, size, DRAWN, 3)


def png_uri(rgb: np.ndarray) -> str:
    from app_support.state import png_bytes
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")


def fmt(v: float | None) -> str:
    return "–" if v is None else (f"{v:.3g}" if v == 0 or abs(v) >= 1e-3 else f"{v:.2e}")


KEY = ("<span style='color:#e62828'>■</span> the pixel being filled · <span style='color:#ffb000'>■</span> its "
       "context window on the canvas, and the drawn window · hatched: unknown context pixels (not compared)<br>"
       "dark blue: not yet filled · <span style='color:#2ca02c'>■</span> candidate in the pool · faded: above the "
       "threshold · ★ on the chart: the drawn window's rank")
SSD_FLOOR = 1e-7  # a log axis cannot show 0: exact matches are drawn here (and said so)
SPEEDS = (("0.5×", 1400), ("1×", 700), ("2×", 350), ("4×", 175))  # label, ms per animation frame


def _phase_text(f: StepFrame, phase: str, cfg: dict, names: tuple[str, ...]) -> str:
    w = f.known.shape[0]
    sid, sy, sx = (int(v) for v in f.sources[f.drawn])
    lab = int(f.labels[f.drawn])
    label = names[lab] if 0 <= lab < len(names) else str(lab)
    if phase == "context":
        return (f"<b>1 · Context.</b> Pixel ({f.y}, {f.x}), fill step {f.step} (shell {f.shell}): its {w}×{w} window "
                f"has {int(f.known.sum())} known pixels; hatched ones are unknown and not compared.")
    if phase == "rank":
        if f.threshold is None:
            return (f"<b>2 · Rank.</b> Appearance is off: all {f.n_candidates:,} candidates that pass the other "
                    "constraints are in the pool (shown ranked by SSD anyway).")
        return (f"<b>2 · Rank and cut.</b> {f.n_candidates:,} candidates ranked by SSD; keep d ≤ (1+ε)·d<sub>min</sub>"
                f" + tol = (1+{cfg.get('eps', 0.1):g})·{fmt(f.d_min)} + {cfg.get('tol', 1e-6):g} = "
                f"{fmt(f.threshold)}"
                + (f" (ceiling {cfg['max_ssd']:g})" if cfg.get("max_ssd") is not None else "")
                + f": <b>{f.pool_size:,}</b> survive (green).")
    if phase == "draw" or phase.startswith("fly"):
        return (f"<b>3 · Draw.</b> One window drawn uniformly from the pool of {f.pool_size:,}: training image "
                f"#{sid} (label {label}) centred at ({sy}, {sx}), SSD rank {int(f.rank[f.drawn]) + 1} (gold).")
    return (f"<b>4 · Land.</b> Its centre pixel, value {f.value.tolist()}, is copied to ({f.y}, {f.x}) and "
            "never changes again; then the next pixel.")


def _frame_data(f: StepFrame, lay: Layout, phase: str) -> list:
    import plotly.graph_objects as go
    ranks = f.ranked_at + 1
    ssd = np.maximum(f.ranked_ssd, SSD_FLOOR)
    show_cut = phase != "context"  # step 1 shows the context only; the ranking comes in step 2
    if not show_cut:
        ranks, ssd = ranks[:0], ssd[:0]
    kept = f.ranked_ssd[:len(ranks)] <= (np.inf if f.threshold is None else f.threshold)
    n = max(f.n_candidates, 2)
    thr = [] if f.threshold is None or not show_cut else [max(f.threshold, SSD_FLOOR)] * 2
    drawn = phase not in ("context", "rank")
    names = [r[0] for r in f.funnel]
    return [
        go.Scatter(x=[], y=[]),  # holds the picture axes; the picture itself is a layout image
        # Plain lists: plotly.js decodes typed-array (base64) data in figures but not in frames.
        go.Scatter(x=ranks[kept].tolist(), y=ssd[kept].tolist()),
        go.Scatter(x=ranks[~kept].tolist(), y=ssd[~kept].tolist()),
        go.Scatter(x=[1, n] if thr else [], y=thr),
        go.Scatter(x=[int(f.rank[f.drawn]) + 1] if drawn else [],
                   y=[max(float(f.ssd[f.drawn]), SSD_FLOOR)] if drawn else []),
        go.Bar(y=names, x=[r[1] for r in f.funnel], text=[f"{r[1]:,}" for r in f.funnel],
               marker_color=["#4c78a8"] * (len(names) - 1) + ["#2ca02c" if show_cut else "#4c78a8"]),
    ]


def _picture(f: StepFrame, lay: Layout, phase: str) -> dict:
    """The composed picture row as a layout image on the picture axes (one pixel per screen pixel)."""
    return dict(source=png_uri(compose(f, lay, phase)), xref="x", yref="y", x=-0.5, y=-0.5, sizex=lay.geo.plot_w,
                sizey=lay.geo.top_h, xanchor="left", yanchor="top", sizing="stretch", layer="below")


def wrap(html: str, width: int | None) -> str:
    """``html`` with a ``<br>`` before any word that would take a line past ``width`` visible characters.

    Tags (``<b>``, ``<sub>``, ``<span ...>``) count as no characters; existing ``<br>`` s start a new line.

    >>> wrap("<b>1 · Context.</b> one two three", 14)
    '<b>1 · Context.</b><br>one two three'
    """
    if width is None:
        return html
    out = []
    for line in html.split("<br>"):
        words, cur, n = re.split(r" (?![^<]*>)", line), [], 0  # spaces inside a tag do not split it
        for word in words:
            vis = len(re.sub(r"<[^>]*>", "", word))
            if cur and n + 1 + vis > width:
                out.append(" ".join(cur))
                cur, n = [word], vis
            else:
                cur.append(word)
                n += vis + (1 if len(cur) > 1 else 0)
        out.append(" ".join(cur))
    return "<br>".join(out)


def _static_annotations(geo: Geometry = WIDE) -> list[dict]:
    """Chart titles and the colour key (repeated in every frame: a frame's annotations replace the figure's)."""
    def title(x: float, y: float, text: str) -> dict:
        return dict(x=x, y=y + geo.title_gap, xref="paper", yref="paper", xanchor="left", yanchor="bottom",
                    showarrow=False, text=text, font=dict(size=geo.font))
    small = geo.wrap is not None
    return [
        dict(x=0.5, y=-(geo.margin["b"] - 4) / geo.plot_h, xref="paper", yref="paper", xanchor="center",
             yanchor="bottom", showarrow=False, font=dict(size=10 if small else 12, color="#444"),
             text=wrap(KEY.replace("<br>", " · "), geo.wrap + 8) if small else KEY),
        title(0.0, geo.chart_y[1], "<b>Every candidate ranked by SSD</b>" + (
            "" if small else f" (weighted mean sq. difference; 0 drawn at {SSD_FLOOR:g})")),
        title(geo.funnel_title_x, geo.funnel_y[1] - (geo.title_gap - 8 / geo.plot_h if small else 0),
              "<b>Constraint funnel</b> at this pixel"),
    ]


def _annotations(f: StepFrame, lay: Layout, phase: str, cfg: dict, names: tuple[str, ...]) -> list[dict]:
    geo = lay.geo
    top = geo.picture_domain[1]
    w = f.known.shape[0]

    def at(box: tuple[int, int, int, int], text: str) -> dict:  # a panel title, just above the panel
        y = top - max(box[0] - 24, 0) / geo.plot_h
        return dict(x=(box[1] + box[3] / 2) / geo.plot_w, y=y, xref="paper", yref="paper", text=text,
                    showarrow=False, font=dict(size=geo.font), xanchor="center", yanchor="bottom")

    shown = min(len(f.windows), geo.cols * geo.rows)
    more = f.n_candidates - shown
    beat = dict(x=0.0, y=top + (30 if geo.wrap is None else 26) / geo.plot_h, xref="paper", yref="paper",
                text=wrap(_phase_text(f, phase, cfg, names), geo.wrap), showarrow=False, font=dict(size=geo.font),
                xanchor="left", yanchor="bottom", **({"align": "left"} if geo.wrap else {}))
    return [
        beat,
        at(geo.ctx, f"<b>Context</b> {'' if geo.wrap else f'{w}×{w} '}around ({f.y}, {f.x})"),
        at(geo.thumbs, f"<b>Candidates ranked by SSD</b> (best {shown}" + (f", + {more:,} more" if more > 0 else "")
           + ")"),
        at(geo.canvas, f"<b>Canvas</b> {'after' if phase == 'land' else 'before'} step {f.step}"),
        *_static_annotations(geo),
    ]


def step_figure(frames: list[StepFrame], cfg: dict, names: tuple[str, ...], start_phase: str = "draw",
                geo: Geometry = WIDE):
    """The animated plotly figure over ``frames`` (6 animation frames per fill step), laid out by ``geo``.

    The first fill step is shown at ``start_phase``; Play runs every phase of every step
    in the browser.  Trace order: picture, kept curve, rejected curve, threshold,
    drawn marker, funnel bars (the frames update all six).
    """
    import plotly.graph_objects as go
    if not frames:
        raise ValueError("no frames to show")
    f0 = frames[0]
    lay = layout_for(f0.known.shape[0], f0.canvas.shape[:2], geo)
    data = _frame_data(f0, lay, start_phase)
    style = [
        dict(xaxis="x", yaxis="y", hoverinfo="skip", showlegend=False),
        dict(xaxis="x2", yaxis="y2", mode="markers+lines", name="in the pool", marker=dict(color="#2ca02c", size=5),
             line=dict(color="#2ca02c", width=1), hovertemplate="rank %{x:,}<br>SSD %{y:.3g}<extra>kept</extra>"),
        dict(xaxis="x2", yaxis="y2", mode="markers+lines", name="rejected", marker=dict(color="#9a9a9a", size=4),
             line=dict(color="#9a9a9a", width=1), hovertemplate="rank %{x:,}<br>SSD %{y:.3g}<extra>rejected</extra>"),
        dict(xaxis="x2", yaxis="y2", mode="lines", name="threshold (1+ε)·d<sub>min</sub> + tol",
             line=dict(color="#e62828", dash="dash", width=2), hoverinfo="skip"),
        dict(xaxis="x2", yaxis="y2", mode="markers", name="drawn window",
             marker=dict(color="#ffb000", size=15, symbol="star", line=dict(color="#7a5200", width=1)),
             hovertemplate="drawn: rank %{x:,}<br>SSD %{y:.3g}<extra></extra>"),
        dict(xaxis="x3", yaxis="y3", orientation="h", textposition="auto", showlegend=False,
             hovertemplate="%{y}: %{x:,}<extra></extra>"),
    ]
    for tr, st_ in zip(data, style):
        tr.update(**st_)
    fig = go.Figure(data=data)
    anim_frames, steps = [], []
    for f in frames:
        for phase in PHASES:
            name = f"{f.step}:{phase}"
            anim_frames.append(go.Frame(name=name, data=_frame_data(f, lay, phase), traces=list(range(6)),
                                        layout=dict(annotations=_annotations(f, lay, phase, cfg, names),
                                                    images=[_picture(f, lay, phase)])))
            steps.append(dict(method="animate", label=str(f.step) if phase == "context" else "",
                              args=[[name], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                                 transition=dict(duration=0))]))
    fig.frames = anim_frames
    n_max = max(max(f.n_candidates for f in frames), 2)
    lo = min(float(np.maximum(f.ranked_ssd, SSD_FLOOR).min()) for f in frames)
    hi = max(float(np.maximum(f.ranked_ssd, SSD_FLOOR).max()) for f in frames)
    hi = max(hi, max((f.threshold or 0.0) for f in frames), lo * 10)
    narrow = geo.wrap is not None
    fig.update_layout(
        width=geo.width, height=geo.height, margin=geo.margin | {"autoexpand": False}, plot_bgcolor="white",
        paper_bgcolor="white", annotations=_annotations(f0, lay, start_phase, cfg, names), bargap=0.25,
        images=[_picture(f0, lay, start_phase)],
        legend=dict(x=0.0, y=geo.chart_y[1] + 0.01, xanchor="left", yanchor="bottom", orientation="h",
                    font=dict(size=10 if narrow else 11)),
        xaxis=dict(domain=[0, 1], range=[-0.5, geo.plot_w - 0.5], visible=False, fixedrange=True),
        yaxis=dict(domain=list(geo.picture_domain), range=[geo.top_h - 0.5, -0.5], visible=False, fixedrange=True),
        xaxis2=dict(domain=list(geo.chart_x), type="log", range=[-0.05, np.log10(n_max) + 0.05], anchor="y2",
                    title=dict(text="candidate rank (1 = most similar, log scale)" if narrow else
                               "rank of the candidate window (1 = most similar, log scale)",
                               font=dict(size=11 if narrow else 12)),
                    showgrid=True, gridcolor="#eee", fixedrange=True),
        yaxis2=dict(domain=list(geo.chart_y), type="log", anchor="x2",
                    range=[np.log10(lo) - 0.3, np.log10(hi) + 0.3], fixedrange=True, exponentformat="power",
                    title=dict(text="SSD (intensities 0–1)", font=dict(size=11), standoff=4),
                    showgrid=True, gridcolor="#eee"),
        xaxis3=dict(domain=list(geo.funnel_x), type="log", anchor="y3", fixedrange=True, showgrid=True,
                    range=log_count_range(max(max((r[1] for r in f.funnel), default=1) for f in frames)),
                    gridcolor="#eee", title=dict(text="windows surviving (log scale)" if narrow else
                                                 "candidate windows surviving (log scale)",
                                                 font=dict(size=11 if narrow else 12))),
        yaxis3=dict(domain=list(geo.funnel_y), anchor="x3", autorange="reversed", fixedrange=True,
                    tickfont=dict(size=10 if narrow else 11)),
        updatemenus=[dict(
            type="buttons", direction="left", x=0.0, y=1 + (geo.margin["t"] - 4) / geo.plot_h, xanchor="left",
            yanchor="top", pad=dict(t=0, r=6), showactive=False,
            buttons=[dict(label=geo.play_label.format(lab), method="animate",
                          args=[None, dict(frame=dict(duration=ms, redraw=True), transition=dict(duration=0),
                                           fromcurrent=True, mode="immediate")]) for lab, ms in SPEEDS]
            + [dict(label="❚❚ Pause", method="animate",
                    args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate",
                                       transition=dict(duration=0))])])],
        sliders=[dict(active=PHASES.index(start_phase), steps=steps, x=0.0 if narrow else 0.47,
                      len=1.0 if narrow else 0.53, xanchor="left",
                      y=1 + (geo.margin["t"] - 38 if narrow else geo.margin["t"] + 4) / geo.plot_h, yanchor="top",
                      pad=dict(t=0, b=0), currentvalue=dict(visible=False), transition=dict(duration=0), ticklen=3,
                      font=dict(size=10))],
    )
    return fig
