"""``python -m nps scale``: how cost and quality grow with the corpus (mnist-deformed:N).

For each size N one *spawned* process (so its peak RSS is its own, and no faiss state
crosses a fork) opens or builds the store, embeds the corpus and builds the index (timed
separately); a second, fresh one opens them all, then generates samples with the full
model (the same seed and sample ids at every N; each sample's reference is drawn from the
N images) and scores them: classifier IS and FID
against MNIST's test split (the corpus's own), and the largest single-source share of a
sample (memorisation shows as one source covering most of it).  SSD + locality, whose every
step scans the whole corpus, is run where ``--baseline-max`` allows.  The report is a
markdown table, a JSON file and log-log PNGs; the fitted cost exponent (slope of
log time/image against log N) is printed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HELP = __doc__.split("\n\n", 1)[1]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scale", help="scaling study: time, memory and quality against corpus size",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="mnist-deformed", choices=["mnist-deformed"],
                   help="corpus family; size N gives mnist-deformed:N (default: %(default)s)")
    p.add_argument("--sizes", default="1k,4k,16k,60k,240k,1M",
                   help="comma list of corpus sizes, suffixes k/M (default: %(default)s; 8M works)")
    p.add_argument("--n", type=int, default=64, help="samples per size (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="RNG seed (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=16, help="samples in lockstep (default: %(default)s)")
    p.add_argument("--k", type=int, default=64, help="semantic pool size (default: %(default)s)")
    p.add_argument("--encoder", default="pca", help="encoder of the semantic pools (default: %(default)s)")
    p.add_argument("--baseline-max", default="16k",
                   help="run SSD + locality (cost grows with N) up to this size; 0 for never (default: %(default)s)")
    p.add_argument("--baseline-n", type=int, default=8, help="samples for the SSD + locality runs")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="generate on Ray (nps.lab.distributed); no ADDRESS starts a local one")
    p.add_argument("--ray-cpus", type=int, default=None, help="CPUs of a local Ray (default: all cores)")
    p.add_argument("--out", default="scale-report", help="report folder (default: %(default)s)")
    p.add_argument("--data-root", default=None, help="extra folder to look for MNIST")
    p.set_defaults(func=run)


def _load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"load average {os.getloadavg()}"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _source_share(record) -> float:
    """Mean over samples of the largest share of pixels copied from one source image (0..1)."""
    import numpy as np
    shares = []
    for src in record.source_index.reshape(len(record), -1):
        _, counts = np.unique(src[src >= 0], return_counts=True)
        shares.append(counts.max() / max(1, counts.sum()))
    return float(np.mean(shares))


def _quality(record, mnist) -> dict:
    from nps.errors import NPSError
    from nps.metrics.scores import classifier_report
    out = {"largest_source_share": _source_share(record)}
    try:
        rep = classifier_report(record.images, "mnist", corpus=mnist)
        out.update(IS=rep["samples"]["is_all"], FID=rep["samples"]["fid"], real_IS=rep["real"]["is_all"],
                   real_FID=rep["real"]["fid"])
    except NPSError as exc:  # no classifier here: the timings still stand
        out["quality_error"] = str(exc)
    return out


def _config(size: int, opts: dict):  # GenerationConfig
    from nps.config import GenerationConfig
    return GenerationConfig(corpus=f"mnist-deformed:{size}", n=opts["n"], seed=opts["seed"],
                            k=min(opts["k"], size - 1), batch_size=opts["batch_size"], encoder=opts["encoder"],
                            data_root=opts["data_root"])


def measure_build(size: int, opts: dict) -> dict:
    """Phase 1, its own process: the store (built or opened), the embeddings and the pool index, timed."""
    from nps.corpora import load_corpus
    from nps.encoders import get_encoder
    from nps.retrieval import SourceIndex, embed_corpus, pool_index_kind
    cfg = _config(size, opts)
    row: dict = {}
    t = time.perf_counter()
    corpus = load_corpus(cfg.corpus, None, opts["data_root"])
    row["store_s"] = time.perf_counter() - t
    t = time.perf_counter()
    table = embed_corpus(corpus, get_encoder(cfg.encoder, corpus))
    row["embed_s"] = time.perf_counter() - t
    t = time.perf_counter()
    row["index"] = pool_index_kind(size)
    SourceIndex(row["index"]).fit(table)
    row["index_s"] = time.perf_counter() - t
    row["build_rss_mb"] = _rss_mb()
    return row


def measure_generate(size: int, opts: dict) -> dict:
    """Phase 2, a fresh process: open everything from the store and cache, generate, score."""
    import hashlib

    import numpy as np

    from nps.corpora import load_corpus
    from nps.engine.sampler import Sampler
    from nps.engine.sampler_pool import SemanticPools
    cfg = _config(size, opts)
    row: dict = {}
    t = time.perf_counter()
    corpus = load_corpus(cfg.corpus, None, opts["data_root"])
    pools = SemanticPools.build(cfg, corpus)  # cache hits: phase 1 built them
    sampler = None if opts["ray"] is not None else Sampler(cfg, corpus, pools).prepare()
    if sampler is None:  # start Ray (or join the cluster) before the clock: it is not sampling
        from nps.lab.distributed import start_ray
        start_ray(None if opts["ray"] == "local" else opts["ray"], opts["ray_cpus"])
    row["setup_s"] = time.perf_counter() - t
    t = time.perf_counter()
    if sampler is None:
        from nps.lab.distributed import generate_on_ray
        record = generate_on_ray(cfg, corpus, None if opts["ray"] == "local" else opts["ray"], opts["ray_cpus"])
    else:
        record = sampler.run()
    row["gen_s"] = time.perf_counter() - t
    row["ms_per_image"] = row["gen_s"] / len(record) * 1000
    row["peak_rss_mb"] = _rss_mb()
    del sampler, pools
    row.update(_quality(record, corpus))  # its test split is MNIST's: the classifier's real side
    if size <= opts["baseline_max"]:
        base = cfg.replace(constraints=("ssd", "loc"), n=opts["baseline_n"])
        t = time.perf_counter()
        rec = Sampler(base, corpus).prepare().run()
        row["baseline_ms_per_image"] = (time.perf_counter() - t) / len(rec) * 1000
        q = _quality(rec, corpus)
        row["baseline_FID"], row["baseline_IS"] = q.get("FID"), q.get("IS")
    row["samples_hash"] = hashlib.sha256(np.ascontiguousarray(record.images).data).hexdigest()[:12]
    return row


def _child(phase: str, size: int, opts: dict, queue) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from nps.errors import NPSError
    try:
        queue.put(("ok", (measure_build if phase == "build" else measure_generate)(size, opts)))
    except NPSError as exc:
        queue.put(("error", str(exc)))
    except BaseException as exc:  # report, never a silent dead child
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def _in_process(ctx, phase: str, size: int, opts: dict) -> tuple[str, dict | str]:
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(phase, size, opts, queue))
    proc.start()
    try:
        return queue.get()
    finally:
        proc.join()


def _fit_exponent(xs: list[float], ys: list[float]) -> float | None:
    import numpy as np
    pts = [(x, y) for x, y in zip(xs, ys) if y is not None and y > 0]
    if len(pts) < 2:
        return None
    x, y = np.log(np.array(pts, float)).T
    return float(np.polyfit(x, y, 1)[0])


def _plots(rows: list[dict], out: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nps.cache import atomic_write
    files = []
    panels = [("time_per_image.png", "time per image (ms)", [("ms_per_image", "full model"),
                                                             ("baseline_ms_per_image", "SSD + locality")]),
              ("peak_rss.png", "peak RSS (MB)", [("peak_rss_mb", "peak RSS")]),
              ("build_times.png", "build time (s)", [("store_s", "store"), ("embed_s", "embed"),
                                                     ("index_s", "index")])]
    for fname, ylabel, series in panels:
        fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
        for key, label in series:
            pts = [(r["N"], r[key]) for r in rows if r.get(key)]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("corpus size N (images)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        atomic_write(out / fname, lambda f, fig=fig: fig.savefig(f, format="png"))  # never half a PNG
        plt.close(fig)
        files.append(fname)
    return files


def _fmt(v, spec: str = ".3g") -> str:
    return "-" if v is None else format(v, spec)


def _markdown(rows: list[dict], info: dict, files: list[str]) -> str:
    head = ("| N | store s | embed s | index | index s | build RSS MB | full ms/img | peak RSS MB | IS | FID "
            "| largest source | SSD+loc ms/img | SSD+loc FID |")
    lines = [f"# Scaling study: {info['corpus']}", "", f"Command: `{info['command']}`", "",
             f"Machine: {info['machine']}; load at start: `{info['load_start']}`; at end: `{info['load_end']}`.", "",
             f"{info['n']} samples per size (same seed and sample ids at every N), full model, encoder "
             f"{info['encoder']}, k={info['k']}, batch {info['batch_size']}; {info['executor']}. Real-data ceiling "
             "(MNIST test half B): " + ", ".join(f"IS {r['real_IS']:.2f} / FID {r['real_FID']:.2f}"
                                                 for r in rows[:1] if "real_IS" in r) + ".", "",
             head, "|" + "---|" * 13]
    for r in rows:
        lines.append(f"| {r['N']:,} | {_fmt(r.get('store_s'))} | {_fmt(r.get('embed_s'))} | {r.get('index')} "
                     f"| {_fmt(r.get('index_s'))} | {_fmt(r.get('build_rss_mb'), '.0f')} "
                     f"| {_fmt(r.get('ms_per_image'))} "
                     f"| {_fmt(r.get('peak_rss_mb'), '.0f')} "
                     f"| {_fmt(r.get('IS'))} | {_fmt(r.get('FID'))} | {_fmt(r.get('largest_source_share'), '.2f')} "
                     f"| {_fmt(r.get('baseline_ms_per_image'))} | {_fmt(r.get('baseline_FID'))} |")
    lines += ["", f"Fitted cost exponent (time/image ~ N^a, full model): a = {_fmt(info['exponent'])}; "
              f"SSD + locality: a = {_fmt(info['baseline_exponent'])}; peak RSS: a = {_fmt(info['rss_exponent'])}.",
              "", "*store s* is the build when the store was missing, else the time to open it (memory map); "
              "*embed s* / *index s* likewise (a cache hit is a load); *build RSS* is the peak of the process that "
              "built them, *peak RSS* that of a fresh process that opens them and generates (its own process per "
              "phase and size, spawned); *largest source* is the mean over samples of the largest share of pixels "
              "copied from one image.",
              "", *[f"![{f}]({f})" for f in files], ""]
    for r in rows:
        if "error" in r:
            lines.append(f"- N = {r['N']:,}: {r['error']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from nps.cache import write_text
    from nps.cli._common import writable_dir
    from nps.corpora.deformed import MAX_N, parse_size
    from nps.errors import NPSError
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or any(s < 2 or s > MAX_N for s in sizes):
        raise NPSError(f"--sizes needs sizes in 2..{MAX_N:,}, e.g. 1k,4k,16k.")
    from nps.encoders.hparams import check_number
    check_number("--n", args.n, 2, 100_000, integer=True, why="IS/FID need 2 samples")
    check_number("--seed", args.seed, 0, 2**63 - 1, integer=True)
    check_number("--batch-size", args.batch_size, 1, 4096, integer=True)
    check_number("--k", args.k, 1, 10_000, integer=True)
    if args.baseline_n is not None:
        check_number("--baseline-n", args.baseline_n, 2, 100_000, integer=True)
    if args.ray_cpus is not None:
        check_number("--ray-cpus", args.ray_cpus, 1, 4096, integer=True)
    baseline_max = parse_size(args.baseline_max) if args.baseline_max.strip() not in ("0", "") else 0
    out = writable_dir(args.out)
    opts = dict(n=args.n, seed=args.seed, batch_size=args.batch_size, k=args.k, encoder=args.encoder,
                baseline_max=baseline_max, baseline_n=args.baseline_n, ray=args.ray, ray_cpus=args.ray_cpus,
                data_root=args.data_root)
    info = dict(corpus=args.corpus, command="python -m nps " + " ".join(sys.argv[1:]) if sys.argv[1:] else "scale",
                machine=f"{platform.machine()}, {os.cpu_count()} cores", load_start=_load(), n=args.n,
                encoder=args.encoder, k=args.k, batch_size=args.batch_size,
                executor=f"Ray ({args.ray})" if args.ray else "one spawned process per phase and size")
    ctx = mp.get_context("spawn")  # faiss can hang after fork; spawn also gives each size its own peak RSS
    rows = []
    for size in sorted(set(sizes)):
        print(f"N = {size:,} ...", file=sys.stderr, flush=True)
        row: dict = {"N": size}
        for phase in ("build", "generate"):
            status, value = _in_process(ctx, phase, size, opts)
            if status != "ok":
                row["error"] = f"{phase}: {value}"
                break
            row.update(value)
        rows.append(row)
        print(f"  {json.dumps(row)}", file=sys.stderr, flush=True)
    ok = [r for r in rows if "error" not in r]
    info.update(load_end=_load(),
                exponent=_fit_exponent([r["N"] for r in ok], [r["ms_per_image"] for r in ok]),
                baseline_exponent=_fit_exponent([r["N"] for r in ok], [r.get("baseline_ms_per_image") for r in ok]),
                rss_exponent=_fit_exponent([r["N"] for r in ok], [r["peak_rss_mb"] for r in ok]))
    files = _plots(ok, out) if ok else []
    write_text(out / "scale.json", json.dumps({"info": info, "rows": rows}, indent=1))
    write_text(out / "scale.md", _markdown(rows, info, files))
    print(_markdown(rows, info, files))
    print(f"fitted cost exponent (full model): {_fmt(info['exponent'])}; wrote {out / 'scale.md'}")
    return 0 if len(ok) == len(rows) else 1
