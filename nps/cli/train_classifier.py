"""``python -m nps train-classifier``: train the IS/FID classifier for an MNIST-like corpus.

Output: ``--out PATH``, else ``<cache>/weights/classifier-<corpus>.safetensors``, which
:func:`nps.metrics.classifier.load_classifier` uses when no shipped classifier exists for
the corpus (shipped weights win; see :mod:`nps.shipped`).  The tracked file in
``nps/weights/`` and its manifest entry change only with ``--replace-shipped``.
Every flag is checked before the corpus is loaded.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from nps.cli._common import add_corpus_args
from nps.cli.train_encoder import shipped_note, weights_output


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-classifier", help="train the small CNN used for Inception Score and classifier FID",
        description="Train the small CNN (conv32-conv64-fc128) whose class probabilities give the Inception "
                    "Score and whose 128-d penultimate features give the classifier FID. Writes "
                    "weights (.safetensors) and a JSON with the command, epochs, wall time, machine and "
                    "test accuracy beside them, to the cache (or --out), never over the shipped "
                    "nps/weights/ files unless --replace-shipped is given. Lookup order when IS/FID need a "
                    "classifier: the shipped file (verified against nps/weights/MANIFEST.json), then "
                    "<cache>/weights/classifier-<corpus>.safetensors, then (digits only) one trained on the fly.")
    add_corpus_args(p)
    p.add_argument("--out", default=None,
                   help="weights path (default: <cache>/weights/classifier-<corpus>.safetensors, used when no "
                        "shipped classifier exists for the corpus)")
    p.add_argument("--replace-shipped", action="store_true",
                   help="after training, install the weights as the shipped "
                        "nps/weights/classifier-<corpus>.safetensors and update nps/weights/MANIFEST.json "
                        "(for maintainers; not with --out)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs, 1..1000 (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, help="minibatch size, 1..8192 (default: %(default)s)")
    p.add_argument("--lr", type=float, default=3e-3,
                   help="peak learning rate, one-cycle Adam, in (0, 1] (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="RNG seed, 0..2**32-1 (default: %(default)s)")
    p.add_argument("--augment", action="store_true", help="random +-2 px shifts while training")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads, 1..256 (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nps.encoders.hparams import check_classifier_params, check_number, check_threads

    check_classifier_params(args.epochs, args.batch_size, args.lr, args.seed)  # every flag before any work
    check_threads(args.threads)
    if args.subset is not None:
        check_number("--subset", args.subset, 1, 10**9, integer=True)
    out = weights_output("classifier", args)

    import torch
    from tqdm import tqdm

    from nps.corpora import load_corpus
    from nps.metrics.classifier import train_classifier

    corpus = load_corpus(args.corpus, subset=args.subset, data_root=args.data_root)
    torch.set_num_threads(args.threads)
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
    shipped_note("classifier", args, out)
    return 0
