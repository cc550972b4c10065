"""Benchmarks of the sampler (figures, not tests).

Cases (``kind``):

* ``a``: the full model on MNIST (w=7, R=2, k=64);
* ``b``: SSD + locality over every training image, dense float32 scan (``search="brute"``),
  timed over its first ``steps`` fill steps and extrapolated (see :data:`EXTRAPOLATED`);
* ``loc-exact``: the same through the exact pruned search (:mod:`nps.engine.search`);
* ``ssd-exact``: SSD only over every training image, exact pruned search;
* ``ssd-brute``: SSD only, dense scan: hours per image, so it is timed over its first
  ``steps`` fill steps and extrapolated to the whole fill order (marked in the figures);
* ``loc-approx``, ``ssd-approx``: SSD + locality and SSD only through the approximate search
  (:mod:`nps.engine.search_approx`, ``nprobe`` groups per sample), with their epsilon-set recall
  against exact search, measured after the timed rounds in one untimed run of the same
  samples (:class:`nps.engine.search_approx.RecallMeter`: the exact kept set on the sampler's own
  partial canvases, step by step);
* ``c``: :mod:`nps.engine.reference_impl` (plain per-pixel numpy) on the configuration of (a);
* ``ssl-wide``: SSD + representation without locality (every position of each sample's k = 64
  images, :func:`nps.engine.ssd.window_ssd_rows`), at batch 64 like (a), whose cost per candidate
  window it is compared with (:func:`per_candidate_ns`).

``device`` (``cpu`` or ``cuda``) is the sampler's device for every case but (c), which is numpy.  On
CUDA the canvases and the dense scores live on the GPU while the pruned search reads the corpus
and the index on the CPU (the same code); each timed run ends with ``torch.cuda.synchronize()``.

Method: every (case, batch) runs in its own process (its peak RSS is its own), which
first warms up (one untimed one-sample run: corpus padding, index load, BLAS start-up),
then times one run per *round* on the parent's command.  The rounds visit the cases in
turn, so the machine's drift and load spread over all of them; the figure of a case is
the median over rounds, and the load average is recorded beside every timing.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue as queue_module
import resource
import time

log = logging.getLogger(__name__)

TARGETS = {"a_ms": 20.0, "speedup": 50.0, "b_ms": 3000.0, "a_rss_mb": 1536.0,
           "loc_exact_b4_ms": 1000.0, "loc_exact_b64_ms": 500.0, "ssd_exact_ms": 15000.0, "rss_mb": 2048.0,
           "loc_approx_b4_ms": 200.0, "approx_recall": 0.99, "ssl_wide_rss_mb": 1536.0}

# The dense scans cost the same at every step (every window of the band, the same band size away
# from the borders), so they are timed over their first ``steps`` fill steps and scaled to the whole
# fill order: SSD alone takes hours per image; SSD + locality minutes.  Near the borders the band is
# clipped and a step is cheaper, so the extrapolation over-states their cost a little (the speed-ups
# over them are upper estimates); the figures say "extrapolated".  Other cases may be timed the same
# way (``partial``; the pruned searches' steps vary in cost, so theirs is a cruder estimate).
EXTRAPOLATED = ("b", "ssd-brute")

CASES = {  # kind -> (constraints, search)
    "a": ("ssd,loc,ssl", "exact"),
    "b": ("ssd,loc", "brute"),
    "loc-exact": ("ssd,loc", "exact"),
    "ssd-exact": ("ssd", "exact"),
    "ssd-brute": ("ssd", "brute"),
    "loc-approx": ("ssd,loc", "approx"),
    "ssd-approx": ("ssd", "approx"),
    "c": ("ssd,loc,ssl", "exact"),
    "ssl-wide": ("ssd,ssl", "exact"),
}


def per_candidate_ns(case: dict) -> float:
    """Nanoseconds per candidate window of a case's figures (its ms/image over its ``candidates_per_image``)."""
    return case["ms_per_image"] * 1e6 / case["candidates_per_image"]


