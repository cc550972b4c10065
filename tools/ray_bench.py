"""Ray on C local CPUs against one process, same config, same run; checks the records are identical.

    PYTHONPATH=. .venv/bin/python tools/ray_bench.py --corpus mnist --n 256 --cpus 2

Both sides start from warm caches (embeddings and index built first, untimed).  The one
process times ``generate`` (sampler set-up included, as each Ray task pays it too).  Ray is
started before timing (its start-up is printed separately) and its workers are warmed with
one tiny shard, so the timed part is the throughput of the tasks themselves: corpus opened
from the store, pools from the cache, sampling, merge.  ``uptime`` is printed before and after:
the machine may be shared.
"""

from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="mnist")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--encoder", default="auto")
    args = p.parse_args()

    from nps.config import GenerationConfig
    from nps.corpora import load_corpus
    from nps.engine.sampler import Sampler, generate
    from nps.engine.sampler_pool import SemanticPools
    from nps.lab.distributed import generate_on_ray, start_ray

    print("uptime before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    corpus = load_corpus(args.corpus)
    cfg = GenerationConfig(corpus=args.corpus, n=args.n, seed=0, batch_size=args.batch_size, encoder=args.encoder)
    SemanticPools.build(cfg, corpus)  # warm the embedding and index caches (untimed, both sides use them)

    t = time.perf_counter()
    plain = generate(cfg, corpus)
    one = time.perf_counter() - t
    print(f"one process: {one:.1f} s, {args.n / one:.2f} img/s ({one / args.n * 1000:.0f} ms/image)")
    t = time.perf_counter()
    sampler = Sampler(cfg, corpus).prepare()
    setup = time.perf_counter() - t
    t = time.perf_counter()
    sampler.run()
    one_steady = time.perf_counter() - t
    print(f"one process, set up apart: set-up {setup:.1f} s, sampling {one_steady:.1f} s")

    t = time.perf_counter()
    ray, _ = start_ray(None, args.cpus)
    print(f"ray.init({args.cpus} CPUs): {time.perf_counter() - t:.1f} s (not in the throughput)")
    generate_on_ray(cfg.replace(n=args.cpus * args.batch_size), corpus, shards=args.cpus)  # warm the workers
    t = time.perf_counter()
    merged = generate_on_ray(cfg, corpus)
    dist = time.perf_counter() - t
    t = time.perf_counter()
    generate_on_ray(cfg, corpus)  # again: every worker's sampler for this config is set up now
    dist_steady = time.perf_counter() - t
    print(f"ray, second run (samplers set up): {dist_steady:.1f} s; sampling speed-up {one_steady / dist_steady:.2f}x")
    ray.shutdown()
    same = all(np.array_equal(a, b) for a, b in zip(plain.to_arrays().values(), merged.to_arrays().values()))
    print(f"ray, {args.cpus} CPUs: {dist:.1f} s, {args.n / dist:.2f} img/s; speed-up {one / dist:.2f}x; "
          f"records bit-identical: {same and plain.config == merged.config}")
    print("uptime after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
