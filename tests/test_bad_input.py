"""The bad-input suite (issue 9): every CLI flag and every record reader, careless or hostile.

Every numeric or choices option of every subcommand (introspected from
``nps.cli.build_parser()``, so a new flag must be added to :data:`OUT_OF_RANGE`) goes
through wrong types, NaN/inf, overflowing and out-of-range values; malformed record
files go through every command that reads records.  Each case must exit 2 with exactly
one stderr line (argparse's errors included: the parser prints one line), no traceback,
and finish fast: values that would be valid but expensive are refused by pre-checks, and
an alarm fails any case that starts real work.

The CLI runs in-process through ``nps.cli.main(argv)`` (fast); two subprocess cases
prove the real exit path.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nps.cli import build_parser, main
from nps.config import GenerationConfig
from nps.record import ProvenanceRecord

HUGE = str(10**30)
LIMIT_S = 30  # any case still running after this has started real work: a failed pre-check


def _numeric_flags() -> dict[tuple[str, str], argparse.Action]:
    """{(command, flag): action} for every option with a numeric type or choices."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = {}
    for name, p in sub.choices.items():
        for a in p._actions:
            if a.option_strings and (a.choices or getattr(a.type, "__name__", "") in ("int", "finite_float")):
                out[(name, a.option_strings[-1])] = a
    return out


COUNT = ["0", "-1", HUGE]  # a positive count
NONNEG = ["-1", HUGE]
OUT_OF_RANGE: dict[tuple[str, str], list[str]] = {
    ("generate", "--subset"): COUNT, ("generate", "--n"): COUNT, ("generate", "--seed"): ["-1", str(2**64)],
    ("generate", "--batch-size"): COUNT, ("generate", "--window"): ["1", "4", "999"],
    ("generate", "--sigma"): ["0", "-1", "1e-300", "1e300"], ("generate", "--eps"): ["-0.1", "1e300"],
    ("generate", "--tol"): ["-1", "1e300"], ("generate", "--max-ssd"): ["-1", "1e300"],
    ("generate", "--radius"): NONNEG, ("generate", "--k"): [*COUNT, "5000"],
    ("generate", "--ssl-eps"): ["-1", "1e300"], ("generate", "--reference"): ["-1", "99999", HUGE],
    ("generate", "--label"): ["42", "-1", HUGE], ("generate", "--seed-size"): ["0", "8", "9", HUGE],
    ("bench", "--subset"): COUNT, ("bench", "--n-a"): COUNT, ("bench", "--n-b"): COUNT, ("bench", "--n-c"): COUNT,
    ("bench", "--threads"): COUNT, ("bench", "--repeats"): COUNT, ("bench", "--nprobe"): ["0", "-1", HUGE],
    ("bench", "--steps"): COUNT,
    ("train-encoder", "--subset"): COUNT, ("train-encoder", "--epochs"): COUNT,
    ("train-encoder", "--batch-size"): COUNT, ("train-encoder", "--lr"): ["0", "-1"],
    ("train-encoder", "--temperature"): ["0", "-1"], ("train-encoder", "--width"): COUNT,
    ("train-encoder", "--aug-group"): COUNT, ("train-encoder", "--seed"): ["-1"],
    ("train-encoder", "--threads"): COUNT, ("train-encoder", "--probe-max-train"): ["0", "-1"],
    ("embed", "--subset"): COUNT, ("embed", "--k"): COUNT, ("embed", "--nprobe"): ["0", "-1"],
    ("embed", "--nlist"): ["0", "-1"], ("embed", "--ef-search"): ["0", "-1"],
    ("encoder-eval", "--subset"): COUNT, ("encoder-eval", "--k"): COUNT,
    ("encoder-eval", "--probe-max-train"): ["0", "-1"],
    ("train-classifier", "--subset"): COUNT, ("train-classifier", "--epochs"): COUNT,
    ("train-classifier", "--batch-size"): COUNT, ("train-classifier", "--lr"): ["0", "-1"],
    ("train-classifier", "--seed"): ["-1"], ("train-classifier", "--threads"): COUNT,
    ("evaluate", "--entropy-window"): COUNT, ("evaluate", "--traces"): ["-1"],
    ("ablate", "--seed"): ["-1", str(2**64)], ("ablate", "--n"): ["0", "1", "-1", HUGE],
    ("ablate", "--subset"): ["-1", HUGE], ("ablate", "--entropy-window"): COUNT, ("ablate", "--window"): ["1", "4"],
    ("ablate", "--eps"): ["-1", "1e300"], ("ablate", "--radius"): NONNEG, ("ablate", "--seed-size"): COUNT,
    ("ablate", "--k"): COUNT, ("ablate", "--batch-size"): COUNT, ("ablate", "--ray-cpus"): COUNT,
    ("sweep", "--subset"): COUNT, ("sweep", "--n"): ["0", "1", "-1", HUGE], ("sweep", "--seed"): ["-1"],
    ("sweep", "--entropy-window"): COUNT, ("sweep", "--batch-size"): COUNT,
    ("generate", "--ray-cpus"): COUNT, ("generate", "--ssl-cap"): COUNT,
    ("generate", "--ms-eps"): ["-1", "1e300"], ("generate", "--ms-window"): ["1", "999"],
    ("generate", "--nprobe"): ["0", "-1", HUGE],
    ("ablate", "--ms-eps"): ["-1", "1e300"],
    ("scale", "--n"): COUNT, ("scale", "--seed"): ["-1", str(2**64)], ("scale", "--batch-size"): COUNT,
    ("scale", "--k"): COUNT, ("scale", "--baseline-n"): COUNT, ("scale", "--ray-cpus"): COUNT,
    ("index", "--subset"): COUNT, ("index", "--window"): ["1", "4", "999", "9"],
    ("trace", "--sample"): ["-1", "3", HUGE], ("trace", "--y"): ["-1", "8", HUGE], ("trace", "--x"): ["-1", "8", HUGE],
}
# Values that are wrong whatever the flag's range.
WRONG_INT = ["abc", "", "1.5", "nan", "0x10"]
WRONG_FLOAT = ["abc", "", "nan", "inf", "-inf", "1e400"]
WRONG_CHOICE = ["nope", ""]


