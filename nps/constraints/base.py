"""The constraint seam: one declaration per constraint, one registry, and the dispatch the engine calls.

A constraint narrows the candidate windows of a fill step in one of three ways
(:attr:`Constraint.kind`):

* ``"centres"``: the window centres a step may copy from, a half-open box
  ``(y0, y1, x0, x1)`` in source-image coordinates (locality);
* ``"images"``: the train images a sample may copy from, as
  :class:`nps.engine.sampler_pool.SemanticPools` (representation);
* ``"threshold"``: a cut over the step's SSD scores ``d`` (B,O,P) float32, as per-sample
  thresholds (B,) float32 with ``keep d <= threshold`` (appearance);
* ``"mask"``: a per-step admission (B,P) bool over the slots of per-sample pools, from state
  it prepares per batch (:meth:`Constraint.prepare`; the coarse level of multi-scale).

The pool a pixel is drawn from is the intersection of the enabled constraints; the
threshold is taken inside the centres and images the others allow.

Everything the rest of the lab needs to know about a constraint is declared on its
class: its config fields (:class:`Field`, each with type, default, bounds, CLI flag
and help), its toggle in the app, its cost factor (:mod:`nps.lab.cost`), its count in the
funnel (:mod:`nps.lab.funnel`), its part of the cache keys and its plain reference version
(:mod:`nps.engine.reference_impl`).  The CLI flags, the app toggles, the ablation sets, the
funnel bars, cost warnings, cache keys and ``cli_command`` are generated from
:func:`registered`, so a new constraint is one module plus :func:`register`.

This module imports nothing from the engine at import time (the config imports it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from nps.config import GenerationConfig

KINDS = ("centres", "images", "threshold", "mask")


@dataclass(frozen=True)
class Field:
    """One GenerationConfig field: the single table every surface reads (:data:`nps.config.FIELDS`).

    Attributes:
        name: the field name (a :class:`~nps.config.GenerationConfig` attribute).
        kind: "int", "float", "bool", "str" or "tuple" (a tuple of names).
        default: the default value.
        help: one phrase for ``--help`` and the app (``%(default)s`` is filled by argparse).
        optional: None is allowed (and means "unset").
        limits: inclusive (low, high) range the CLI, the API and records accept (None: unbounded).
        why: why the range is what it is, appended to the out-of-range message.
        app: inclusive (low, high) range the app's controls offer (None: the app sets no widget
            for it; :mod:`app_support.limits` then holds an uploaded record to ``app_fixed``).
        app_fixed: what the app holds a field without a widget to: "default" (only its default),
            "any" (any value within ``limits``), or a tuple of allowed values.
        owner: the constraint the field belongs to ("ssd", "loc", "ssl", ...) or None (the engine).
        flag: the CLI flag (default ``--name-with-dashes``).
        choices: the allowed values of a "str" field, or None.
        metavar: argparse metavar.
        sweep: ``python -m nps sweep --param`` may vary it.
        ablate: ``python -m nps ablate`` offers it as a parameter shared by every configuration.
        group: where the CLI lists it: "corpus", "run" or "method".
    """

    name: str
    kind: str
    default: Any
    help: str
    optional: bool = False
    limits: tuple[float, float] | None = None
    why: str = ""
    app: tuple[float, float] | None = None
    app_fixed: Any = "any"
    owner: str | None = None
    flag: str | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    sweep: bool = True
    ablate: bool = False
    group: str = "method"

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class FunnelContext:
    """What a constraint's funnel count may read at one step (:func:`nps.lab.funnel.constraint_funnel`).

    Attributes:
        config: the record's config.
        y, x: the pixel.  h, w: the canvas.
        corpus_size: train images N.
        pool_images: images of the step's semantic pool (N without an images constraint),
            the reference left out.
        n_excluded: 1 when the sample's reference is left out of the candidates, else 0.
    """

    config: GenerationConfig
    y: int
    x: int
    h: int
    w: int
    corpus_size: int
    pool_images: int
    n_excluded: int


class Constraint:
    """A constraint's declaration; subclasses override what their :attr:`kind` needs.

    Class attributes:
        name: the short name used in ``--constraints`` and records ("loc").
        title: the app's toggle label ("locality"); the toggle reads "title (name)".
        label: the name in ablation labels ("loc", "SSL").
        kind: one of :data:`KINDS`.
        fields: the config fields it owns (:class:`Field`, ``owner`` = :attr:`name`).
        default_on: part of the default (full-model) constraint set; only for built-in constraints
            (it is the dataclass default of ``GenerationConfig.constraints``): a plug-in is opt-in.
        ablation: in the paper's cumulative ablation chain (SSD, + loc, + SSL); an opt-in
            constraint with ``ablation=True`` adds one set, the full model plus itself.
        help: the toggle's help in the app and its line in ``--constraints``'s help.
        help_complete: the toggle's help on the Complete page (None: ``help``).
        order: its place in the canonical order of constraint tuples (built-ins 10, 20, 30; plug-ins 100).
        speeds_up: switching it on shrinks the windows per pixel (offered by :func:`nps.lab.cost.cheaper`).
        widget_fields: fields whose app widgets are disabled while the toggle is off.
    """

    name: str = ""
    title: str = ""
    label: str = ""
    kind: str = ""
    fields: tuple[Field, ...] = ()
    default_on: bool = False
    ablation: bool = False
    help: str = ""
    help_complete: str | None = None
    speeds_up: bool = False
    order: int = 100

    # ---------------------------------------------------------------- narrowing (engine)
    def centres(self, config: GenerationConfig, y: int, x: int, h: int, w: int,
                box: tuple[int, int, int, int]) -> tuple[tuple[int, int, int, int], bool]:
        """kind "centres": narrow ``box`` (y0, y1, x0, x1) for target (y, x); returns (box, relaxed)."""
        raise NotImplementedError

    def pools(self, config: GenerationConfig, corpus: Any) -> Any:
        """kind "images": the :class:`~nps.engine.sampler_pool.SemanticPools` of ``config`` on ``corpus``."""
        raise NotImplementedError

    def threshold(self, d_min: torch.Tensor, config: GenerationConfig) -> tuple[torch.Tensor, np.ndarray | None]:
        """kind "threshold": (B,) float32 thresholds from (B,) float32 minima, and (B,) bool fall-backs or None."""
        raise NotImplementedError

    def check(self, config: GenerationConfig, corpus_size: int) -> None:
        """Raise a one-line NPSError if ``config`` cannot run on a corpus of ``corpus_size`` images."""

    def prepare(self, config: GenerationConfig, corpus: Any, sample_ids: np.ndarray, refs: np.ndarray,
                pool_ids: np.ndarray | None) -> Any:
        """kind "mask": the batch's state (B samples, pools (B,P) int64), before its first step."""
        raise NotImplementedError

    def admit(self, state: Any, y: int, x: int) -> np.ndarray:
        """kind "mask": (B,P) bool pool slots admitted at pixel (y, x); the threshold is taken inside them."""
        raise NotImplementedError

    def record_arrays(self, state: Any) -> dict[str, np.ndarray]:
        """kind "mask": per-sample arrays the record keeps (keys of :data:`nps.record.KEYS`), or none."""
        return {}

    def replay(self, config: GenerationConfig, corpus: Any, record: Any, n: int, pool_ids: np.ndarray) -> Any:
        """kind "mask": the state of sample n of ``record``, rebuilt from what the record keeps (the funnel)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- plain reference versions
    def plain_centres(self, config: GenerationConfig, y: int, x: int, h: int, w: int,
                      box: tuple[int, int, int, int]) -> tuple[tuple[int, int, int, int], bool]:
        """The plain definition of :meth:`centres` (:mod:`nps.engine.reference_impl`); by default the same code."""
        return self.centres(config, y, x, h, w, box)

    def plain_keep(self, dist: np.ndarray, config: GenerationConfig) -> np.ndarray:
        """kind "threshold": (M,) bool kept candidates of one step's (M,) float64 distances, plainly."""
        raise NotImplementedError

    # ---------------------------------------------------------------- cost (nps.lab.cost)
    def cost_positions(self, config: GenerationConfig, h: int, w: int, positions: int) -> int:
        """Window positions per image a step scores once this constraint applies (at most)."""
        return positions

    def cost_images(self, config: GenerationConfig, corpus_size: int, images: int) -> int:
        """Images a step scores once this constraint applies (at most)."""
        return images

    def cheaper_phrase(self, config: GenerationConfig) -> str:
        """How :func:`nps.lab.cost.cheaper` names switching it on ("locality on (R = 2)")."""
        return f"{self.title} on"

    def per_sample_pools(self, config: GenerationConfig) -> bool:
        """kind "images": whether each sample gets its own (small) pool, the engine's faster path."""
        return False

    # ---------------------------------------------------------------- funnel (nps.lab.funnel)
    def funnel_count(self, ctx: FunnelContext) -> int | None:
        """Windows this constraint alone admits at the step (None: not a count, e.g. a threshold)."""
        return None

    def funnel_label(self, config: dict) -> str:
        """The funnel bar's label, from a record's config dict."""
        return self.title

    # ---------------------------------------------------------------- cache keys
    def field_values(self, config: GenerationConfig) -> tuple:
        """(name, value) of every field it owns."""
        return tuple((f.name, getattr(config, f.name)) for f in self.fields)

    def cache_key(self, config: GenerationConfig) -> tuple:
        """Its part of a generation's cache key: its name and fields when enabled, else nothing."""
        return (self.name, *self.field_values(config)) if config.uses(self.name) else ()

    def pool_key(self, config: GenerationConfig) -> tuple:
        """Its part of the semantic-pool cache key (``app_support.resources.pools``): only what pools depend on."""
        return ()

    def __repr__(self) -> str:
        return f"<constraint {self.name}: {self.kind}>"


