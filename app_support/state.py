"""Pure-python helpers behind the Streamlit lab (no streamlit import, testable alone).

The app's pages stay thin: they read widgets, call these helpers and :mod:`nps`,
and draw the results.  What lives here is what a page would otherwise compute
inline: parameter bounds and validation, query-string (de)serialisation, byte
round-trips for downloads and uploads, completion masks, the overlay composite
and the per-sample "honesty" facts.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from nps.config import DEFAULTS, FIELDS, SSL_MODES, GenerationConfig
from nps.constraints import ablation_sets, names, on_change
from nps.errors import NPSError
from nps.record import ProvenanceRecord

# --------------------------------------------------------------------------- bounds
#: Inclusive (low, high) ranges of every parameter the app accepts from a visitor: each field's
#: ``app`` range in :data:`nps.config.FIELDS`, refilled when a constraint registers (so a plug-in
#: constraint's fields are in).  The CLI accepts more; the app keeps a shared demo server responsive.
BOUNDS: dict[str, tuple[float, float]] = {}


def _refill_bounds() -> None:
    BOUNDS.clear()
    BOUNDS.update({name: f.app for name, f in FIELDS.items() if f.app is not None})


_refill_bounds()
on_change(_refill_bounds)
SUBSET_CHOICES: tuple[int | None, ...] = (None, 200, 500, 1000, 2000, 5000, 10000, 20000)
SIDEBAR_KEYS = ("corpus", "subset", "encoder", "seed")
MAX_UPLOAD_MB = 2
UPLOAD_TYPES = ("png", "jpg", "jpeg", "bmp", "gif", "webp")
#: The Pillow decoders an upload may reach: exactly the advertised types.  Pillow picks a
#: decoder from the content, not the name, so without this an EPS renamed .png went to the
#: EPS plugin, which runs Ghostscript on the visitor's bytes.
UPLOAD_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
ABLATION_SETS: tuple[tuple[str, ...], ...] = ablation_sets()  # the one definition: nps.constraints.ablation_sets
MAX_COLUMNS = 4


def suggested_params(image_shape: tuple[int, ...]) -> dict:
    """Parameter defaults that suit the canvas size.

    The engine defaults (w=7, s=8) are for 28x28 digits; on 8x8 ``digits`` they would
    make the seed the whole canvas, so small canvases get w=3, s=2, R=1.
    """
    side = min(image_shape[:2])
    if side <= 12:
        return {"window": 3, "seed_size": 2, "radius": 1, "k": 32, "eps": DEFAULTS["eps"]}
    return {"window": DEFAULTS["window"], "seed_size": DEFAULTS["seed_size"], "radius": DEFAULTS["radius"],
            "k": DEFAULTS["k"], "eps": DEFAULTS["eps"]}




def check_bounds(params: Mapping[str, object]) -> None:
    """Raise :class:`NPSError` for a parameter outside :data:`BOUNDS` (None means 'not set').

    A value of the wrong type (text, a bool, a float where a count is meant, NaN) is
    refused with the same one line, never a ``TypeError``.
    """
    for name, value in params.items():
        if name not in BOUNDS or value is None:
            continue
        lo, hi = BOUNDS[name]
        number = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)
        whole = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
        integer = FIELDS[name].kind == "int"
        if not number or (integer and not whole) or not lo <= value <= hi:  # NaN fails too
            kind = "an integer" if integer else "a number"
            raise NPSError(f"{name} = {value!r} is outside the app's range {lo:g}..{hi:g} (it takes {kind}); "
                           f"pick a value in range (the CLI `python -m nps generate` accepts more).")


def build_config(sidebar: Mapping[str, object], params: Mapping[str, object]) -> GenerationConfig:
    """The :class:`GenerationConfig` for the shared sidebar choices plus page parameters.

    Args:
        sidebar: ``corpus``, ``subset``, ``encoder``, ``seed``.
        params: any other :class:`GenerationConfig` fields (``constraints`` as an iterable).
    Raises:
        NPSError: a value out of the app's bounds or rejected by ``GenerationConfig.check``.
    """
    merged = {k: sidebar[k] for k in SIDEBAR_KEYS if k in sidebar}
    merged.update(params)
    check_bounds(merged)
    cons = merged.get("constraints", DEFAULTS["constraints"])
    if not cons:
        raise NPSError(f"no constraint is switched on; enable at least one of {', '.join(names())}.")
    merged["constraints"] = tuple(cons)  # type: ignore[arg-type]
    if merged.get("ssl_mode", "reference") not in SSL_MODES:
        raise NPSError(f"ssl mode '{merged['ssl_mode']}' is unknown; use {' or '.join(SSL_MODES)}.")
    cfg = GenerationConfig.make(**merged)
    cfg.check()
    return cfg


def check_against(config: GenerationConfig, corpus) -> None:
    """``config.check`` with the corpus facts (size, shape, labels)."""
    config.check(len(corpus), corpus.image_shape, set(np.unique(corpus.train_labels).tolist()))


# --------------------------------------------------------------------------- query string
def sidebar_from_query(query: Mapping[str, object], corpora: Iterable[str], encoders: Iterable[str],
                       defaults: Mapping[str, object]) -> tuple[dict, list[str]]:
    """Sidebar settings from a URL query (``?corpus=digits&seed=3``), validated.

    Bad values fall back to ``defaults`` and produce a note instead of an error, so
    a stale shared link still opens.

    Returns:
        (settings with every key of :data:`SIDEBAR_KEYS`, notes).
    """
    out = {k: defaults.get(k) for k in SIDEBAR_KEYS}
    notes: list[str] = []

    def first(v: object) -> str:
        return str(v[-1] if isinstance(v, list | tuple) and v else v)

    def shown(v: str) -> str:
        # A link is written by whoever sends it and the note is drawn as markdown on the
        # visitor's page: quote the value inert (no links, pictures or styling) and short.
        return md_escape(v if len(v) <= 40 else v[:40] + "…")

    if "corpus" in query:
        v = first(query["corpus"])
        if v in set(corpora):
            out["corpus"] = v
        else:
            notes.append(f"corpus '{shown(v)}' from the link is not available here; using {out['corpus']}.")
    if "encoder" in query:
        v = first(query["encoder"])
        if v in set(encoders):
            out["encoder"] = v
        else:
            notes.append(f"encoder '{shown(v)}' from the link is unknown; using {out['encoder']}.")
    if "subset" in query:
        v = first(query["subset"])
        parsed = _query_int(v)
        sub = None if v in ("", "all", "None") else (-1 if parsed is None else parsed)
        if sub in SUBSET_CHOICES:
            out["subset"] = sub
        else:
            notes.append(f"subset '{shown(v)}' from the link is not one of the offered sizes; using all.")
    if "seed" in query:
        v = first(query["seed"])
        lo, hi = BOUNDS["seed"]
        seed = _query_int(v)
        if seed is not None and lo <= seed <= hi:
            out["seed"] = seed
        else:
            notes.append(f"seed '{shown(v)}' from the link is not an integer in {lo}..{hi}; using {out['seed']}.")
    return out, notes


def _query_int(text: str) -> int | None:
    """A whole number written in ASCII digits (at most 12), else None.

    ``str.isdigit`` admits '²' (which ``int`` refuses) and other scripts' digits, and
    ``int`` refuses more than 4300 digits: either crashed the page from a link.
    """
    return int(text) if re.fullmatch(r"[0-9]{1,12}", text) else None


def md_escape(text: str) -> str:
    """``text`` made inert for Streamlit markdown: ASCII punctuation backslash-escaped, control characters shown."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", text)


