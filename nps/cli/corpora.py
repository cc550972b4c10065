"""``python -m nps corpora``: which corpora this machine has, and how to get the rest."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "corpora", help="list the corpora available on this machine and how to get the others",
        description="List the corpora (one row per entry of nps.corpora.registry: mnist, fashion-mnist, cifar10, "
                    "digits, folder:PATH, mnist-deformed:N): where each loads from on this machine, or how to get "
                    "it, with its image shape, colour and licence. By default only the files are located "
                    "(fast); --verify loads every available named corpus fully.")
    p.add_argument("--data-root", default=None, help="extra folder to look for corpus files (as in generate)")
    p.add_argument("--verify", action="store_true", help="load each available corpus to check its files (slower)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nps.corpora import corpus_status, parse_corpus_name

    rows = corpus_status(args.data_root, verify=args.verify)
    width = max(len(r.name) for r in rows)
    print(f"{'CORPUS':<{width}}  {'STATUS':<9}  SOURCE / HOW TO GET IT")
    for r in rows:
        print(f"{r.name:<{width}}  {'available' if r.available else 'missing':<9}  {r.detail}")
        entry = parse_corpus_name(r.name).entry
        # Indented, so a reader of the first column (a script, the tests) sees one row per corpus.
        print(f"{'':<{width}}  {'':<9}  {entry.shape}, {entry.colour}; {entry.licence}")
    missing = sum(not r.available for r in rows)
    print(f"\n{len(rows) - missing} of {len(rows)} available. Use one with `--corpus NAME`; "
          "`--subset N` takes a class-stratified subset.")
    return 0
