"""``python -m nps merge``: join record shards of one run into a single record."""

from __future__ import annotations

import argparse

from nps.cli._common import writable_path
from nps.errors import NPSError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge", help="merge provenance-record shards of one run (a.npz b.npz ... --out all.npz)",
        description="Concatenate provenance records written by shards of one generate run (same config apart "
                    "from --n, --batch-size and --device), ordered by sample id. Shards that come from "
                    "different configs, or that overlap, are refused.")
    p.add_argument("records", nargs="+", metavar="RECORD", help="record .npz files written by generate")
    p.add_argument("--out", required=True, help="output .npz path (checked before any work)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nps import load_record, merge, save_record

    out = writable_path(args.out, ".npz")
    if len(set(args.records)) != len(args.records):
        raise NPSError("the same record is given twice; list each shard once.")
    records = [load_record(p) for p in args.records]
    merged = merge(records)
    save_record(merged, out)
    print(f"merged {len(merged)} samples from {len(records)} records into {out}")
    return 0