@pytest.fixture(scope="module")
def record_path(tmp_path_factory, digits):
    from nps.engine.sampler import generate
    rec = generate(GenerationConfig(corpus="digits", window=3, seed_size=2, k=8, n=3, batch_size=3), digits)
    return str(rec.save(tmp_path_factory.mktemp("rec") / "r.npz"))


def _base(command: str, tmp, record: str) -> list[str]:
    """Cheap, valid arguments for each subcommand (the bad value is appended and wins)."""
    digits = ["--corpus", "digits"]
    return {
        "generate": [*digits, "--window", "3", "--seed-size", "2", "--k", "8", "--n", "2", "--out", f"{tmp}/s.npz"],
        "bench": [*digits, "--skip-b", "--n-a", "2", "--n-c", "1"],
        "train-encoder": [*digits, "--subset", "100", "--epochs", "1", "--no-eval", "--out", f"{tmp}/w.safetensors"],
        "embed": [*digits, "--encoder", "pca", "--subset", "100", "--out", f"{tmp}/e.npz"],
        "encoder-eval": [*digits, "--encoder", "pca", "--baselines", "", "--subset", "100", "--no-probe"],
        "train-classifier": [*digits, "--subset", "100", "--epochs", "1", "--out", f"{tmp}/c.safetensors"],
        "evaluate": [record, "--out", f"{tmp}/ev", "--no-scores", "--no-memorisation"],
        "ablate": [*digits, "--subset", "100", "--n", "2", "--window", "3", "--seed-size", "2", "--k", "8",
                   "--encoders", "pca", "--no-full-corpus", "--out", f"{tmp}/abl"],
        "sweep": [*digits, "--subset", "100", "--n", "2", "--param", "window=3", "--param", "seed_size=2",
                  "--param", "k=8", "--out", f"{tmp}/sw"],
        "trace": [record, "--y", "3", "--x", "3"],
        "scale": ["--sizes", "1k", "--n", "2", "--baseline-max", "0", "--out", f"{tmp}/sc"],
        "lessons": ["verify"],
        "index": [*digits],
    }[command]


class _Slow(BaseException):
    """Raised by the alarm: a BaseException, so no handler in the CLI can swallow it."""


def _run(argv: list[str], capsys) -> tuple[int, str]:
    def alarm(*_):
        raise _Slow(f"{argv} still running after {LIMIT_S}s: a pre-check is missing")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(LIMIT_S)
    try:
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse's own errors and --help
            rc = exc.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return rc, capsys.readouterr().err


