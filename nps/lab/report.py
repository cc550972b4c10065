"""The ablation report: ``report.md`` laid out like the paper's Figure 2, Table 1 and Table 2.

:func:`write_report` takes the results that ``nps ablate`` collects (one entry per
configuration, each the JSON-able output of :func:`nps.analysis.analyse_record` plus
timing) and writes markdown with the PNGs beside it.  The paper's numbers stand next
to ours; where the paper is silent (window, log base, classifier) the protocol says
what we chose.
"""

from __future__ import annotations

import math
from pathlib import Path

from nps.analysis.entropy import CLASS, CLASS_ENTROPY, IMAGE_ID, IMAGE_ID_ENTROPY

#: Numbers reported by Lu et al. (arXiv 2510.22196) for the full model on MNIST.
PAPER = {"is": 6.23, CLASS_ENTROPY: 1.075, IMAGE_ID_ENTROPY: 2.496}
FIGURE2 = ("ssd", "ssd+loc", "ssd+loc+ssl")


def _pm(mean: float | None, std: float | None, digits: int = 2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


def _num(v: float | None, digits: int = 2, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}%}" if pct else f"{v:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *["| " + " | ".join(r) + " |" for r in rows]]


def checks(results: dict) -> list[tuple[str, bool | None]]:
    """The claims the report tests: the full model ahead on IS and class entropy, high image-ID entropy."""
    cfg = results["configs"]
    full = cfg.get("ssd+loc+ssl")
    ablations = [cfg[k] for k in ("ssd", "ssd+loc") if k in cfg]
    if full is None or not ablations:
        return []
    out: list[tuple[str, bool | None]] = []
    if full.get("scores") and all(a.get("scores") for a in ablations):
        # One split of all n images: with a few hundred samples the 10-split mean is capped by the split size.
        best = max(a["scores"]["samples"]["is_all"] for a in ablations)
        ours = full["scores"]["samples"]["is_all"]
        out.append((f"full model IS (1 split of n) {ours:.2f} > best ablation {best:.2f}", ours > best))
    lowest = min(a["entropy"][CLASS]["mean"] for a in ablations)
    out.append((f"full model class entropy {full['entropy'][CLASS]['mean']:.3f} < lowest ablation "
                f"{lowest:.3f} bits", full["entropy"][CLASS]["mean"] < lowest))
    # Part-whole generalisation is a claim about the paper-scale model (k=64 of 60k images); on a
    # subset the pool holds k = S/20 images, which caps the image-ID entropy, so use that row when run.
    scale = next((v for k, v in cfg.items() if k.startswith("full:ssd+loc+ssl")), None)
    row, where = (scale, "paper-scale full model (whole corpus)") if scale else (full, "full model")
    ide, ce = row["entropy"][IMAGE_ID]["mean"], row["entropy"][CLASS]["mean"]
    out.append((f"{where} image-ID entropy {ide:.3f} bits is high (>= 2 bits, i.e. >= 4 equally used sources "
                f"per window; paper {PAPER[IMAGE_ID_ENTROPY]}) and above its class entropy {ce:.3f}: parts are "
                "composed from many images of one class", ide >= 2.0 and ide > ce))
    return out


RESEARCH_COLUMNS = (("fid", "FID", 1, False), ("kid", "KID", 1, False), ("precision", "precision", 1, True),
                    ("recall", "recall", 1, True), ("density", "density", 2, False),
                    ("coverage", "coverage", 1, True), ("memorisation", "memorised", 1, True),
                    ("reference_own_nearest", "nearest = own reference", 1, True))


def _interval(m: dict | None, digits: int, pct: bool) -> str:
    """``v [lo, hi]`` with a warning mark when the figure is below its minimum n."""
    if not m or m.get("value") is None:
        return "—"
    f = (lambda v: f"{100 * v:.{digits}f}%") if pct else (lambda v: f"{v:.{digits}f}")
    return f"{f(m['value'])} [{f(m['low'])}, {f(m['high'])}]" + ("" if m.get("reliable", True) else " ⚠")


