"""Cached resources and results of the app.

* ``st.cache_resource`` holds the shared, read-only objects: corpora (immutable
  arrays), fitted encoders, semantic pools.  They are created once per server and
  never mutated, so sessions share them safely.
* ``st.cache_data`` holds results (records, metrics, maps).  Generation needs a live
  progress bar, which a cached function cannot draw (its elements would be replayed),
  so a record is computed outside and *stored* with :func:`store_record`; a later
  identical request finds it with :func:`stored_record`.  Identical runs requested
  at the same time share one computation (:func:`app_support.single_flight.single_flight`).
* What a visitor can make the server build is bounded: every resource that builds
  (a corpus subset, an encoder fit, embeddings, an index) refuses a corpus, subset or
  encoder the controls do not offer (:func:`app_support.limits.check_app_choices`), and an
  uploaded record's config is held to the controls' limits before it is kept
  (:func:`uploaded_record`).  On disk, ``cache/`` has a quota (:mod:`nps.cache_quota`),
  and with ``NPS_APP_READONLY=1`` nothing is written to it at all (:func:`nps.cache.read_only`).
* The ``nps`` loggers reach the server log (:func:`install_server_log`, at import, that
  is at server start): Streamlit configures only its own loggers, and ``nps`` has a
  ``NullHandler``, so without it a rebuilt cache entry or an app error would vanish.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import streamlit as st

from app_support.single_flight import single_flight
from nps.config import GenerationConfig
from nps.record import ProvenanceRecord

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- server log
class _ServerLog(logging.Handler):
    """Writes ``nps`` log records to the server's stderr (looked up per record, like Streamlit's)."""

    def __init__(self, stream: Any = None, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.target = stream
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = self.target if self.target is not None else sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # logging must never break a page
            self.handleError(record)


def install_server_log(stream: Any = None, level: int = logging.INFO) -> logging.Handler:
    """Attach one handler to the ``nps`` logger (idempotent) so library messages reach the server log.

    Args:
        stream: where to write (default: the process's stderr, Streamlit's log).
        level: lowest level shown (INFO: builds, evictions and read-only in-memory builds are news
            to a host; WARNING and errors always are).
    Returns:
        the handler (the same one on every call).
    """
    logger = logging.getLogger("nps")
    for h in logger.handlers:
        if isinstance(h, _ServerLog):
            return h
    handler = _ServerLog(stream, level)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    return handler


def _at_server_start() -> None:
    from streamlit import runtime
    if runtime.exists():  # a real server (not AppTest or a plain import): its stderr is the server log
        install_server_log()


_at_server_start()


# --------------------------------------------------------------------------- what a visitor may build
def offered_encoders() -> list[str]:
    """The concrete encoder names the app offers (its encoder menu minus "auto", which resolves to one)."""
    from nps.encoders import ENCODERS
    return sorted(ENCODERS)


def check_choices(corpus_name: object, subset: object, encoder_name: object | None = None) -> None:
    """One line if a corpus, subset or encoder is not one the app's controls offer (see module doc)."""
    from app_support.limits import check_app_choices
    check_app_choices(corpus_name, subset, encoder_name, available_corpora(), offered_encoders())


def uploaded_record(data: bytes, max_mb: float = 50.0) -> ProvenanceRecord:
    """An uploaded ``.npz`` record, parsed (no pickles) and held to the controls' limits.

    Nothing is loaded or built before the record's config passed
    :func:`app_support.limits.check_app_config` (corpus, subset and encoder offered here;
    every parameter within :data:`app_support.state.BOUNDS`).

    Raises:
        NPSError: one line: too large, not a record, or a config outside the app's limits.
    """
    from app_support.limits import check_app_config
    from app_support.state import record_from_npz_bytes
    from nps.errors import NPSError
    from nps.provenance import check_fits
    rec = record_from_npz_bytes(data, max_mb)
    try:
        check_app_config(rec.config, available_corpora(), offered_encoders())
        # Within the controls, so loading its corpus is allowed; the pages index the corpus
        # with the record's ids and positions, so they must fit it (a record need not say
        # its corpus_size or image_shape, which alone bound them in the validator).
        c = corpus(rec.config["corpus"], rec.config.get("subset"))
        if rec.config.get("corpus_size") not in (None, len(c)):
            raise NPSError(f"it was made on {rec.config['corpus_size']} training images but corpus "
                           f"'{c.name}' here has {len(c)}")
        check_fits(rec, len(c), c.image_shape, c.train_ids)
    except NPSError as exc:
        raise NPSError(f"this record cannot be analysed here: {str(exc).rstrip('.')}.") from None
    return rec


# --------------------------------------------------------------------------- resources
@st.cache_resource(show_spinner="Loading the corpus…", max_entries=6)
def corpus(name: str, subset: int | None):
    """The corpus (read-only arrays), loaded once per server (only corpora and subsets the app offers)."""
    from nps.corpora import load_corpus
    check_choices(name, subset)
    return load_corpus(name, subset)


