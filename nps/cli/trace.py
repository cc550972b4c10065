"""``python -m nps trace``: where one pixel came from, and the constraint funnel that chose it."""

from __future__ import annotations

import argparse
import json

from nps.cli._common import add_record_corpus_args, record_corpus


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "trace", help="trace a generated pixel to its source and show its constraint funnel",
        description="Print the source (train id, position, label) of pixel (y, x) of one sample, and recompute "
                    "exactly how many candidate windows survived each constraint at the step that filled it "
                    "(the same numbers the app's funnel shows). The corpus is the record's named corpus, read from "
                    "--data-root or $NPS_DATA_ROOT (never from a path in the record); a folder:PATH corpus must be "
                    "passed with --corpus.")
    p.add_argument("record", help="a provenance record (.npz) written by `generate`")
    p.add_argument("--sample", type=int, default=0, help="sample index in the record (default: %(default)s)")
    p.add_argument("--y", type=int, required=True, help="pixel row")
    p.add_argument("--x", type=int, required=True, help="pixel column")
    add_record_corpus_args(p)
    p.add_argument("--exhaustive", action="store_true",
                   help="also count windows passing SSD alone over every window of the corpus (slow on 60k images)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nps import load_record
    from nps.lab.funnel import constraint_funnel

    record = load_record(args.record)
    corpus = record_corpus(record, args.corpus, args.data_root)
    f = constraint_funnel(record, corpus, args.sample, args.y, args.x,
                          exhaustive=True if args.exhaustive else None)
    sid, sy, sx = f.chosen
    value = record.images[args.sample, args.y, args.x].tolist()
    out = {"sample": args.sample, "pixel": [args.y, args.x], "value": value,
           "source": {"train_id": sid, "y": sy, "x": sx, "label": corpus.class_names[int(corpus.train_labels[sid])]},
           "funnel": f.as_dict()}
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(f"sample {args.sample}, pixel (y={args.y}, x={args.x}) = {out['value']}, filled at step {f.step} "
          f"(shell {int(record.shell[f.step])})")
    print(f"copied from train image {sid} at (y={sy}, x={sx}), label {out['source']['label']}; "
          "this provenance is exact, not a similarity guess")
    from nps.constraints import registered
    counting = [c for c in registered() if c.kind in ("centres", "images")]  # each one's own count (nps.lab.funnel)
    rows = [("every window of every image", f.total),
            *((c.funnel_label(record.config) if c.name in f.counts else c.title, f.counts.get(c.name))
              for c in counting),
            ("candidates ranked by SSD", f.loc_ssl),
            ("appearance alone (SSD rule, all windows)", f.ssd_alone),
            ("final pool (intersection)", f.final)]
    for name, value in rows:
        print(f"  {name:44s} {'off / not computed' if value is None else f'{value:,}'}")
    print(f"  {f.formula}")
    recorded = int(record.pool_size[args.sample, args.y, args.x])
    if recorded != f.final:  # a genuine record of this engine always agrees (tests/test_sampler.py)
        print(f"note: the record says the pool held {recorded:,} candidates but this replay finds {f.final:,}: "
              f"the record was made by another engine version (engine {record.config.get('engine', '?')}) or "
              "its config or fill order was edited")
    return 0
