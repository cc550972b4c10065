"""``python -m nps generate``: sample images with full provenance."""

from __future__ import annotations

import argparse
import sys
import time

from nps.config import CONSTRAINTS, DEFAULTS, SEARCH_MODES, SSL_MODES, GenerationConfig, warn_fitted

HELP = """Generate images by non-parametric sampling and write a provenance record (.npz).

Every pixel is copied from the centre of a training window that passes the enabled
constraints: ssd (Gaussian-weighted SSD within (1+eps) of the best), loc (source centre
within L-inf radius R of the target pixel) and ssl (source image among the k nearest
neighbours of the reference image in the encoder's embedding).  The record stores, for
every pixel, the train image and position it came from."""


def add_generation_args(p: argparse.ArgumentParser) -> None:
    """The GenerationConfig flags, with defaults from :data:`nps.config.DEFAULTS` (shared with sweep/ablate)."""
    d = DEFAULTS
    g = p.add_argument_group("method")
    g.add_argument("--constraints", default=",".join(d["constraints"]),
                   help=f"comma list of {', '.join(CONSTRAINTS)} (default: %(default)s); "
                        "e.g. ssd (texture), ssd,loc, ssd,loc,ssl (full model)")
    g.add_argument("--window", type=int, default=d["window"],
                   help="context window w, odd (default: %(default)s)")
    g.add_argument("--sigma", type=float, default=d["sigma"], help="Gaussian std (default: window/6.4)")
    g.add_argument("--eps", type=float, default=d["eps"],
                   help="keep windows with d <= (1+eps)*min d + tol (default: %(default)s)")
    g.add_argument("--tol", type=float, default=d["tol"], help="absolute SSD tolerance (default: %(default)g)")
    g.add_argument("--max-ssd", type=float, default=d["max_ssd"],
                   help="optional absolute SSD ceiling; pixels where nothing passes fall back and are marked relaxed")
    g.add_argument("--radius", type=int, default=d["radius"],
                   help="locality radius R in pixels (default: %(default)s)")
    g.add_argument("--k", type=int, default=d["k"], help="semantic pool size (default: %(default)s)")
    g.add_argument("--encoder", default=d["encoder"],
                   help="auto, pca, pixels or simclr; auto is the measured best for the corpus (simclr for mnist, "
                        "where it measured best; pca elsewhere) (default: %(default)s)")
    g.add_argument("--ssl-mode", default=d["ssl_mode"], choices=SSL_MODES,
                   help="reference: k-NN of a reference image; canvas: re-embed the canvas each shell")
    g.add_argument("--ssl-eps", type=float, default=d["ssl_eps"],
                   help="adaptive semantic pool: distance <= (1+ssl_eps)*nearest, capped at k")
    g.add_argument("--search", default=d["search"], choices=SEARCH_MODES,
                   help="whole-corpus steps (no ssl): brute scores every window (float32, the default); exact "
                        "prunes with a cached window index (opt-in: matched brute on small corpora, not yet at 60k)")
    g.add_argument("--reference", type=int, default=d["reference"],
                   help="fixed reference train id for every sample (default: random per sample)")
    g.add_argument("--include-reference", action="store_true",
                   help="let the reference image be a source beyond the seed (left out of every pool by default)")
    g.add_argument("--label", type=int, default=d["label"], help="class-conditional: pool = images of this label")
    g.add_argument("--seed-size", type=int, default=None,
                   help=f"seed patch side (default: {d['seed_size']}, or a quarter of the canvas side where "
                        f"{d['seed_size']} would cover more than half of it, e.g. 2 on the 8x8 digits, with a warning)")


def config_from_args(args: argparse.Namespace, **overrides) -> GenerationConfig:
    fields = dict(
        corpus=args.corpus, subset=args.subset, n=getattr(args, "n", DEFAULTS["n"]), seed=args.seed,
        window=args.window, sigma=args.sigma, eps=args.eps, tol=args.tol, max_ssd=args.max_ssd, radius=args.radius,
        k=args.k, constraints=args.constraints, encoder=args.encoder, ssl_mode=args.ssl_mode, ssl_eps=args.ssl_eps,
        reference=args.reference, include_reference=args.include_reference, label=args.label,
        seed_size=DEFAULTS["seed_size"] if args.seed_size is None else args.seed_size,
        batch_size=getattr(args, "batch_size", DEFAULTS["batch_size"]),
        device=args.device, data_root=args.data_root, search=getattr(args, "search", DEFAULTS["search"]),
    )
    fields.update(overrides)
    return GenerationConfig(**fields)


