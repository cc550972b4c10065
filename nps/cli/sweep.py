"""``python -m nps sweep``: hyperparameter sensitivity over a grid of GenerationConfig fields."""

from __future__ import annotations

import argparse
import itertools
import json
import time

from nps.analysis.entropy import CLASS, CLASS_ENTROPY, IMAGE_ID, IMAGE_ID_ENTROPY
from nps.cli._common import add_device_arg, positive, writable_dir

METRICS = ("IS", "FID", CLASS_ENTROPY, IMAGE_ID_ENTROPY, "relaxed_rate", "s_per_image", "n_sources", "top1_share")
PLOTTED = ("IS", CLASS_ENTROPY, IMAGE_ID_ENTROPY, "relaxed_rate", "s_per_image")
MAX_RUNS = 256  # grid points per sweep: each is a full generate + analysis


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="sensitivity sweep over generation parameters (table + plot)",
        description="Generate for every combination of the --param lists (same seed, so the same references) "
                    "and tabulate IS, classifier FID, class / image-ID window entropies, the empty-pool "
                    "(relaxed) rate and time per image. Writes DIR/sweep.md, DIR/sweep.csv, DIR/sweep.png and "
                    "DIR/metrics.json.",
        epilog="Example: python -m nps sweep --corpus mnist --subset 5000 --n 64 "
               "--param eps=0.05,0.1,0.2 --param window=5,7,9 --out sweep/. "
               "Constraint sets use '+': --param constraints=ssd+loc,ssd+loc+ssl; 'none' means None.")
    p.add_argument("--corpus", default="mnist", help="corpus (default: %(default)s)")
    p.add_argument("--subset", type=int, default=None, help="stratified train subset for every run")
    p.add_argument("--param", action="append", required=True, metavar="NAME=V1,V2,...",
                   help="a GenerationConfig field and its values; repeat for a grid")
    p.add_argument("--n", type=int, default=64, help="samples per run (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="RNG seed shared by every run (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--entropy-window", type=int, default=5, help="entropy window (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="samples in lockstep (default: %(default)s)")
    p.add_argument("--data-root", default=None, help="extra folder to look for corpus files")
    add_device_arg(p)
    p.set_defaults(func=run)


def sweepable() -> tuple[str, ...]:
    """The fields ``--param`` may vary (``sweep=True`` in :data:`nps.config.FIELDS`)."""
    from nps.config import FIELDS
    return tuple(name for name, f in FIELDS.items() if f.sweep)


def _caster(name: str):
    """A str -> value parser for GenerationConfig field ``name`` ('none' -> None where allowed)."""
    from nps.config import FIELDS
    from nps.errors import NPSError
    if name not in sweepable():
        raise NPSError(f"--param '{name}' is not a sweepable parameter; use one of {', '.join(sorted(sweepable()))}.")
    kind, optional = FIELDS[name].kind, FIELDS[name].optional

    def cast(text: str):
        if optional and text.lower() == "none":
            return None
        try:
            if "tuple" in kind:
                return tuple(t for t in text.split("+") if t)
            if "bool" in kind:
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                return text.lower() in ("true", "1")
            if "int" in kind:
                return int(text)
            if "float" in kind:
                return float(text)
        except ValueError:
            raise NPSError(f"--param {name}: '{text}' is not a valid value ({kind}).") from None
        return text

    return cast


def parse_params(specs: list[str]) -> dict[str, list]:
    """['eps=0.05,0.1', 'window=5,7'] -> {'eps': [0.05, 0.1], 'window': [5, 7]} (typed)."""
    from nps.errors import NPSError
    grid: dict[str, list] = {}
    for spec in specs:
        if "=" not in spec:
            raise NPSError(f"--param '{spec}' must look like NAME=V1,V2 (e.g. eps=0.05,0.1,0.2).")
        name, values = (s.strip() for s in spec.split("=", 1))
        cast = _caster(name)
        vals = [cast(v.strip()) for v in values.split(",") if v.strip()]
        if not vals:
            raise NPSError(f"--param {name} has no values; give a comma list.")
        if name in grid:
            raise NPSError(f"--param {name} is given twice; give one comma list.")
        grid[name] = vals
    return grid


def _fmt(v) -> str:
    if isinstance(v, tuple):
        return "+".join(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def run(args: argparse.Namespace) -> int:
    from nps.analysis import analyse_record, jsonable
    from nps.cache import write_text
    from nps.cli.ablate import run_config
    from nps.config import GenerationConfig, warn_fitted
    from nps.corpora import load_corpus
    from nps.errors import NPSError
    from nps.lab import plots
    from nps.metrics.classifier import load_classifier

    grid = parse_params(args.param)
    if args.n < 2:
        raise NPSError(f"--n {args.n} must be >= 2 (IS and FID need several samples).")
    positive(args.entropy_window, "--entropy-window", 1, 255)
    base = GenerationConfig(corpus=args.corpus, subset=args.subset, n=args.n, seed=args.seed,
                            batch_size=args.batch_size, device=args.device, data_root=args.data_root)
    names = list(grid)
    combos = list(itertools.product(*grid.values()))
    if len(combos) > MAX_RUNS:
        raise NPSError(f"the grid has {len(combos)} points; sweep at most {MAX_RUNS} at once (fewer values).")
    configs = [base.replace(**dict(zip(names, combo))) for combo in combos]
    for cfg in configs:  # parameter errors before any loading
        cfg.check()
    out = writable_dir(args.out)
    corpus = load_corpus(args.corpus, subset=args.subset, data_root=args.data_root)
    if "seed_size" not in grid:  # the default seed, fitted to the canvas (with a warning)
        size = base.fit_canvas(corpus.image_shape, seed_size_given=False).seed_size
        configs = [cfg.replace(seed_size=size) for cfg in configs]
    labels = set(corpus.train_labels.tolist())
    for cfg in configs:  # validate every point against the corpus before spending time on any
        cfg.check(len(corpus), corpus.image_shape, labels)
    warn_fitted(base, configs[0], corpus.image_shape)
    try:
        classifier = load_classifier(args.corpus)
    except NPSError as exc:
        classifier = None
        print(f"note: IS/FID skipped ({exc})")
    rows, full = [], []
    for i, (combo, cfg) in enumerate(zip(combos, configs)):
        label = ", ".join(f"{k}={_fmt(v)}" for k, v in zip(names, combo))
        record, seconds = run_config(cfg, corpus, f"[{i + 1}/{len(configs)}] {label}")
        r = analyse_record(record, corpus, window=args.entropy_window, classifier=classifier,
                           memorisation=False, scores=classifier is not None)
        s = r["scores"]["samples"] if r["scores"] else {}
        row = {k: _fmt(v) for k, v in zip(names, combo)}
        row.update({"IS": s.get("is_mean"), "IS_std": s.get("is_std"), "FID": s.get("fid"),
                    CLASS_ENTROPY: r["entropy"][CLASS]["mean"], IMAGE_ID_ENTROPY: r["entropy"][IMAGE_ID]["mean"],
                    "relaxed_rate": r["relaxed_rate"], "s_per_image": seconds / len(record),
                    "n_sources": r["composition"]["n_sources"]["mean"],
                    "top1_share": r["composition"]["top1_share"]["mean"]})
        rows.append(row)
        full.append({"params": row, "result": jsonable(r)})
        print(label + ": " + ", ".join(f"{m} {row[m]:.3f}" for m in METRICS if row.get(m) is not None))
    header = [*names, *METRICS]
    _write_tables(rows, header, out)
    x = names[0]
    group = None
    if len(names) > 1:
        for row in rows:
            row["_group"] = ", ".join(f"{k}={row[k]}" for k in names[1:])
        group = "_group"
    plotted = [m for m in PLOTTED if rows[0].get(m) is not None]
    plots.save_sweep(rows, x, plotted, out / "sweep.png", group=group)
    real = full[0]["result"]["scores"]["real"] if full[0]["result"].get("scores") else None
    write_text(out / "metrics.json", json.dumps({"grid": {k: [_fmt(v) for v in vs] for k, vs in grid.items()},
                                                  "n": args.n, "seed": args.seed, "subset": args.subset,
                                                  "corpus": args.corpus, "real": real, "runs": full,
                                                  "created": time.strftime("%Y-%m-%d %H:%M:%S")},
                                                 indent=2, sort_keys=True) + "\n")
    print((out / "sweep.md").read_text())
    print(f"wrote {out / 'sweep.md'}, {out / 'sweep.csv'}, {out / 'sweep.png'} and {out / 'metrics.json'}")
    return 0


def _write_tables(rows: list[dict], header: list[str], out) -> None:
    import csv
    import io

    from nps.cache import write_text

    def cell(v) -> str:
        return "—" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows([[row.get(h) for h in header] for row in rows])
    write_text(out / "sweep.csv", buf.getvalue())
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(row.get(h)) for h in header) + " |" for row in rows]
    write_text(out / "sweep.md", "\n".join(lines) + "\n")
