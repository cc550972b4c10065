"""Appearance (``ssd``): keep the windows whose Gaussian-weighted SSD is near the best one.

For the step's distances d (normalised by the known weight, :mod:`nps.engine.ssd`), a sample keeps

    d <= (1 + eps) * max(d_min, 0) + tol      (and always d_min itself)

lowered to an optional absolute ceiling ``max_ssd`` (Efros & Leung's delta) wherever some
window passes it (:meth:`Appearance.threshold`, the one threshold rule: the engine calls it
through :func:`nps.engine.selection.thresholds`, the funnel and the explainer through the same).

With ``ssd_global_min`` (reading (iii) of issue 12, off by default) d_min is the minimum
over every window of every image in the locality band, taken before the representation
constraint, and the pool keeps its windows under that threshold wherever one passes
(:func:`nps.engine.sampling_readings.global_cut`; elsewhere the rule above, marked relaxed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nps.constraints.base import Constraint, Field, register

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from nps.config import GenerationConfig

FIELDS = (
    Field("sigma", "float", None, "Gaussian std of the window weights (default: window/6.4)", optional=True,
          app=(0.15, 5.0), owner="ssd"),  # config.SIGMA_MIN: below it the weights underflow float32
    Field("eps", "float", 0.1, "keep windows with d <= (1+eps)*min d + tol (default: %(default)s)",
          limits=(0.0, 1e30), app=(0.0, 1.0), owner="ssd", ablate=True,
          why=" (the threshold (1 + eps) d_min + tol must stay finite in float32; 1e30 already keeps "
              "every window with a non-zero best distance)"),
    Field("tol", "float", 1e-6, "absolute SSD tolerance (default: %(default)g)", limits=(0.0, 1e30),
          app=(0.0, 1e6), owner="ssd", why=" (a finite tolerance, so that excluded windows, held at +inf, never pass)"),
    Field("max_ssd", "float", None, "optional absolute SSD ceiling; pixels where nothing passes fall back and "
          "are marked relaxed", optional=True, limits=(0.0, 1e30), app=(0.0, 1e6), owner="ssd",
          why=" (or omit it for no ceiling)"),
    Field("ssd_global_min", "bool", False, "take the SSD minimum over every window of every image in the locality "
          "band (the whole corpus) before intersecting with the semantic pool; pixels whose pool has no window "
          "under that threshold fall back to the pool's own minimum and are marked relaxed", owner="ssd"),
)


@register
class Appearance(Constraint):
    name = "ssd"
    title = "appearance"
    label = "SSD"
    kind = "threshold"
    default_on = True
    ablation = True
    order = 10
    fields = FIELDS
    help = "Gaussian-weighted SSD of the known context, adaptive threshold"
    help_complete = "Gaussian-weighted SSD of the known context"

    def threshold(self, d_min: torch.Tensor, config: GenerationConfig) -> tuple[torch.Tensor, np.ndarray | None]:
        """Per-sample thresholds from the per-sample minimum distance (B,) float32.

        Robust by construction: every threshold is at least its minimum, so the best
        candidate always survives and no pool is ever empty.  The float32 expansion of the
        SSD can return a slightly negative minimum (-1.3e-7 measured) for an exact match;
        the rule then scales ``max(d_min, 0)``, the true (non-negative) SSD, since
        ``d_min * (1 + eps)`` would fall *below* a negative ``d_min`` for eps > tol / |d_min|
        and leave the pool empty (the IndexError of issue 9).  The threshold is then
        capped at :data:`nps.engine.selection.NO_LIMIT`, so excluded slots (+inf) never pass, however
        large eps or tol (:meth:`GenerationConfig.check` bounds both, so a finite minimum
        always stays under the cap).  For a non-negative minimum this is exactly
        ``d_min * (1 + eps) + tol``.

        Returns:
            (B,) float32 thresholds (keep ``d <= threshold``), and (B,) bool rows where no
            candidate passed ``max_ssd`` and the adaptive rule was used instead (None
            without a ceiling).
        """
        import torch

        from nps.engine.selection import NO_LIMIT
        thr = d_min.clamp(min=0.0) * (1.0 + config.eps) + config.tol
        thr = torch.maximum(thr, d_min).clamp(max=NO_LIMIT)
        if config.max_ssd is None:
            return thr, None
        # Kept & under the ceiling == under min(thr, max_ssd); empty exactly where d_min > max_ssd.
        fell_back = d_min > config.max_ssd
        return torch.where(fell_back, thr, thr.clamp(max=config.max_ssd)), fell_back.cpu().numpy()

    def plain_keep(self, dist: np.ndarray, config: GenerationConfig) -> np.ndarray:
        """The definition, in float64: ``d <= (1 + eps) * d_min + tol`` over one step's (M,) distances."""
        return dist <= dist.min() * (1.0 + config.eps) + config.tol

    def funnel_label(self, config: dict) -> str:
        return "appearance alone (SSD)"
