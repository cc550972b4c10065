"""Shipped lesson records: the slow lessons' and toggles' first result, precomputed and verified.

Without the representation constraint every candidate window of every training image is
scored, so on MNIST's 60,000 images "turn off representation" takes minutes and
"appearance alone" hours (:mod:`nps.lab.cost`).  The lab's lessons and the first view of each
constraint toggle on the default corpus therefore open a record built once with the real
engine and shipped in ``nps/lessons/`` (n = 16, a few tens of KB each), listed with its
sha256 in ``nps/lessons/MANIFEST.json``.  Build them with::

    nice python -m nps lessons build          # every record in RUNS (minutes of CPU; see MANIFEST seconds)
    python -m nps lessons verify              # hashes, validator and provenance, without building

A shipped record is used only if, when it is opened (:func:`open_shipped`):

1. its file's sha256 is the manifest's (a flipped byte is refused);
2. it passes the record validator (:meth:`nps.record.ProvenanceRecord.from_arrays`);
3. its config is the run's (:data:`RUNS`), made by this engine version
   (:data:`nps.record.ENGINE_VERSION`), on a corpus of the loaded corpus's size;
4. every pixel is the pixel its provenance names in the loaded corpus
   (:func:`nps.provenance.check_provenance`; a subset's ``train_ids`` must be its rows).

Otherwise it is refused with one line (:class:`NPSError`) and the app runs the lesson live.
Generation is a pure function of (config, corpus, sample ids) and does not depend on the
batch size, so a record answers every config equal to its own apart from ``batch_size``
(:func:`result_fields`); ``tests/test_lesson_records.py`` regenerates one sample of a
shipped record and compares it bit for bit.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nps.config import GenerationConfig
from nps.errors import NPSError
from nps.record import ProvenanceRecord

log = logging.getLogger(__name__)

LESSONS_DIR = Path(__file__).resolve().parents[1] / "lessons"
MANIFEST_NAME = "MANIFEST.json"
MANIFEST_FORMAT = "nps-lesson-records-1"
#: Config fields that do not change a record (generation is identical in any batch size); ``search``
#: brute and exact are one value too (:func:`result_fields`).
IGNORED_FIELDS = ("batch_size", "data_root")
_PROJECT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ShippedRun:
    """One precomputed run.

    Attributes:
        name: file stem (``nps/lessons/<name>.npz``).
        config: the generation, exactly as the app's controls build it.
        what: which lesson or toggle it answers (one phrase, for captions).
    """

    name: str
    config: GenerationConfig
    what: str


def _mnist(subset: int | None, constraints: tuple[str, ...]) -> GenerationConfig:
    """The app's default view on MNIST: n = 16, seed 0, every other parameter at its default."""
    return GenerationConfig(corpus="mnist", subset=subset, n=16, seed=0, batch_size=16, constraints=constraints)


RUNS: dict[str, ShippedRun] = {r.name: r for r in (
    ShippedRun("mnist-full", _mnist(None, ("ssd", "loc", "ssl")), "the full model"),
    ShippedRun("mnist-ssd-ssl", _mnist(None, ("ssd", "ssl")), "locality off"),
    ShippedRun("mnist-ssd-loc", _mnist(None, ("ssd", "loc")), "representation off"),
    ShippedRun("mnist-loc-ssl", _mnist(None, ("loc", "ssl")), "appearance off"),
    # SSD alone scans every position of every image: about 4.5 h for 16 samples on all 60k images
    # here, so the lesson pins a 1,000-image subset (and says so); the ablation lesson's columns too.
    ShippedRun("mnist1k-ssd", _mnist(1000, ("ssd",)), "appearance alone"),
    ShippedRun("mnist1k-ssd-loc", _mnist(1000, ("ssd", "loc")), "SSD + locality"),
    ShippedRun("mnist1k-full", _mnist(1000, ("ssd", "loc", "ssl")), "the full model"),
    # The multi-scale lesson's second column (its first is mnist-full): ms at its defaults (ms_eps 0.5, window 3).
    ShippedRun("mnist-full-ms", _mnist(None, ("ssd", "loc", "ssl", "ms")), "full model + multi-scale"),
)}


