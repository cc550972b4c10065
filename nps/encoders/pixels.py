"""Raw pixels as the representation: the baseline every encoder must beat."""

from __future__ import annotations

import numpy as np

from nps.encoders.base import Encoder, images_to_float


class PixelEncoder(Encoder):
    """Flattened, mean-centred pixels (centring makes cosine distance meaningful)."""

    name = "pixels"

    def fit(self, corpus) -> PixelEncoder:
        self.mean_ = images_to_float(corpus.train).mean(0)
        self.dim_ = int(self.mean_.shape[0])
        return self

    @property
    def identity(self) -> str:
        from nps.cache import content_key
        return f"pixels-{content_key(self.mean_)}"

    @property
    def dim(self) -> int:
        return self.dim_

    def _encode(self, images: np.ndarray) -> np.ndarray:
        return images_to_float(images) - self.mean_