def register(sub: argparse._SubParsersAction) -> None:
    from nps.cli._common import add_corpus_args, add_device_arg
    p = sub.add_parser("generate", help="sample images with provenance", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_args(p)
    p.add_argument("--n", type=int, default=DEFAULTS["n"], help="number of samples (default: %(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="RNG seed (default: %(default)s)")
    p.add_argument("--out", default="samples.npz", help="provenance record to write (default: %(default)s)")
    p.add_argument("--grid", default=None, help="also write a PNG grid of the samples")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                   help="samples advanced in lockstep (default: %(default)s)")
    add_device_arg(p)
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run shards as Ray tasks (nps.distributed); no ADDRESS starts a local Ray, "
                        "else e.g. auto or ray://head:10001; the record is bit-identical to a plain run")
    p.add_argument("--ray-cpus", type=int, default=None, help="CPUs of a local Ray (default: all cores)")
    add_generation_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nps.cli._common import writable_path
    from nps.corpora import load_corpus
    from nps.cost import estimate_line
    from nps.errors import NPSError
    from nps.record import check_provenance
    from nps.sampler import generate

    cfg = config_from_args(args)
    cfg.check()  # parameter errors before any loading
    if getattr(args, "ray_cpus", None) is not None:
        from nps.encoders.hparams import check_number
        check_number("--ray-cpus", args.ray_cpus, 1, 4096, integer=True)
    out = writable_path(args.out, ".npz")
    grid = writable_path(args.grid, ".png") if args.grid else None
    if grid is not None and grid.resolve() == out.resolve():
        raise NPSError("--grid and --out name the same file; give two paths.")
    corpus = load_corpus(cfg.corpus, cfg.subset, cfg.data_root)
    fitted = cfg.fit_canvas(corpus.image_shape, seed_size_given=args.seed_size is not None)
    # Everything the run needs, memory included, is checked before it starts.
    fitted.check(len(corpus), corpus.image_shape, set(corpus.train_labels.tolist()))
    warn_fitted(cfg, fitted, corpus.image_shape)
    cfg = fitted
    print(estimate_line(cfg, len(corpus), corpus.image_shape), flush=True)  # nps.cost; stderr keeps one error line
    bar = tqdm(total=cfg.n, unit="img", desc="generate", file=sys.stderr, disable=None)
    state = {"done": 0}

    def progress(info) -> None:  # noqa: ANN001
        done = info.batch * cfg.batch_size + round(info.step / info.total * info.canvas.shape[0])
        bar.update(done - state["done"])
        state["done"] = done

    t0 = time.perf_counter()
    if getattr(args, "ray", None) is not None:
        from nps.distributed import generate_on_ray
        record = generate_on_ray(cfg, corpus, None if args.ray == "local" else args.ray, args.ray_cpus,
                                 progress=lambda done: bar.update(done - bar.n))
    else:
        record = generate(cfg, corpus, progress=progress)
    bar.close()
    elapsed = time.perf_counter() - t0
    record.save(out)
    bad = check_provenance(record, corpus.train)
    h, w = record.canvas_shape
    print(f"wrote {out}: {len(record)} samples of {h}x{w} from '{cfg.corpus}' ({len(corpus)} train images) "
          f"in {elapsed:.1f}s ({elapsed / len(record) * 1000:.0f} ms/image); "
          f"constraints {','.join(cfg.constraints)}; provenance check: {'exact' if bad == 0 else f'{bad} BAD pixels'}")
    if grid is not None:
        from nps.plots import save_sample_grid
        save_sample_grid(record.images, grid)
        print(f"wrote {grid}")
    return 0 if bad == 0 else 1