def result_fields(config: GenerationConfig | dict) -> dict:
    """The fields that decide a record's content: the config without :data:`IGNORED_FIELDS`.

    Accepts a config or a record's config dict (whose extra keys, such as ``corpus_size``
    and ``engine``, are dropped: only :class:`GenerationConfig` fields and the fields of the
    plug-in constraints it uses count).
    """
    from nps.config import DEFAULTS, plugin_fields
    d = config.to_dict() if isinstance(config, GenerationConfig) else dict(config)
    names = set(GenerationConfig.__dataclass_fields__) - set(IGNORED_FIELDS)
    # A plug-in constraint's fields (ms_eps, ms_window) are top-level keys of to_dict() where the
    # constraint is on: they decide the record too (a built-in config has none, so its fields are unchanged).
    names |= {f.name for f in plugin_fields() if f.name in d}
    # A record made before a field existed was made with its default (the field is opt-in).
    out = {k: d.get(k, DEFAULTS.get(k)) for k in sorted(names)}
    out["constraints"] = list(out["constraints"] or ())
    # brute and exact search make the same record (nps.engine.search; tested record for record), and
    # nprobe only steers approx: a record made either way answers both (shipped ones say "brute").
    if out.get("search") in ("brute", "exact"):
        out["search"] = "exact"
        out["nprobe"] = DEFAULTS["nprobe"]
    return out


def find(config: GenerationConfig) -> ShippedRun | None:
    """The shipped run whose record ``config`` would produce, or None (no file is read)."""
    want = result_fields(config)
    for run in RUNS.values():
        if result_fields(run.config) == want:
            return run
    return None


def path(name: str) -> Path:
    return LESSONS_DIR / f"{name}.npz"


def _shown(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(_PROJECT))
    except ValueError:
        return Path(p).name


def read_manifest() -> dict[str, dict]:
    """``{file name: {"sha256", "bytes", "config", "seconds", ...}}`` ({} when there is no manifest).

    Raises:
        NPSError: the manifest exists but is damaged.
    """
    from nps.shipped import read_manifest_file
    return read_manifest_file(LESSONS_DIR / MANIFEST_NAME, MANIFEST_FORMAT, "lesson-record manifest")


def available(name: str) -> bool:
    """Whether the run's file and its manifest entry exist (nothing is hashed or read)."""
    return path(name).is_file() and (LESSONS_DIR / MANIFEST_NAME).is_file()


def verify_file(name: str) -> None:
    """Check ``nps/lessons/<name>.npz`` against its sha256 in the manifest.

    Raises:
        NPSError: missing, unlisted, or changed (one line naming the file and the fix).
    """
    from nps.shipped import file_digest
    p = path(name)
    fix = (f"restore it with `git checkout -- {_shown(p)}` or rebuild it with "
           f"`python -m nps lessons build --only {name}`")
    if not p.is_file():
        raise NPSError(f"the lesson record '{_shown(p)}' is missing; {fix}.")
    entry = read_manifest().get(p.name)
    if entry is None:
        raise NPSError(f"the lesson record '{_shown(p)}' is not listed in {MANIFEST_NAME}; {fix}.")
    if file_digest(p) != entry["sha256"]:
        raise NPSError(f"the lesson record '{_shown(p)}' does not match its sha256 in {MANIFEST_NAME} (changed or "
                       f"damaged); {fix}.")


def open_shipped(name: str, corpus) -> ProvenanceRecord:
    """The shipped record of run ``name``, checked against ``corpus`` (see the module docstring).

    Args:
        corpus: the loaded corpus of the run's config (``mnist``, with its ``subset``).
    Raises:
        NPSError: one line saying why the record is refused; the caller runs live instead.
    """
    from nps.provenance import check_fits, check_provenance
    from nps.record import ENGINE_VERSION
    run = RUNS.get(name)
    if run is None:
        raise NPSError(f"unknown lesson record '{name}'; choose one of {', '.join(RUNS)}.")
    verify_file(name)
    rec = ProvenanceRecord.load(path(name))
    if result_fields(rec.config) != result_fields(run.config):
        raise NPSError(f"the lesson record '{name}' was made with another config than the lesson's; rebuild it with "
                       f"`python -m nps lessons build --only {name}`.")
    if rec.config.get("engine") != ENGINE_VERSION:
        raise NPSError(f"the lesson record '{name}' was made by engine version {rec.config.get('engine')} (this nps "
                       f"samples with {ENGINE_VERSION}); rebuild it with `python -m nps lessons build --only {name}`.")
    if rec.config.get("corpus_size") != len(corpus) or len(rec) != run.config.n:
        raise NPSError(f"the lesson record '{name}' was made on {rec.config.get('corpus_size')} training images, this "
                       f"corpus has {len(corpus)}; its data files differ from the build's.")
    check_fits(rec, len(corpus), corpus.image_shape, getattr(corpus, "train_ids", None))
    bad = check_provenance(rec, corpus.train)
    if bad:
        raise NPSError(f"the lesson record '{name}' does not match this corpus ({bad} samples have pixels that are not "
                       "their recorded source's); its data files differ from the build's.")
    return rec


