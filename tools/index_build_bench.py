"""Window-index build time, fast against plain definitions, in one process; or one fast build into the cache.

    PYTHONPATH=. python tools/index_build_bench.py --subset 6000 --repeats 3     # fast vs plain, interleaved
    NPS_CACHE_DIR=DIR PYTHONPATH=. python tools/index_build_bench.py --full       # one cached 60k build

The comparison builds the subset's index once per case to warm up, then alternates fast and
plain builds ``--repeats`` times, prints each time and the medians, and checks that both
gave the same arrays.  ``--full`` builds (and caches) the index of the whole corpus the way
the sampler does (:func:`nps.engine.window_cache.window_index`), and prints its time and
the process's peak RSS.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from nps.corpora import load_corpus  # noqa: E402
from nps.engine import search_index as si  # noqa: E402
from nps.engine import window_cache  # noqa: E402
from nps.engine.sampler_setup import padded_corpus  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default="mnist")
    p.add_argument("--subset", type=int, default=6000)
    p.add_argument("--window", type=int, default=7)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--full", action="store_true", help="one fast build of the whole corpus, cached")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    corpus = load_corpus(a.corpus, None if a.full else a.subset)
    _, padded = padded_corpus(corpus, a.window // 2)
    padded = padded.numpy()
    h, w = corpus.train.shape[1:3]
    if a.full:
        t = time.perf_counter()
        ix = window_cache.window_index(corpus.content_hash, padded, a.window, h, w, build=True)
        print(f"full build of {len(padded)} images: {time.perf_counter() - t:.1f} s, {len(ix.rep)} unique windows, "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        return
    out = {}
    times: dict[bool, list[float]] = {False: [], True: []}
    for plain in (False, True):  # warm-up
        out[plain] = si.build_index(padded, a.window, h, w, plain=plain)
    for key in out[False]:
        assert np.array_equal(out[False][key], out[True][key]), key
    for r in range(a.repeats):
        for plain in (False, True) if r % 2 == 0 else (True, False):
            t = time.perf_counter()
            si.build_index(padded, a.window, h, w, plain=plain)
            times[plain].append(time.perf_counter() - t)
            print(f"round {r}: {'plain' if plain else 'fast'} {times[plain][-1]:.2f} s", flush=True)
    fast, plain_ = np.median(times[False]), np.median(times[True])
    print(f"{len(padded)} images: fast {fast:.2f} s, plain {plain_:.2f} s (medians of {a.repeats}), "
          f"{plain_ / fast:.1f}x; arrays identical; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
