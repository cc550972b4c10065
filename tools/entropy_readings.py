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


def _win(r) -> str:
    return "—" if r.window is None else f"{r.window}×{r.window}"


def _rank_table(rs: list, n_classes: int, top: int) -> list[str]:
    from nps.analysis.entropy_readings import WITHIN, admits_paper, closest
    lines = ["| # | scope | window | pixels | base | class H | image-ID H | ratio | distance | within one sample | "
             "1.075 possible in this base |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(closest(rs, top), 1):
        lines.append(f"| {i} | {r.scope} | {_win(r)} | {r.pixels} | {r.base} | {r.class_h:.3f} ± {r.class_std:.3f} "
                     f"| {r.image_id_h:.3f} ± {r.image_id_std:.3f} | {_f(r.ratio, 1)} | {r.distance:.3f} | "
                     f"{'yes' if r.scope in WITHIN else 'no'} | {'yes' if admits_paper(r.base, n_classes) else 'no'} |")
    return lines


def _today(rs: list):
    return next(r for r in rs if (r.scope, r.window, r.pixels, r.base) == ("window", 5, "all", "2"))


def _finding(rows: dict[str, tuple[list, int]]) -> list[str]:
    """What the numbers say, computed: the largest within-sample class entropy and the best ID match."""
    from nps.analysis.entropy_readings import PAPER, WITHIN, admits_paper
    out = ["**What the readings show** (computed from the tables below):", ""]
    for label, (rs, nc) in rows.items():
        within = [r for r in rs if r.scope in WITHIN and admits_paper(r.base, nc)]
        top = max(within, key=lambda r: r.class_h)
        ident = min(within, key=lambda r: abs(r.image_id_h - PAPER[1]))
        out.append(f"- {label}: the largest class entropy of any within-sample reading is {top.class_h:.3f} "
                   f"({_name(top)}, {top.pixels} pixels, base {top.base}), "
                   f"{PAPER[0] / max(top.class_h, 1e-12):.1f}× below the paper's {PAPER[0]}; the image-ID entropy "
                   f"is matched by {_name(ident)}, {ident.pixels} pixels, base {ident.base} "
                   f"({ident.image_id_h:.3f}, with class {ident.class_h:.3f}).")
    return out


def _name(r) -> str:
    return f"{r.scope} {_win(r)}" if r.window is not None else {"image": "whole image", "position": "per position",
                                                                "batch": "whole batch"}.get(r.scope, r.scope)


def report(rows: dict[str, tuple[list, int]], source: str, command: str) -> str:
    """The markdown report of ``{label: (readings, n_classes)}`` (the first label is the main record)."""
    from nps.analysis.entropy_readings import PAPER, WITHIN, admits_paper, closest
    main_label, (main, n_classes) = next(iter(rows.items()))
    today = _today(main)
    fair = [r for r in main if r.scope in WITHIN and admits_paper(r.base, n_classes)]
    lines = ["# Readings of the entropy measurement (issue 12, part 4, analysis side)", "",
             f"Command: `{command}`  ", f"Records from: `{source}`  ", f"Created: {time.strftime('%Y-%m-%d %H:%M:%S')}",
             "", f"Paper, full model on MNIST: class entropy **{PAPER[0]}**, image-ID entropy **{PAPER[1]}** "
             "(window, base and aggregation not stated). Ours under today's protocol (5×5 windows inside the "
             f"canvas, bits, all copied pixels), {main_label}: class **{today.class_h:.3f}**, image-ID "
             f"**{today.image_id_h:.3f}** (ratio {_f(today.ratio, 1)}; the paper's ratio is "
             f"{PAPER[1] / PAPER[0]:.2f}).", "",
             "Readings: *scope* window (every w×w window inside the canvas, today's), pixel (a w×w window centred "
             "on every pixel, clipped at the border), image (one histogram per sample), position (at each pixel "
             "position, the histogram over the batch's samples), batch (one histogram of every pixel of every "
             "sample); *pixels* counted: all copied pixels, ink (intensity ≥ 128) only, or all but the seed patch "
             "(generated); *base* 2, e, 10. Distance: sqrt(((class − 1.075)/1.075)² + ((ID − 2.496)/2.496)²). "
             "The ratio ID / class does not depend on the base. With ten classes a class entropy is at most "
             "log_b 10 (3.32 bits, 2.30 nats, 1.00 in base 10), so the paper's 1.075 cannot be base 10. The "
             "position and batch scopes pool different samples: their class entropy measures how many classes "
             "the batch holds, not how one sample is composed, which is what the paper's claim is about.", "",
             *_finding(rows), "",
             f"## Closest readings that measure one sample, in a base where 1.075 is possible: {main_label}", "",
             *_rank_table(fair, n_classes, 12), "",
             f"## Closest of all readings: {main_label}", "", *_rank_table(main, n_classes, 12), "",
             "± is the std over samples (over positions for the position scope; the batch scope is one value).",
             "", "## Per record", "",
             "| record | today: class / ID (bits) | highest within-sample class H (bits), reading | closest "
             "within-sample reading (base 2 or e) | class / ID | distance | closest of all | class / ID | distance |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, (rs, nc) in rows.items():
        t = _today(rs)
        within = [r for r in rs if r.scope in WITHIN and admits_paper(r.base, nc)]
        top = max((r for r in within if r.base == "2"), key=lambda r: r.class_h)
        b, a = closest(within, 1)[0], closest(rs, 1)[0]
        lines.append(f"| {label} | {t.class_h:.3f} / {t.image_id_h:.3f} | {top.class_h:.3f} ({top.scope} {_win(top)} "
                     f"{top.pixels}) | {b.scope} {_win(b)} {b.pixels} base {b.base} | {b.class_h:.3f} / "
                     f"{b.image_id_h:.3f} | {b.distance:.3f} | {a.scope} {_win(a)} {a.pixels} base {a.base} | "
                     f"{a.class_h:.3f} / {a.image_id_h:.3f} | {a.distance:.3f} |")
    lines += ["", f"## Every reading in bits: {main_label}", "",
              "Other bases: divide by 1.443 (nats) or 3.322 (base 10).", "",
              "| scope | window | class H: all / ink / generated | image-ID H: all / ink / generated | "
              "ratio (all) |", "|---|---|---|---|---|"]
    bits = [r for r in main if r.base == "2"]
    for scope, win in dict.fromkeys((r.scope, r.window) for r in bits):
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
            label, sep, path = item.rpartition("=")  # a label may hold "=" (k=15), a path rarely
            if not sep or not label or not path:
                raise NPSError(f"--record {item!r} must be LABEL=PATH.")
            rec = ProvenanceRecord.load(path)
            rows[label] = (readings(rec), max(2, int(rec.source_label.max()) + 1))
    except NPSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "PYTHONPATH=. python tools/entropy_readings.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, report(rows, args.source, command))
        write_text(out.with_suffix(".json"), json.dumps({k: [r.to_dict() for r in v[0]] for k, v in rows.items()},
                                                        indent=1) + "\n")
    except (NPSError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
