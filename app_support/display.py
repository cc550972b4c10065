"""What a visitor sees: display helpers of the lab (no streamlit import, testable alone).

Server paths shortened, record names that say what a record is, which records the
session list drops, the pixel a trace starts on, and the marking of given against
filled pixels in a completion.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np

from nps.record import ProvenanceRecord


def constraint_label(constraints: Iterable[str]) -> str:
    """'ssd+loc+ssl' style label ('none' for the empty set)."""
    from nps.constraints import label
    return label(tuple(constraints))


# An absolute POSIX path: a "/" not preceded by a word character, a dot, a colon or another "/"
# (so URLs, "a/b" and "1/3" are left alone), then one or more path components.
_ABS_PATH = re.compile(r"(?<![\w.:/])(?:/[^\s/()\[\]'\"`,;]+)+/?")


def redact_paths(text: str) -> str:
    """Shorten every absolute server path in ``text`` to its last two parts (``…/dir/name``).

    A visitor needs to know which file or package is meant, not where the server keeps it.
    """
    def last(m: re.Match) -> str:
        parts = [p for p in m.group(0).split("/") if p]
        return "…/" + "/".join(parts[-2:]) if parts else m.group(0)
    return _ABS_PATH.sub(last, str(text))


def sentence(title: str) -> str:
    """``title`` ending in exactly one full stop (a question or exclamation mark is kept as it is)."""
    t = title.rstrip()
    return t if t.endswith((".", "?", "!")) else t + "."


def stroke_pixel(record: ProvenanceRecord, n: int) -> tuple[int, int]:
    """A pixel worth tracing in sample n: on a stroke, sampled (not seed, not given), near the centre.

    Among the sampled pixels, those at least half as bright as the brightest are strokes; the one
    nearest the canvas centre wins (ties: the brighter, then raster order).  A sample with no
    sampled pixel falls back to the centre.

    Returns:
        (y, x).
    """
    h, w = record.canvas_shape
    img = np.asarray(record.images[n], np.float64)
    value = img.mean(axis=-1) if img.ndim == 3 else img
    seed = np.zeros((h, w), bool)
    shell0 = record.order[np.asarray(record.shell) == 0]
    seed[shell0[:, 0], shell0[:, 1]] = True
    sampled = (np.asarray(record.source_index[n]) >= 0) & ~seed
    if not sampled.any():
        return h // 2, w // 2
    top = value[sampled].max()
    cand = sampled & (value >= 0.5 * top) if top > 0 else sampled
    ys, xs = np.nonzero(cand)
    dist = (ys - (h - 1) / 2) ** 2 + (xs - (w - 1) / 2) ** 2
    best = np.lexsort((xs, ys, -value[ys, xs], dist))[0]
    return int(ys[best]), int(xs[best])


def records_to_evict(labels: list[str], pinned: Iterable[str], keep: int) -> list[str]:
    """Which records to drop so that at most ``keep`` remain, oldest unpinned first.

    Args:
        labels: record labels, oldest first (the newest is last and is never evicted).
        pinned: labels the visitor pinned (never evicted).
    Returns:
        labels to remove, oldest first; fewer than needed if too many are pinned.
    """
    pins = set(pinned)
    excess = len(labels) - keep
    if excess <= 0:
        return []
    candidates = [lab for lab in labels[:-1] if lab not in pins]
    return candidates[:excess]


def view_key(page: str, settings: Mapping[str, object]) -> str:
    """Where a page's results are kept: the page, the corpus and the subset they were made on."""
    sub = settings.get("subset")
    return f"{page}|{settings.get('corpus')}|{sub or 'all'}"


def record_label(config: Mapping[str, object], prefix: str) -> str:
    """A record's name that says what it is: corpus, subset, constraints, encoder (when used), k, seed, n.

    Records made on a subset and without the representation constraint read differently from a
    full-corpus run, so a table of them cannot be misread.
    """
    from nps.constraints import chooses_images
    cons = tuple(config.get("constraints", ()))  # type: ignore[arg-type]
    sub = config.get("subset")
    parts = [prefix + ":", str(config.get("corpus")), f"subset {int(sub):,}" if sub else "all images",  # type: ignore[call-overload]
             constraint_label(cons),
             f"{config.get('encoder')} k={config.get('k')}" if chooses_images(cons) else "no representation",
             f"seed {config.get('seed')}"]
    if config.get("n") is not None:
        parts.append(f"n={config.get('n')}")
    return " ".join(parts)