def sidebar_to_query(settings: Mapping[str, object]) -> dict[str, str]:
    """The query-string form of the sidebar settings (inverse of :func:`sidebar_from_query`)."""
    sub = settings.get("subset")
    return {"corpus": str(settings["corpus"]), "subset": "all" if sub is None else str(sub),
            "encoder": str(settings["encoder"]), "seed": str(int(settings["seed"]))}  # type: ignore[call-overload]


# --------------------------------------------------------------------------- bytes in and out
def record_id(record: ProvenanceRecord) -> str:
    """A content hash of a record (images, sources, config): the key of derived results."""
    from nps.cache import content_key
    return content_key("record", record.images, record.source_index, record.source_y, record.source_x,
                       json.dumps(record.config, sort_keys=True))


def record_npz_bytes(record: ProvenanceRecord) -> bytes:
    """The record as ``.npz`` bytes, exactly what ``record.save`` writes (for downloads)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **record.to_arrays())
    return buf.getvalue()


#: The most an uploaded record may take once unpacked (its arrays in memory): a 50 MB
#: file of deflated zeros could otherwise declare 50 GB.  256 MB holds about 5,000
#: MNIST samples; larger records are for `python -m nps evaluate`.
MAX_UNPACKED_MB = 256


def record_from_npz_bytes(data: bytes, max_mb: float = 50.0, max_unpacked_mb: float = MAX_UNPACKED_MB
                          ) -> ProvenanceRecord:
    """Load an uploaded ``.npz`` record (no pickles; bounded memory; validated).

    Raises:
        NPSError: too large (as a file or unpacked), not an npz, or not a provenance record.
    """
    from nps.record import read_record_arrays
    if len(data) > max_mb * 1e6:
        raise NPSError(f"the record is {len(data) / 1e6:.1f} MB; the app takes records up to {max_mb:g} MB "
                       "(use `python -m nps evaluate` for larger ones).")
    arrays = read_record_arrays(data, "this upload", int(max_unpacked_mb * 2**20))
    return ProvenanceRecord.from_arrays(arrays)


def png_bytes(rgb: np.ndarray) -> bytes:
    """(H,W) or (H,W,3) uint8 -> PNG bytes."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def grid_picture(images: np.ndarray, scale: int = 4, ncol: int | None = None) -> np.ndarray:
    """A crisp (Hg*scale, Wg*scale, 3) uint8 grid of (N,H,W[,C]) uint8 images."""
    from nps.lab.plots import grid_array, upscale
    return upscale(grid_array(images, ncol), scale)


