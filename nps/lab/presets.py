"""Preset records and guided lessons: the lab's first screen, as data.

A :class:`Preset` is a small, fixed generation whose record is built once into
``cache/`` (``preset-<key>.npz``) and then opened instantly by the app or the CLI.
A preset whose config is one of the shipped lesson records (:mod:`nps.lab.lesson_records`;
the MNIST 4x4 grid) opens that record, checked against the corpus, instead of building.
Its key hashes the preset's config and the record format, so changing a preset
rebuilds it; a cached record that no longer matches its corpus (provenance check)
is rebuilt too.

A :class:`Lesson` is a short guided exercise: it names the page to open, the
controls to set there, what to predict and what to look at.  The app applies the
controls; nothing here imports streamlit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from nps.cache import cache_root, cached_arrays, content_key
from nps.cache_quota import clear
from nps.config import GenerationConfig
from nps.constraints import ablation_chain
from nps.errors import NPSError
from nps.record import ENGINE_VERSION, RECORD_VERSION, ProvenanceRecord

log = logging.getLogger(__name__)

KIND = "preset"


@dataclass(frozen=True)
class Preset:
    """A named, small generation whose record is cached.

    Attributes:
        name: identifier (``digits``, ``mnist-4x4`` ...).
        title: one line for the card.
        description: what it shows.
        config: the generation.
    """

    name: str
    title: str
    description: str
    config: GenerationConfig

    @property
    def key(self) -> str:
        """Cache key: the config, the record format and the engine's semantics."""
        return content_key(KIND, self.name, self.config.to_json(), RECORD_VERSION, ENGINE_VERSION)

    @property
    def path(self) -> Path:
        return cache_root() / f"{KIND}-{self.key}.npz"


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("digits", "Digits, full model (8x8)",
           "16 samples from scikit-learn's 1,442 tiny digits with all three constraints; built on first use in "
           "a few seconds, then opened at once.",
           GenerationConfig(corpus="digits", n=16, seed=0, window=3, seed_size=2, radius=1, k=32,
                            encoder="pca", batch_size=16)),
    Preset("digits-ssd", "Digits, appearance only",
           "The same references and seeds with only the SSD constraint: the texture-of-squiggles failure.",
           GenerationConfig(corpus="digits", n=16, seed=0, window=3, seed_size=2, radius=1, k=32,
                            encoder="pca", batch_size=16, constraints=("ssd",))),
    Preset("mnist-4x4", "MNIST 4x4, full model (28x28)",
           "A 4x4 grid on all 60,000 MNIST digits with SSD, locality and the shipped SimCLR encoder's pool.",
           GenerationConfig(corpus="mnist", n=16, seed=0, encoder="auto", batch_size=16)),
)}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise NPSError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}.")
    return PRESETS[name]


def _shipped(name: str):
    """The shipped lesson record with this preset's config (:mod:`nps.lab.lesson_records`), if one ships."""
    from nps.lab import lesson_records
    run = lesson_records.find(get_preset(name).config)
    return run if run is not None and lesson_records.available(run.name) else None


def is_built(name: str) -> bool:
    """Whether the preset's record is in the cache or ships with the lab (no compute, no corpus load)."""
    return get_preset(name).path.is_file() or _shipped(name) is not None


def read_built(name: str) -> ProvenanceRecord | None:
    """The cached (or shipped) record if it is present and valid, else None (never builds).

    A shipped record is checked against its sha256 and the validator here; its provenance
    against the corpus is checked when the preset is opened (:func:`load_preset`).
    """
    from nps.cache import load_validated_npz
    p = get_preset(name)
    if not p.path.is_file():
        run = _shipped(name)
        if run is None:
            return None
        from nps.lab import lesson_records
        try:
            lesson_records.verify_file(run.name)
            return ProvenanceRecord.load(lesson_records.path(run.name))
        except NPSError:
            return None
    hit = load_validated_npz(p.path, p.key, quiet=True)
    if hit is None:
        return None
    try:
        return ProvenanceRecord.from_arrays(hit[0])
    except NPSError:
        return None