_REGISTRY: dict[str, Constraint] = {}
_LISTENERS: list[Callable[[], None]] = []


def register(constraint: Constraint | type[Constraint]) -> Constraint:
    """Add a constraint to the registry (a class is instantiated); returns it.  Usable as a decorator.

    Raises:
        ValueError: a missing name, an unknown kind, a name taken, or a field not owned by it.
    """
    c = constraint() if isinstance(constraint, type) else constraint
    if not c.name or not c.name.isidentifier() or c.kind not in KINDS:
        raise ValueError(f"constraint {c!r} needs a name (an identifier) and a kind in {KINDS}")
    if c.name in _REGISTRY:
        raise ValueError(f"constraint '{c.name}' is registered already")
    for f in c.fields:
        if f.owner != c.name:
            raise ValueError(f"field '{f.name}' of constraint '{c.name}' must say owner='{c.name}'")
    _REGISTRY[c.name] = c
    for fn in _LISTENERS:
        fn()
    return constraint  # type: ignore[return-value]


def unregister(name: str) -> None:
    """Remove a constraint (tests that register a throwaway one clean up with this)."""
    _REGISTRY.pop(name, None)
    for fn in _LISTENERS:
        fn()


def on_change(fn: Callable[[], None]) -> None:
    """Call ``fn`` whenever the registry changes (the config's field table rebuilds itself)."""
    _LISTENERS.append(fn)


def registered() -> tuple[Constraint, ...]:
    """Every constraint, in registration order (the canonical order of ``constraints`` tuples)."""
    return tuple(sorted(_REGISTRY.values(), key=lambda c: c.order))  # stable: ties keep registration order


def get(name: str) -> Constraint:
    return _REGISTRY[name]


def names() -> tuple[str, ...]:
    """Registered constraint names in canonical order."""
    return tuple(c.name for c in registered())


def default_names() -> tuple[str, ...]:
    """The default (full-model) constraint set."""
    return tuple(c.name for c in registered() if c.default_on)


def active(config: GenerationConfig, kind: str | None = None) -> tuple[Constraint, ...]:
    """The enabled constraints of ``config`` (of one ``kind``), in canonical order."""
    return tuple(c for c in registered() if config.uses(c.name) and (kind is None or c.kind == kind))


def label(constraints: tuple[str, ...] | list[str]) -> str:
    """'ssd+loc+ssl' style label of a set ('none' for the empty set), canonical order."""
    chosen = [n for n in names() if n in set(constraints)]
    return "+".join(chosen) if chosen else "none"
