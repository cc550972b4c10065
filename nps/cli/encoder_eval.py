"""``python -m nps encoder-eval``: kNN@20 and linear-probe accuracy of an encoder and baselines."""

from __future__ import annotations

import argparse
import json
import time

from nps.cli._common import add_corpus_args, add_device_arg, writable_path
from nps.errors import NPSError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encoder-eval", help="kNN@20 and linear-probe accuracy of an encoder, with pca and pixels",
                       description="Embed the train and test splits (cached), then report kNN accuracy (k nearest "
                                   "train images by cosine, majority vote) and the top-1 test accuracy of a "
                                   "logistic-regression probe, and the class purity of the 64-image semantic pool, "
                                   "for the named encoder and the baselines.")
    add_corpus_args(p)
    add_device_arg(p)
    p.add_argument("--encoder", default="simclr", help="encoder to measure (default: %(default)s)")
    p.add_argument("--weights", default=None, help="SimCLR weights file (default: the shipped ones)")
    p.add_argument("--baselines", default="pca,pixels",
                   help="comma-separated encoders to compare with; '' for none (default: %(default)s)")
    p.add_argument("--k", type=int, default=20, help="neighbours in the kNN vote (default: %(default)s)")
    p.add_argument("--probe-max-train", type=int, default=None,
                   help="fit each probe on a stratified sample of at most N train images (default: all)")
    p.add_argument("--no-probe", action="store_true", help="kNN only")
    p.add_argument("--json", default=None, help="also write the table as JSON to this file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nps.cache import write_text
    from nps.corpora import load_corpus
    from nps.encoders import ENCODERS, get_encoder
    from nps.encoders.evaluate import evaluate_embeddings
    from nps.retrieval import embed_corpus

    names = [args.encoder] + [b.strip() for b in args.baselines.split(",") if b.strip() and b.strip() != args.encoder]
    for n in names:
        if n not in ENCODERS:
            raise NPSError(f"unknown encoder '{n}'; choose from {', '.join(sorted(ENCODERS))}.")
    from nps.encoders.hparams import check_device, check_number
    check_number("--k", args.k, 1, 10_000, integer=True)
    if args.probe_max_train is not None:
        check_number("--probe-max-train", args.probe_max_train, 10, 10**9, integer=True)
    if args.subset is not None:
        check_number("--subset", args.subset, 1, 10**9, integer=True)
    check_device(args.device)
    out = writable_path(args.json, ".json") if args.json else None
    corpus = load_corpus(args.corpus, args.subset, args.data_root)
    rows = []
    for n in names:
        t0 = time.perf_counter()
        kw = {"weights": args.weights} if (n == "simclr" and args.weights) else {}
        enc = get_encoder(n, corpus, device=args.device, **kw)
        table = embed_corpus(corpus, enc)
        scores = evaluate_embeddings(table.train, corpus.train_labels, table.test, corpus.test_labels, k=args.k,
                                     probe=not args.no_probe, probe_max_train=args.probe_max_train)
        rows.append({"encoder": n, "identity": enc.identity, "dim": int(table.train.shape[1]),
                     "knn": scores["knn"], "purity": scores["purity"], "probe": scores.get("probe"),
                     "seconds": round(time.perf_counter() - t0, 1)})
    probe_note = f", probe fit on <= {args.probe_max_train}" if args.probe_max_train else ""
    print(f"corpus {corpus.name}: {len(corpus)} train / {len(corpus.test)} test{probe_note}")
    print(f"{'encoder':<10} {'dim':>5} {f'kNN@{args.k}':>8} {'purity@64':>10} {'probe':>8} {'seconds':>8}")
    for r in rows:
        probe = f"{r['probe']:.4f}" if r["probe"] is not None else "-"
        print(f"{r['encoder']:<10} {r['dim']:>5} {r['knn']:>8.4f} {r['purity']:>10.4f} {probe:>8} {r['seconds']:>8.1f}")
    print("purity@64: mean share of a test image's 64 nearest train images with its label (the semantic pool's "
          "class purity at the sampler's default k)")
    if out:
        write_text(out, json.dumps({"corpus": corpus.name, "subset": corpus.subset, "k": args.k,
                                   "probe_max_train": args.probe_max_train, "rows": rows}, indent=2) + "\n")
        print(f"wrote {out}")
    return 0
