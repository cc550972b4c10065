"""``python -m nps generate``: sample images with full provenance."""

from __future__ import annotations

import argparse
import sys
import time

from nps.config import DEFAULTS, FIELDS, GenerationConfig, warn_fitted

HELP = """Generate images by non-parametric sampling and write a provenance record (.npz).

Every pixel is copied from the centre of a training window that passes the enabled
constraints: ssd (Gaussian-weighted SSD within (1+eps) of the best), loc (source centre
within L-inf radius R of the target pixel) and ssl (source image among the k nearest
neighbours of the reference image in the encoder's embedding).  The record stores, for
every pixel, the train image and position it came from."""


def add_generation_args(p: argparse.ArgumentParser) -> None:
    """The GenerationConfig method flags, generated from :data:`nps.config.FIELDS`.

    The engine's fields in a "method" group, then one group per registered constraint
    (its own fields: ``--eps`` under appearance, ``--radius`` under locality, ...).
    """
    from nps.cli._common import add_field_arg
    from nps.constraints import registered
    g = p.add_argument_group("method")
    for f in FIELDS.values():
        if f.group == "method" and f.owner is None:
            add_field_arg(g, f, **({"default": None, "help": SEED_SIZE_HELP} if f.name == "seed_size" else {}))
    for c in registered():
        owned = [f for f in FIELDS.values() if f.owner == c.name]
        if owned:
            g = p.add_argument_group(f"{c.title} ({c.name})", c.help)
            for f in owned:
                add_field_arg(g, f)


SEED_SIZE_HELP = (f"seed patch side (default: {DEFAULTS['seed_size']}, or a quarter of the canvas side where "
                  f"{DEFAULTS['seed_size']} would cover more than half of it, e.g. 2 on the 8x8 digits, "
                  "with a warning)")


def config_from_args(args: argparse.Namespace, **overrides) -> GenerationConfig:
    """The config of parsed generate flags: every field of :data:`nps.config.FIELDS` the parser has."""
    fields = {name: getattr(args, name) for name in FIELDS if hasattr(args, name)}
    if fields.get("seed_size") is None:
        fields["seed_size"] = DEFAULTS["seed_size"]  # fit_canvas may shrink it (seed_size_given=False)
    fields.update(overrides)
    return GenerationConfig.make(**fields)


def register(sub: argparse._SubParsersAction) -> None:
    from nps.cli._common import add_corpus_args
    p = sub.add_parser("generate", help="sample images with provenance", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    from nps.cli._common import add_field_arg
    add_corpus_args(p)
    for name in ("n", "seed"):
        add_field_arg(p, FIELDS[name])
    p.add_argument("--out", default="samples.npz", help="provenance record to write (default: %(default)s)")
    p.add_argument("--grid", default=None, help="also write a PNG grid of the samples")
    for name in ("batch_size", "device"):
        add_field_arg(p, FIELDS[name])
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run shards as Ray tasks (nps.lab.distributed); no ADDRESS starts a local Ray, "
                        "else e.g. auto or ray://head:10001; the record is bit-identical to a plain run")
    p.add_argument("--ray-cpus", type=int, default=None, help="CPUs of a local Ray (default: all cores)")
    add_generation_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nps import NPSError, generate, load_corpus  # the public API
    from nps.cli._common import writable_path
    from nps.cli.index import missing_index_line
    from nps.lab.cost import estimate, estimate_line, format_seconds, index_state
    from nps.provenance import check_provenance

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
    index = index_state(cfg, corpus)  # looks at file names only: builds and loads nothing
    print(estimate_line(cfg, len(corpus), corpus.image_shape, index), flush=True)  # stderr keeps one error line
    hint = missing_index_line(cfg, corpus, index)
    if hint:
        then = estimate(cfg, len(corpus), corpus.image_shape, index="cached").seconds
        print(f"{hint}; with it, this run: {format_seconds(then)}", flush=True)
    bar = tqdm(total=cfg.n, unit="img", desc="generate", file=sys.stderr, disable=None)
    state = {"done": 0}

    def progress(info) -> None:
        done = info.batch * cfg.batch_size + round(info.step / info.total * info.canvas.shape[0])
        bar.update(done - state["done"])
        state["done"] = done

    t0 = time.perf_counter()
    if getattr(args, "ray", None) is not None:
        from nps.lab.distributed import generate_on_ray
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
        from nps.lab.plots import save_sample_grid
        save_sample_grid(record.images, grid)
        print(f"wrote {grid}")
    return 0 if bad == 0 else 1
