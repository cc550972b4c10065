"""The engine: what :func:`nps.engine.sampler.generate` runs, and the plain definition it is tested against.

* :mod:`~nps.engine.sampler` the batched sampler (``Sampler``, ``generate``, ``complete``): set-up,
  the batch loop, the record; :mod:`~nps.engine.sampler_scores` a step's float32 candidate scores;
  :mod:`~nps.engine.sampler_choice` a step's choice (search dispatch, certified threshold, draw);
  :mod:`~nps.engine.sampler_setup` step geometry and RNG streams; :mod:`~nps.engine.sampler_pool`
  the ssl/loc candidate sets; :mod:`~nps.engine.selection` the one threshold rule and the draw.
* :mod:`~nps.engine.ssd` banded-matrix SSD of all candidate windows; :mod:`~nps.engine.fill_order`
  shells and within-shell order; :mod:`~nps.engine.store_view` the on-demand view of a corpus store.
* :mod:`~nps.engine.search` the exact pruned whole-corpus search, :mod:`~nps.engine.search_index` its
  window index, :mod:`~nps.engine.certify` float32 scores with float64 decisions.
* :mod:`~nps.engine.reference_impl` the plain per-pixel definition the engine is pinned to.

The engine imports nothing from :mod:`nps.lab` (the lab reads the engine, never the reverse).
"""
