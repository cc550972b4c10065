"""``python -m nps baselines train|sample``: the learned models a user would pick instead of NPS.

``train`` writes ``<cache>/weights/baseline-<model>-<corpus>.safetensors`` (or ``--out``)
and a JSON card beside it (command, wall time, epochs, steps, machine, load, final
loss, sampling ms/image); ``--replace-shipped`` installs them as the shipped
``nps/weights/`` files and updates the manifest, as ``train-encoder`` does.
``sample`` writes a record-like ``.npz`` (images + config, no provenance) that
``python -m nps evaluate`` scores on the image metrics.  Every flag is checked first.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import time
from pathlib import Path

from nps.cli._common import add_corpus_args, writable_path
from nps.errors import NPSError

TIMING_N = 256  # images sampled after training to measure ms/image


def register(sub: argparse._SubParsersAction) -> None:
    from nps.baselines import COMMON, DEFAULTS, MODELS
    p = sub.add_parser("baselines", help="train and sample the learned baselines (VAE, DCGAN, rectified flow)",
                       description="Learned baselines beside NPS, trained on the CPU: " + "; ".join(
                           f"{m}: " + ", ".join(f"{k}={v}" for k, v in d.items()) for m, d in DEFAULTS.items())
                       + f". Common defaults: seed {COMMON['seed']}, threads {COMMON['threads']}, "
                         f"max-minutes {COMMON['max_minutes']}.")
    bsub = p.add_subparsers(dest="baselines_command", metavar="ACTION")
    t = bsub.add_parser("train", help="train one baseline and write its weights and JSON card",
                        description="Train a baseline on the train split. Stops at --epochs, --max-steps or the "
                                    "--max-minutes wall-time budget, whichever comes first; a non-finite loss "
                                    "stops it and keeps the last good snapshot. Writes to the cache (or --out); "
                                    "the shipped nps/weights/ files change only with --replace-shipped.")
    add_corpus_args(t)
    t.add_argument("--model", required=True, choices=tuple(MODELS), help="which baseline")
    t.add_argument("--epochs", type=int, default=None,
                   help="passes over the train split, 1..10000 (default: per model)")
    t.add_argument("--batch-size", type=int, default=None, help="images per step, 2..8192 (default: per model)")
    t.add_argument("--lr", type=float, default=None, help="Adam learning rate, in (0, 1] (default: per model)")
    t.add_argument("--latent", type=int, default=None, help="latent dims, vae and gan, 1..1024 (default: per model)")
    t.add_argument("--width", type=int, default=None, help="base channels / hidden units, 1..512 (default: per model)")
    t.add_argument("--sample-steps", type=int, default=None, help="flow only: Euler steps, 1..1000 (default: 32)")
    t.add_argument("--max-minutes", type=float, default=None,
                   help=f"wall-time budget in minutes, (0, 1440] (default: {COMMON['max_minutes']})")
    t.add_argument("--max-steps", type=int, default=None, help="stop after N >= 1 optimiser steps (reproducible)")
    t.add_argument("--seed", type=int, default=None, help="random seed, 0..2**32-1 (default: 0)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads, 1..256 (default: 1)")
    t.add_argument("--out", default=None,
                   help="weights file (default: <cache>/weights/baseline-<model>-<corpus>.safetensors); "
                        "a .json card goes beside it")
    t.add_argument("--replace-shipped", action="store_true",
                   help="after training, install the weights and card as the shipped "
                        "nps/weights/baseline-<model>-<corpus>.* and update MANIFEST.json (not with --out)")
    t.set_defaults(func=run_train)
    s = bsub.add_parser("sample", help="write N samples of a baseline as a record-like .npz",
                        description="Sample a trained baseline. Writes images (N,H,W) uint8 and a JSON config "
                                    "(model, weights sha256, seed, n); score it with `python -m nps evaluate`.")
    s.add_argument("--model", required=True, choices=tuple(MODELS), help="which baseline")
    s.add_argument("--corpus", default="mnist", help="corpus the weights were trained on (default: %(default)s)")
    s.add_argument("--weights", default=None, help="weights file (default: the shipped, else the cache's)")
    s.add_argument("--n", type=int, default=256, help="samples, 1..1000000 (default: %(default)s)")
    s.add_argument("--seed", type=int, default=0, help="random seed, 0..2**32-1 (default: %(default)s)")
    s.add_argument("--threads", type=int, default=1, help="torch CPU threads, 1..256 (default: %(default)s)")
    s.add_argument("--out", required=True, help="output .npz")
    s.set_defaults(func=run_sample)
    r = bsub.add_parser("report", help="a markdown table of baselines beside NPS on the same metrics",
                        description="Read the metrics.json that `nps evaluate` wrote for each sample file or record "
                                    "and print (or write) one markdown table with the baselines' training and "
                                    "sampling cost from their weights cards.")
    r.add_argument("--metrics", action="append", required=True, metavar="LABEL=PATH",
                   help="a row: its label and an evaluate output folder or metrics.json (repeatable)")
    r.add_argument("--out", default=None, help="markdown file to write (default: print)")
    r.set_defaults(func=run_report)
    c = bsub.add_parser("compare", help="add the baselines to a finished ablation report (Table 4)",
                        description="Sample each baseline at the ablation's n and seed, score it with the same "
                                    "metrics and intervals as the ablation's records (against the whole corpus), "
                                    "and rewrite DIR/report.md and DIR/metrics.json with Table 4. The NPS rows are "
                                    "read from DIR/metrics.json, not regenerated.")
    c.add_argument("folder", help="an `nps ablate --out` folder (holds metrics.json)")
    c.add_argument("--baselines", default="auto", metavar="auto|LIST",
                   help="auto = every baseline with weights for the corpus, or a comma list of vae,gan,flow "
                        "(default: %(default)s)")
    c.add_argument("--docs", default=None, metavar="FILE.md",
                   help="also write the report without per-configuration pictures to FILE.md, with Figure 2 "
                        "copied beside it as <FILE>-figure2.png (docs/ablation.md: docs/ablation-figure2.png)")
    c.add_argument("--rescore", action="store_true",
                   help="sample and score the baselines again even when metrics.json already holds them at this n "
                        "(default: reuse them and only rewrite the report)")
    c.add_argument("--data-root", default=None, help="extra folder to look for corpus files")
    c.set_defaults(func=run_compare)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _flags(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "latent", "width", "sample_steps",
                                          "max_minutes", "max_steps", "seed", "threads")}


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (given options only, defaults are in the card)."""
    parts = ["python -m nps baselines train", "--corpus", args.corpus, "--model", args.model]
    for key, value in [("subset", args.subset), ("data_root", args.data_root), *_flags(args).items(),
                       ("out", args.out)]:
        if value is not None:
            parts += ["--" + key.replace("_", "-"), str(value)]
    if args.replace_shipped:
        parts.append("--replace-shipped")
    return " ".join(parts[:1] + [shlex.quote(p) for p in parts[1:]])


