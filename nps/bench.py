"""Benchmarks of the sampler (figures, not tests).

Each case runs in a fresh process so that its peak RSS is its own:

* (a) the full model on MNIST (w=7, R=2, k=64), batch 64: ms per image at that batch;
* (b) SSD + locality over every MNIST training image, same batch;
* (c) :mod:`nps.reference_impl` (plain per-pixel numpy) on the configuration of (a).

The ratio (c)/(a) is measured side by side in one run, so machine load affects both.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue as queue_module
import resource
import time

log = logging.getLogger(__name__)

TARGETS = {"a_ms": 20.0, "speedup": 50.0, "b_ms": 3000.0, "a_rss_mb": 1536.0}


def _case(kind: str, corpus_name: str, n: int, batch: int, subset: int | None, threads: int, repeats: int,
          queue: mp.Queue) -> None:
    import numpy as np
    import torch

    from nps.config import GenerationConfig
    from nps.corpora import load_corpus
    from nps.reference_impl import generate_plain
    from nps.sampler import Sampler
    from nps.sampler_pool import SemanticPools
    try:
        os.environ["NPS_THREADS"] = str(threads)  # the engine reads it (nps.sampler.engine_threads)
        torch.set_num_threads(threads)
        corpus = load_corpus(corpus_name, subset)
        constraints = "ssd,loc" if kind == "b" else "ssd,loc,ssl"
        cfg = GenerationConfig(corpus=corpus_name, subset=subset, n=n, batch_size=batch, constraints=constraints)
        cfg = cfg.fit_canvas(corpus.image_shape, seed_size_given=False)  # 8x8 digits: a 2x2 seed, not all of it
        t0 = time.perf_counter()
        pools = SemanticPools.build(cfg, corpus)
        sampler = Sampler(cfg, corpus, pools).prepare()
        setup = time.perf_counter() - t0
        times = []
        for _ in range(repeats if kind == "a" else 1):
            t0 = time.perf_counter()
            if kind == "c":
                generate_plain(cfg, corpus, np.arange(n), pools)
            else:
                sampler.run()
            times.append(time.perf_counter() - t0)
        elapsed = float(np.median(times))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        queue.put({"case": kind, "n": n, "ms_per_image": elapsed / n * 1000, "setup_s": setup, "runs": len(times),
                   "peak_rss_mb": rss, "threads": torch.get_num_threads()})
    except Exception as exc:  # noqa: BLE001 - report, the parent decides
        queue.put({"case": kind, "error": f"{type(exc).__name__}: {exc}"})


def run_case(kind: str, corpus: str = "mnist", n: int = 64, batch: int = 64, subset: int | None = None,
             threads: int = 1, repeats: int = 3) -> dict:
    """Run one case in a fresh (spawned) process and return its figures.

    Case (a) is timed ``repeats`` times in the same process and the median is kept (the
    machine's speed drifts); (b) and (c) are slow and timed once.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_case, args=(kind, corpus, n, batch, subset, threads, repeats, queue))
    proc.start()
    while True:  # a child killed from outside (OOM, signal) must not hang the parent
        try:
            result = queue.get(timeout=1.0)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                result = {"case": kind, "error": f"the benchmark process died (exit code {proc.exitcode})"}
                break
    proc.join()
    return result


def run_all(corpus: str = "mnist", n_a: int = 64, n_b: int = 64, n_c: int = 2, subset: int | None = None,
            threads: int = 1, skip_b: bool = False) -> dict:
    """The three cases and the ratios; a dict of figures."""
    results = {"a": run_case("a", corpus, n_a, 64, subset, threads)}
    results["c"] = run_case("c", corpus, n_c, 64, subset, threads)
    if not skip_b:
        results["b"] = run_case("b", corpus, n_b, min(64, n_b), subset, threads)
    a, c = results["a"], results["c"]
    if "error" not in a and "error" not in c:
        results["speedup"] = c["ms_per_image"] / a["ms_per_image"]
    return results
