"""``python -m nps train-encoder``: train SimCLR weights for a corpus.

Output: ``--out PATH``, else ``<cache>/weights/simclr-<corpus>.safetensors``, the file
the encoder lookup uses when no shipped weights exist for the corpus (shipped weights
win; see :mod:`nps.shipped`).  The tracked ``nps/weights/`` file and its manifest entry
change only with ``--replace-shipped``, after training and evaluation succeeded.
Every flag is checked before the corpus is loaded.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from nps.cli._common import add_corpus_args, add_device_arg, writable_path
from nps.errors import NPSError
from nps.machine import machine_description


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-encoder", help="train a SimCLR encoder and save its weights (.safetensors + .json)",
                       description="Train SimCLR (NT-Xent, MLP head) on a corpus. Writes weights, a JSON report "
                                   "(command, epochs, wall time, machine, kNN@20 and probe accuracy) and a "
                                   "checkpoint per epoch. Weights go to the cache (or --out), never over the "
                                   "shipped nps/weights/ files unless --replace-shipped is given. Lookup order "
                                   "when an encoder is used: the shipped file (verified against "
                                   "nps/weights/MANIFEST.json), then <cache>/weights/simclr-<corpus>.safetensors.")
    add_corpus_args(p)
    add_device_arg(p)
    p.add_argument("--epochs", type=int, default=5, help="passes over the train split, 1..10000 (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=256, help="images per step, 2..8192 (default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate, in (0, 1] (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.5,
                   help="NT-Xent temperature, 0.01..10 (default: %(default)s)")
    p.add_argument("--backbone", choices=("small_cnn", "resnet18"), default=None,
                   help="default: small_cnn for grayscale, resnet18 for colour")
    p.add_argument("--width", type=int, default=None, help="backbone base width, 1..512 (default: 16 cnn, 64 resnet)")
    p.add_argument("--readout", choices=("max", "avg"), default="max",
                   help="small_cnn global pooling of the last feature map (default: %(default)s)")
    p.add_argument("--augment", choices=("glyph", "garment", "colour"), default=None,
                   help="augmentation recipe (default: garment for fashion-mnist, colour for colour images, "
                        "glyph otherwise)")
    p.add_argument("--aug-group", type=int, default=8,
                   help="images sharing one draw of augmentation parameters, 1..8192; 1 = per image "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed, 0..2**32-1 (default: %(default)s)")
    p.add_argument("--out", default=None,
                   help="weights file (default: <cache>/weights/simclr-<corpus>.safetensors, used when no "
                        "shipped weights exist for the corpus); a .json goes beside it")
    p.add_argument("--replace-shipped", action="store_true",
                   help="after training, install the weights as the shipped nps/weights/simclr-<corpus>.safetensors "
                        "and update nps/weights/MANIFEST.json (for maintainers; not with --out)")
    p.add_argument("--checkpoint", default=None,
                   help="per-epoch checkpoint (default: <cache>/checkpoints/<out name>.pt)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint of an interrupted run")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads, 1..256 (default: torch's choice)")
    p.add_argument("--probe-max-train", type=int, default=None,
                   help="fit the final linear probe on at most N >= 1 train images (default: all)")
    p.add_argument("--no-eval", action="store_true", help="skip the final full kNN/probe evaluation")
    p.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (every option spelled out)."""
    parts = ["python -m nps train-encoder", "--corpus", args.corpus]
    for flag, value in (("--subset", args.subset), ("--data-root", args.data_root), ("--device", args.device),
                        ("--epochs", args.epochs), ("--batch-size", args.batch_size), ("--lr", args.lr),
                        ("--temperature", args.temperature), ("--backbone", args.backbone), ("--width", args.width),
                        ("--readout", args.readout), ("--augment", args.augment),
                        ("--aug-group", args.aug_group), ("--seed", args.seed), ("--out", args.out),
                        ("--threads", args.threads), ("--probe-max-train", args.probe_max_train)):
        if value is not None:
            parts += [flag, str(value)]
    if getattr(args, "replace_shipped", False):
        parts.append("--replace-shipped")
    return " ".join(parts[:1] + [shlex.quote(p) for p in parts[1:]])


def weights_output(kind: str, args: argparse.Namespace) -> Path:
    """The weights file a training command writes, checked writable before any work.

    ``--out PATH`` if given (never inside nps/weights/), else the cache's
    ``weights/<kind>-<corpus>.safetensors``.  With ``--replace-shipped`` training still
    writes there; the result is installed into nps/weights/ (and the manifest) at the
    end, so the folder and manifest must be writable now.  Used by train-classifier too.
    """
    from nps.corpora import CORPUS_NAMES
    from nps.shipped import MANIFEST_NAME, WEIGHTS_DIR, is_shipped_path, shipped_weights, trained_weights

    if args.replace_shipped:
        if args.out:
            raise NPSError(f"--replace-shipped installs the weights as nps/weights/{kind}-<corpus>.safetensors; "
                           "drop --out or drop --replace-shipped.")
        if args.corpus not in CORPUS_NAMES:
            raise NPSError(f"--replace-shipped is for the named corpora ({', '.join(CORPUS_NAMES)}), not "
                           f"'{args.corpus}'; use --out instead.")
        writable_path(str(shipped_weights(kind, args.corpus)), ".safetensors")
        writable_path(str(WEIGHTS_DIR / MANIFEST_NAME))
    if args.out:
        out = writable_path(args.out, ".safetensors")
        if is_shipped_path(out):
            raise NPSError(f"'{out}' is in the shipped weights folder; write elsewhere, or use --replace-shipped "
                           "to replace the shipped weights on purpose.")
        return out
    default = trained_weights(kind, args.corpus)
    try:
        default.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NPSError(f"cannot create '{default.parent}' ({exc.strerror}); pass --out PATH or set "
                       "NPS_CACHE_DIR to a writable folder.") from None
    return writable_path(str(default), ".safetensors")