def load_average() -> str:
    """``uptime``'s load averages (1, 5, 15 min) from /proc/loadavg, or "unknown"."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def sampling_ms_per_image(model, n: int = TIMING_N) -> float:
    """Wall milliseconds per image to sample ``n`` images (seed 0), on this machine now."""
    from nps.baselines.io import sample_images
    t0 = time.perf_counter()
    sample_images(model, n, 0)
    return round((time.perf_counter() - t0) * 1000 / n, 3)


def run_train(args: argparse.Namespace) -> int:
    from nps.baselines import check_hparams
    from nps.cli.train_encoder import weights_output
    from nps.encoders.hparams import check_number

    flags = _flags(args)
    hp = check_hparams(args.model, flags)  # every flag before any work
    if args.subset is not None:
        check_number("--subset", args.subset, 1, 10**9, integer=True)
    kind = f"baseline-{args.model}"
    out = weights_output(kind, args)

    from nps.baselines.io import load_model, save_weights
    from nps.baselines.train import train_baseline
    from nps.cache import atomic_write
    from nps.corpora import load_corpus
    from nps.machine import machine_description

    corpus = load_corpus(args.corpus, args.subset, args.data_root)
    load_before = load_average()
    t0 = time.perf_counter()

    def progress(h: dict) -> None:
        losses = ", ".join(f"{k} {v:.4f}" for k, v in h.items() if k not in ("epoch", "steps", "seconds"))
        print(f"epoch {h['epoch']}: {h['steps']} steps, {losses} ({h['seconds']:.0f} s)", flush=True)

    model, report = train_baseline(args.model, corpus.train, flags, progress=progress)
    save_weights(out, model, {"model": args.model, "corpus": corpus.name, "hparams": hp,
                              "image_shape": report["image_shape"]})
    loaded = load_model(out)  # what was written is what is timed
    ms = sampling_ms_per_image(loaded)
    card = {"command": command_line(args), "model": args.model, "corpus": corpus.name, "subset": corpus.subset,
            **{k: report[k] for k in ("train_images", "batch_size", "steps", "steps_per_epoch",
                                      "epochs_completed", "stop_reason", "final_loss", "final_loss_over_steps",
                                      "parameters", "history", "hparams")},
            "epochs": hp["epochs"], "train_seconds": report["train_seconds"],
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "sampling_ms_per_image": ms, "sampling_timing": f"{TIMING_N} images, seed 0, "
                                                             f"{hp['threads']} thread(s)",
            "weights_bytes": out.stat().st_size, "weights_sha256": loaded.sha256_,
            "machine": machine_description(), "load_average": {"before": load_before, "after": load_average()},
            "cpu_count": os.cpu_count(), "created": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
    js = out.with_suffix(".json")
    atomic_write(js, lambda f: f.write((json.dumps(card, indent=2) + "\n").encode()))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {report['parameters']} parameters) and {js}")
    print(f"{report['steps']} steps ({report['epochs_completed']} epochs) in {report['train_seconds']:.0f} s, "
          f"stopped by {report['stop_reason']}; final loss {report['final_loss']}; sampling {ms} ms/image")
    if args.replace_shipped:
        from nps.shipped import install_shipped
        install_shipped(kind, args.corpus, out)
        print(f"replaced the shipped {kind}-{args.corpus}.safetensors and its entry in nps/weights/MANIFEST.json")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from nps.baselines import check_model
    from nps.encoders.hparams import SEED_MAX, check_number, check_threads

    check_model(args.model)
    check_number("--n", args.n, 1, 1_000_000, integer=True)
    check_number("--seed", args.seed, 0, SEED_MAX, integer=True)
    check_threads(args.threads)
    out = writable_path(args.out, ".npz")

    import torch

    from nps.baselines import save_samples
    from nps.baselines.io import load_model, locate, sample_images

    torch.set_num_threads(args.threads)
    path = Path(args.weights) if args.weights else locate(args.model, args.corpus)
    model = load_model(path)
    if model.name != args.model:
        raise NPSError(f"'{path}' holds the {model.name} baseline, not {args.model}; pass --model {model.name}.")
    t0 = time.perf_counter()
    images = sample_images(model, args.n, args.seed)
    ms = (time.perf_counter() - t0) * 1000 / args.n
    config = {"model": args.model, "corpus": model.meta_["corpus"], "weights": path.name,
              "weights_sha256": model.sha256_, "seed": args.seed, "n": args.n,
              "hparams": model.meta_["hparams"], "threads": args.threads,
              "sampling_ms_per_image": round(ms, 3)}
    save_samples(out, images, config)
    print(f"wrote {out}: {args.n} {args.model} samples {images.shape[1:]} ({ms:.2f} ms/image)")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from nps.baselines.report import comparison_lines, read_metrics
    rows = []
    for item in args.metrics:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise NPSError(f"--metrics {item!r} must be LABEL=PATH, e.g. vae=/tmp/ev_vae.")
        rows.append((label, read_metrics(path)))
    out = writable_path(args.out, ".md") if args.out else None
    text = "\n".join(comparison_lines(rows)) + "\n"
    if out is None:
        print(text, end="")
        return 0
    from nps.cache import atomic_write
    atomic_write(out, lambda f: f.write(text.encode()))
    print(f"wrote {out}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from nps.baselines.compare import add_to_ablation
    folder = Path(args.folder)
    if not (folder / "metrics.json").is_file():
        raise NPSError(f"'{folder}' holds no metrics.json; run `python -m nps ablate --out {folder}` first.")
    docs = writable_path(args.docs, ".md") if args.docs else None
    report, entries = add_to_ablation(folder, args.baselines, args.data_root, docs, args.rescore)
    from nps.metrics.evaluation import research_line
    for e in entries.values():
        print(f"{e['label']}: {e['sampling_ms_per_image']} ms/image;" + research_line(e["research"]))
    print(f"wrote {report}" + (f" and {docs}" if docs else ""))
    return 0
