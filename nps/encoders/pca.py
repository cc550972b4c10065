"""PCA of pixels (scikit-learn), fitted once per corpus and cached."""

from __future__ import annotations

import numpy as np

from nps.encoders.base import Encoder, images_to_float


class PCAEncoder(Encoder):
    """Whitened-free PCA projection of pixels.

    Args:
        n_components: embedding size D.
        max_fit: fit on at most this many training images (a fixed, seeded sample).
    """

    name = "pca"

    def __init__(self, n_components: int = 32, max_fit: int = 20000) -> None:
        self.n_components = n_components
        self.max_fit = max_fit

    def fit(self, corpus) -> PCAEncoder:
        from sklearn.decomposition import PCA

        from nps.cache import cached_arrays, content_key
        n_comp = min(self.n_components, len(corpus), int(np.prod(corpus.image_shape)))
        key = content_key("pca", corpus.content_hash, n_comp, self.max_fit)

        def build() -> dict[str, np.ndarray]:
            n = len(corpus.train)
            # Pick the rows before converting: a stored corpus of millions is never made float whole.
            rows = np.random.default_rng(0).choice(n, self.max_fit, replace=False) if n > self.max_fit else slice(None)
            x = images_to_float(corpus.train[rows])
            pca = PCA(n_components=n_comp, svd_solver="randomized", random_state=0).fit(x)
            return {"mean": pca.mean_.astype(np.float32), "components": pca.components_.astype(np.float32)}

        arrays = cached_arrays("pca", key, build, meta={"corpus": corpus.name, "components": n_comp})
        self.mean_, self.components_ = arrays["mean"], arrays["components"]
        self.key_ = key
        return self

    @property
    def identity(self) -> str:
        return f"pca-{self.key_}"

    @property
    def dim(self) -> int:
        return int(self.components_.shape[0])

    def _encode(self, images: np.ndarray) -> np.ndarray:
        return (images_to_float(images) - self.mean_) @ self.components_.T