def display_scale(image_shape: tuple[int, ...], target: int = 168) -> int:
    """Integer upscale so a canvas is about ``target`` pixels wide."""
    return max(1, round(target / max(image_shape[:2])))


def image_from_upload(data: bytes, image_shape: tuple[int, ...], max_mb: float = MAX_UPLOAD_MB) -> np.ndarray:
    """Decode an uploaded picture and fit it to the corpus canvas.

    Args:
        data: the file's bytes (PNG, JPEG, BMP, GIF, WebP).
        image_shape: (H,W) for grayscale corpora, (H,W,C) for colour ones.
    Returns:
        (H,W) or (H,W,C) uint8, resized with a box filter after a centre crop to square.
    Raises:
        NPSError: too large, not an image, or an image with absurd dimensions.
    """
    from PIL import Image, UnidentifiedImageError
    if len(data) > max_mb * 1e6:
        raise NPSError(f"the picture is {len(data) / 1e6:.1f} MB; upload one under {max_mb:g} MB.")
    try:
        img = Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)
        if img.width * img.height > 25_000_000:
            raise NPSError(f"the picture is {img.width}x{img.height}; upload one under 5000x5000 pixels.")
        img.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise NPSError("this file is not a picture the app can read; upload a PNG or JPEG.") from None
    from PIL import ImageOps

    from nps.corpora.image_folder import to_8bit
    # The folder reader's conversions, so one picture gives the same pixels either way: 16-bit
    # scaled (not clipped to white by convert("L")), and a phone photo's EXIF rotation applied.
    try:
        img = to_8bit(ImageOps.exif_transpose(img), Path("upload"))
    except (OSError, ValueError, SyntaxError):
        raise NPSError("this file is not a picture the app can read; upload a PNG or JPEG.") from None
    side = min(img.width, img.height)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side))
    h, w = image_shape[:2]
    img = img.convert("RGB" if len(image_shape) == 3 else "L").resize((w, h), Image.Resampling.BOX)
    return np.asarray(img, np.uint8).copy()


# --------------------------------------------------------------------------- completion masks
MASKS = ("left half", "right half", "top half", "bottom half", "centre square",
         "top-left quadrant", "bottom-right quadrant", "rectangle")


