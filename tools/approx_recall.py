"""Approximate search against exact search in one process: s/image, share scanned and epsilon-set recall per nprobe.

    PYTHONPATH=. python tools/approx_recall.py --constraints ssd,loc --n 4 --nprobe 32,64,256 [--subset 2000]

Exact search runs first (its time is printed); then, for each nprobe, the approximate search is
timed (after a one-sample warm-up) and run again under :class:`nps.engine.search_approx.RecallMeter`,
which computes the exact kept set on the same partial canvases at every step.  Needs the corpus's
window index (built and cached on first use; about a minute for 60k MNIST).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from nps.config import GenerationConfig
from nps.corpora import load_corpus
from nps.engine.sampler import Sampler
from nps.engine.search_approx import RecallMeter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default="mnist")
    p.add_argument("--subset", type=int, default=None)
    p.add_argument("--constraints", default="ssd,loc")
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--nprobe", default="32,64,256")
    args = p.parse_args()
    corpus = load_corpus(args.corpus, args.subset)
    base = GenerationConfig(corpus=args.corpus, subset=args.subset, n=args.n, batch_size=args.batch_size,
                            constraints=args.constraints, search="exact")
    base = base.fit_canvas(corpus.image_shape, seed_size_given=False)
    exact = Sampler(base, corpus).prepare()
    exact.exact_search(build=True)
    t0 = time.perf_counter()
    reference = exact.run(np.arange(args.n))
    print(f"exact: {(time.perf_counter() - t0) / args.n:.2f} s/image, load {os.getloadavg()[0]:.2f}", flush=True)
    for nprobe in (int(v) for v in args.nprobe.split(",")):
        sampler = Sampler(base.replace(search="approx", nprobe=nprobe), corpus).prepare()
        approx = sampler.exact_search(build=True)
        sampler.run(np.arange(1))
        approx.scanned = approx.banded = 0
        t0 = time.perf_counter()
        rec = sampler.run(np.arange(args.n))
        per_image = (time.perf_counter() - t0) / args.n
        share = approx.scanned / max(approx.banded, 1)
        meter = RecallMeter(approx, exact.exact_search())
        sampler.search_ = meter
        sampler.run(np.arange(args.n))
        same = all(np.array_equal(getattr(rec, k), getattr(reference, k)) for k in ("images", "source_index"))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"nprobe {nprobe}: {per_image:.3f} s/image, scanned {100 * share:.2f}% of the band's unique windows, "
              f"recall {meter.recall:.4f} (mean per pixel {meter.mean_recall:.4f}, least {min(meter.per_step):.3f}), "
              f"records equal exact's: {same}, peak RSS {rss:.0f} MB, load {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
