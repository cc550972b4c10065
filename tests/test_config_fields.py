"""One field table for the config (issue 14, part 2): every surface reads nps.config.FIELDS.

Each test walks every field of the table, so a field added to GenerationConfig without
its row (or a surface that forgets a field) fails here: the dataclass, the CLI's flags,
``cli_command`` (a round trip through the parser), the app's bounds and its upload
check, sweep's caster and record validation.
"""

from __future__ import annotations

import dataclasses
import shlex
import typing

import pytest

from nps.config import DEFAULTS, FIELDS, LIMITS, GenerationConfig, check_types, plugin_fields
from nps.constraints import get
from nps.errors import NPSError

#: A value away from its default for every field (a new field must get one here, or the tests fail).
CHANGED = {
    "corpus": "digits", "subset": 200, "n": 4, "seed": 3, "window": 5, "constraints": ("ssd", "loc"),
    "reference": 5, "include_reference": True, "seed_size": 3, "batch_size": 2, "device": "cuda",
    "search": "brute", "nprobe": 8, "data_root": "/tmp/some where", "sigma": 0.7, "eps": 0.2, "tol": 0.001,
    "max_ssd": 0.5, "radius": 3, "k": 9, "encoder": "pixels", "ssl_mode": "canvas", "ssl_eps": 0.3, "ssl_cap": 100,
    "label": 2, "ssd_global_min": True,
    "ms_eps": 0.25, "ms_window": 5,  # multi-scale's: held in GenerationConfig.options
}


def test_the_table_is_the_dataclass():
    hints = typing.get_type_hints(GenerationConfig)
    fields = {f.name: f for f in dataclasses.fields(GenerationConfig) if f.name != "options"}
    held = {f.name for f in plugin_fields()}
    assert held == {"ms_eps", "ms_window"} and not held & set(fields)
    assert set(fields) | held == set(FIELDS), "every GenerationConfig field has exactly one row in nps.config.FIELDS"
    for name, f in fields.items():
        row = FIELDS[name]
        assert f.default == row.default or name == "constraints", name
        hint = str(hints[name])
        assert row.kind in hint, (name, row.kind, hint)
        assert row.optional == ("None" in hint), name
        assert DEFAULTS[name] == getattr(GenerationConfig(), name) or name == "encoder"  # encoder: auto resolved
        assert (name in LIMITS) == (row.limits is not None)
        assert row.owner is None or row in get(row.owner).fields
    assert DEFAULTS["constraints"] == GenerationConfig().constraints == ("ssd", "loc", "ssl")
    assert {FIELDS[n].owner for n in ("eps", "tol", "max_ssd", "sigma")} == {"ssd"}
    assert FIELDS["radius"].owner == "loc" and FIELDS["k"].owner == "ssl"


def test_every_field_has_a_changed_value_here():
    assert set(CHANGED) == set(FIELDS)
    for name, value in CHANGED.items():
        assert value != FIELDS[name].default, name


def test_cli_command_round_trips_every_field():
    """cli_command writes every field off its default (it used to drop tol, max_ssd, include_reference, device)."""
    from nps.cli import build_parser
    from nps.cli.command import cli_command
    from nps.cli.generate import config_from_args
    cfg = GenerationConfig.make(**CHANGED)
    cmd = cli_command(cfg, out="o.npz")
    for name in FIELDS:
        assert FIELDS[name].cli_flag in cmd, name
    argv = shlex.split(cmd)
    assert argv[:3] == ["python", "-m", "nps"]
    args = build_parser().parse_args(argv[3:])
    back = config_from_args(args)
    assert back == cfg and back.data_root == cfg.data_root
    plain = cli_command(GenerationConfig(corpus="digits"))
    assert "--tol" not in plain and "--include-reference" not in plain and "--device" not in plain


def test_generate_has_a_flag_for_every_field():
    from nps.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    gen = sub.choices["generate"]
    dests = {a.dest for a in gen._actions}
    assert set(FIELDS) <= dests
    for a in gen._actions:
        if a.dest in FIELDS and FIELDS[a.dest].choices:
            assert tuple(a.choices) == FIELDS[a.dest].choices


def test_app_bounds_and_upload_check_cover_every_field():
    from app_support.limits import check_app_config
    from app_support.state import BOUNDS
    small = dict(corpus="digits", window=3, seed_size=2, k=8, n=2, batch_size=2, encoder="pca")
    for name, f in FIELDS.items():
        # Each field is either bounded by the app or held to a stated rule.
        assert (f.app is not None) == (name in BOUNDS), name
        assert f.app is not None or f.app_fixed in ("any", "default", "sidebar") or isinstance(f.app_fixed, tuple)
        if name in ("data_root",):
            continue  # dropped from an upload: a record never decides where data is read from
        cfg = {**GenerationConfig(**small).to_dict(), name: object()}
        with pytest.raises(NPSError) as exc:
            check_app_config(cfg, ["digits"], ["pca"])
        assert "\n" not in str(exc.value)


def test_record_validation_checks_every_field():
    for name, f in FIELDS.items():
        with pytest.raises(NPSError, match=name):
            check_types({name: object()})
        if not f.optional:
            with pytest.raises(NPSError, match=name):
                check_types({name: None})


def test_sweep_reads_the_table():
    from nps.cli.sweep import _caster, sweepable
    for name, f in FIELDS.items():
        if not f.sweep:
            with pytest.raises(NPSError, match="not a sweepable"):
                _caster(name)
            continue
        value = CHANGED[name]
        text = "+".join(value) if isinstance(value, tuple) else str(value)
        assert _caster(name)(text) == value, name
    assert set(sweepable()) == {n for n, f in FIELDS.items() if f.sweep}
    assert "n" not in sweepable() and "eps" in sweepable()
