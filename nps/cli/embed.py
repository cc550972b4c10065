"""``python -m nps embed``: write a corpus's embeddings under an encoder to an .npz.

Also reports, with ``--index ivf|hnsw``, the recall@k of that approximate index
against the exact IndexFlatIP, on the test-split queries.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nps.cache import probe_writable
from nps.cli._common import add_corpus_args, add_device_arg, writable_path
from nps.errors import NPSError

if TYPE_CHECKING:
    from nps.retrieval import EmbeddingTable


def register(sub: argparse._SubParsersAction) -> None:
    from nps.config import DEFAULTS

    p = sub.add_parser(
        "embed", help="write train/test embeddings of a corpus (and report approximate-index recall)",
        description="Embed the train and test splits of a corpus with an encoder and write an .npz with keys "
                    "train (N,D) float32, test (M,D) float32 (rows L2-normalised), labels_train (N,) and "
                    "labels_test (M,) int64, and meta (JSON). Embeddings come from the cache when they were "
                    "built before. With --index ivf|hnsw, also build that approximate faiss index (cached) and "
                    "print its recall@k against the exact IndexFlatIP on the test queries.")
    add_corpus_args(p)
    p.add_argument("--encoder", default=DEFAULTS["encoder"],
                   help="encoder name: auto, simclr, pca, pixels (default: %(default)s); simclr uses the shipped "
                        "weights (verified against nps/weights/MANIFEST.json), else "
                        "<cache>/weights/simclr-<corpus>.safetensors from train-encoder")
    p.add_argument("--out", required=True, help="output .npz path (checked before any work)")
    p.add_argument("--index", choices=("flat", "ivf", "hnsw"), default="flat",
                   help="also build this index; ivf/hnsw print recall@k vs exact (default: %(default)s)")
    p.add_argument("--k", type=int, default=DEFAULTS["k"],
                   help="k for the recall report, 1..10000 (default: %(default)s)")
    p.add_argument("--nprobe", type=int, default=16, help="IVF lists probed per query, 1..65536 (default: %(default)s)")
    p.add_argument("--nlist", type=int, default=None,
                   help="IVF lists, 1..min(65536, N) (default: min(4*sqrt(N), N/39))")
    p.add_argument("--ef-search", type=int, default=64, help="HNSW search beam, 1..65536 (default: %(default)s)")
    add_device_arg(p)
    p.set_defaults(func=run)


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez to a temp file in the same folder, then rename (never a half-written file)."""
    from nps.cache import atomic_write  # raises a one-line NPSError on OSError
    atomic_write(path, lambda f: np.savez(f, **arrays))


def check_args(args: argparse.Namespace) -> None:
    """Every flag of ``embed`` that can be checked without the corpus, before any work."""
    from nps.encoders import ENCODERS
    from nps.encoders.hparams import check_device, check_number

    if args.encoder != "auto" and args.encoder not in ENCODERS:
        raise NPSError(f"unknown encoder '{args.encoder}'; choose auto or one of {', '.join(sorted(ENCODERS))}.")
    if args.subset is not None:
        check_number("--subset", args.subset, 1, 10**9, integer=True)
    check_number("--k", args.k, 1, 10_000, integer=True)
    check_number("--nprobe", args.nprobe, 1, 65_536, integer=True)
    check_number("--ef-search", args.ef_search, 1, 65_536, integer=True)
    if args.nlist is not None:
        check_number("--nlist", args.nlist, 1, 65_536, integer=True)
    check_device(args.device)


def run(args: argparse.Namespace) -> int:
    from nps.corpora import load_corpus
    from nps.encoders import get_encoder
    from nps.retrieval import embed_corpus

    check_args(args)
    out = writable_path(args.out, ".npz")
    probe_writable(out)  # a real file in the folder: os.access says yes to root on a read-only mount
    corpus = load_corpus(args.corpus, subset=args.subset, data_root=args.data_root)
    if args.index == "ivf" and args.nlist is not None and args.nlist > len(corpus):
        raise NPSError(f"--nlist {args.nlist} is more than the {len(corpus)} training images; give at most "
                       f"{len(corpus)} (or leave it out).")
    t0 = time.perf_counter()
    encoder = get_encoder(args.encoder, corpus, device=args.device)
    print(f"embedding {corpus.name} ({len(corpus)} train + {len(corpus.test)} test) with "
          f"{encoder.identity} ...", file=sys.stderr)
    table = embed_corpus(corpus, encoder)
    for split, emb in (("train", table.train), ("test", table.test)):
        if not np.isfinite(emb).all():  # a table cached before non-finite embeddings were refused
            raise NPSError(f"the cached {split} embeddings ({table.key}) hold NaN or inf; clear them with "
                           f"`python -m nps cache clear {table.key}` and restore the encoder's weights.")
    meta = {"corpus": corpus.name, "subset": corpus.subset, "corpus_hash": corpus.content_hash,
            "encoder": args.encoder, "encoder_identity": encoder.identity, "cache_key": table.key}
    save_npz_atomic(out, {
        "train": np.asarray(table.train, np.float32), "test": np.asarray(table.test, np.float32),
        "labels_train": np.asarray(corpus.train_labels, np.int64),
        "labels_test": np.asarray(corpus.test_labels, np.int64),
        "meta": np.array(json.dumps(meta, sort_keys=True)),
    })
    print(f"wrote {out}: train {table.train.shape} test {table.test.shape} float32 "
          f"({encoder.identity}, cache key {table.key}, {time.perf_counter() - t0:.1f} s)")
    if args.index != "flat":
        report_recall(table, args)
    return 0


def report_recall(table: EmbeddingTable, args: argparse.Namespace) -> float:
    """Build the approximate index and print its recall@k against the exact one."""
    from nps.retrieval import SourceIndex, recall_of

    queries, what = table.test, "test"
    if len(queries) == 0:  # e.g. a folder corpus too small to hold out a test split
        queries, what = table.train[:1000], "train"
    t0 = time.perf_counter()
    approx = SourceIndex(args.index, nlist=args.nlist, nprobe=args.nprobe, ef_search=args.ef_search).fit(table)
    built = time.perf_counter() - t0
    exact = SourceIndex("flat").fit(table)
    timings, ids = {}, {}
    for name, index in (("exact", exact), (args.index, approx)):
        t0 = time.perf_counter()
        ids[name] = index.search(queries, args.k)[1]
        timings[name] = 1e3 * (time.perf_counter() - t0) / max(1, len(queries))
    recall = recall_of(ids[args.index], ids["exact"])  # = recall_at_k(approx, exact, queries, k), searched once
    k = min(args.k, exact.ntotal_)
    settings = f"nlist={approx.nlist_}, nprobe={args.nprobe}" if args.index == "ivf" else \
        f"M={approx.hnsw_m}, efSearch={args.ef_search}"
    print(f"recall@{k} of {args.index} ({settings}) vs exact IndexFlatIP on {len(queries)} {what} queries: "
          f"{recall:.4f}")
    print(f"search: {timings[args.index]:.3f} ms/query {args.index}, {timings['exact']:.3f} ms/query exact; "
          f"{args.index} fit (or cache load) {built:.2f} s")
    return recall
