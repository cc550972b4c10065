"""Permalinks: a page's view as URL query parameters, and back (pure python, no streamlit).

Generation is a pure function of its config, so a link needs no stored file: it
carries the parameters (``w=3&eps=0.1&cons=ssd.loc``), and for the Analysis page the
config of the record under study (``rec=gen`` with ``r.``-prefixed fields, or
``rec=preset:digits``), the sample and the pixel.  Opening the link rebuilds the
record (usually from the results cache) and shows the same trace.

Every value read from a link is untrusted: it is checked against the app's bounds
and the config's own checks; a bad value becomes a note and the default is kept, so
a stale or edited link still opens.
"""

from __future__ import annotations

from collections.abc import Mapping

from nps.config import DEFAULTS, SSL_MODES, GenerationConfig
from nps.constraints import names
from nps.errors import NPSError

#: Query name -> (GenerationConfig field, kind).  kind: int, float, cons, mode, opt_int (None allowed).
PARAMS: dict[str, tuple[str, str]] = {
    "n": ("n", "int"), "w": ("window", "int"), "eps": ("eps", "float"), "R": ("radius", "int"),
    "k": ("k", "int"), "s": ("seed_size", "int"), "bs": ("batch_size", "int"), "cons": ("constraints", "cons"),
    "mode": ("ssl_mode", "mode"), "label": ("label", "opt_int"), "ref": ("reference", "opt_int"),
    "sigma": ("sigma", "opt_float"),
}
#: The record's own corpus, subset, encoder and seed on an Analysis link (they may differ from the sidebar's).
RECORD_FIELDS: dict[str, tuple[str, str]] = {
    "corpus": ("corpus", "str"), "subset": ("subset", "opt_int"), "enc": ("encoder", "str"), "seed": ("seed", "int"),
}


def _first(v: object) -> str:
    return str(v[-1] if isinstance(v, list | tuple) and v else v)


def _encode(kind: str, value: object) -> str:
    if kind == "cons":
        return ".".join(value) if value else "none"  # type: ignore[arg-type]
    if kind.startswith("opt_"):
        return "none" if value is None else str(value)
    return str(value)


def _decode(kind: str, text: str) -> object:
    """One query value as its field's type; raises ValueError when it is not one."""
    if kind.startswith("opt_") and text in ("", "none", "all", "None"):
        return None
    base = kind.removeprefix("opt_")
    if base == "int":
        return int(text)
    if base == "float":
        v = float(text)
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(text)
        return v
    if base == "cons":
        cons = tuple(c for c in text.split(".") if c)
        if any(c not in names() for c in cons):
            raise ValueError(text)
        return tuple(c for c in names() if c in cons)
    if base == "mode":
        if text not in SSL_MODES:
            raise ValueError(text)
        return text
    return text


def params_to_query(config: Mapping[str, object], prefix: str = "", with_record: bool = False) -> dict[str, str]:
    """The query form of a config's page parameters (and, ``with_record``, its corpus/subset/encoder/seed)."""
    table = {**(RECORD_FIELDS if with_record else {}), **PARAMS}
    out = {}
    for name, (fld, kind) in table.items():
        if fld in config:
            value = config[fld]
            if fld == "constraints":
                value = tuple(value)  # type: ignore[arg-type]
            out[prefix + name] = _encode(kind, value)
    return out


def params_from_query(query: Mapping[str, object], prefix: str = "", with_record: bool = False,
                      bounds: Mapping[str, tuple[float, float]] | None = None) -> tuple[dict, list[str]]:
    """Config fields from a query, each checked; returns (fields, notes about the values that were dropped)."""
    table = {**(RECORD_FIELDS if with_record else {}), **PARAMS}
    out: dict = {}
    notes: list[str] = []
    for name, (fld, kind) in table.items():
        key = prefix + name
        if key not in query:
            continue
        text = _first(query[key])
        try:
            value = _decode(kind, text)
        except ValueError:
            notes.append(f"'{key}={text}' in the link is not a valid {fld}; the default is used.")
            continue
        if bounds and fld in bounds and isinstance(value, int | float) and not isinstance(value, bool):
            lo, hi = bounds[fld]
            if not lo <= value <= hi:
                notes.append(f"'{key}={text}' in the link is outside {lo:g}..{hi:g}; the default is used.")
                continue
        out[fld] = value
    return out, notes


def unlinked() -> tuple[str, ...]:
    """Config fields a link cannot carry (every field of :data:`nps.config.FIELDS` but those of
    :data:`PARAMS` and :data:`RECORD_FIELDS`; the device and data root are the server's own)."""
    from nps.config import FIELDS
    carried = {fld for fld, _ in (*PARAMS.values(), *RECORD_FIELDS.values())} | {"device", "data_root"}
    return tuple(name for name in FIELDS if name not in carried)


def linkable(config: Mapping[str, object]) -> bool:
    """Whether a record's config can be rebuilt from a link (nothing set that a link cannot carry)."""
    return all(config.get(f, DEFAULTS[f]) in (DEFAULTS[f], None) for f in unlinked()) and "corpus" in config


def record_query(label: str, config: Mapping[str, object]) -> dict[str, str]:
    """The ``rec`` part of an Analysis link: a preset by name, a rebuildable generation by its config, or nothing."""
    if label.startswith("preset: "):
        return {"rec": "preset:" + label.removeprefix("preset: ")}
    if label.startswith(("generate", "ablation")) and linkable(config):
        return {"rec": "gen", **params_to_query(config, "r.", with_record=True)}
    return {}


def config_from_query(query: Mapping[str, object], bounds: Mapping[str, tuple[float, float]]
                      ) -> tuple[GenerationConfig, list[str]]:
    """The GenerationConfig of an Analysis link's ``rec=gen`` record.

    Raises:
        NPSError: the link names no corpus, or its values do not make a valid config.
    """
    fields, notes = params_from_query(query, "r.", with_record=True, bounds=bounds)
    if "corpus" not in fields:
        raise NPSError("the link's record names no corpus (r.corpus); open the record from the Generate page.")
    try:
        cfg = GenerationConfig(**fields)
        cfg.check()
    except (TypeError, ValueError) as exc:
        raise NPSError(f"the link's record settings are not valid ({exc}); generate it again.") from None
    return cfg, notes
