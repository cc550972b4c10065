"""What the app accepts from outside its controls: the limits an uploaded record's config must keep.

The app's controls can only produce configs within :data:`app_support.state.BOUNDS`, on
the corpora present, the offered subsets and the registered encoders.  A record file
can say anything; these checks hold it to the same limits *before* anything is
loaded or built, because every visitor-triggered build (a corpus subset in memory;
embeddings, an index or a PCA fit on disk) is keyed by what the config says.
No streamlit here: the app calls these from ``app_support/resources.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from app_support.state import BOUNDS, SUBSET_CHOICES, check_bounds
from nps.config import DEFAULTS, FIELDS, GenerationConfig, resolve_encoder
from nps.constraints import names
from nps.errors import NPSError


def check_app_choices(corpus: object, subset: object, encoder: object | None, corpora: Iterable[str],
                      encoders: Iterable[str]) -> None:
    """Refuse a corpus, subset or encoder the app's controls do not offer (one line).

    Every visitor-triggered build (a corpus subset in memory; embeddings, an index or
    a PCA fit on disk) is keyed by these three, so holding them to the offered choices
    bounds what a visitor can make the server build and store.

    Args:
        corpora: the corpora available here; encoders: the concrete encoder names offered.
        encoder: None when the caller builds nothing encoder-specific.
    """
    corpora, encoders = list(corpora), list(encoders)
    if not isinstance(corpus, str) or corpus not in corpora:
        raise NPSError(f"corpus {corpus!r} is not one the app offers here ({', '.join(corpora)}); "
                       "use `python -m nps evaluate` for records made on other corpora.")
    # Exactly an int (or None): 200.0 equals 200 but would key a second copy of every cache entry.
    exact = subset is None or (isinstance(subset, int) and not isinstance(subset, bool))
    if not exact or subset not in SUBSET_CHOICES:
        sizes = ", ".join("all" if v is None else str(v) for v in SUBSET_CHOICES)
        raise NPSError(f"subset {subset!r} is not one of the app's subset sizes ({sizes}); "
                       "use `python -m nps evaluate` for other subsets.")
    if encoder is not None and (not isinstance(encoder, str) or encoder not in encoders):
        raise NPSError(f"encoder {encoder!r} is not one the app offers ({', '.join(encoders)}); "
                       "use `python -m nps evaluate` for other encoders.")


def check_app_config(config: Mapping[str, object], corpora: Iterable[str],
                     encoders: Iterable[str]) -> GenerationConfig:
    """Hold a config from outside the app's controls (an uploaded record's) to the controls' limits.

    Every field of :data:`nps.config.FIELDS` by what its row says the app offers: the
    corpus, subset and encoder against the choices offered (``app_fixed="sidebar"``,
    :func:`check_app_choices`), every bounded parameter against :data:`BOUNDS` (its
    ``app`` range, types included), a field with a fixed set of choices (``app_fixed``
    a tuple: SSL mode, device) against it, the rest by type; then the constraints and
    ``GenerationConfig.check``.  Nothing is loaded or built.

    Returns:
        the config as a :class:`GenerationConfig` (``data_root`` dropped: a record never
        decides where data is read from).
    Raises:
        NPSError: one line naming the first field out of bounds.
    """
    if not isinstance(config, Mapping):
        raise NPSError("the record's config is not a JSON object; upload a record written by "
                       "`python -m nps generate` or the app.")
    cfg = dict(config)
    corpus, encoder = cfg.get("corpus"), cfg.get("encoder", DEFAULTS["encoder"])
    if isinstance(corpus, str) and isinstance(encoder, str):
        encoder = resolve_encoder(encoder, corpus)  # "auto" in a hand-made config: what it would run
    check_app_choices(corpus, cfg.get("subset"), encoder, corpora, encoders)
    check_bounds({k: v for k, v in cfg.items() if k in BOUNDS})
    unset = [k for k in BOUNDS if k in cfg and cfg[k] is None and DEFAULTS[k] is not None]
    if unset:
        raise NPSError(f"{unset[0]} is null in the record's config; it must be a number in the app's range "
                       f"{BOUNDS[unset[0]][0]:g}..{BOUNDS[unset[0]][1]:g}.")
    known = names()
    cons = cfg.get("constraints", list(DEFAULTS["constraints"]))
    if not isinstance(cons, list | tuple) or not all(isinstance(c, str) and c in known for c in cons):
        raise NPSError(f"constraints {cons!r} are not a list drawn from {', '.join(known)}.")
    for name, f in FIELDS.items():
        if name not in cfg or name in BOUNDS or f.app_fixed == "sidebar" or name == "constraints":
            continue
        v = cfg[name]
        if isinstance(f.app_fixed, tuple) and v not in f.app_fixed:
            raise NPSError(f"{name.replace('_', ' ')} {v!r} is not offered by the app; it offers "
                           f"{' or '.join(f.app_fixed)}.")
        if f.app_fixed == "default" and v != f.default:
            raise NPSError(f"{name} = {v!r}: the app keeps it at {f.default!r}.")
        if v is None and f.optional:
            continue
        number = isinstance(v, int | float) and not isinstance(v, bool)
        ok = {"int": number and isinstance(v, int), "bool": isinstance(v, bool), "str": isinstance(v, str),
              "float": number}.get(f.kind, True)
        if not ok:
            want = {"int": "an integer", "bool": "true or false", "str": "a string", "float": "a number"}[f.kind]
            raise NPSError(f"{name} = {v!r:.60} is not {want}{' (or null)' if f.optional else ''}.")
    cfg.pop("data_root", None)
    try:
        gen = GenerationConfig.from_dict(cfg)
        gen.check()
    except (TypeError, ValueError, AttributeError) as exc:  # a field of the wrong type not bounded above
        raise NPSError(f"the record's config cannot be read ({type(exc).__name__}: {str(exc)[:120]}); "
                       "upload a record written by `python -m nps generate` or the app.") from None
    return gen
