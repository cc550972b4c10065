"""Which reading of the entropy measurement comes closest to the paper's (1.075, 2.496)?

Recomputes the class and image-ID entropies of existing provenance records under every
reading of :mod:`nps.analysis.entropy_readings` (scope, window, counted pixels, log
base) and writes a markdown report (and the JSON of every reading) ::

    PYTHONPATH=. python tools/entropy_readings.py \\
        --record "full model (simclr, all 60k)=DIR/records/full-ssd-loc-ssl.npz" \\
        --record "full model (simclr, 300 subset)=DIR/records/ssd-loc-ssl.npz" \\
        --source "python -m nps ablate --corpus mnist --seed 0 --out DIR" \\
        --out docs/entropy-readings.md

The first record is the one the closeness ranking is about; the others get today's
protocol and their own best reading.  Nothing is sampled: the engine is not involved.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path


def _f(v: float, d: int = 3) -> str:
    return "∞" if v == float("inf") else f"{v:.{d}f}"


def _win(r) -> str:  # noqa: ANN001
    return "—" if r.window is None else f"{r.window}×{r.window}"


def report(rows: dict[str, list], source: str, command: str) -> str:
    """The markdown report of ``{label: readings}`` (the first label is the main record)."""
    from nps.analysis.entropy_readings import PAPER, closest
    main_label, main = next(iter(rows.items()))
    today = next(r for r in main if (r.scope, r.window, r.pixels, r.base) == ("window", 5, "all", "2"))
    lines = ["# Readings of the entropy measurement (issue 12, part 4, analysis side)", "",
             f"Command: `{command}`  ", f"Records from: `{source}`  ", f"Created: {time.strftime('%Y-%m-%d %H:%M:%S')}",
             "", f"Paper, full model on MNIST: class entropy **{PAPER[0]}**, image-ID entropy **{PAPER[1]}** "
             "(window, base and aggregation not stated). Ours under today's protocol (5×5 windows inside the "
             f"canvas, bits, all copied pixels), {main_label}: class **{today.class_h:.3f}**, image-ID "
             f"**{today.image_id_h:.3f}** (ratio {_f(today.ratio, 1)}; the paper's ratio is "
             f"{PAPER[1] / PAPER[0]:.2f}).", "",
             "Distance: sqrt(((class − 1.075)/1.075)² + ((ID − 2.496)/2.496)²). The ratio ID / class does not "
             "depend on the log base.", "",
             f"## The 12 readings closest to the paper, {main_label}", "",
             "| # | scope | window | pixels | base | class H | image-ID H | ratio | distance |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(closest(main, 12), 1):
        lines.append(f"| {i} | {r.scope} | {_win(r)} | {r.pixels} | {r.base} | {r.class_h:.3f} ± {r.class_std:.3f} "
                     f"| {r.image_id_h:.3f} ± {r.image_id_std:.3f} | {_f(r.ratio, 1)} | {r.distance:.3f} |")
    lines += ["", "± is the std over samples (over positions for the position scope; the batch scope is one value).",
              "", "## Closest reading per record", "",
              "| record | today: class / ID (bits) | closest: scope, window, pixels, base | class / ID | distance | "
              "closest with class ≥ 0.5 |", "|---|---|---|---|---|---|"]
    for label, rs in rows.items():
        t = next(r for r in rs if (r.scope, r.window, r.pixels, r.base) == ("window", 5, "all", "2"))
        b = closest(rs, 1)[0]
        hi = closest([r for r in rs if r.class_h >= 0.5], 1)
        hi_s = (f"{hi[0].scope} {_win(hi[0])} {hi[0].pixels} base {hi[0].base}: {hi[0].class_h:.3f} / "
                f"{hi[0].image_id_h:.3f}" if hi else "none")
        lines.append(f"| {label} | {t.class_h:.3f} / {t.image_id_h:.3f} | {b.scope}, {_win(b)}, {b.pixels}, "
                     f"{b.base} | {b.class_h:.3f} / {b.image_id_h:.3f} | {b.distance:.3f} | {hi_s} |")
    lines += ["", f"## Every reading in bits, {main_label}", "",
              "Other bases: divide by 1.443 (nats) or 3.322 (base 10).", "",
              "| scope | window | class H: all / ink / generated | image-ID H: all / ink / generated | "
              "ratio (all) |", "|---|---|---|---|---|"]
    bits = [r for r in main if r.base == "2"]
    keys = list(dict.fromkeys((r.scope, r.window) for r in bits))
    for scope, win in keys:
        by = {r.pixels: r for r in bits if (r.scope, r.window) == (scope, win)}
        cls = " / ".join(_f(by[p].class_h) for p in ("all", "ink", "generated") if p in by)
        ids = " / ".join(_f(by[p].image_id_h) for p in ("all", "ink", "generated") if p in by)
        lines.append(f"| {scope} | {'—' if win is None else f'{win}×{win}'} | {cls} | {ids} | "
                     f"{_f(by['all'].ratio, 1) if 'all' in by else '—'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--record", action="append", required=True, metavar="LABEL=PATH",
                   help="a provenance record; the first is ranked (repeatable)")
    p.add_argument("--source", default="", help="the command that produced the records (quoted in the report)")
    p.add_argument("--out", required=True, help="markdown file; a .json of every reading goes beside it")
    args = p.parse_args(argv)
    from nps.analysis.entropy_readings import readings
    from nps.cache import write_text
    from nps.errors import NPSError
    from nps.record import ProvenanceRecord
    rows = {}
    try:
        for item in args.record:
            label, sep, path = item.partition("=")
            if not sep or not label or not path:
                raise NPSError(f"--record {item!r} must be LABEL=PATH.")
            rows[label] = readings(ProvenanceRecord.load(path))
    except NPSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "PYTHONPATH=. python tools/entropy_readings.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    out = Path(args.out)
    write_text(out, report(rows, args.source, command))
    write_text(out.with_suffix(".json"), json.dumps({k: [r.to_dict() for r in v] for k, v in rows.items()},
                                                    indent=1) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