def _worker(kind: str, corpus_name: str, n: int, batch: int, subset: int | None, threads: int, steps: int,
            nprobe: int, partial: tuple[str, ...], device: str, commands: mp.Queue, results: mp.Queue,
            cold: bool = False) -> None:
    import numpy as np
    import torch

    from nps.config import GenerationConfig
    from nps.corpora import load_corpus
    from nps.engine.reference_impl import generate_plain
    from nps.engine.sampler import Sampler, Stopped
    from nps.engine.sampler_pool import SemanticPools
    from nps.engine.search_blank import STORE
    try:
        os.environ["NPS_THREADS"] = str(threads)  # the engine reads it (nps.engine.sampler.engine_threads)
        torch.set_num_threads(threads)
        corpus = load_corpus(corpus_name, subset)
        constraints, search = CASES[kind]
        device = "cpu" if kind == "c" else device  # (c) is plain numpy
        cfg = GenerationConfig(corpus=corpus_name, subset=subset, n=n, batch_size=batch, constraints=constraints,
                               search=search, nprobe=nprobe, device=device)
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        cfg = cfg.fit_canvas(corpus.image_shape, seed_size_given=False)  # 8x8 digits: a 2x2 seed, not all of it
        t0 = time.perf_counter()
        pools = SemanticPools.build(cfg, corpus)
        sampler = Sampler(cfg, corpus, pools).prepare()
        sampler.exact_search(build=True)  # the window index (cached) is set-up, not sampling
        total_steps = len(sampler.order_)
        limit = steps if kind in partial else None

        def stop_after(info) -> bool:
            return limit is None or info.step < limit

        def searched() -> int:  # blank-context entries this sampler's exact search has searched so far
            memo = getattr(sampler.search_, "blank", None)
            return 0 if memo is None else memo.searched

        STORE.disk = not cold  # cold: nor are they read from (or written to) the cache

        def once(ids: np.ndarray) -> tuple[float, int]:
            if cold:  # every blank-context entry searched again, as in a process that never met them
                STORE.clear()
            sync()
            start = time.perf_counter()
            done = total_steps
            try:
                if kind == "c":
                    generate_plain(cfg, corpus, ids, pools)
                else:
                    sampler.run(ids, stop_after if limit else None)
            except Stopped:
                done = limit + (-limit % 16)  # the callback runs every 16 steps
            sync()  # GPU work still queued belongs to this run
            return time.perf_counter() - start, done
        once(np.arange(1))  # warm-up: first-call costs are set-up, not sampling
        setup = time.perf_counter() - t0
        results.put({"case": kind, "batch": batch, "ready": True, "setup_s": setup, "device": device})
        while commands.get() == "run":
            load = os.getloadavg()[0]
            before = searched()
            elapsed, done = once(np.arange(n))
            per_image = elapsed / n * (total_steps / done if done else 1.0)
            results.put({"case": kind, "batch": batch, "ms_per_image": per_image * 1000, "load": load,
                         "extrapolated_from_steps": done if done < total_steps else None,
                         "blank_store": "cold" if cold else "warm", "blank_searched": searched() - before})
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        h, w = corpus.image_shape[:2]
        candidates = (h * w - cfg.seed_size ** 2) * cfg.windows_per_pixel(len(corpus), corpus.image_shape)
        final = {"case": kind, "batch": batch, "peak_rss_mb": rss, "threads": torch.get_num_threads(),
                 "candidates_per_image": candidates}  # sampled pixels x candidate windows per pixel
        if search == "approx":
            final |= _recall(sampler, cfg, corpus, n, stop_after if limit else None)
        results.put(final)
    except Exception as exc:  # report, the parent decides
        results.put({"case": kind, "batch": batch, "error": f"{type(exc).__name__}: {exc}"})


def _recall(sampler, cfg, corpus, n: int, progress=None) -> dict:
    """Epsilon-set recall of an approximate case, in one untimed run of its ``n`` samples (after its peak RSS).

    ``progress`` (the timed runs' stop callback of a partial case) limits it to the same first steps.
    """
    import numpy as np

    from nps.engine.sampler import Sampler, Stopped
    from nps.engine.search_approx import RecallMeter
    approx = sampler.exact_search()
    approx.scanned = approx.banded = 0
    exact = Sampler(cfg.replace(search="exact"), corpus, sampler.pools).prepare().exact_search(build=True)
    meter = RecallMeter(approx, exact)
    sampler.search_ = meter
    try:
        sampler.run(np.arange(n), progress)
    except Stopped:
        pass
    finally:
        sampler.search_ = approx
    return {"recall": meter.recall, "mean_recall": meter.mean_recall, "min_recall": float(min(meter.per_step)),
            "scanned_share": approx.scanned / max(approx.banded, 1), "nprobe": cfg.nprobe}


class _Case:
    """One (case, batch) worker process and its figures."""

    def __init__(self, ctx, kind: str, corpus: str, n: int, batch: int, subset: int | None, threads: int,
                 steps: int, nprobe: int, partial: tuple[str, ...] = EXTRAPOLATED, device: str = "cpu",
                 cold: bool = False) -> None:
        self.kind, self.n, self.batch = kind, n, batch
        self.commands, self.results = ctx.Queue(), ctx.Queue()
        self.proc = ctx.Process(target=_worker, args=(kind, corpus, n, batch, subset, threads, steps, nprobe,
                                                      partial, device, self.commands, self.results, cold))
        self.proc.start()
        self.times: list[float] = []
        self.loads: list[float] = []
        self.info: dict = {"case": kind, "batch": batch, "n": n}

    def receive(self) -> dict:
        while True:  # a child killed from outside (OOM, signal) must not hang the parent
            try:
                return self.results.get(timeout=1.0)
            except queue_module.Empty:
                if not self.proc.is_alive():
                    return {"error": f"the benchmark process died (exit code {self.proc.exitcode})"}

    def step(self, command: str) -> None:
        if "error" in self.info:
            return
        if command:
            self.commands.put(command)
        msg = self.receive()
        if "error" in msg:
            self.info["error"] = msg["error"]
            return
        if "ms_per_image" in msg:
            self.times.append(msg["ms_per_image"])
            self.loads.append(msg["load"])
            self.info["blank_store"] = msg["blank_store"]
            self.info.setdefault("blank_searched", []).append(msg["blank_searched"])  # entries searched, per run
            if msg["extrapolated_from_steps"]:
                self.info["extrapolated_from_steps"] = msg["extrapolated_from_steps"]
        else:
            self.info.update({k: v for k, v in msg.items() if k != "ready"})

    def finish(self) -> dict:
        if "error" not in self.info:
            self.commands.put("stop")
            self.step("")
        self.proc.join()
        if self.times:
            import numpy as np
            self.info.update(ms_per_image=float(np.median(self.times)), runs=len(self.times),
                             all_ms=[round(t, 1) for t in self.times], load=[round(v, 2) for v in self.loads])
        return self.info


