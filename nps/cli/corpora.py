"""``python -m nps corpora``: which corpora this machine has, and how to get the rest."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "corpora", help="list the corpora available on this machine and how to get the others",
        description="List the named corpora (mnist, fashion-mnist, cifar10, digits, folder:PATH): where each "
                    "loads from on this machine, or how to get it. By default only the files are located "
                    "(fast); --verify loads every available corpus fully.")
    p.add_argument("--data-root", default=None, help="extra folder to look for corpus files (as in generate)")
    p.add_argument("--verify", action="store_true", help="load each available corpus to check its files (slower)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nps.corpora import corpus_status

    rows = corpus_status(args.data_root, verify=args.verify)
    width = max(len(r.name) for r in rows)
    print(f"{'CORPUS':<{width}}  {'STATUS':<9}  SOURCE / HOW TO GET IT")
    for r in rows:
        print(f"{r.name:<{width}}  {'available' if r.available else 'missing':<9}  {r.detail}")
    missing = sum(not r.available for r in rows)
    print(f"\n{len(rows) - missing} of {len(rows)} available. Use one with `--corpus NAME`; "
          "`--subset N` takes a class-stratified subset.")
    return 0