def unknown_mask(name: str, h: int, w: int, rect: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """(H,W) bool, True where the completion must synthesise pixels.

    Args:
        name: one of :data:`MASKS`.
        rect: (y0, y1, x0, x1) half-open, for ``rectangle``.
    """
    m = np.zeros((h, w), bool)
    if name == "left half":
        m[:, : w // 2] = True
    elif name == "right half":
        m[:, w // 2:] = True
    elif name == "top half":
        m[: h // 2] = True
    elif name == "bottom half":
        m[h // 2:] = True
    elif name == "centre square":
        m[h // 4: h - h // 4, w // 4: w - w // 4] = True
    elif name == "top-left quadrant":
        m[: h // 2, : w // 2] = True
    elif name == "bottom-right quadrant":
        m[h // 2:, w // 2:] = True
    elif name == "rectangle":
        if rect is None:
            raise NPSError("a rectangle mask needs its corners; set the rectangle sliders.")
        y0, y1, x0, x1 = rect
        if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise NPSError(f"rectangle rows {y0}..{y1} and columns {x0}..{x1} must be non-empty and inside "
                           f"the {h}x{w} canvas.")
        m[y0:y1, x0:x1] = True
    else:
        raise NPSError(f"unknown mask '{name}'; choose one of {', '.join(MASKS)}.")
    if m.all():
        raise NPSError("the mask hides the whole image; keep some pixels known.")
    return m


def masked_preview(image: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """(H,W,3) uint8: the image with the unknown region tinted red (what will be synthesised)."""
    from nps.lab.plots import to_rgb
    rgb = to_rgb(np.asarray(image)[None])[0].astype(np.float64)
    rgb[unknown] = 0.35 * rgb[unknown] + 0.65 * np.array([220.0, 40.0, 40.0])
    return rgb.astype(np.uint8)


# --------------------------------------------------------------------------- tracing
def source_window(record: ProvenanceRecord, n: int, y: int, x: int, window: int) -> dict:
    """Where pixel (y, x) of sample n came from, and its w x w window in the source.

    Returns:
        dict with ``source`` (train id, -1 for a given pixel), ``sy``, ``sx``, ``label``,
        ``pool_size``, ``relaxed``, ``box`` (y0, x0, y1, x1) inclusive, clipped to the image.
    """
    h, w = record.canvas_shape
    if not (0 <= n < len(record) and 0 <= y < h and 0 <= x < w):
        raise NPSError(f"pixel ({y}, {x}) of sample {n} is outside the record ({len(record)} samples, {h}x{w}).")
    sy, sx = int(record.source_y[n, y, x]), int(record.source_x[n, y, x])
    half = window // 2
    return {"source": int(record.source_index[n, y, x]), "sy": sy, "sx": sx,
            "label": int(record.source_label[n, y, x]), "pool_size": int(record.pool_size[n, y, x]),
            "relaxed": bool(record.relaxed[n, y, x]),
            "box": (max(0, sy - half), max(0, sx - half), min(h - 1, sy + half), min(w - 1, sx + half))}


def fill_step(record: ProvenanceRecord, y: int, x: int) -> int:
    """Index of pixel (y, x) in ``record.order`` (its fill step)."""
    hits = np.flatnonzero((record.order[:, 0] == y) & (record.order[:, 1] == x))
    if not len(hits):
        raise NPSError(f"pixel ({y}, {x}) is not in the record's fill order.")
    return int(hits[0])


def pixel_from_points(points: Iterable[Mapping[str, object]], h: int, w: int) -> tuple[int, int] | None:
    """(y, x) of the last clicked point of a plotly selection event, if it lies on the canvas."""
    pts = list(points)
    if not pts:
        return None
    p = pts[-1]
    try:
        x, y = round(float(p["x"])), round(float(p["y"]))  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        return None
    return (y, x) if 0 <= y < h and 0 <= x < w else None


# --------------------------------------------------------------------------- metrics of a run
def is_splits(n: int) -> int:
    """IS splits for a small app batch: 10 as in the paper when there are >= 160 samples, else fewer."""
    return int(max(1, min(10, n // 16)))