FILLED_TINT = (40, 110, 230)  # blue: a pixel the sampler filled (red marks the hidden region before)


def given_filled_picture(image: np.ndarray, given: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """(H,W,3) uint8: a completion with its filled pixels tinted blue and its given pixels as they are.

    Args:
        image: (H,W[,C]) uint8, the completed image.
        given: (H,W) bool, True where the pixel was given (source -1), not sampled.
    """
    from nps.lab.plots import to_rgb
    rgb = to_rgb(np.asarray(image)[None])[0].astype(np.float64)
    filled = ~np.asarray(given, bool)
    rgb[filled] = (1 - alpha) * rgb[filled] + alpha * np.array(FILLED_TINT, np.float64)
    return rgb.astype(np.uint8)


def pixel_hover(record: ProvenanceRecord, n: int, class_names: tuple[str, ...] = ()) -> np.ndarray:
    """(H,W) object array of one hover line per pixel of sample n: where it came from.

    "y=3, x=5 · from #812 (7) at (4, 5) · pool 37", or "given" for a completion's known
    pixels; a seed pixel says so (it has no pool: it was copied with the seed patch).
    """
    src, sy, sx = record.source_index[n], record.source_y[n], record.source_x[n]
    lab, pool = record.source_label[n], record.pool_size[n]
    shell_of = np.full(record.canvas_shape, -1, np.int64)
    order = np.asarray(record.order)
    if len(order):
        shell_of[order[:, 0], order[:, 1]] = np.asarray(record.shell)
    h, w = record.canvas_shape
    out = np.empty((h, w), object)
    for y in range(h):
        for x in range(w):
            s = int(src[y, x])
            if s < 0:
                out[y, x] = f"y={y}, x={x} · given (known part of the image)"
                continue
            c = int(lab[y, x])
            name = class_names[c] if 0 <= c < len(class_names) else str(c)
            pool_text = "seed patch (no pool)" if shell_of[y, x] == 0 else f"pool {int(pool[y, x]):,}"
            out[y, x] = f"y={y}, x={x} · from #{s} (class {name}) at ({int(sy[y, x])}, {int(sx[y, x])}) · {pool_text}"
    return out


def source_highlight(record: ProvenanceRecord, n: int, source: int) -> tuple[np.ndarray, int]:
    """Sample n with every pixel copied from training image ``source`` lit, the rest dimmed.

    Returns:
        ((H,W,3) uint8 picture, how many pixels that source gave).
    """
    from nps.lab.plots import to_rgb
    rgb = to_rgb(np.asarray(record.images[n])[None])[0].astype(np.float64)
    mask = record.source_index[n] == int(source)
    pic = rgb * 0.3 + 20
    pic[mask] = 0.4 * rgb[mask] + 0.6 * np.array([255.0, 176.0, 0.0])  # amber: the house highlight colour
    return np.clip(pic, 0, 255).astype(np.uint8), int(mask.sum())


def painted_mask(rgba: np.ndarray, h: int, w: int, background: np.ndarray | None = None,
                 min_cover: float = 0.3) -> np.ndarray:
    """(h,w) bool: the canvas cells a visitor painted over (the region to hide and fill).

    Args:
        rgba: (H',W',4) uint8, what the paint canvas returns: its drawing layer (alpha > 0
            where painted), or, depending on the component's build, that layer composited over
            the picture.
        background: (Hb,Wb,3) uint8, the picture shown under the paint; given, a screen pixel
            counts as painted only where it also differs from the picture, which covers both
            forms of ``rgba`` (the paint colour is a saturated red no grey picture has).
        min_cover: a cell counts as painted when at least this share of its screen pixels is.
    """
    from PIL import Image
    a = np.asarray(rgba)
    if a.ndim != 3 or a.shape[2] < 4 or a.size == 0:
        return np.zeros((h, w), bool)
    painted = a[..., 3] > 0
    if background is not None:
        bg = np.asarray(Image.fromarray(np.asarray(background, np.uint8)).resize(a.shape[1::-1], Image.NEAREST),
                        np.int32)
        painted &= np.abs(a[..., :3].astype(np.int32) - bg).sum(-1) > 40
    img = Image.fromarray(painted.astype(np.uint8) * 255)
    cover = np.asarray(img.resize((w, h), Image.BOX), np.float64) / 255.0
    return cover >= min_cover
