"""``python -m nps train-classifier``: train the IS/FID classifier for an MNIST-like corpus."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from nps.cli._common import add_corpus_args, writable_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-classifier", help="train the small CNN used for Inception Score and classifier FID",
        description="Train the small CNN (conv32-conv64-fc128) whose class probabilities give the Inception "
                    "Score and whose 128-d penultimate features give the classifier FID. Writes "
                    "weights (.safetensors) and a JSON with the command, epochs, wall time, machine and "
                    "test accuracy beside them.")
    add_corpus_args(p)
    p.add_argument("--out", default=None,
                   help="weights path (default: nps/weights/classifier-<corpus>.safetensors)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, help="minibatch size (default: %(default)s)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate, one-cycle Adam (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="RNG seed (default: %(default)s)")
    p.add_argument("--augment", action="store_true", help="random +-2 px shifts while training")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from nps.corpora import load_corpus
    from nps.errors import NPSError
    from nps.metrics.classifier import train_classifier, weights_path

    if args.epochs < 1 or args.batch_size < 1 or not args.lr > 0:
        raise NPSError("--epochs and --batch-size must be >= 1 and --lr > 0.")
    out = writable_path(args.out or str(weights_path(args.corpus)), ".safetensors")
    corpus = load_corpus(args.corpus, subset=args.subset, data_root=args.data_root)
    torch.set_num_threads(max(1, args.threads))
    steps = -(-len(corpus) // args.batch_size)
    bar = tqdm(total=args.epochs * steps, desc=f"train classifier ({args.corpus})", unit="step")
    last = [0]

    def progress(epoch: int, step: int, loss: float) -> None:
        done = epoch * steps + step
        bar.update(done - last[0])
        last[0] = done
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.3f}")

    command = "python -m nps " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    clf = train_classifier(corpus, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                           augment=args.augment, progress=progress, command=command)
    bar.update(bar.total - last[0])
    bar.close()
    clf.save(out)
    print(json.dumps({k: clf.meta_[k] for k in ("corpus", "epochs", "wall_time_s", "test_accuracy")}))
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0