def load_preset(name: str, corpus=None, pools=None, progress=None) -> ProvenanceRecord:
    """The preset's record, built on first use and cached.

    Args:
        corpus: the preset's corpus if already loaded (else loaded here).
        pools: prebuilt semantic pools for the preset's config (optional).
        progress: the sampler's progress callback for a build (:class:`nps.engine.sampler.Progress`;
            not called when the record is already cached).
    Raises:
        NPSError: the corpus is missing (DataMissingError) or the build fails.
    """
    from nps.corpora import load_corpus
    from nps.engine.sampler import generate
    from nps.provenance import check_provenance
    p = get_preset(name)
    cfg = p.config
    corpus = corpus if corpus is not None else load_corpus(cfg.corpus, cfg.subset)
    run = _shipped(name) if not p.path.is_file() else None
    if run is not None:  # the same run ships (MNIST 4x4 = the full-model lesson record): no embedding, no sampling
        from nps.lab import lesson_records
        try:
            return lesson_records.open_shipped(run.name, corpus)
        except NPSError as exc:
            log.warning("shipped record for preset %s refused (%s); building it", name, exc)

    def build() -> dict:
        log.info("building preset %s", name)
        return generate(cfg, corpus, pools=pools, progress=progress).to_arrays()

    for attempt in range(2):
        rec = ProvenanceRecord.from_arrays(cached_arrays(KIND, p.key, build, meta={"preset": name}))
        if rec.config.get("corpus_size") == len(corpus) and check_provenance(rec, corpus.train) == 0:
            return rec
        if attempt == 0:
            log.warning("cached preset %s does not match corpus %s; rebuilding", name, cfg.corpus)
            clear(p.key)
    raise NPSError(f"preset '{name}' could not be rebuilt to match corpus '{cfg.corpus}'; "
                   "run `python -m nps cache clear --all` and retry.")


# --------------------------------------------------------------------------- lessons
@dataclass(frozen=True)
class Lesson:
    """A guided exercise.

    Attributes:
        key: identifier.
        title: card title.
        predict: the question to answer before looking.
        look: what to look for once it ran.
        page: ``generate``, ``ablations`` or ``analysis``.
        controls: settings the app applies, by :class:`GenerationConfig` field name
            (``constraints`` a tuple), plus ``columns`` (a list of constraint tuples) on
            the ablations page, or ``preset``/``pixel`` on the analysis page (``pixel`` is (y, x),
            or ``"stroke"``: a bright sampled pixel near the centre of sample 0).  ``subset``
            (None: all images) pins the sidebar's subset; on MNIST at the default settings the
            Generate and Ablations lessons open shipped records (:mod:`nps.lab.lesson_records`).
    """

    key: str
    title: str
    predict: str
    look: str
    page: str
    controls: dict = field(default_factory=dict)


LESSONS: tuple[Lesson, ...] = (
    Lesson("no-locality", "Turn off locality",
           "Every pixel may now come from anywhere in a source image. Predict: will the strokes stay "
           "connected and centred?",
           "Strokes break and parts drift off-centre: the image-ID overlay shows sources from all over "
           "their images. Turn locality back on and compare.",
           "generate", {"constraints": ("ssd", "ssl"), "n": 16, "subset": None}),
    Lesson("ssd-only", "Appearance alone",
           "Only the Efros-Leung window match is left (no locality, no representation). Predict: digits, "
           "or something else?",
           "A texture of squiggles: locally plausible, globally no digit. The class overlay is a patchwork "
           "of labels. (This lesson uses a 1,000-image subset, set in the sidebar: SSD alone scores every "
           "window of every image, hours on all 60,000 here.)",
           "generate", {"constraints": ("ssd",), "n": 16, "subset": 1000}),
    Lesson("three-ablations", "Compare the three ablations",
           "Same references, same seeds: SSD; SSD + locality; all three. Predict which column has the "
           "lowest class entropy.",
           "The full model keeps one class per digit (low class entropy) while drawing from many images "
           "(high image-ID entropy): part-whole composition, not copying. (On a 1,000-image subset, set in "
           "the sidebar, so that SSD alone takes minutes rather than hours.)",
           "ablations", {"columns": list(ablation_chain()), "n": 16, "subset": 1000}),
    Lesson("multi-scale", "Add multi-scale (coarse to fine)",
           "The fourth constraint, ms, first grows a half-resolution sketch of each sample; then a pixel may "
           "copy only from pool images whose coarse window matches that sketch. Predict: better-formed digits "
           "than the full model, on the same references and seeds?",
           "Most digits come out much the same (the seed patch and the representation pool already decide "
           "the shape); where they differ (about a sixth of the pixels here) ms closes one loop and breaks "
           "other strokes. Measured, it does not help here: on a 300-image MNIST subset at n = 128 (README, "
           "Multi-scale retrieval) the classifier FID is worse with ms (146 against 93.8) and recall lower; "
           "at n = 16 this page greys FID out. Long-range structure, the paper's open question, is not "
           "solved by it. (All 60,000 training images, precomputed.)",
           "ablations", {"columns": [("ssd", "loc", "ssl"), ("ssd", "loc", "ssl", "ms")], "n": 16, "subset": None}),
    Lesson("trace-pixel", "Where did this pixel come from?",
           "Pick a stroke pixel. Predict how many candidate windows survive appearance, locality and "
           "representation, and how many images the pool spans.",
           "The funnel shows each constraint cutting the candidates; the pixel was drawn uniformly from the "
           "final pool, and its source window is outlined in the training image.",
           "analysis", {"preset": "digits", "pixel": "stroke"}),
)


def get_lesson(key: str) -> Lesson:
    for lesson in LESSONS:
        if lesson.key == key:
            return lesson
    raise NPSError(f"unknown lesson '{key}'; choose one of {', '.join(lesson.key for lesson in LESSONS)}.")