@st.cache_resource(show_spinner=False, ttl=30)
def corpus_table() -> list:
    """``corpus_status()`` rows (cheap file probes; refreshed every 30 s)."""
    from nps.corpora import corpus_status
    return corpus_status()


def sidebar_corpora() -> list[str]:
    """The sidebar's corpus choices: the named corpora present here, then the operator's folders
    (``$NPS_APP_FOLDERS``, :mod:`app_support.corpus_choices`), without their size and colour."""
    from app_support.corpus_choices import offered_folders
    return [s.name for s in corpus_table() if s.available and not s.parameterised] + offered_folders()


def available_corpora() -> list[str]:
    """Every corpus name the controls can produce: the named corpora, and each offered folder at each
    size and colour the sidebar offers (what every build and uploaded record is held to)."""
    from app_support.corpus_choices import offered, offered_folders
    return [s.name for s in corpus_table() if s.available and not s.parameterised] + offered(offered_folders())


@st.cache_resource(show_spinner="Fitting the encoder…", max_entries=8)
def encoder(name: str, corpus_name: str, subset: int | None):
    """A fitted encoder for the corpus (PCA fit or SimCLR weights load, both cached on disk)."""
    from nps.encoders import get_encoder
    check_choices(corpus_name, subset, name)
    return get_encoder(name, corpus(corpus_name, subset))


def pool_fields(config: GenerationConfig) -> tuple:
    """The config fields a :class:`~nps.engine.sampler_pool.SemanticPools` depends on: each constraint's
    :meth:`~nps.constraints.Constraint.pool_key` (``("none",)`` when no constraint chooses images)."""
    from nps.constraints import pool_key
    return pool_key(config)


@st.cache_resource(show_spinner="Building the semantic index…", max_entries=16)
def _pools(corpus_name: str, subset: int | None, fields: tuple, _config: GenerationConfig):
    from app_support.state import check_against, check_bounds
    from nps.engine.sampler_pool import SemanticPools
    check_choices(corpus_name, subset, _config.encoder if _config.per_sample_pools() else None)
    check_bounds({"k": _config.k, "ssl_eps": _config.ssl_eps})
    c = corpus(corpus_name, subset)
    check_against(_config, c)  # k, reference and label against this corpus (an uploaded record's too)
    return SemanticPools.build(_config, c)


def pools(config: GenerationConfig):
    """Semantic pools for ``config``, shared by every config with the same pool fields."""
    return _pools(config.corpus, config.subset, pool_fields(config), config)


# --------------------------------------------------------------------------- stored records
class _Miss(Exception):
    """Not in the results cache (raised so that nothing is cached)."""


@st.cache_data(show_spinner=False, max_entries=64)
def _record_cache(key: str, _record: ProvenanceRecord | None = None,
                  _seconds: float = 0.0) -> tuple[ProvenanceRecord, float]:
    if _record is None:
        raise _Miss(key)
    return _record, _seconds


def generation_key(config: GenerationConfig, corpus_hash: str, pool_key: str) -> str:
    """The results-cache key: the config, each enabled constraint's part (:func:`nps.constraints.cache_key`),
    the corpus, the pools and the engine's semantics version."""
    from nps.cache import content_key
    from nps.constraints import cache_key
    from nps.record import ENGINE_VERSION
    return content_key("app-generation", config.to_json(), repr(cache_key(config)), corpus_hash, pool_key,
                       ENGINE_VERSION)


def stored_record(key: str) -> tuple[ProvenanceRecord, float] | None:
    """(record, seconds it took) if this generation is in the results cache."""
    try:
        return _record_cache(key)
    except _Miss:
        return None


def store_record(key: str, record: ProvenanceRecord, seconds: float) -> None:
    _record_cache(key, record, seconds)


def generate(config: GenerationConfig, progress=None) -> tuple[ProvenanceRecord, float, bool]:
    """Generate through the results cache; identical concurrent requests share one run.

    Returns:
        (record, seconds the generation took, whether it came from the cache or another
        visitor's identical run).
    Raises:
        NPSError: bad config, missing data/weights, or stopped (``nps.engine.sampler.Stopped``).
    """
    from app_support.state import check_against
    c = corpus(config.corpus, config.subset)
    check_against(config, c)
    p = pools(config)
    key = generation_key(config, c.content_hash, p.key)
    hit = stored_record(key)
    if hit is not None:
        return hit[0], hit[1], True

    def compute(relay: Callable[[Any], Any]) -> tuple[ProvenanceRecord, float, bool]:
        from nps.engine.sampler import generate as nps_generate
        again = stored_record(key)  # finished by a leader just before this one took the lead
        if again is not None:
            return again[0], again[1], True
        t0 = time.perf_counter()
        rec = nps_generate(config, c, progress=relay if progress is not None else None, pools=p)
        seconds = time.perf_counter() - t0
        store_record(key, rec, seconds)
        return rec, seconds, False

    (rec, seconds, cached), shared = single_flight(key, compute, progress)
    return rec, seconds, cached or shared


