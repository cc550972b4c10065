"""``python -m nps train-encoder``: train SimCLR weights for a corpus."""

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
                                   "checkpoint per epoch.")
    add_corpus_args(p)
    add_device_arg(p)
    p.add_argument("--epochs", type=int, default=5, help="passes over the train split (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=256, help="images per step (default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.5, help="NT-Xent temperature (default: %(default)s)")
    p.add_argument("--backbone", choices=("small_cnn", "resnet18"), default=None,
                   help="default: small_cnn for grayscale, resnet18 for colour")
    p.add_argument("--width", type=int, default=None, help="backbone base width (default: 16 cnn, 64 resnet)")
    p.add_argument("--readout", choices=("max", "avg"), default="max",
                   help="small_cnn global pooling of the last feature map (default: %(default)s)")
    p.add_argument("--augment", choices=("glyph", "garment", "colour"), default=None,
                   help="augmentation recipe (default: garment for fashion-mnist, colour for colour images, "
                        "glyph otherwise)")
    p.add_argument("--aug-group", type=int, default=8,
                   help="images sharing one draw of augmentation parameters; 1 = per image (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--out", default=None,
                   help="weights file (default: nps/weights/simclr-<corpus>.safetensors); a .json goes beside it")
    p.add_argument("--checkpoint", default=None,
                   help="per-epoch checkpoint (default: <cache>/checkpoints/<out name>.pt)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint of an interrupted run")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--probe-max-train", type=int, default=None,
                   help="fit the final linear probe on at most N train images (default: all)")
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
    return " ".join(parts[:1] + [shlex.quote(p) for p in parts[1:]])


def run(args: argparse.Namespace) -> int:
    import torch

    from nps.cache import cache_root
    from nps.corpora import load_corpus
    from nps.encoders.evaluate import evaluate_embeddings
    from nps.encoders.simclr import SimCLREncoder, save_weights, weights_path
    from nps.encoders.train import TrainConfig, train_simclr, weights_meta

    if args.epochs < 1 or args.batch_size < 2:
        raise NPSError("--epochs must be >= 1 and --batch-size >= 2.")
    out = writable_path(args.out or str(weights_path(args.corpus)), ".safetensors")
    ckpt = Path(args.checkpoint) if args.checkpoint else cache_root() / "checkpoints" / f"{out.stem}.pt"
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = load_corpus(args.corpus, args.subset, args.data_root)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, temperature=args.temperature,
                      backbone=args.backbone, width=args.width, readout=args.readout,
                      augment=args.augment, aug_group=args.aug_group, seed=args.seed,
                      device=args.device)
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
    js.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {js}")
    return 0
