"""NPS lab: white-box, training-free image generation by non-parametric sampling.

Data flows one way: corpus -> encoder -> index -> sampler -> provenance record
-> analysis -> app and CLI.  Importing :mod:`nps` is cheap: the public names below are
looked up on first use (module ``__getattr__``), so torch and faiss load only with the
module that needs them.

The public API (what the CLI, the app and users import)::

    import nps
    config = nps.GenerationConfig(corpus="digits", n=4)      # nps.DEFAULTS, nps.FIELDS: the field table
    record = nps.generate(config)                             # or nps.Sampler(config).run(); nps.engine.sampler(...)
    nps.save_record(record, "samples.npz"); record = nps.load_record("samples.npz")
    corpus = nps.load_corpus("digits"); result = nps.evaluate(record, corpus)

Every bad input raises :class:`nps.NPSError` with a one-line message.  The packages:
:mod:`nps.engine` (the sampler and its parts), :mod:`nps.constraints` (the constraint seam),
:mod:`nps.corpora`, :mod:`nps.encoders`, :mod:`nps.analysis`, :mod:`nps.metrics`,
:mod:`nps.lab` (lab support the engine never imports), :mod:`nps.baselines`, :mod:`nps.cli`.
"""

from __future__ import annotations

import importlib
import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: public name -> the module that defines it (looked up on each access, never cached here, so a
#: test's monkeypatch of the defining module is what ``nps.NAME`` returns)
API: dict[str, str] = {
    "GenerationConfig": "nps.config",
    "DEFAULTS": "nps.config",
    "FIELDS": "nps.config",
    "Corpus": "nps.corpora",
    "load_corpus": "nps.corpora",
    "Sampler": "nps.engine.sampler",
    "Progress": "nps.engine.sampler",
    "Stopped": "nps.engine.sampler",
    "generate": "nps.engine.sampler",
    "complete": "nps.engine.sampler",
    "ProvenanceRecord": "nps.record",
    "load_record": "nps.record",
    "save_record": "nps.record",
    "merge": "nps.record",
    "NPSError": "nps.errors",
    "DataMissingError": "nps.errors",
}
#: names whose public spelling differs from the definition's
_RENAMED = {"evaluate": ("nps.metrics.evaluation", "record_metrics")}

__all__ = ["__version__", *API, *_RENAMED]


def __getattr__(name: str) -> object:
    if name in API:
        return getattr(importlib.import_module(API[name]), name)
    if name in _RENAMED:
        module, attr = _RENAMED[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'nps' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
