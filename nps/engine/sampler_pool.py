"""Candidate sets for the sampler: semantic pools (``ssl``) and centre ranges (``loc``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from nps.config import GenerationConfig

log = logging.getLogger(__name__)


def candidate_centres(y: int, x: int, height: int, width: int,
                      radius: int | None) -> tuple[tuple[int, int, int, int], bool]:
    """Source-window centres allowed for target pixel (y, x).

    With locality (``radius`` not None) the centres are the L-infinity ball of that
    radius clipped to the source image.  If the ball misses the image entirely (a
    canvas larger than the sources), the radius is doubled until it does not, and
    the pixel is marked relaxed.  Without locality every position is allowed.

    Returns:
        (y0, y1, x0, x1) half-open centre ranges, and whether the radius was relaxed.
    """
    if radius is None:
        return (0, height, 0, width), False
    r, relaxed = radius, False
    while True:
        y0, y1 = max(0, y - r), min(height, y + r + 1)
        x0, x1 = max(0, x - r), min(width, x + r + 1)
        if y0 < y1 and x0 < x1:
            return (y0, y1, x0, x1), relaxed
        r, relaxed = 2 * r + 1, True


@dataclass
class SemanticPools:
    """The representation constraint: which train images each sample may copy from.

    ``for_references(refs)`` returns:

    * None: no constraint, the whole corpus (shared by the batch);
    * (1,P) int64: one pool shared by the batch (class-conditional ``label``);
    * (B,P) int64: one pool per sample, ids sorted ascending, -1 padding (adaptive radius).

    In ``canvas`` mode ``per_shell`` is True and :meth:`for_canvases` re-embeds the
    partial canvases once per shell.  In ``window`` mode ``per_step`` is True and
    :meth:`for_step` ranks the images by their window at each pixel
    (:class:`nps.engine.sampling_readings.WindowEmbedding`, which is then both encoder and index).
    """

    config: GenerationConfig
    shared: np.ndarray | None = None
    encoder: object = None
    index: object = None
    table: object = None
    per_shell: bool = False
    per_step: bool = False
    key: str = "none"
    _ref_cache: dict = field(default_factory=dict)

    @classmethod
    def build(cls, config: GenerationConfig, corpus) -> SemanticPools:
        """The pools of the enabled "images" constraint (:meth:`nps.constraints.Constraint.pools`), or none."""
        from nps.constraints import image_constraint
        chooser = image_constraint(config)
        return cls(config) if chooser is None else chooser.pools(config, corpus)

    def _exclude(self, refs: np.ndarray) -> np.ndarray | None:
        return None if self.config.include_reference else np.asarray(refs, np.int64)

    def for_references(self, refs: np.ndarray) -> np.ndarray | None:
        """Pools for a batch whose references are ``refs`` (B,) int64."""
        if self.index is None:
            return self.shared
        if self.per_shell or self.per_step:
            return None  # replaced at the first shell (step); the seed needs no pool
        from nps.retrieval import semantic_pool
        queries = self.table.train[refs]
        return semantic_pool(self.index, queries, self.config.k, self._exclude(refs), self.config.ssl_eps,
                             self.config.ssl_cap)

    def for_canvases(self, canvases: np.ndarray, known: np.ndarray, refs: np.ndarray) -> np.ndarray:
        """Pools from the embeddings of partial canvases (B,H,W[,C]) uint8, unknown pixels 0."""
        from nps.retrieval import semantic_pool
        queries = self.encoder.encode(canvases)
        return semantic_pool(self.index, queries, self.config.k, self._exclude(refs), self.config.ssl_eps,
                             self.config.ssl_cap)

    def for_step(self, canvases: np.ndarray, known: np.ndarray, refs: np.ndarray, y: int, x: int) -> np.ndarray:
        """Window mode: (B,k) int64 pools for filling (y, x) of canvases (B,H,W[,C]) uint8 (unknown 0)."""
        return self.index.pools(canvases, known, y, x, self.config.k, self._exclude(refs))

    def for_given(self, canvases: np.ndarray, refs: np.ndarray) -> np.ndarray | None:
        """Pools for completion: the k-NN of the masked input image (unknown pixels 0)."""
        if self.index is None:
            return self.shared
        if self.per_step:
            return None  # replaced at the first step
        from nps.retrieval import semantic_pool
        return semantic_pool(self.index, self.encoder.encode(canvases), self.config.k, None, self.config.ssl_eps,
                             self.config.ssl_cap)

    def members(self, refs: np.ndarray) -> list[np.ndarray]:
        """The pool of each reference as a list of id arrays (for tests and the funnel)."""
        pools = self.for_references(refs)
        if pools is None:
            return [None] * len(refs)
        if pools.shape[0] == 1:
            return [pools[0]] * len(refs)
        return [row[row >= 0] for row in pools]
