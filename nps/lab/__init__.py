"""Lab support around the engine (the engine never imports it).

* :mod:`~nps.lab.presets` the lessons' settings; :mod:`~nps.lab.lesson_records` the shipped lesson records.
* :mod:`~nps.lab.plots`, :mod:`~nps.lab.plots_maps`, :mod:`~nps.lab.overlays` pictures and per-pixel maps.
* :mod:`~nps.lab.funnel` the per-pixel constraint funnel; :mod:`~nps.lab.explainer` the step explainer's frames.
* :mod:`~nps.lab.cost` the calibrated run-time estimate; :mod:`~nps.lab.bench` the engine benchmark;
  :mod:`~nps.lab.distributed` generation on Ray; :mod:`~nps.lab.report` the ablation report.
"""
