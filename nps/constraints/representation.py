"""Representation (``ssl``): the source image is among the k nearest of the condition in an embedding.

The condition is a reference train image (``ssl_mode="reference"``), the partial canvas
re-embedded every shell (``"canvas"``), the context window of the pixel embedded every
step (``"window"``, :mod:`nps.engine.sampling_readings`), or a class (``label``: all its images).
The pool of sample s is

    P_s = the k nearest train images of e(reference_s) (reference excluded),
          or those within (1 + ssl_eps) of the nearest, capped at k (at ssl_cap when set),

held as :class:`nps.engine.sampler_pool.SemanticPools` (ids (B,P) int64, -1 padding).  Its plain
version is :meth:`SemanticPools.members`, the same ids as lists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nps.constraints.base import Constraint, Field, FunnelContext, register

if TYPE_CHECKING:  # pragma: no cover
    from nps.config import GenerationConfig

SSL_MODES = ("reference", "canvas", "window")

FIELDS = (
    Field("k", "int", 64, "semantic pool size (default: %(default)s)", limits=(1, 2**31 - 1), app=(1, 512),
          owner="ssl", ablate=True),
    Field("encoder", "str", "auto", "auto, pca, pixels or simclr; auto is the measured best for the corpus (simclr "
          "for mnist, where it measured best; pca elsewhere) (default: %(default)s)", owner="ssl", app_fixed="sidebar"),
    Field("ssl_mode", "str", "reference", "reference: k-NN of a reference image; canvas: re-embed the canvas each "
          "shell; window: k images whose window at the pixel is nearest the context's in a PCA of windows, "
          "each step", choices=SSL_MODES, owner="ssl", app_fixed=SSL_MODES),
    Field("ssl_eps", "float", None, "adaptive semantic pool: distance <= (1+ssl_eps)*nearest, capped at k",
          optional=True, limits=(0.0, 1e30), app=(0.0, 2.0), owner="ssl"),
    Field("ssl_cap", "int", None, "most images an adaptive semantic pool (--ssl-eps) holds, instead of k: set "
          "it to the corpus size for an uncapped (1+ssl_eps)*nearest pool (default: k)", optional=True,
          limits=(1, 2**31 - 1), owner="ssl", why=" (a pool of images; the corpus size is the most it can hold)"),
    Field("label", "int", None, "class-conditional: pool = images of this label", optional=True,
          limits=(-(2**63), 2**63 - 1), owner="ssl"),
)


@register
class Representation(Constraint):
    name = "ssl"
    title = "representation"
    label = "SSL"
    kind = "images"
    default_on = True
    ablation = True
    order = 30
    fields = FIELDS
    help = "source image among the k nearest of the reference"
    help_complete = "source image among the k nearest of the masked image"

    def pools(self, config: GenerationConfig, corpus: Any) -> Any:
        """The semantic pools: a label's images (shared), or a k-NN index over the encoder's embeddings."""
        import numpy as np

        from nps.engine.sampler_pool import SemanticPools
        if config.label is not None:
            ids = np.flatnonzero(corpus.train_labels == config.label).astype(np.int64)
            return SemanticPools(config, shared=ids[None, :], key=f"label-{config.label}")
        if config.ssl_mode == "window":  # reading (ii): a window-level embedding, re-ranked every step
            from nps.engine.sampling_readings import WindowEmbedding
            emb = WindowEmbedding.fit(corpus, config.window)
            return SemanticPools(config, encoder=emb, index=emb, per_step=True, key=emb.key)
        from nps.encoders import get_encoder
        from nps.retrieval import pool_index_kind, source_index
        encoder = get_encoder(config.encoder, corpus, device=config.device)
        table, index = source_index(corpus, encoder, pool_index_kind(len(corpus)))  # IVF for large corpora
        return SemanticPools(config, encoder=encoder, index=index, table=table,
                             per_shell=config.ssl_mode == "canvas",
                             key=table.key if index.kind == "flat" else index.key_)

    def check(self, config: GenerationConfig, corpus_size: int) -> None:
        from nps.errors import NPSError
        pool_max = corpus_size - (0 if config.include_reference else 1)
        if config.label is None and config.k > pool_max:
            raise NPSError(f"--k {config.k} is larger than the corpus allows ({pool_max} images "
                           f"besides the reference); use --k <= {pool_max}.")
        if config.ssl_cap is not None and (config.ssl_eps is None or config.label is not None
                                           or config.ssl_mode == "window"):
            raise NPSError("--ssl-cap caps the adaptive pool of --ssl-eps (reference or canvas mode, no --label); "
                           "add --ssl-eps E or drop --ssl-cap.")
        if config.ssl_mode == "window" and config.label is not None:
            raise NPSError("--ssl-mode window ranks images by their window at each pixel; it has no class pool, "
                           "so drop --label or use --ssl-mode reference.")

    def cost_images(self, config: GenerationConfig, corpus_size: int, images: int) -> int:
        if config.label is not None:
            return min(images, corpus_size)
        return min(images, config.k if config.ssl_cap is None else config.ssl_cap, corpus_size)

    def per_sample_pools(self, config: GenerationConfig) -> bool:
        return config.label is None

    def funnel_count(self, ctx: FunnelContext) -> int:
        """Windows of the semantic-pool images (any position)."""
        return ctx.pool_images * ctx.h * ctx.w

    def funnel_label(self, config: dict) -> str:
        return f"representation (k={config.get('k')})"

    def pool_key(self, config: GenerationConfig) -> tuple:
        """What :class:`SemanticPools` depends on (device: the encoder runs there)."""
        if not config.uses(self.name):
            return ()
        if config.label is not None:
            return ("label", config.label)
        key = (config.encoder, config.ssl_mode, config.k, config.include_reference, config.ssl_eps, config.device)
        if config.ssl_mode == "window":
            key += (config.window,)  # its windows are the context's
        return key if config.ssl_cap is None else (*key, config.ssl_cap)
