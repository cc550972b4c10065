"""Benchmark: what certified float64 decisions (nps.engine.certify) cost the engine.

Generates the same records with the certifier and with the bare float32 rule
(interleaved, after a warm-up, medians), counts how often a step needed float64
recomputation, and how many records differ.  Run:

    python tools/certify_bench.py --corpus mnist --constraints ssd,loc,ssl --n 16 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="mnist")
    ap.add_argument("--subset", type=int, default=None)
    ap.add_argument("--constraints", default="ssd,loc,ssl")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import nps.engine.certify as certify_module
    import nps.engine.sampler as sm
    import nps.engine.sampler_choice as choice_module
    from nps.config import GenerationConfig
    from nps.corpora import load_corpus
    from nps.engine.selection import thresholds

    corpus = load_corpus(args.corpus, args.subset)
    cfg = GenerationConfig(corpus=args.corpus, subset=args.subset, n=args.n, batch_size=args.batch_size,
                           constraints=tuple(args.constraints.split(",")), encoder="auto")
    certified = sm.Sampler.certified_threshold
    stats = {"steps": 0, "rows": 0, "unsure": 0, "recomputed": 0}
    real_certify = certify_module.certify

    def counting(view, d_min, tau, c, channels, config, exact):
        def exact_counted(b, j):
            stats["recomputed"] += len(b)
            return exact(b, j)
        thr, fell, over = real_certify(view, d_min, tau, c, channels, config, exact_counted)
        stats["steps"] += 1
        stats["rows"] += len(d_min)
        stats["unsure"] += len(np.unique(over[0]))
        return thr, fell, over
    choice_module.certify = counting  # where the sampler calls it

    def bare(self, geo, cpad, pool, view, d_min):
        thr, fell = thresholds(d_min, self.config)
        return thr, fell, (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool))

    pools = sm.Sampler(cfg, corpus).pools  # built once, shared by every run
    times: dict[str, list[float]] = {"certified": [], "float32": []}
    records = {}
    for rep in range(args.repeats + 1):  # the first round is the warm-up
        for name, fn in (("certified", certified), ("float32", bare)):
            sm.Sampler.certified_threshold = fn
            t0 = time.perf_counter()
            records[name] = sm.Sampler(cfg, corpus, pools).run()
            if rep:
                times[name].append(time.perf_counter() - t0)
    sm.Sampler.certified_threshold = certified
    a, b = records["certified"], records["float32"]
    differ = int((a.source_index != b.source_index).any(axis=(1, 2)).sum())
    load = os.getloadavg()
    print(f"{args.corpus} ({len(corpus)} images) {args.constraints} n={args.n} batch={args.batch_size}; "
          f"load {load[0]:.2f} {load[1]:.2f}")
    for name, ts in times.items():
        print(f"  {name:9s} median {statistics.median(ts):.2f} s  ({', '.join(f'{t:.2f}' for t in ts)})")
    ratio = statistics.median(times["certified"]) / statistics.median(times["float32"])
    steps = max(1, stats["rows"])
    print(f"  certified / float32 = {ratio:.3f}; sample-steps needing float64: {stats['unsure']} of {steps} "
          f"({100 * stats['unsure'] / steps:.3f} %), windows recomputed: {stats['recomputed']}")
    print(f"  samples whose record differs between the two rules: {differ} of {len(a)}")


if __name__ == "__main__":
    main()
