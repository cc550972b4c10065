"""The engine's own config fields: one row each of :data:`nps.config.FIELDS`, the one field table.

Each row is an :class:`nps.constraints.Field` (type, default, CLI and app bounds, help, group); the
constraints declare theirs in their own modules.  :func:`field_table` joins the two, and
:mod:`nps.config` builds :class:`~nps.config.GenerationConfig`, ``DEFAULTS`` and ``LIMITS`` from it.
"""

from __future__ import annotations

from nps import constraints as _cons
from nps.constraints import Field

SEARCH_MODES = ("exact", "brute", "approx")

#: The engine's own fields (owner None); the constraints' fields come from :mod:`nps.constraints`.
ENGINE_FIELDS: tuple[Field, ...] = (
    Field("corpus", "str", "mnist", "mnist, fashion-mnist, cifar10, digits or folder:PATH (default: %(default)s)",
          group="corpus", sweep=False, app_fixed="sidebar"),
    Field("subset", "int", None, "use a class-stratified subset of N train images", optional=True,
          limits=(1, 2**63 - 1), group="corpus", app_fixed="sidebar"),
    Field("n", "int", 64, "number of samples (default: %(default)s)", limits=(1, 10**9), app=(1, 64), group="run",
          sweep=False),
    Field("seed", "int", 0, "RNG seed (default: %(default)s)", limits=(0, 2**63 - 1), app=(0, 2**31 - 1),
          group="run", why=" (numpy seeds are non-negative)"),
    Field("constraints", "tuple", _cons.default_names(), "comma list of the constraints to enable", sweep=True),
    Field("window", "int", 7, "context window w, odd (default: %(default)s)", limits=(3, 255), app=(3, 15),
          ablate=True),
    Field("reference", "int", None, "fixed reference train id for every sample (default: random per sample)",
          optional=True, limits=(0, 2**63 - 1)),
    Field("include_reference", "bool", False, "let the reference image be a source beyond the seed (left out of "
          "every pool by default)"),
    Field("seed_size", "int", 8, "seed patch side", limits=(1, 4096), app=(1, 32), ablate=True),
    Field("batch_size", "int", 64, "samples advanced in lockstep (default: %(default)s)", limits=(1, 2**20),
          app=(1, 64), group="run", sweep=False),
    Field("device", "str", "cpu", "cpu or cuda (default: %(default)s)", group="run", sweep=False, app_fixed=("cpu",)),
    Field("search", "str", "exact", "whole-corpus and --label steps: exact (the default) prunes with the window "
          "index where it is cached or the corpus is small enough to build it on use, and otherwise scores every "
          "window, with the same draws either way; brute always scores every window (float32, certified); approx "
          "searches only the --nprobe index groups nearest each context (opt-in, approximate)",
          choices=SEARCH_MODES),
    Field("nprobe", "int", 256, "search approx (opt-in): window-index groups (inverted lists of about 100 unique "
          "windows) searched per sample and step, the nearest to its context; more is slower and closer to exact "
          "(default: %(default)s)", limits=(1, 2**31 - 1)),
    Field("data_root", "str", None, "extra folder to look for corpus files", optional=True, group="corpus",
          sweep=False),
)


def field_table() -> dict[str, Field]:
    """The engine's fields and every registered constraint's, by name (a field declared twice is a bug)."""
    table = {f.name: f for f in ENGINE_FIELDS}
    for c in _cons.registered():
        for f in c.fields:
            if f.name in table:
                raise ValueError(f"field '{f.name}' of constraint '{c.name}' is declared twice")
            table[f.name] = f
    return table