def checkpoint_path(args: argparse.Namespace, out: Path) -> Path:
    """``--checkpoint`` or ``<cache>/checkpoints/<out name>.pt``, checked writable before any work."""
    from nps.cache import cache_root
    if args.checkpoint:
        return writable_path(args.checkpoint)
    ckpt = cache_root() / "checkpoints" / f"{out.stem}.pt"
    try:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NPSError(f"cannot create '{ckpt.parent}' ({exc.strerror}); pass --checkpoint PATH.") from None
    return writable_path(str(ckpt))


def shipped_note(kind: str, args: argparse.Namespace, out: Path) -> None:
    """After training: install with --replace-shipped, or say which file the lookup will use."""
    from nps.shipped import install_shipped, shipped_weights
    shipped = shipped_weights(kind, args.corpus)
    if args.replace_shipped:
        install_shipped(kind, args.corpus, out)
        print(f"replaced the shipped {shipped.name} and its entry in nps/weights/MANIFEST.json")
    elif not args.out and shipped.is_file():
        use = (f"`python -m nps encoder-eval --corpus {shlex.quote(args.corpus)} "
               f"--weights {shlex.quote(str(out))}`" if kind == "simclr"
               else f"`nps.metrics.classifier.Classifier.load('{out}')`")
        print(f"note: the shipped {shipped.name} exists for {args.corpus} and is used first; use {out} "
              f"with {use}, or retrain with --replace-shipped to make it the default.")
    elif not args.out:
        print(f"{out.name} is now the {kind} used for {args.corpus} (no shipped weights exist for it).")


def run(args: argparse.Namespace) -> int:
    from nps.encoders.hparams import check_number, check_simclr_config, check_threads
    from nps.encoders.train import TrainConfig

    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, temperature=args.temperature,
                      backbone=args.backbone, width=args.width, readout=args.readout,
                      augment=args.augment, aug_group=args.aug_group, seed=args.seed,
                      device=args.device)
    check_simclr_config(cfg)  # every flag before any work
    check_threads(args.threads)
    if args.subset is not None:
        check_number("--subset", args.subset, 1, 10**9, integer=True)
    if args.probe_max_train is not None:
        check_number("--probe-max-train", args.probe_max_train, 1, 10**9, integer=True)
    out = weights_output("simclr", args)
    ckpt = checkpoint_path(args, out)

    import torch

    from nps.corpora import load_corpus
    from nps.encoders.evaluate import evaluate_embeddings
    from nps.encoders.simclr import SimCLREncoder, save_weights
    from nps.encoders.train import train_simclr, weights_meta

    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = load_corpus(args.corpus, args.subset, args.data_root)
    t0 = time.perf_counter()
    model, report = train_simclr(corpus, cfg, checkpoint=ckpt, resume=args.resume, progress=True)
    save_weights(out, model.backbone, weights_meta(corpus, cfg, model))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB); checkpoints in {ckpt}")
    result = {
        "command": command_line(args),
        "corpus": corpus.name, "subset": corpus.subset, "train_images": len(corpus),
        "epochs": args.epochs, "batch_size": args.batch_size, "config": report["config"],
        "history": report["history"], "train_seconds": report["train_seconds"],
        "machine": machine_description(),
    }
    if not args.no_eval:
        t1 = time.perf_counter()
        enc = SimCLREncoder(out, device=args.device).fit(corpus)
        scores = evaluate_embeddings(enc.encode(corpus.train), corpus.train_labels, enc.encode(corpus.test),
                                     corpus.test_labels, k=20, probe_max_train=args.probe_max_train)
        result.update({"knn20": round(scores["knn"], 4), "probe": round(scores["probe"], 4),
                       "eval": f"kNN@20 cosine majority vote and logistic-regression probe, full "
                               f"{len(corpus)} train / {len(corpus.test)} test"
                               + (f" (probe fit on {args.probe_max_train})" if args.probe_max_train else ""),
                       "eval_seconds": round(time.perf_counter() - t1, 1)})
        print(f"kNN@20 {scores['knn']:.4f}  linear probe {scores['probe']:.4f}")
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    js = out.with_suffix(".json")
    from nps.cache import write_text
    write_text(js, json.dumps(result, indent=2) + "\n")
    print(f"wrote {js}")
    shipped_note("simclr", args, out)
    return 0
