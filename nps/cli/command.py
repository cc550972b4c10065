"""The ``python -m nps generate`` command line of a config (the app shows it beside every run)."""

from __future__ import annotations

import shlex

from nps.config import FIELDS, GenerationConfig

#: Fields cli_command always writes, so the command reads as what it makes.
ALWAYS_IN_COMMAND = ("corpus", "n", "seed")


def cli_command(config: GenerationConfig, out: str = "samples.npz") -> str:
    """The ``python -m nps generate`` command that reproduces ``config``.

    Every field of :data:`nps.config.FIELDS` (plug-in constraints' included) whose value is
    not its default gets its flag, so parsing the command gives ``config`` back (tested).
    """
    parts = ["python -m nps generate"]
    for name, f in FIELDS.items():
        value = getattr(config, name)
        if name not in ALWAYS_IN_COMMAND and (value == f.default or (value is None and f.default is None)):
            continue
        if f.kind == "bool":
            parts.append(f.cli_flag if value else f"--no-{f.cli_flag[2:]}")
        elif f.kind == "tuple":
            parts.append(f"{f.cli_flag} {','.join(value)}")
        elif value is not None:
            parts.append(f"{f.cli_flag} {shlex.quote(repr(value) if isinstance(value, float) else str(value))}")
    parts.append(f"--out {shlex.quote(out)}")
    return " ".join(parts)
