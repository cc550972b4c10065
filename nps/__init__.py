"""NPS lab: white-box, training-free image generation by non-parametric sampling.

Data flows one way: corpus -> encoder -> index -> sampler -> provenance record
-> analysis -> app and CLI.  Importing :mod:`nps` is cheap; heavy modules
(torch, faiss) are imported by the submodules that need them.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
