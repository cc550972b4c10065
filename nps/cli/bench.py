"""``python -m nps bench``: sampler speed and memory, measured side by side."""

from __future__ import annotations

import argparse
import json

MAX_SAMPLES = 100_000  # per case; the plain case (c) takes seconds per image


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="time the sampler: full model, SSD+loc over the corpus, plain numpy",
        description="Print ms per image (steady state: after a warm-up, median of interleaved rounds, with the "
                    "load average) for (a) the full model (w=7, R=2, k=64), SSD+locality and SSD alone over every "
                    "training image through the exact pruned search and through the dense scan (SSD alone "
                    "extrapolated from its first steps), at batch 4 and 64, with the speed-ups, (c) a plain "
                    "per-pixel numpy implementation of (a) and (c)/(a), ssl-wide: SSD + representation without "
                    "locality (per candidate window against (a)), and each case's peak RSS (each case runs in its own "
                    "process). Targets on 2 cores: (a) <= 20 ms, (c)/(a) >= 50x, SSD+loc exact <= 1 s at batch 4 "
                    "and <= 0.5 s at batch 64, SSD exact <= 15 s, ssl-wide no slower per candidate than (a) and "
                    "<= 1.5 GB, RSS <= 2 GB.")
    p.add_argument("--corpus", default="mnist", help="corpus (default: %(default)s)")
    p.add_argument("--subset", type=int, default=None, help="use a stratified subset (default: all)")
    p.add_argument("--n-a", type=int, default=64, help="samples timed for (a) (default: %(default)s)")
    p.add_argument("--n-b", type=int, default=64, help="samples timed for (b) (default: %(default)s)")
    p.add_argument("--n-c", type=int, default=2, help="samples timed for (c), the slow one (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per case (default: %(default)s; on a busy machine more threads contend)")
    p.add_argument("--skip-b", action="store_true", help="skip the whole-corpus cases (minutes on 60k images)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed rounds per case, interleaved; the median is reported (default: %(default)s)")
    p.add_argument("--steps", type=int, default=32,
                   help="fill steps the dense scans (b, ssd-brute) are timed over, then extrapolated to the whole "
                        "fill order (default: %(default)s)")
    p.add_argument("--partial", default="b,ssd-brute",
                   help="comma list of the cases timed over their first --steps fill steps and extrapolated, "
                        "recall included (default: %(default)s)")
    p.add_argument("--nprobe", type=int, default=256,
                   help="groups probed per sample and step by the approximate cases (default: %(default)s)")
    p.add_argument("--cases", default=None,
                   help="comma list of the cases to run (default: all): a, c, ssl-wide, b, loc-exact, loc-approx, "
                        "ssd-exact, ssd-approx, ssd-brute")
    p.add_argument("--batches", default="4,64",
                   help="comma list of the batch sizes of the whole-corpus cases (default: %(default)s)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="the sampler's device for (a) and the whole-corpus cases; (c) is numpy (default: "
                        "%(default)s; the pruned search itself runs on the CPU either way)")
    p.add_argument("--cold", action="store_true",
                   help="clear the blank-context entries before every timed run and read none from the cache, as "
                        "in a first generation ever (default: they persist from the warm-up on, as in the app's "
                        "process, and are read from the cache where an earlier run stored them)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file (with the device)")
    p.set_defaults(func=run)


NAMES = {"a": "(a) full model ssd,loc,ssl", "b": "(b) ssd,loc all, brute", "loc-exact": "ssd,loc all, exact",
         "ssd-exact": "ssd all, exact", "ssd-brute": "ssd all, brute", "c": "(c) plain numpy of (a)",
         "loc-approx": "ssd,loc all, approx", "ssd-approx": "ssd all, approx",
         "ssl-wide": "ssd,ssl (no locality)"}


def _cases(text: str | None, flag: str = "--cases") -> tuple[str, ...]:
    from nps.errors import NPSError
    from nps.lab.bench import ALL_CASES
    if text is None:
        return ALL_CASES
    cases = tuple(c.strip() for c in text.split(",") if c.strip())
    bad = [c for c in cases if c not in ALL_CASES]
    if bad or not cases:
        raise NPSError(f"{flag} {text!r}: unknown case '{bad[0] if bad else ''}'; use a comma list of "
                       f"{', '.join(ALL_CASES)}.")
    return cases


def _batches(text: str) -> tuple[int, ...]:
    from nps.errors import NPSError
    try:
        batches = tuple(int(b) for b in text.split(","))
    except ValueError:
        batches = ()
    if not batches or any(not 1 <= b <= 4096 for b in batches):
        raise NPSError(f"--batches {text!r} must be a comma list of batch sizes in 1..4096 (e.g. 4,64).")
    return batches


