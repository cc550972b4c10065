"""``python -m nps lessons build|verify``: the precomputed lesson records shipped in ``nps/lessons/``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from nps.lab.lesson_records import RUNS
    p = sub.add_parser(
        "lessons", help="build or verify the lesson records shipped in nps/lessons/ (the lab's instant lessons)",
        description="The lab's lessons and the first view of each constraint toggle on MNIST open records built "
                    "once with the real engine (n = 16, seed 0) and shipped with their sha256 in "
                    "nps/lessons/MANIFEST.json. `build` regenerates them (minutes of CPU: run it with nice); "
                    "`verify` checks every shipped file's hash, the record validator and its provenance against "
                    "the corpus, without building.")
    p.add_argument("action", choices=("build", "verify"), help="build the records, or verify the shipped ones")
    p.add_argument("--only", action="append", choices=sorted(RUNS), metavar="NAME",
                   help=f"only this record (repeatable): {', '.join(RUNS)}")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nps.corpora import load_corpus
    from nps.lab.lesson_records import RUNS, build, open_shipped
    names = args.only or list(RUNS)
    if args.action == "build":
        for entry in build(names):
            print(f"built nps/lessons/{entry['name']}.npz: {entry['bytes']:,} bytes, {entry['seconds']:.1f} s, "
                  f"sha256 {entry['sha256'][:12]}…")
        return 0
    for name in names:
        cfg = RUNS[name].config
        rec = open_shipped(name, load_corpus(cfg.corpus, cfg.subset))
        print(f"ok nps/lessons/{name}.npz: {len(rec)} samples, provenance exact")
    return 0