def _assert_one_line(rc: int, err: str, argv: list[str]) -> None:
    assert "Traceback" not in err, argv
    assert rc == 2, (argv, rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), (argv, err)


def _cases() -> list:
    out = []
    for (command, flag), action in sorted(_numeric_flags().items()):
        if action.choices:
            values = WRONG_CHOICE
        elif getattr(action.type, "__name__", "") == "int":
            values = WRONG_INT + OUT_OF_RANGE.get((command, flag), [])
        else:
            values = WRONG_FLOAT + OUT_OF_RANGE.get((command, flag), [])
        for v in values:
            out.append(pytest.param(command, flag, v, id=f"{command} {flag} {v or repr(v)}"))
    return out


def test_every_numeric_flag_has_out_of_range_values():
    """A new numeric flag must come with its out-of-range values here (choices flags need none)."""
    missing = [k for k, a in _numeric_flags().items() if not a.choices and k not in OUT_OF_RANGE]
    assert not missing, f"add out-of-range values for {missing}"


@pytest.mark.parametrize(("command", "flag", "value"), _cases())
def test_bad_flag_value_exits_2_with_one_line(command, flag, value, tmp_path, record_path, capsys, monkeypatch):
    monkeypatch.setenv("NPS_CACHE_DIR", str(tmp_path / "cache"))
    argv = [command, *_base(command, tmp_path, record_path), flag, value]
    rc, err = _run(argv, capsys)
    _assert_one_line(rc, err, argv)


# ----------------------------------------------------------------------------- other silent nonsense

@pytest.mark.parametrize("value", ["", ",,,", " , "])
def test_empty_constraint_list_is_refused(value, tmp_path, capsys):
    argv = ["generate", *_base("generate", tmp_path, ""), "--constraints", value]
    rc, err = _run(argv, capsys)
    _assert_one_line(rc, err, argv)
    assert "no constraint" in err


def test_default_seed_on_digits_adapts_with_a_warning(tmp_path, capsys, caplog):
    out = tmp_path / "s.npz"
    with caplog.at_level("WARNING", logger="nps.config"):
        rc = main(["generate", "--corpus", "digits", "--window", "3", "--k", "8", "--n", "4", "--out", str(out)])
    assert rc == 0
    assert any("default 8x8 seed" in r.getMessage() and "2x2" in r.getMessage() for r in caplog.records)
    rec = ProvenanceRecord.load(out)
    assert rec.config["seed_size"] == 2 and int((rec.shell == 0).sum()) == 4
    from nps.corpora import load_corpus
    train = load_corpus("digits").train
    assert not all(np.array_equal(rec.images[i], train[rec.reference[i]]) for i in range(len(rec)))


