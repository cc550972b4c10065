"""The constraints, registered in canonical order, and the dispatch the engine and the lab call.

``nps.constraints.base`` holds the :class:`Constraint` declaration and the registry; one
module per constraint (``appearance``, ``locality``, ``representation``) declares and
registers it.  A new constraint is a new module with a :func:`register` call (imported
here for a built-in one, or by whoever uses a plug-in); the functions below are what the
engine (:mod:`nps.engine.sampler`, :mod:`nps.engine.selection`, :mod:`nps.engine.sampler_pool`), the plain
reference (:mod:`nps.engine.reference_impl`), :mod:`nps.lab.cost`, :mod:`nps.lab.funnel`, the CLI and the
app read, so none of them names a constraint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

# Importing them registers them; Constraint.order gives the canonical order: ssd, loc, ssl.
from nps.constraints import appearance, locality, multiscale, representation
from nps.constraints.base import (
    KINDS,
    Constraint,
    Field,
    FunnelContext,
    active,
    default_names,
    get,
    label,
    names,
    on_change,
    register,
    registered,
    unregister,
)

if TYPE_CHECKING:  # pragma: no cover
    from nps.config import GenerationConfig

__all__ = [
    "KINDS",
    "Constraint",
    "Field",
    "FunnelContext",
    "ablation_chain",
    "ablation_sets",
    "active",
    "appearance",
    "cache_key",
    "chooses_images",
    "default_names",
    "funnel_counts",
    "funnel_rows",
    "get",
    "image_constraint",
    "label",
    "locality",
    "mask_pool",
    "multiscale",
    "names",
    "on_change",
    "plain_step_centres",
    "pool_key",
    "register",
    "registered",
    "representation",
    "set_label",
    "step_centres",
    "unregister",
]


def step_centres(config: GenerationConfig, y: int, x: int, h: int,
                 w: int) -> tuple[tuple[int, int, int, int], bool]:
    """(y0, y1, x0, x1) half-open centres for target (y, x) after every "centres" constraint, and relaxed.

    Without one every position of the h x w source is allowed.
    """
    box, relaxed = (0, h, 0, w), False
    for c in active(config, "centres"):
        box, r = c.centres(config, y, x, h, w, box)
        relaxed = relaxed or r
    return box, relaxed


def plain_step_centres(config: GenerationConfig, y: int, x: int, h: int,
                       w: int) -> tuple[tuple[int, int, int, int], bool]:
    """:func:`step_centres` through each constraint's plain definition (:mod:`nps.engine.reference_impl`)."""
    box, relaxed = (0, h, 0, w), False
    for c in active(config, "centres"):
        box, r = c.plain_centres(config, y, x, h, w, box)
        relaxed = relaxed or r
    return box, relaxed


def mask_pool(pool: Any, admits: list[np.ndarray]) -> Any:
    """``pool`` (:class:`nps.engine.sampler_setup.CandidatePool`) with the slots no "mask" constraint admits excluded.

    Args:
        admits: (B,P) bool per mask constraint (:meth:`Constraint.admit`).
    """
    import dataclasses

    import torch
    if not admits:
        return pool
    block = torch.from_numpy(~np.logical_and.reduce(admits))
    block = block.to(pool.images.device if pool.images is not None else "cpu")
    excluded = block if pool.excluded is None else pool.excluded | block
    return dataclasses.replace(pool, excluded=excluded)


def image_constraint(config: GenerationConfig) -> Constraint | None:
    """The one enabled "images" constraint (the engine holds one semantic pool per sample), or None.

    Raises:
        NPSError: more than one is enabled.
    """
    found = active(config, "images")
    if len(found) > 1:
        from nps.errors import NPSError
        raise NPSError(f"constraints {', '.join(c.name for c in found)} both choose source images; the engine "
                       "holds one image pool per sample, so enable one of them.")
    return found[0] if found else None


def chooses_images(constraints: tuple[str, ...] | list[str]) -> bool:
    """Whether a constraint set (names; unknown ones ignored) has an "images" constraint (a semantic pool)."""
    return any(c.kind == "images" for c in registered() if c.name in set(constraints))


def set_label(constraints: tuple[str, ...] | list[str]) -> str:
    """'SSD + loc + SSL' style label of a constraint set (ablation tables and grids)."""
    chosen = [c for c in registered() if c.name in set(constraints)]
    if len(chosen) == 1:
        return f"{chosen[0].label} only"
    return " + ".join(c.label for c in chosen) if chosen else "none"


def ablation_chain() -> tuple[tuple[str, ...], ...]:
    """The paper's ablation (Figure 2), from the registry: the default constraints added one at a time,
    in canonical order: SSD; SSD + loc; SSD + loc + SSL."""
    chain = [c.name for c in registered() if c.default_on and c.ablation]
    return tuple(tuple(chain[:i + 1]) for i in range(len(chain)))


def ablation_sets() -> tuple[tuple[str, ...], ...]:
    """Every ablated constraint set: :func:`ablation_chain`, then the full model plus each opt-in
    constraint that asks to be ablated (``ablation=True``).

    The one definition behind ``python -m nps ablate``, the Ablations page's default columns and
    (the chain) the lessons.
    """
    sets = list(ablation_chain())
    full = default_names()
    sets += [tuple(n for n in names() if n in (*full, c.name)) for c in registered()
             if not c.default_on and c.ablation]
    return tuple(sets)


def cache_key(config: GenerationConfig) -> tuple:
    """Every enabled constraint's part of a generation's cache key (name and owned fields), canonical order."""
    return tuple(part for c in registered() if (part := c.cache_key(config)))


def pool_key(config: GenerationConfig) -> tuple:
    """The semantic-pool cache key: each constraint's :meth:`Constraint.pool_key` (("none",) when none applies)."""
    parts = tuple((c.name, *part) for c in registered() if (part := c.pool_key(config)))
    return parts or ("none",)


def funnel_counts(ctx: FunnelContext) -> dict[str, int]:
    """{name: windows it alone admits} for every enabled constraint that counts (canonical order)."""
    out: dict[str, int] = {}
    for c in active(ctx.config):
        n = c.funnel_count(ctx)
        if n is not None:
            out[c.name] = int(n)
    return out


def funnel_rows(counts: dict[str, int], config: dict[str, Any], total: int, ranked: int,
                ssd_alone: int | None, final: int, final_label: str = "all enabled: the pool") -> list[tuple[str, int]]:
    """(label, count) bars of a funnel: every window, each counting constraint, their intersection, the pool."""
    rows = [("every window", total)]
    rows += [(get(n).funnel_label(config), v) for n, v in counts.items() if n in names()]
    if len(counts) > 1:
        rows.append((" ∩ ".join(get(n).title for n in counts if n in names()), ranked))
    if ssd_alone is not None:  # the threshold rule over every window, without the other constraints
        rows.append((next(c.funnel_label(config) for c in registered() if c.kind == "threshold"), ssd_alone))
    rows.append((final_label, final))
    return rows
