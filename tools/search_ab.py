"""A/B of the exact search's speed-ups in one process: the same records, interleaved, medians.

Variants (``--ab``):

* ``store``: the blank contexts' kept sets cleared before every run (as a process that never met them:
  every entry searched) against kept from a fill run of other samples (as the app's next grid);
* ``bytes``: the box bounds' gaps in float32 against uint8 (:mod:`nps.engine.search_bounds`), the
  store kept in both;
* ``source``: a draw's images found through the kept mask only against by comparing ids where one or
  two windows are kept (:data:`nps.engine.search_draw.FEW_KEPT`), the store kept in both;
* ``together``: the approximate search (``--nprobe``) with each sample searched alone against in parts of
  :attr:`nps.engine.search.ExactSearch.samples_together`, each sample masked to its own probed groups.

Each run generates the same ``--n`` samples; the records of the two arms are compared array by array
(they must be equal: the script exits 1 otherwise).  The window index must be cached (``python -m nps
index --corpus NAME``); the cache file of blank entries is neither read nor written.  Run on a quiet
machine, nothing else alongside, and state ``uptime``:

    python tools/search_ab.py --ab store --constraints ssd,loc --n 8 --batch-size 4 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ab", choices=("store", "bytes", "source", "together"), default="store",
                    help="what the two arms differ in")
    ap.add_argument("--nprobe", type=int, default=256, help="groups probed per sample (--ab together)")
    ap.add_argument("--corpus", default="mnist")
    ap.add_argument("--subset", type=int, default=None)
    ap.add_argument("--constraints", default="ssd,loc", help="a whole-corpus case (no ssl) (default: %(default)s)")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2, help="runs per arm, interleaved (default: %(default)s)")
    args = ap.parse_args()

    import torch

    import nps.engine.search as search
    import nps.engine.search_draw as draw
    from nps.config import GenerationConfig
    from nps.corpora import load_corpus
    from nps.engine.sampler import Sampler
    from nps.engine.sampler_pool import SemanticPools
    from nps.engine.search_approx import ApproxSearch
    from nps.engine.search_blank import STORE

    torch.set_num_threads(1)
    STORE.disk = False
    corpus = load_corpus(args.corpus, args.subset)
    cfg = GenerationConfig(corpus=args.corpus, subset=args.subset, n=args.n, batch_size=args.batch_size,
                           constraints=args.constraints, nprobe=args.nprobe,
                           search="approx" if args.ab == "together" else "exact")
    cfg = cfg.fit_canvas(corpus.image_shape, seed_size_given=False)
    sampler = Sampler(cfg, corpus, SemanticPools.build(cfg, corpus)).prepare()
    if not sampler.exact_search(build=True):
        print(f"{args.constraints} does not search the whole corpus through the index", file=sys.stderr)
        return 2
    ids, others = np.arange(args.n), np.arange(10_000, 10_000 + args.n)
    fill = time.perf_counter()
    sampler.run(others)  # warm-up (index, first calls), and the store's entries for the "kept" arm
    print(f"warm-up (other samples): {time.perf_counter() - fill:.1f} s, store {STORE.held / 2**20:.0f} MB")
    byte_path = search.as_bytes
    few = draw.FEW_KEPT
    together = ApproxSearch.samples_together
    arms = {"store": ("cleared", "kept"), "bytes": ("float", "uint8"), "source": ("mask", "ids"),
            "together": ("alone", "parts")}[args.ab]
    times: dict[str, list[float]] = {a: [] for a in arms}
    records = {}
    for r in range(args.repeats):
        for arm in arms if r % 2 == 0 else arms[::-1]:
            if arm == "cleared":
                STORE.clear()
            search.as_bytes = (lambda t: t.float()) if arm == "float" else byte_path
            draw.FEW_KEPT = 0 if arm == "mask" else few
            ApproxSearch.samples_together = 1 if arm == "alone" else together
            load = os.getloadavg()[0]
            start = time.perf_counter()
            record = sampler.run(ids)
            elapsed = time.perf_counter() - start
            memo = sampler.search_.blank
            times[arm].append(elapsed)
            records.setdefault(arm, record.to_arrays())
            print(f"{arm:8s} {elapsed:7.2f} s ({elapsed / args.n:.3f} s/image), load {load:.2f}, "
                  f"{memo.searched} entries searched so far", flush=True)
    search.as_bytes, draw.FEW_KEPT, ApproxSearch.samples_together = byte_path, few, together
    a, b = (records[arm] for arm in arms)
    same = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    slow, fast = (statistics.median(times[arm]) for arm in arms)
    print(f"median {arms[0]} {slow:.2f} s, {arms[1]} {fast:.2f} s: {slow / fast:.2f}x; records equal: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    from nps.errors import NPSError
    try:
        sys.exit(main())
    except NPSError as exc:  # a bad flag value (e.g. --nprobe 0): one line, as the CLI says it
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