def research_section(cfgs: dict) -> list[str]:
    """Table 3: the research metrics with 95 % intervals, the real ceiling, separations and per-class rows."""
    have = {slug: r["research"] for slug, r in cfgs.items() if (r.get("research") or {}).get("metrics")}
    if not have:
        return []
    lines = ["## Table 3: distribution and copying metrics, 95 % bootstrap intervals", ""]
    rows = [[cfgs[slug]["label"], str(res["n"]), *(_interval(res["metrics"].get(k), d, pct)
                                                  for k, _, d, pct in RESEARCH_COLUMNS)]
            for slug, res in have.items()]
    first = next(iter(have.values()))
    if first.get("ceiling"):
        c = first["ceiling"]
        rows.append(["real test images (ceiling, half B)", str(next(iter(c.values()))["n"]),
                     *(_interval(c.get(k), d, pct) for k, _, d, pct in RESEARCH_COLUMNS)])
    lines += [*_table(["configuration", "n", *(h for _, h, _, _ in RESEARCH_COLUMNS)], rows), ""]
    whys = sorted({m["why"] for res in have.values() for m in res["metrics"].values() if not m.get("reliable", True)})
    lines += [f"⚠ unreliable: {w}." for w in whys] + ([""] if whys else [])
    pairs = [(a, b) for a, b in (("ssd", "ssd+loc"), ("ssd+loc", "ssd+loc+ssl")) if a in have and b in have]
    for a, b in pairs:
        sep, over = [], []
        for k, h, _, _ in RESEARCH_COLUMNS:
            ma, mb = have[a]["metrics"].get(k), have[b]["metrics"].get(k)
            if ma and mb:
                (sep if ma["high"] < mb["low"] or mb["high"] < ma["low"] else over).append(h)
        lines.append(f"- {cfgs[a]['label']} vs {cfgs[b]['label']}: intervals disjoint for "
                     f"{', '.join(sep) or 'no metric'}; overlapping for {', '.join(over) or 'none'}.")
    lines += ["", first.get("protocol", ""), ""]
    main = have.get("ssd+loc+ssl")
    if main and main.get("per_class"):
        lines += [f"Per class ({cfgs['ssd+loc+ssl']['label']}, by the classifier's predicted class; classes with "
                  "fewer than 8 samples have no figures):", ""]
        crow = [[str(c["class"]), str(c["n"]), _num(c["share"], 0, True),
                 *(_interval(c.get(k), 1, True) for k in ("precision", "recall", "coverage", "memorisation"))]
                for c in main["per_class"]]
        lines += [*_table(["class", "n", "share", "precision", "recall", "coverage", "memorised"], crow), ""]
    return lines


