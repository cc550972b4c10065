"""The Encoder interface.

An encoder maps uint8 images to L2-normalised float32 embeddings.  It follows
scikit-learn's conventions: the constructor only stores parameters, ``fit``
learns state (attributes ending in ``_``) and returns self.  ``identity`` names
the fitted state so cache keys change when the weights do.
"""

from __future__ import annotations

import numpy as np

from nps.errors import NPSError


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero). (N,D) -> (N,D) float32."""
    x = np.asarray(x, np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def images_to_float(images: np.ndarray) -> np.ndarray:
    """(N,H,W[,C]) uint8 -> (N, H*W*C) float32 in [0,1]."""
    images = np.asarray(images)
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


class Encoder:
    """Base class. Subclasses set ``name`` and implement ``fit`` and ``_encode``."""

    name: str = "base"

    def fit(self, corpus) -> Encoder:
        """Learn from ``corpus.train``; returns self."""
        return self

    @property
    def identity(self) -> str:
        """A string that changes whenever the fitted state changes (used in cache keys)."""
        return self.name

    def encode(self, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Embed images.

        Args:
            images: (N,H,W) or (N,H,W,C) uint8.
        Returns:
            (N,D) float32, rows L2-normalised.
        Raises:
            NPSError: an embedding holds NaN or inf (damaged weights); such a table would
                make every distance NaN and the sampler's pools meaningless.
        """
        images = np.asarray(images)
        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        parts = [self._encode(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
        out = np.concatenate(parts)
        finite = np.isfinite(out).all(axis=1)
        if not finite.all():
            raise NPSError(f"encoder {self.identity} gave non-finite embeddings for {int((~finite).sum())} of "
                           f"{len(out)} images, so its weights are damaged; restore or retrain them, or use "
                           "--encoder pca.")
        return l2_normalise(out)

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def _encode(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError
