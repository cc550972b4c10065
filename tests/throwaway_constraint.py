"""A throwaway constraint, defined in this one file: the source window's centre lies on the target's row.

It proves the seam (issue 14): registered with :func:`nps.constraints.register`, it must
appear in ``generate --help``, the app's toggles, the funnel and the cache keys, and run
through the engine and the plain reference implementation alike, with no other edit.

For target (y, x) the centres are the rows ``|cy - y| <= row_slack`` (every column),
intersected with what the other centre constraints (locality) allow; where that is
empty the box is left as it was and the pixel is marked relaxed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nps.constraints import Constraint, Field, FunnelContext

if TYPE_CHECKING:  # pragma: no cover
    from nps.config import GenerationConfig


class SameRow(Constraint):
    name = "row"
    title = "same row"
    label = "row"
    kind = "centres"
    help = "source window centre on the target pixel's row (within row_slack rows)"
    fields = (Field("row_slack", "int", 0, "rows the source centre may stray from the target's (default: %(default)s)",
                    limits=(0, 64), app=(0, 8), owner="row"),)

    def centres(self, config: GenerationConfig, y: int, x: int, h: int, w: int,
                box: tuple[int, int, int, int]) -> tuple[tuple[int, int, int, int], bool]:
        s = config.row_slack
        y0, y1 = max(box[0], y - s), min(box[1], y + s + 1)
        if y0 >= y1:
            return box, True
        return (y0, y1, box[2], box[3]), False

    def cost_positions(self, config: GenerationConfig, h: int, w: int, positions: int) -> int:
        return min(positions, min(h, 2 * config.row_slack + 1) * w)

    def funnel_count(self, ctx: FunnelContext) -> int:
        s = ctx.config.row_slack
        rows = min(ctx.h, ctx.y + s + 1) - max(0, ctx.y - s)
        return (ctx.corpus_size - ctx.n_excluded) * rows * ctx.w

    def funnel_label(self, config: dict) -> str:
        return f"same row (±{config.get('row_slack', 0)})"