def write_report(results: dict, out: str | Path) -> Path:
    """Write ``out/report.md`` from ablation results (pictures must already be in ``out``).

    Args:
        results: dict with ``protocol`` (dict of strings), ``configs`` (slug -> result with
            ``label``, ``scores``, ``entropy``, ``composition``, ``relaxed_rate``,
            ``time_per_image_s``, ``memorisation``, ``pictures``), optional ``figure2``
            (PNG name), ``real`` (ceiling scores), ``notes`` (list of str), ``command``,
            ``baselines`` (:func:`nps.baselines.compare.evaluate_baselines` entries: Table 4).
    """
    out = Path(out)
    cfgs = results["configs"]
    p = results.get("protocol", {})
    lines = [f"# Ablation report: {results.get('corpus', '?')}", "",
             f"Command: `{results.get('command', '')}`  ", f"Created: {results.get('created', '')}, "
             f"nps {results.get('version', '')}, {results.get('machine', '')}", ""]
    claims = checks(results)
    if claims:
        lines += ["**Checks** (from the numbers below):", ""]
        lines += [f"- {'✅' if ok else '❌'} {text}" for text, ok in claims] + [""]

    lines += ["## Figure 2: samples per constraint set", "",
              "Same references, same RNG streams, same corpus subset; left to right: SSD only, "
              "SSD + locality, SSD + locality + representation (and, if run, the full model on the whole "
              "corpus at paper scale, whose references differ).", ""]
    if results.get("figure2"):
        lines += [f"![Figure 2]({results['figure2']})", ""]

    # The paper's numbers sit beside its setting: the full model on the whole corpus when we ran it.
    paper_slug = "full:ssd+loc+ssl" if "full:ssd+loc+ssl" in cfgs else "ssd+loc+ssl"
    # ---------------------------------------------------------------- Table 1
    lines += ["## Table 1: Inception Score and classifier FID", ""]
    rows = []
    for slug, r in cfgs.items():
        s = (r.get("scores") or {}).get("samples")
        paper = f"{PAPER['is']:.2f}" if slug == paper_slug else "—"
        fid_ci = ((r.get("research") or {}).get("metrics") or {}).get("fid")  # same FID, with its interval
        rows.append([r["label"], str(r["n"]), _pm(s["is_mean"], s["is_std"]) if s else "—",
                     _num(s.get("is_all")) if s else "—",
                     _interval(fid_ci, 1, False) if fid_ci else (_num(s["fid"]) if s else "—"), paper])
    real = results.get("real")
    if real:
        rows.append([f"real test images (ceiling, n={real['n']})", str(real["n"]), _pm(real["is_mean"], real["is_std"]),
                     _num(real.get("is_all")), _num(real["fid"]), "—"])
    if results.get("real_full"):
        rf = results["real_full"]
        rows.append([f"real test split (all {rf['n']})", str(rf["n"]), _pm(rf["is_mean"], rf["is_std"]), "—", "—",
                     "—"])
    lines += [*_table(["configuration", "n", "IS, 10 splits (ours)", "IS, 1 split of n (ours)",
                       "FID (ours, classifier features) [95 % interval]", "IS (paper)"], rows), ""]
    lines += ["An IS over a split of m images cannot exceed m, so with small n the 10-split score is capped; "
              "compare rows with the real-image ceiling of the same n.", ""]

    # ---------------------------------------------------------------- Table 2
    lines += ["## Table 2: sliding-window entropy of the provenance maps (bits)", ""]
    rows = []
    for slug, r in cfgs.items():
        e = r["entropy"]
        full = slug == paper_slug
        rows.append([r["label"], _pm(e[CLASS]["mean"], e[CLASS]["std"], 3),
                     _pm(e[IMAGE_ID]["mean"], e[IMAGE_ID]["std"], 3),
                     f"{PAPER[CLASS_ENTROPY]:.3f}" if full else "—",
                     f"{PAPER[IMAGE_ID_ENTROPY]:.3f}" if full else "—"])
    lines += [*_table(["configuration", "class entropy (ours)", "image-ID entropy (ours)",
                       "class (paper)", "image-ID (paper)"], rows), ""]

    lines += research_section(cfgs)
    if results.get("baselines"):  # Table 4: the learned baselines beside every configuration (nps.baselines.compare)
        from nps.baselines.compare import comparison_section
        lines += comparison_section(cfgs, results["baselines"])

    # ---------------------------------------------------------------- mechanics
    lines += ["## Mechanics: composition, empty pools, memorisation, cost", ""]
    rows = []
    for r in cfgs.values():
        c, m = r["composition"], r.get("memorisation") or {}
        px, em = m.get("pixels") or {}, m.get("embedding") or {}
        agree = (r.get("scores") or {}).get("label_agreement")
        rows.append([r["label"], _num(c["n_sources"]["mean"], 1), _num(c["top1_share"]["mean"], 0, True),
                     _num(c["top5_share"]["mean"], 0, True), _num(c["largest_island"]["mean"], 1),
                     _num(c["label_purity"]["mean"], 0, True),
                     _num((c.get("reference_share") or {}).get("mean"), 0, True), _num(agree, 0, True),
                     _num(r["relaxed_rate"], 2, True),
                     f"{_num(px.get('fraction_below'), 0, True)} / {_num(em.get('fraction_below'), 0, True)}",
                     _num(r.get("time_per_image_s"), 2)])
    lines += _table(["configuration", "distinct sources", "top-1 share", "top-5 share", "largest copy island (px)",
                     "label purity", "copied from own reference", "class = reference's", "relaxed pixels",
                     "NN ratio < 1/3 (pixels / emb.)",
                     "s / image"], rows)
    mem = next((r["memorisation"] for r in cfgs.values() if r.get("memorisation")), None)
    if mem:
        lines += ["", f"Real test images, NN ratio < 1/3: pixels {_num(mem['pixels']['real_fraction_below'], 1, True)}"
                  + (f", embedding {_num(mem['embedding']['real_fraction_below'], 1, True)}"
                     if mem.get("embedding") else "") + "."]
    lines += [""]

    # ---------------------------------------------------------------- per-configuration pictures
    if any(r.get("pictures") for r in cfgs.values()):  # a docs copy (nps.baselines.compare) carries none
        lines += ["## Per configuration", ""]
    for r in cfgs.values():
        pics = r.get("pictures") or {}
        if not pics:
            continue
        lines += [f"### {r['label']}", ""]
        for key, caption in (("trace_0", "source trace of sample 0 (top-5 sources, copied pixels tinted)"),
                             ("trace_1", "source trace of sample 1"),
                             ("entropy_maps", "mean window-entropy maps"), ("pool_size", "pool size"),
                             ("composition", "composition per sample"),
                             ("memorisation", "nearest / second-nearest ratios vs real test images")):
            if key in pics:
                lines += [f"![{caption}]({pics[key]})", ""]

    # ---------------------------------------------------------------- protocol and notes
    lines += ["## Protocol", ""]
    lines += [f"- **{k}**: {v}" for k, v in p.items()] + [""]
    if results.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    path = out / "report.md"
    from nps.cache import write_text
    return write_text(path, "\n".join(lines))