# --------------------------------------------------------------------------- derived results
@st.cache_data(show_spinner=False, max_entries=32)
def corpus_overview(name: str, subset: int | None) -> tuple[dict, np.ndarray]:
    """``describe()`` and a (64,H,W[,C]) stratified sample for the grid."""
    c = corpus(name, subset)
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(c), size=min(64, len(c)), replace=False))
    return c.describe(), np.asarray(c.train[rows])


@st.cache_data(show_spinner="Embedding a sample…", max_entries=16)
def embedding_map(corpus_name: str, subset: int | None, encoder_name: str, method: str,
                  n: int = 1000) -> dict[str, np.ndarray]:
    """2-D map of ``n`` stratified train embeddings: ``xy`` (n,2), ``ids`` (n,), ``labels`` (n,)."""
    from nps.encoders.evaluate import stratified_rows
    from nps.retrieval import embed_corpus
    c = corpus(corpus_name, subset)
    table = embed_corpus(c, encoder(encoder_name, corpus_name, subset))
    ids = np.sort(stratified_rows(c.train_labels, min(n, len(c)))).astype(np.int64)
    x = table.train[ids]
    if method == "t-SNE":
        from sklearn.manifold import TSNE
        xy = TSNE(2, init="pca", random_state=0, perplexity=min(30.0, max(2.0, len(ids) / 4))).fit_transform(x)
    else:
        from sklearn.decomposition import PCA
        xy = PCA(2, random_state=0).fit_transform(x)
    return {"xy": np.asarray(xy, np.float32), "ids": ids, "labels": c.train_labels[ids]}


@st.cache_data(show_spinner="Scoring with the classifier…", max_entries=32)
def classifier_scores(rid: str, corpus_name: str, _record: ProvenanceRecord) -> dict:
    """IS and classifier FID of a record's samples, with the real-data ceiling."""
    from app_support.state import is_splits
    from nps.metrics import scores
    c = corpus(corpus_name, None)
    return scores.classifier_report(_record.images, corpus_name, corpus=c, splits=is_splits(len(_record)),
                                    references=_record.reference)


@st.cache_data(show_spinner=False, max_entries=64)
def entropy_metrics(rid: str, _record: ProvenanceRecord) -> dict:
    from nps.analysis.entropy import entropy_metrics as em
    return em(_record)


@st.cache_data(show_spinner="Finding nearest training images…", max_entries=128)
def honesty(rid: str, n: int, corpus_name: str, subset: int | None, _record: ProvenanceRecord) -> dict:
    from nps.analysis.honesty import honesty as h
    return h(_record, n, corpus(corpus_name, subset).train)


@st.cache_data(show_spinner=False, max_entries=64)
def overlay_layers(rid: str, n: int, _record: ProvenanceRecord) -> dict[str, np.ndarray]:
    from nps.lab.overlays import overlay_layers as ol
    return ol(_record, n)


@st.cache_data(show_spinner="Recomputing the candidate pool at that step…", max_entries=256)
def funnel(rid: str, n: int, y: int, x: int, corpus_name: str, subset: int | None,
           _record: ProvenanceRecord):
    from nps.lab.funnel import constraint_funnel
    cfg = GenerationConfig.from_dict(_record.config)
    return constraint_funnel(_record, corpus(corpus_name, subset), n, y, x, pools=pools(cfg))


@st.cache_data(show_spinner="Checking for memorisation…", max_entries=16)
def memorisation(rid: str, corpus_name: str, subset: int | None, encoder_name: str,
                 _record: ProvenanceRecord):
    from nps.analysis.memorisation import memorisation as mem
    c = corpus(corpus_name, subset)
    return mem(_record.images, c, encoder(encoder_name, corpus_name, subset), n_real=min(500, len(c.test)))


@st.cache_data(show_spinner=False, max_entries=32)
def composition(rid: str, _record: ProvenanceRecord) -> dict:
    from nps.analysis.composition import record_composition, summarise
    comp = record_composition(_record)
    return {"per_sample": comp, "summary": summarise(comp)}


@st.cache_data(show_spinner=False, max_entries=32)
def pool_summary(rid: str, _record: ProvenanceRecord) -> dict:
    import warnings

    from nps.analysis.entropy import pool_size_summary
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # seed-only columns: mean of an empty slice
        return pool_size_summary(_record)


@st.cache_data(show_spinner=False, max_entries=32)
def entropy_maps(rid: str, _record: ProvenanceRecord) -> dict[str, np.ndarray]:
    """Mean over samples of the class and image-ID window-entropy maps (H,W)."""
    from nps.analysis.entropy import DEFAULT_WINDOW, entropy_map
    win = min(DEFAULT_WINDOW, *_record.canvas_shape)
    valid = _record.source_index >= 0
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN border columns
        return {f"class entropy (w={win})": np.nanmean(entropy_map(_record.source_label, win, valid), 0),
                f"image-ID entropy (w={win})": np.nanmean(entropy_map(_record.source_index, win, valid), 0)}
