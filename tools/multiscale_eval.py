"""Multi-scale (ms) against the full model: same corpus, references and seeds; metrics with intervals.

Usage: PYTHONPATH=. python tools/multiscale_eval.py [--corpus mnist] [--subset 300] [--n 128] [--seed 0]
       [--ms-eps 0.5] [--out cache/multiscale-eval]

Generates the full model (ssd,loc,ssl; the corpus's auto encoder, k = subset/20 as in ``ablate``)
and the same plus ms, on the same stratified subset, references and RNG streams; prints and
writes (``DIR/multiscale.md``, ``DIR/multiscale.json``) the classifier metrics with 95 % bootstrap
intervals (``nps.metrics.evaluation.record_metrics``), IS, class and image-ID entropies and time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    from nps.analysis import analyse_record, jsonable
    from nps.cache import write_text
    from nps.cli.ablate import auto_k
    from nps.config import GenerationConfig
    from nps.corpora import load_corpus
    from nps.engine.sampler import generate
    from nps.metrics.classifier import load_classifier
    from nps.metrics.evaluation import record_metrics, research_line

    p = argparse.ArgumentParser()
    p.add_argument("--corpus", default="mnist")
    p.add_argument("--subset", type=int, default=300)
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ms-eps", type=float, default=0.5)
    p.add_argument("--out", default="cache/multiscale-eval")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(args.corpus, subset=args.subset)
    classifier = load_classifier(args.corpus)
    base = GenerationConfig.make(corpus=args.corpus, subset=args.subset, n=args.n, seed=args.seed, batch_size=64,
                                 k=auto_k(len(corpus)), ms_eps=args.ms_eps)
    rows = {}
    for name, cons in (("full", "ssd,loc,ssl"), ("full + ms", "ssd,loc,ssl,ms")):
        cfg = base.replace(constraints=cons)
        t0 = time.perf_counter()
        rec = generate(cfg, corpus)
        seconds = time.perf_counter() - t0
        rec.save(out / f"{name.replace(' + ', '-')}.npz")
        r = analyse_record(rec, corpus, classifier=classifier, memorisation=False)
        research = record_metrics(rec, corpus, classifier=classifier)
        s = r["scores"]["samples"]
        rows[name] = {"config": cfg.to_dict(), "seconds": seconds, "is": [s["is_mean"], s["is_std"]],
                      "class_H": [r["entropy"]["class"]["mean"], r["entropy"]["class"]["std"]],
                      "image_id_H": [r["entropy"]["image_id"]["mean"], r["entropy"]["image_id"]["std"]],
                      "pool_size": float(rec.pool_size[rec.pool_size > 0].mean()),
                      "research": research, "references": rec.reference.tolist()}
        print(f"{name}: IS {s['is_mean']:.2f} ± {s['is_std']:.2f}, class H {rows[name]['class_H'][0]:.3f}, "
              f"ID H {rows[name]['image_id_H'][0]:.3f}, {seconds:.1f} s")
        print(research_line(research))
    same = rows["full"]["references"] == rows["full + ms"]["references"]
    lines = [f"# multi-scale against the full model ({args.corpus}, subset {len(corpus)}, n = {args.n}, "
             f"seed {args.seed}, k = {base.k}, encoder {base.encoder}, ms_eps {args.ms_eps}; same references: {same})",
             "", "| metric | full | full + ms |", "|---|---|---|"]

    def cell(m: dict) -> str:
        return f"{m['value']:.3g} [{m['low']:.3g}, {m['high']:.3g}]" + ("" if m["reliable"] else " ⚠")

    for key in ("fid", "kid", "precision", "recall", "density", "coverage", "memorisation", "reference_own_nearest"):
        a, b = (rows[k]["research"]["metrics"].get(key) for k in ("full", "full + ms"))
        if a and b:
            lines.append(f"| {key} | {cell(a)} | {cell(b)} |")
    for key, label in (("is", "IS (10 splits)"), ("class_H", "class entropy (bits)"),
                       ("image_id_H", "image-ID entropy (bits)")):
        a, b = rows["full"][key], rows["full + ms"][key]
        lines.append(f"| {label} | {a[0]:.3f} ± {a[1]:.3f} | {b[0]:.3f} ± {b[1]:.3f} |")
    lines.append(f"| mean pool size | {rows['full']['pool_size']:.2f} | {rows['full + ms']['pool_size']:.2f} |")
    lines.append(f"| seconds | {rows['full']['seconds']:.1f} | {rows['full + ms']['seconds']:.1f} |")
    write_text(out / "multiscale.md", "\n".join(lines) + "\n")
    write_text(out / "multiscale.json", json.dumps(jsonable(rows), indent=2, sort_keys=True) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