def run_cases(specs: list[tuple[str, int, int]], corpus: str = "mnist", subset: int | None = None,
              threads: int = 1, repeats: int = 3, steps: int = 32, nprobe: int = 256,
              partial: tuple[str, ...] = EXTRAPOLATED, device: str = "cpu", cold: bool = False) -> dict[str, dict]:
    """Time ``(kind, n, batch)`` cases interleaved over ``repeats`` rounds; figures by ``kind@batch``.

    The workers start (and warm up) one after another, so set-up costs never overlap.  Each worker's
    blank-context entries (:data:`nps.engine.search_blank.STORE`) persist from its warm-up on, as in the
    app's process (and are read from the cache where an earlier run stored them); ``cold`` clears them
    before every timed run and reads none from the cache (a first generation ever).
    """
    ctx = mp.get_context("spawn")
    cases = []
    for kind, n, batch in specs:
        case = _Case(ctx, kind, corpus, n, batch, subset, threads, steps, nprobe, partial, device, cold)
        case.step("")  # wait until it is warm
        cases.append(case)
    for _ in range(repeats):
        for case in cases:
            case.step("run")
    return {f"{c.kind}@{c.batch}": c.finish() for c in cases}


def run_case(kind: str, corpus: str = "mnist", n: int = 64, batch: int = 64, subset: int | None = None,
             threads: int = 1, repeats: int = 3, device: str = "cpu") -> dict:
    """One case in its own process (see :func:`run_cases`)."""
    return run_cases([(kind, n, batch)], corpus, subset, threads, repeats, device=device)[f"{kind}@{batch}"]


WHOLE_CORPUS = ("b", "loc-exact", "loc-approx", "ssd-exact", "ssd-approx", "ssd-brute")
ALL_CASES = ("a", "c", "ssl-wide", *WHOLE_CORPUS)
# (fast, slow) pairs whose ratio is reported: each whole-corpus search against the dense scan, approx against exact.
SPEEDUPS = (("loc-exact", "b"), ("loc-approx", "b"), ("loc-approx", "loc-exact"), ("ssd-exact", "ssd-brute"),
            ("ssd-approx", "ssd-brute"), ("ssd-approx", "ssd-exact"))


def run_all(corpus: str = "mnist", n_a: int = 64, n_b: int = 64, n_c: int = 2, subset: int | None = None,
            threads: int = 1, skip_b: bool = False, repeats: int = 3, batches: tuple[int, ...] = (4, 64),
            steps: int = 32, nprobe: int = 256, cases: tuple[str, ...] = ALL_CASES,
            partial: tuple[str, ...] = EXTRAPOLATED, device: str = "cpu", cold: bool = False) -> dict:
    """The ``cases`` (default every one), interleaved, and the speed-ups measured in the same run; a dict of figures.

    ``n_b`` samples are timed for the SSD + locality whole-corpus cases at each batch size (at
    least one batch); SSD only is timed over one batch.
    """
    specs = [(k, n, 64) for k, n in (("a", n_a), ("c", n_c), ("ssl-wide", n_a)) if k in cases]
    if not skip_b:
        for batch in batches:
            n = max(n_b, batch)
            specs += [(k, n if k.startswith(("b", "loc")) else batch, batch) for k in WHOLE_CORPUS if k in cases]
    results: dict = run_cases(specs, corpus, subset, threads, repeats, steps, nprobe, partial, device, cold)
    load = os.getloadavg()
    results["uptime_load"] = [round(v, 2) for v in load]
    results["device"] = device
    if device.startswith("cuda"):
        import torch
        results["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None

    def ms(key: str) -> float | None:
        r = results.get(key, {})
        return r.get("ms_per_image") if "error" not in r else None
    if ms("a@64") and ms("c@64"):
        results["speedup"] = ms("c@64") / ms("a@64")
    for batch in batches:
        for fast, slow in SPEEDUPS:
            if ms(f"{fast}@{batch}") and ms(f"{slow}@{batch}"):
                results[f"speedup_{fast}_over_{slow}@{batch}"] = ms(f"{slow}@{batch}") / ms(f"{fast}@{batch}")
    return results