def run(args: argparse.Namespace) -> int:
    from nps.cli._common import positive, writable_path
    from nps.encoders.hparams import check_device
    from nps.lab.bench import TARGETS, run_all
    from nps.machine import cpu_model
    # Counts up front, in one line each: a zero or negative count used to "time" nothing and exit 0.
    for flag, value in (("--n-a", args.n_a), ("--n-b", args.n_b), ("--n-c", args.n_c)):
        positive(value, flag, 1, MAX_SAMPLES)
    positive(args.threads, "--threads", 1, 1024)
    positive(args.repeats, "--repeats", 1, 100)
    positive(args.subset, "--subset", 1, 2**63 - 1)
    positive(args.nprobe, "--nprobe", 1, 2**31 - 1)
    positive(args.steps, "--steps", 1, 10**6)
    check_device(args.device)  # before any worker starts: no CUDA here is one line, not one error per case
    cases, batches = _cases(args.cases), _batches(args.batches)
    partial = _cases(args.partial, "--partial") if args.partial.strip() else ()
    out = writable_path(args.json, ".json") if args.json else None
    res = run_all(args.corpus, args.n_a, args.n_b, args.n_c, args.subset, args.threads, args.skip_b,
                  repeats=args.repeats, batches=batches, steps=args.steps, nprobe=args.nprobe, cases=cases,
                  partial=partial, device=args.device, cold=args.cold)
    gpu = f", GPU {res['gpu']}" if res.get("gpu") else ""
    print(f"machine: {cpu_model()}, {_cores()} cores{gpu}; device {args.device}; corpus {args.corpus}"
          + (f" (subset {args.subset})" if args.subset else "")
          + f"; load average at the end {res['uptime_load']}")
    for r in res.values():
        if not isinstance(r, dict):
            continue
        name = f"{NAMES.get(r['case'], r['case'])} @ batch {r['batch']}"
        if "error" in r:
            print(f"{name:40s} error: {r['error']}")
            continue
        note = f", extrapolated from {r['extrapolated_from_steps']} steps" if r.get("extrapolated_from_steps") else ""
        if "recall" in r:
            note += (f"; epsilon-set recall {r['recall']:.4f} (mean per pixel {r['mean_recall']:.4f}, least "
                     f"{r['min_recall']:.3f}), scanned {100 * r['scanned_share']:.2f}% of the band's unique windows, "
                     f"nprobe {r['nprobe']}")
        print(f"{name:40s} {r['ms_per_image']:10.1f} ms/image  (median of {r['runs']}, n={r['n']}, "
              f"{r.get('blank_store', 'warm')} blank store, set-up {r['setup_s']:.1f}s, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB, load {r['load']}{note})")
    for key, value in res.items():
        if key.startswith("speedup_"):
            fast, rest = key[8:].split("_over_")
            slow, batch = rest.split("@")
            print(f"speed-up of {NAMES.get(fast, fast)} over {NAMES.get(slow, slow)} @ batch {batch}: {value:.1f}x")
    checks = []
    if "speedup" in res:
        a = res["a@64"]
        print(f"speed-up (c)/(a): {res['speedup']:.0f}x")
        checks = [("(a) ms/image", a["ms_per_image"], "<=", TARGETS["a_ms"]),
                  ("(c)/(a)", res["speedup"], ">=", TARGETS["speedup"]),
                  ("(a) peak RSS MB", a["peak_rss_mb"], "<=", TARGETS["a_rss_mb"])]
    for key, target in (("loc-exact@4", "loc_exact_b4_ms"), ("loc-exact@64", "loc_exact_b64_ms"),
                        ("ssd-exact@4", "ssd_exact_ms"), ("loc-approx@4", "loc_approx_b4_ms")):
        if key in res and "error" not in res[key]:
            checks.append((f"{key} ms/image", res[key]["ms_per_image"], "<=", TARGETS[target]))
    if "ssl-wide@64" in res and "error" not in res["ssl-wide@64"] and "a@64" in res and "error" not in res["a@64"]:
        from nps.lab.bench import per_candidate_ns
        ns = {k: per_candidate_ns(res[f"{k}@64"]) for k in ("a", "ssl-wide")}
        print(f"per candidate window: (a) {ns['a']:.1f} ns, ssd,ssl (no locality) {ns['ssl-wide']:.1f} ns")
        checks += [("ssl-wide@64 ns/candidate", ns["ssl-wide"], "<=", ns["a"]),
                   ("ssl-wide@64 peak RSS MB", res["ssl-wide@64"]["peak_rss_mb"], "<=", TARGETS["ssl_wide_rss_mb"])]
    for key in ("loc-approx@4", "ssd-approx@4"):
        if key in res and "recall" in res[key]:
            checks.append((f"{key} recall", res[key]["recall"], ">=", TARGETS["approx_recall"]))
    for key, r in res.items():
        if isinstance(r, dict) and "peak_rss_mb" in r:
            checks.append((f"{key} peak RSS MB", r["peak_rss_mb"], "<=", TARGETS["rss_mb"]))
    if checks:
        for name, value, op, target in checks:
            ok = value <= target if op == "<=" else value >= target
            print(f"  target {name} {op} {target:g}: {value:.4g} {'met' if ok else 'MISSED'}")
    if out is not None:
        from nps.cache import write_text
        write_text(out, json.dumps(res, indent=2))
    # A case that failed is not a measurement: say so in the exit status too.
    return 1 if any(isinstance(r, dict) and "error" in r for r in res.values()) else 0


def _cores() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