def build(names: list[str] | None = None) -> list[dict]:
    """Generate each run with the real engine into ``nps/lessons/`` and update the manifest.

    Each record is validated and checked against its corpus before it is listed; the
    manifest keeps its sha256, size, config, wall time, machine and load average.

    Returns:
        the new manifest entries (one per built run).
    Raises:
        NPSError: an unknown name, missing data, or a build that fails its own checks.
    """
    import os

    from nps.cache import atomic_write
    from nps.corpora import load_corpus
    from nps.engine.sampler import generate
    from nps.machine import machine_description
    from nps.shipped import manifest_entry
    todo = list(RUNS) if not names else list(names)
    unknown = [n for n in todo if n not in RUNS]
    if unknown:
        raise NPSError(f"unknown lesson record '{unknown[0]}'; choose from {', '.join(RUNS)}.")
    LESSONS_DIR.mkdir(exist_ok=True)
    files = read_manifest()
    made = []
    for name in todo:
        run = RUNS[name]
        corpus = load_corpus(run.config.corpus, run.config.subset)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        rec = generate(run.config, corpus)
        seconds = time.perf_counter() - t0
        rec.save(path(name))
        files[path(name).name] = entry = {
            **manifest_entry(path(name)), "config": result_fields(run.config), "corpus_size": len(corpus),
            "image_shape": list(corpus.image_shape), "seconds": round(seconds, 1),
            "machine": machine_description(), "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        text = (json.dumps({"format": MANIFEST_FORMAT, "files": dict(sorted(files.items()))}, indent=2) + "\n").encode()
        atomic_write(LESSONS_DIR / MANIFEST_NAME, lambda f, text=text: f.write(text))
        open_shipped(name, corpus)  # what the app will check, checked now
        log.info("built lesson record %s in %.1f s", name, seconds)
        made.append({"name": name, **entry})
    return made


def corpus_size(name: str) -> int:
    """Training images of the run's corpus as built (the manifest's ``corpus_size``), without loading it.

    Raises:
        NPSError: the run is not in the manifest.
    """
    entry = read_manifest().get(path(name).name)
    if entry is None or not isinstance(entry.get("corpus_size"), int):
        raise NPSError(f"the lesson record '{name}' is not listed in {MANIFEST_NAME} with its corpus size; rebuild it "
                       f"with `python -m nps lessons build --only {name}`.")
    return int(entry["corpus_size"])


def caption(run: ShippedRun) -> str:
    """One line saying the result is precomputed and exactly what it is (corpus, subset, constraints, n, seed)."""
    c = run.config
    entry = read_manifest().get(path(run.name).name, {}) if available(run.name) else {}
    took = f", built in {entry['seconds']:.0f} s" if isinstance(entry.get("seconds"), int | float) else ""
    from nps.config import plugin_fields
    rep = f"{c.encoder}, k = {c.k}" if c.uses("ssl") else "no representation"
    sub = f"a {c.subset:,}-image subset" if c.subset else "all training images"
    extra = "".join(f", {f.name} = {getattr(c, f.name)}" for f in plugin_fields() if c.uses(f.owner or ""))
    return (f"Precomputed ({run.what}): shipped with the lab and checked against this corpus when opened — "
            f"{c.corpus}, {sub}, {'+'.join(c.constraints)}, {rep}, w = {c.window}, ε = {c.eps}, R = {c.radius}"
            f"{extra}, n = {c.n}, seed {c.seed}{took}. Generation is deterministic: a live run with these settings "
            "remakes it (checked bit for bit on the build machine).")


def digest_rows(rec: ProvenanceRecord, rows: np.ndarray) -> dict:
    """The per-sample arrays of ``rows`` (for comparing a regenerated sample with the shipped one)."""
    from nps.record import PER_SAMPLE
    return {k: np.asarray(getattr(rec, k))[rows] for k in PER_SAMPLE}
