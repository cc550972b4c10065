"""Locality (``loc``): the source window's centre lies within L-infinity radius R of the target pixel.

For target (y, x) on an H x W canvas the centres are the ball

    { (cy, cx) : |cy - y| <= R, |cx - x| <= R }  clipped to the source image,

at most (2R+1)^2 of the H*W positions; if the ball misses the image (a canvas larger than
the sources) R is doubled (2R+1) until it does not and the pixel is marked relaxed
(:func:`nps.engine.sampler_pool.candidate_centres`, which is already the plain definition).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nps.constraints.base import Constraint, Field, FunnelContext, register

if TYPE_CHECKING:  # pragma: no cover
    from nps.config import GenerationConfig

FIELDS = (
    Field("radius", "int", 2, "locality radius R in pixels (default: %(default)s)", limits=(0, 4096), app=(0, 8),
          owner="loc", ablate=True, why=" (any radius past the canvas side is the whole canvas)"),
)


def ball(y: int, x: int, h: int, w: int, radius: int) -> int:
    """Positions of the radius-R ball around (y, x) inside an h x w image (unrelaxed)."""
    return (min(h, y + radius + 1) - max(0, y - radius)) * (min(w, x + radius + 1) - max(0, x - radius))


@register
class Locality(Constraint):
    name = "loc"
    title = "locality"
    label = "loc"
    kind = "centres"
    default_on = True
    ablation = True
    order = 20
    fields = FIELDS
    help = "source window centre within R (L∞) of the target pixel"
    speeds_up = True

    def centres(self, config: GenerationConfig, y: int, x: int, h: int, w: int,
                box: tuple[int, int, int, int]) -> tuple[tuple[int, int, int, int], bool]:
        from nps.engine.sampler_pool import candidate_centres
        (y0, y1, x0, x1), relaxed = candidate_centres(y, x, h, w, config.radius)
        return (max(y0, box[0]), min(y1, box[1]), max(x0, box[2]), min(x1, box[3])), relaxed

    def cost_positions(self, config: GenerationConfig, h: int, w: int, positions: int) -> int:
        return min(positions, min(h, 2 * config.radius + 1) * min(w, 2 * config.radius + 1))

    def cheaper_phrase(self, config: GenerationConfig) -> str:
        return f"locality on (R = {config.radius})"

    def funnel_count(self, ctx: FunnelContext) -> int:
        """Windows of every image (the reference left out) centred within R of the pixel."""
        return (ctx.corpus_size - ctx.n_excluded) * ball(ctx.y, ctx.x, ctx.h, ctx.w, ctx.config.radius)

    def funnel_label(self, config: dict) -> str:
        return f"locality (R={config.get('radius')})"