def test_warning_reaches_the_terminal_of_a_real_run(tmp_path):
    out = tmp_path / "s.npz"
    res = subprocess.run([sys.executable, "-m", "nps", "generate", "--corpus", "digits", "--window", "3", "--k", "8",
                          "--n", "2", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "WARNING" in res.stderr and "2x2 seed" in res.stderr


def test_memory_estimate_refuses_a_run_that_cannot_fit(tmp_path, capsys):
    argv = ["generate", *_base("generate", tmp_path, ""), "--n", "100000000"]
    rc, err = _run(argv, capsys)
    _assert_one_line(rc, err, argv)
    assert "GB of memory" in err


# ----------------------------------------------------------------------------- outputs checked before the run

def _unwritable() -> str:
    """A file no one can create, in a folder that exists (root ignores permission bits; /proc refuses everyone)."""
    return "/proc/nps-cannot-write.png"


@pytest.mark.parametrize("case", ["out is a folder", "out folder missing", "grid folder missing", "grid unwritable",
                                  "grid is out"])
def test_generate_outputs_are_checked_before_the_run(case, tmp_path, capsys, monkeypatch):
    import nps.engine.sampler
    monkeypatch.setattr(nps.engine.sampler, "generate", lambda *a, **k: pytest.fail("the run started"))
    out, grid = str(tmp_path / "s.npz"), None
    if case == "out is a folder":
        (tmp_path / "d.npz").mkdir()
        out = str(tmp_path / "d.npz")
    elif case == "out folder missing":
        out = str(tmp_path / "nope" / "s.npz")
    elif case == "grid folder missing":
        grid = str(tmp_path / "nope" / "g.png")
    elif case == "grid unwritable":
        grid = _unwritable()
    else:
        grid = out
    argv = ["generate", *_base("generate", tmp_path, ""), "--out", out] + (["--grid", grid] if grid else [])
    rc, err = _run(argv, capsys)
    _assert_one_line(rc, err, argv)
    assert not (tmp_path / "s.npz").exists()


@pytest.mark.parametrize("command", ["evaluate", "ablate", "sweep", "merge", "bench"])
def test_every_writer_checks_its_output_first(command, tmp_path, record_path, capsys):
    (tmp_path / "file").write_text("x")
    if command == "merge":
        argv = ["merge", record_path, "--out", str(tmp_path)]  # a folder, not a file
    elif command == "bench":
        argv = ["bench", *_base("bench", tmp_path, ""), "--json", str(tmp_path / "nope" / "b.json")]
    else:
        base = _base(command, tmp_path, record_path)
        argv = [command, *base, "--out", str(tmp_path / "file")]  # a file where a folder must go
    rc, err = _run(argv, capsys)
    _assert_one_line(rc, err, argv)


def test_bench_on_cuda_without_a_gpu_is_one_line_before_any_case_starts(tmp_path, capsys, monkeypatch):
    import torch

    import nps.lab.bench
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a GPU machine
    monkeypatch.setattr(nps.lab.bench, "run_all", lambda *a, **k: pytest.fail("a bench case started"))
    argv = ["bench", *_base("bench", tmp_path, ""), "--device", "cuda"]
    rc, err = _run(argv, capsys)
    _assert_one_line(rc, err, argv)
    assert "CUDA" in err and "--device cpu" in err


# ----------------------------------------------------------------------------- malformed record files

def _bad_files(tmp_path, record_path) -> dict[str, str]:
    good = np.load(record_path)
    arrays = {k: good[k] for k in good.files}
    data = Path(record_path).read_bytes()
    files = {}

    def save(name: str, **changes) -> None:
        path = tmp_path / f"{name}.npz"
        np.savez(path, **{k: v for k, v in {**arrays, **changes}.items() if v is not None})
        files[name] = str(path)

    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    files["truncated"] = str(tmp_path / "truncated.npz")
    (tmp_path / "empty-file.npz").write_bytes(b"")
    files["empty-file"] = str(tmp_path / "empty-file.npz")
    np.savez(tmp_path / "empty-npz.npz")
    files["empty-npz"] = str(tmp_path / "empty-npz.npz")
    save("float-source-index", source_index=arrays["source_index"].astype(np.float64))
    src = arrays["source_index"].copy()
    src[0, 0, 0] = 10**6
    save("out-of-range-source", source_index=src)
    order = arrays["order"].copy()
    order[1] = order[0]
    save("bad-order", order=order)
    sy = arrays["source_y"].copy()
    sy[0, 0, 0] = -5
    save("bad-source-y", source_y=sy)
    save("non-json-config", config=np.array("{{{"))
    save("wrong-dtype-images", images=arrays["images"].astype(np.int16))
    save("no-samples", **{k: arrays[k][:0] for k in ("images", "reference", "sample_id", "source_index", "source_y",
                                                     "source_x", "source_label", "pool_size", "relaxed")})
    save("pickled-object", config=np.array([{"a": 1}], dtype=object))
    save("missing-key", order=None)
    return files


@pytest.mark.parametrize("command", ["evaluate", "trace", "merge"])
def test_malformed_record_files_give_one_line(command, tmp_path, record_path, capsys):
    for name, path in _bad_files(tmp_path, record_path).items():
        if command == "evaluate":
            argv = ["evaluate", path, "--out", str(tmp_path / "ev"), "--no-scores", "--no-memorisation"]
        elif command == "trace":
            argv = ["trace", path, "--y", "3", "--x", "3"]
        else:
            argv = ["merge", record_path, path, "--out", str(tmp_path / "m.npz")]
        rc, err = _run(argv, capsys)
        _assert_one_line(rc, err, [name, *argv])


# ----------------------------------------------------------------------------- the real exit path

def test_subprocess_flag_error_is_one_line():
    res = subprocess.run([sys.executable, "-m", "nps", "generate", "--eps", "nan"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: argument --eps")


def test_subprocess_malformed_record_is_one_line(tmp_path, record_path):
    files = _bad_files(tmp_path, record_path)
    res = subprocess.run([sys.executable, "-m", "nps", "trace", files["float-source-index"], "--y", "3", "--x", "3"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and "source_index must be integers" in res.stderr
