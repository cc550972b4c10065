"""At what n do the metrics' intervals separate the paper's three constraint sets?

Generates SSD only, SSD + loc and SSD + loc + SSL (the corpus's auto encoder) on the
same stratified subset, references and RNG streams as ``nps ablate`` (k = subset/20),
once, at the largest n; sample i of a run is the same whatever n is (stream (seed, i)),
so the first n samples of that run *are* the n-sample run.  Then, for each n of
``--grid``, it computes :func:`nps.metrics.evaluation.sample_metrics` for each
configuration and reports, per metric, the smallest n from which the 95 % intervals
of all three pairs stay disjoint.

    PYTHONPATH=. python tools/sample_size.py --out cache/sample-size            # generate + measure
    PYTHONPATH=. python tools/sample_size.py --out cache/sample-size --eval-only

Writes OUT/{ssd,ssd-loc,ssd-loc-ssl}.npz, OUT/sample_size.json and OUT/sample_size.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

CONFIGS = (("ssd", "ssd", "SSD only"), ("ssd-loc", "ssd,loc", "SSD + loc"), ("ssd-loc-ssl", "ssd,loc,ssl", "full"))
METRICS = ("fid", "kid", "precision", "recall", "density", "coverage", "memorisation", "reference_own_nearest")


def generate_all(out: Path, corpus, n: int, seed: int) -> dict[str, float]:
    from nps.cli.ablate import auto_k
    from nps.config import GenerationConfig, resolve_encoder
    from nps.engine.sampler import generate
    seconds = {}
    enc = resolve_encoder("auto", "mnist")
    for slug, cons, label in CONFIGS:
        cfg = GenerationConfig(corpus="mnist", subset=len(corpus), n=n, seed=seed, batch_size=64, encoder=enc,
                               k=auto_k(len(corpus)), constraints=cons)
        t0 = time.perf_counter()
        generate(cfg, corpus).save(out / f"{slug}.npz")
        seconds[slug] = time.perf_counter() - t0
        print(f"{label}: {n} samples in {seconds[slug]:.0f} s", flush=True)
    return seconds


def separation(rows: dict, grid: list[int]) -> dict[str, int | None]:
    """Per metric, the smallest n of the grid from which every pair of configurations is disjoint."""
    from nps.metrics.bootstrap import Estimate
    out: dict[str, int | None] = {}
    for m in METRICS:
        ok = []
        for n in grid:
            ests = [rows[n][slug].get(m) for slug, _, _ in CONFIGS]
            if any(e is None for e in ests):
                ok.append(False)
                continue
            es = [Estimate(e["value"], e["low"], e["high"], e["n"]) for e in ests]
            ok.append(all(not a.overlaps(b) for a, b in itertools.combinations(es, 2)))
        first = next((i for i in range(len(grid)) if all(ok[i:])), None)
        out[m] = grid[first] if first is not None else None
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--subset", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", default="16,32,64,128,256")
    p.add_argument("--eval-only", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from nps.corpora import load_corpus
    from nps.metrics.classifier import load_classifier
    from nps.metrics.evaluation import LABELS, sample_metrics
    from nps.record import ProvenanceRecord
    corpus = load_corpus("mnist", subset=args.subset)
    uptime_before = os.popen("uptime").read().strip()
    seconds = {} if args.eval_only else generate_all(out, corpus, args.n, args.seed)
    records = {slug: ProvenanceRecord.load(out / f"{slug}.npz") for slug, _, _ in CONFIGS}
    clf = load_classifier("mnist")
    grid = [int(g) for g in args.grid.split(",") if int(g) <= min(len(r) for r in records.values())]
    rows: dict = {}
    t0 = time.perf_counter()
    for n in grid:
        rows[n] = {}
        for slug, _, _ in CONFIGS:
            rec = records[slug]
            res = sample_metrics(rec.images[:n], corpus, references=rec.reference[:n], classifier=clf,
                                 seed=args.seed, per_class=False, ceiling=False)
            rows[n][slug] = res["metrics"]
        print(f"n = {n} measured", flush=True)
    sep = separation(rows, grid)
    summary = {"command": "python tools/sample_size.py " + " ".join(sys.argv[1:]), "subset": args.subset,
               "seed": args.seed, "grid": grid, "generation_seconds": seconds, "uptime_before": uptime_before,
               "uptime_after": os.popen("uptime").read().strip(), "eval_seconds": time.perf_counter() - t0,
               "separates_from_n": sep, "rows": rows}
    (out / "sample_size.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"Command: `{summary['command']}`; uptime before: `{uptime_before}`", "",
             "| metric | " + " | ".join(f"n = {n}" for n in grid) + " | separates from |",
             "|---|" + "---|" * (len(grid) + 1)]
    for m in METRICS:
        cells = []
        for n in grid:
            vals = []
            for slug, _, _ in CONFIGS:
                e = rows[n][slug].get(m)
                vals.append("—" if e is None else f"{e['value']:.3g} [{e['low']:.3g}, {e['high']:.3g}]")
            cells.append(" / ".join(vals))
        lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(cells) + f" | {sep[m] or 'not within the grid'} |")
    lines += ["", "Cells: SSD only / SSD + loc / full, value [95 % interval]."]
    (out / "sample_size.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
