"""``python -m nps ablate``: the paper's ablation (Figure 2, Tables 1-2) in one command.

Runs SSD only; SSD + locality; SSD + locality + representation (each available
encoder) with the same corpus subset, the same references and the same RNG streams
(sample i draws both from (seed, i)), evaluates every record the same way and writes
``DIR/report.md`` with its PNGs, ``DIR/metrics.json`` and ``DIR/records/*.npz``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable

from nps.cli._common import add_device_arg, add_field_arg, positive, writable_dir
from nps.config import DEFAULTS, FIELDS, GenerationConfig
from nps.constraints import ablation_sets, default_names, get, set_label
from nps.errors import NPSError

FULL_MODEL = default_names()  # the full model: every default constraint (ssd, loc, ssl)

K_HELP = "semantic pool size (default: subset size / 20 within [8, 64] on the subset, 64 on the full corpus)"

# SSD-only and SSD+loc search every training image (SSD-only: every position too), so
# all configurations share a stratified subset; these defaults fit the time budgets on
# a 2-core CPU (--quick: a few minutes; full: under 30 minutes).
QUICK = {"n": 32, "subset": 200}
FULL = {"n": 128, "subset": 300}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ablate", help="the paper's ablation: SSD / SSD+loc / SSD+loc+SSL (+ each encoder) with a report",
        description="Generate with the three constraint sets on the same references and RNG streams, plus the "
                    "full model with every available encoder; evaluate each (IS, classifier FID, window "
                    "entropies, composition, memorisation, relaxed rate, time) and write DIR/report.md laid "
                    "out like the paper's Figure 2 and Tables 1-2, with DIR/metrics.json.")
    p.add_argument("--corpus", default="mnist", help="an MNIST-like corpus with a classifier (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="RNG seed shared by every configuration (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=None, help=f"samples per configuration (default {FULL['n']}, "
                                                       f"--quick {QUICK['n']})")
    p.add_argument("--subset", type=int, default=None,
                   help=f"stratified train subset shared by all configurations (default {FULL['subset']}, "
                        f"--quick {QUICK['subset']}); 0 means the whole corpus")
    p.add_argument("--quick", action="store_true", help="fewer samples and a smaller subset (a few minutes)")
    p.add_argument("--no-full-corpus", action="store_true",
                   help="skip the extra full-corpus rows of the full model (paper scale, k=64)")
    p.add_argument("--only", default=None, metavar="SLUGS",
                   help="comma list of the configurations to run, by their metrics.json keys (ssd, ssd+loc, "
                        "ssd+loc+ssl, ssd+loc+ssl/pixels, full:ssd+loc+ssl, ...; default: all). E.g. "
                        "--subset 0 --only ssd+loc,ssd+loc+ssl is the paper-scale comparison without SSD alone, "
                        "which scans 47M windows per pixel on all 60k MNIST images (hours)")
    p.add_argument("--encoders", default=None,
                   help="comma list of encoders for the full model, the first is the main one (default: the "
                        "corpus's auto encoder, then every other registered one that loads)")
    p.add_argument("--entropy-window", type=int, default=5, help="entropy window (default: %(default)s)")
    g = p.add_argument_group("sampler parameters shared by every configuration (engine defaults if omitted)")
    for f in FIELDS.values():  # every field marked ablate=True in the field table (nps.config.FIELDS)
        if f.ablate:
            add_field_arg(g, f, default=None, help=K_HELP if f.name == "k" else None)
    p.add_argument("--batch-size", type=int, default=64, help="samples in lockstep (default: %(default)s)")
    p.add_argument("--data-root", default=None, help="extra folder to look for corpus files")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="generate each configuration as Ray tasks (nps.lab.distributed); no ADDRESS starts a local "
                        "Ray; every record is bit-identical to a plain run")
    p.add_argument("--ray-cpus", type=int, default=None, help="CPUs of a local Ray (default: all cores)")
    p.add_argument("--baselines", default="auto", metavar="auto|none|LIST",
                   help="learned baselines sampled at the same n and scored beside every configuration (the "
                        "report's Table 4): auto = every one with weights for the corpus, none, or a comma list "
                        "of vae,gan,flow (default: %(default)s)")
    add_device_arg(p)
    p.set_defaults(func=run)


def _progress_bar(label: str, n: int, batch_size: int):
    """A tqdm bar over all pixel steps of a run and the matching sampler callback."""
    from tqdm import tqdm
    bar = tqdm(desc=f"{label:<24}", total=None, unit="px-step", leave=True)
    state = {"done": 0}

    def progress(info) -> bool:
        if bar.total is None:
            bar.total = info.total * info.n_batches
            bar.refresh()
        done = info.batch * info.total + info.step
        bar.update(done - state["done"])
        state["done"] = done
        return True

    return bar, progress


def _slug(constraints: tuple[str, ...]) -> str:
    """('ssd', 'loc') -> 'ssd+loc', the key of a configuration in metrics.json and the report."""
    return "+".join(constraints)


def ablation_plan(base: GenerationConfig, encoders: list[str], full_size: int | None, full_k: int) -> list[tuple]:
    """(slug, label, config, corpus rows) of every configuration, from :func:`nps.constraints.ablation_sets`.

    Each set that uses an "images" constraint runs once per encoder (the first is the main one,
    slug without ``/encoder``); the others run once.  With ``full_size`` the full model reruns on
    the whole corpus (``full:`` slugs, k = ``full_k``).
    """
    plan = []
    for cons in ablation_sets():
        cfg = base.replace(constraints=cons)
        per_encoder = any(get(c).kind == "images" for c in cons)
        for i, name in enumerate(encoders if per_encoder else [None]):
            slug = _slug(cons) + ("" if i == 0 else f"/{name}")
            label = set_label(cons) + (f" ({name})" if per_encoder else "")
            plan.append((slug, label, cfg.replace(encoder=name) if name else cfg, "subset"))
    if full_size is not None:
        full = base.replace(subset=None, k=full_k, constraints=FULL_MODEL)
        for i, name in enumerate(encoders):
            plan.append(("full:" + _slug(FULL_MODEL) + ("" if i == 0 else f"/{name}"),
                         f"{set_label(FULL_MODEL)} ({name}), all {full_size}", full.replace(encoder=name), "full"))
    return plan


def select_plan(plan: list[tuple], only: str | None) -> list[tuple]:
    """The configurations of ``plan`` named in ``only`` (a comma list of slugs; None: all), in plan order."""
    if only is None:
        return plan
    want = [o.strip() for o in only.split(",") if o.strip()]
    known = [slug for slug, *_ in plan]
    bad = [o for o in want if o not in known]
    if bad or not want:
        raise NPSError(f"--only '{only}' names {f'no configuration {bad[0]!r}' if bad else 'none'}; this run's "
                       f"configurations are {', '.join(known)}.")
    return [row for row in plan if row[0] in want]


def prepare_indexes(plan: list[tuple], corpora: dict, say: Callable[[str, float], object]) -> None:
    """Build the window index of each corpus a whole-corpus row would search and that lacks one.

    Rows without representation (SSD alone, SSD + locality) search every training image; on a
    large corpus (all 60k MNIST) the index is not built on use, and without it those rows take
    the dense scan, several times slower with the same draws (:mod:`nps.engine.search`).
    """
    from nps.engine.sampler import Sampler
    from nps.engine.window_cache import local_splits
    from nps.lab.cost import index_state
    done: set[tuple[str, bool]] = set()  # (corpus, local): rows with and without locality search two indexes
    for _, label, cfg, which in plan:
        key = (which, local_splits(cfg))
        if key in done or cfg.search == "brute" or index_state(cfg, corpora[which]) != "missing":
            continue
        done.add(key)
        corpus = corpora[which]
        kind = "local" if key[1] else "global"
        say(f"building the {kind} window index of {len(corpus):,} images (once; cached)", 0.0)
        print(f"building the {kind} window index of {len(corpus):,} images for {label} (about a minute and a half "
              "for 60k MNIST; cached, as `python -m nps index` would)", flush=True)
        t0 = time.perf_counter()
        Sampler(cfg.replace(n=1, batch_size=1), corpus).exact_search(build=True)
        print(f"window index ready in {time.perf_counter() - t0:.0f} s", flush=True)


def plan_estimate(plan: list[tuple], corpora: dict) -> str:
    """The expected sampling time of every configuration (:mod:`nps.lab.cost`), one line."""
    from nps.lab.cost import estimate, format_seconds, index_state
    parts, total = [], 0.0
    for slug, _, cfg, which in plan:
        corpus = corpora[which]
        est = estimate(cfg, len(corpus), corpus.image_shape, index=index_state(cfg, corpus))
        total += est.seconds
        parts.append(f"{slug} {format_seconds(est.seconds)}")
    return (f"estimate: sampling {format_seconds(total)} in all ({'; '.join(parts)}), plus evaluation "
            "(nps.lab.cost, calibrated on a 2-core machine)")


def _file_stem(slug: str) -> str:
    """'full:ssd+loc+ssl/pixels' -> 'full-ssd-loc-ssl-pixels' (safe in file names and markdown links)."""
    return slug.replace("+", "-").replace("/", "-").replace(":", "-")


def auto_k(corpus_size: int) -> int:
    """Semantic pool size for a subset: about half of one class (S/20), within [8, 64].

    k = 64 is the paper-scale default on 60k images (0.1% of the corpus, far inside one
    class); on a 300-image subset it would be a fifth of the corpus and mix classes, so
    the representation constraint would be ablated by the subset itself.
    """
    return int(min(DEFAULTS["k"], max(8, corpus_size // 20)))


def run_config(config, corpus, label: str, ray: str | None = None,
               ray_cpus: int | None = None, on_step: Callable | None = None):
    """Generate one configuration with a progress bar; returns (record, seconds).

    With ``ray`` ("local" or a cluster address) the samples are generated as Ray tasks
    (:func:`nps.lab.distributed.generate_on_ray`), bit-identical to the plain run.
    ``on_step`` (the sampler's progress callback protocol) is called after the bar's update;
    its False stops the run, as for :func:`nps.engine.sampler.generate`.
    """
    from nps.engine.sampler import generate
    bar, bar_progress = _progress_bar(label, config.n, config.batch_size)

    def progress(info) -> bool:
        bar_progress(info)
        return True if on_step is None else on_step(info) is not False

    t0 = time.perf_counter()
    try:
        if ray is not None:
            from nps.lab.distributed import generate_on_ray
            record = generate_on_ray(config, corpus, None if ray == "local" else ray, ray_cpus,
                                     progress=lambda done: bar.update(done - bar.n))
        else:
            record = generate(config, corpus, progress=progress)
    finally:
        bar.close()
    return record, time.perf_counter() - t0


def run(args: argparse.Namespace, report: Callable[[str, float], object] | None = None) -> int:
    """The command; ``report(stage, fraction)`` (optional, the app's progress bar) hears each stage by name.

    A ``report`` that returns False during sampling stops the run (the sampler raises ``Stopped``).
    """
    import numpy as np

    from nps import __version__
    from nps.analysis import analyse_record, jsonable
    from nps.cache import write_text
    from nps.cli.evaluate import write_pictures
    from nps.config import resolve_encoder, warn_fitted
    from nps.corpora import load_corpus
    from nps.encoders import ENCODERS, get_encoder
    from nps.errors import NPSError
    from nps.lab import plots
    from nps.lab.report import write_report
    from nps.machine import machine_description
    from nps.metrics.classifier import load_classifier
    from nps.metrics.evaluation import record_metrics, research_line

    def say(text: str, fraction: float) -> object:
        return None if report is None else report(text, min(max(fraction, 0.0), 1.0))

    preset = QUICK if args.quick else FULL
    n = args.n if args.n is not None else preset["n"]
    subset = args.subset if args.subset is not None else preset["subset"]
    if n < 2:
        raise NPSError(f"--n {n} must be >= 2 (IS and FID need several samples).")
    positive(subset, "--subset", 0, 2**63 - 1)
    positive(args.entropy_window, "--entropy-window", 1, 255)
    if args.ray_cpus is not None:
        positive(args.ray_cpus, "--ray-cpus", 1, 4096)
    sampler_kw = {f.name: getattr(args, f.name) for f in FIELDS.values()
                  if f.ablate and f.name != "k" and getattr(args, f.name, None) is not None}
    # Parameter errors before any loading (the corpus-dependent checks follow once it is loaded).
    GenerationConfig.make(corpus=args.corpus, n=n, seed=args.seed, batch_size=args.batch_size, device=args.device,
                          k=args.k if args.k is not None else DEFAULTS["k"], encoder="pca", **sampler_kw).check()
    if args.encoders is not None:  # a typo is refused here; an encoder that cannot load is skipped below
        bad = [e.strip() for e in args.encoders.split(",") if e.strip() not in ENCODERS]
        if bad or not args.encoders.strip():
            raise NPSError(f"--encoders '{args.encoders}' names {f'an unknown encoder {bad[0]!r}' if bad else 'none'}; "
                           f"give a comma list of {', '.join(sorted(ENCODERS))}.")
    from nps.baselines.compare import evaluate_baselines, select_models
    baselines = select_models(args.baselines, args.corpus)  # a typo or missing weights: one line, before any work
    out = writable_dir(args.out)
    (out / "records").mkdir(exist_ok=True)
    full_corpus = load_corpus(args.corpus, data_root=args.data_root)
    subset = None if subset in (0, len(full_corpus)) else min(subset, len(full_corpus))
    corpora = {"subset": load_corpus(args.corpus, subset=subset, data_root=args.data_root), "full": full_corpus}
    corpus = corpora["subset"]
    say("loading the classifier and encoders", 0.0)
    classifier = load_classifier(args.corpus)  # fail fast, before any generation
    notes: list[str] = []
    if args.encoders:
        names = [e.strip() for e in args.encoders.split(",")]
    else:  # the engine's default (auto: the measured best for this corpus) first: it is "the full model"
        best = resolve_encoder("auto", args.corpus)
        names = [best, *(e for e in ENCODERS if e != best)]
    memo: dict = {}  # the embedding-space memorisation encoder, fitted per corpus
    encoders = []
    for name in names:
        try:
            enc = get_encoder(name, corpus, device=args.device)
        except NPSError as exc:
            notes.append(f"encoder '{name}' skipped: {exc}")
            print(f"note: encoder '{name}' skipped: {exc}", file=sys.stderr)
            continue
        encoders.append(name)
        memo.setdefault("subset", enc)
    if not encoders:
        raise NPSError("no encoder could be loaded; pass --encoders pca.")
    k_subset = args.k if args.k is not None else auto_k(len(corpus))
    base = GenerationConfig.make(corpus=args.corpus, subset=subset, n=n, seed=args.seed, batch_size=args.batch_size,
                                 device=args.device, data_root=args.data_root, encoder=encoders[0], k=k_subset,
                                 **sampler_kw)
    fitted = base.fit_canvas(corpus.image_shape, seed_size_given=args.seed_size is not None)
    fitted.check(len(corpus), corpus.image_shape)
    warn_fitted(base, fitted, corpus.image_shape)
    base = fitted
    plan = ablation_plan(base, encoders, None if subset is None or args.no_full_corpus else len(full_corpus),
                         args.k if args.k is not None else DEFAULTS["k"])
    plan = select_plan(plan, args.only)
    prepare_indexes(plan, corpora, say)
    print(plan_estimate(plan, corpora), flush=True)

    results: dict = {}
    images: dict = {}
    refs = None
    for j, (slug, label, cfg, which) in enumerate(plan):
        head = f"configuration {j + 1}/{len(plan)}, {label}"

        def on_step(info, head=head, j=j) -> object:
            frac = (info.batch + info.step / max(info.total, 1)) / max(info.n_batches, 1)
            return say(f"{head}: sampling pixel {info.step}/{info.total}", (j + 0.9 * frac) / len(plan))

        say(f"{head}: building pools", j / len(plan))
        record, seconds = run_config(cfg, corpora[which], label, args.ray, args.ray_cpus, on_step=on_step)
        say(f"{head}: evaluating (IS, FID, entropies, intervals)", (j + 0.9) / len(plan))
        record.save(out / "records" / f"{_file_stem(slug)}.npz")
        if which == "subset":
            refs = record.reference if refs is None else refs
            if not np.array_equal(refs, record.reference):
                notes.append(f"{label}: references differ from the first configuration (sampler changed?).")
        if which not in memo:
            memo[which] = get_encoder(encoders[0], corpora[which], device=args.device)
        r = analyse_record(record, corpora[which], window=args.entropy_window, classifier=classifier,
                           encoder=memo[which])
        r["research"] = record_metrics(record, corpora[which], classifier=classifier)  # figures with intervals
        r["pictures"] = write_pictures(record, corpora[which], r, out, traces=2, prefix=_file_stem(slug) + "_")
        r.update(label=label, seconds=seconds, time_per_image_s=seconds / len(record), corpus_rows=which)
        results[slug] = r
        images[slug] = record.images
        s = r["scores"]["samples"] if r["scores"] else None
        print(f"{label}: IS {s['is_mean']:.2f} ± {s['is_std']:.2f}, " if s else f"{label}: ", end="")
        print(f"class H {r['entropy']['class']['mean']:.3f}, ID H {r['entropy']['image_id']['mean']:.3f}, "
              f"relaxed {r['relaxed_rate']:.2%}, {r['time_per_image_s']:.2f} s/image")
        print(research_line(r["research"]))

    say("writing the report", 1.0)
    grids = {results[s]["label"]: images[s] for s in (*(_slug(c) for c in ablation_sets()), "full:" + _slug(FULL_MODEL))
             if s in results}
    plots.save_ablation_grids(grids, out / "figure2.png")
    first = next(iter(results.values()))["scores"]
    command = "python -m nps " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    summary = {
        "corpus": args.corpus, "command": command, "version": __version__,
        "machine": machine_description(),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"), "figure2": "figure2.png",
        "real": first["real"] if first else None, "real_full": first["real_full"] if first else None,
        "notes": notes, "configs": results,
        "protocol": protocol(args, base, corpus, full_corpus, memo["subset"], classifier),
    }
    if baselines:  # Table 4: the same n, seed and metrics for the learned baselines, on the whole corpus
        summary["baselines"] = evaluate_baselines(baselines, full_corpus, n, args.seed, classifier)
    write_report(jsonable(summary), out)
    write_text(out / "metrics.json", json.dumps(jsonable(summary), indent=2, sort_keys=True) + "\n")
    print(f"wrote {out / 'report.md'} and {out / 'metrics.json'}")
    return 0


def protocol(args, base, corpus, full_corpus, memo_encoder, classifier) -> dict:
    """The protocol, in words, for the report."""
    acc = classifier.meta_.get("test_accuracy")
    return {
        "corpus": f"{args.corpus}: stratified subset of {len(corpus)} of {len(full_corpus)} training images "
                  f"(subset={base.subset}), the same for every configuration; test split {len(corpus.test)} images",
        "samples": f"n = {base.n} per configuration, seed {args.seed}; sample i draws its reference and its per-pixel "
                   "uniforms from the RNG stream (seed, i), so every configuration starts from the same references "
                   "and seed patches",
        "sampler": f"window {base.window}, sigma = {base.sigma_:.3f} (w/6.4), eps {base.eps}, locality radius "
                   f"{base.radius}, {base.seed_size}x{base.seed_size} seed patch from the reference, fill order by "
                   "most-known context; SSD-only and SSD+loc search every image of the subset",
        "representation": f"k = {base.k} nearest images to the reference (reference excluded) on the subset: "
                          "about half of one class (subset/20 within [8, 64]), because the paper-scale k = 64 "
                          "would be a large share of a small subset and mix classes. The rows marked 'all N' rerun "
                          "the full model on the whole corpus with k = "
                          f"{args.k if args.k is not None else DEFAULTS['k']} (paper scale; its references differ, "
                          "since they are drawn from the whole corpus); they are not part of the fair comparison",
        "IS": f"exp E[KL(p(y|x)||p(y))] under the project's CNN (test accuracy {acc}), 10 splits, mean ± std; the "
              "paper does not name its classifier, so its 6.23 is comparable in kind, not exactly",
        "FID": "Fréchet distance of the CNN's 128-d penultimate features to half A of the test split; the ceiling "
               "row scores n real images from the disjoint half B the same way (same sample size)",
        "entropy": f"Shannon entropy in bits over every {args.entropy_window}x{args.entropy_window} window "
                   "(stride 1, windows inside the canvas) of the class map (source labels) and image-ID map "
                   "(source ids); per-sample mean over windows, then mean ± std over samples. "
                   "The paper gives neither window nor log base: "
                   "if its figures are in nats, 2.496 nats = 3.60 bits and 1.075 nats = 1.55 bits",
        "composition": "distinct source images, share of pixels from the top-1 / top-5 sources, largest 4-connected "
                       "single-source region, label purity (share of pixels with the majority source label); "
                       "'class = reference's': share of samples the CNN assigns the reference image's label",
        "memorisation": "distance to the nearest training image (of the run's corpus) over the distance to the second "
                        f"nearest, in pixels and in {memo_encoder.identity} embeddings; share below 1/3, next to "
                        "500 real test images",
        "time": "wall-clock seconds per image of the generate call (pool building included) on this machine, "
                "whose 2 cores may be shared with other jobs, so read times as rough",
        "same references": "checked after each run: every configuration's references equal the first one's "
                           "(a mismatch would be listed under Notes)",
    }
