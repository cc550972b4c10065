"""``python -m nps evaluate samples.npz --out DIR``: every metric and picture of one record."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from nps.cli._common import add_record_corpus_args, positive, record_corpus, writable_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="metrics (IS, FID, entropies, composition, memorisation) and pictures of a record",
        description="Evaluate one provenance record: Inception Score and classifier FID with the real test "
                    "images' scores as the ceiling, sliding-window entropies of the class and image-ID maps, "
                    "source composition, pool sizes, memorisation ratios. Writes DIR/metrics.json and PNGs.")
    p.add_argument("record", help="a provenance record (.npz) written by `nps generate`, or baseline samples "
                                  "from `nps baselines sample` (scored on the image metrics only)")
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--entropy-window", type=int, default=5, help="entropy window side (default: %(default)s)")
    p.add_argument("--traces", type=int, default=4,
                   help="samples to draw source traces for (default: %(default)s; at most the record's N are drawn)")
    p.add_argument("--encoder", default=None,
                   help="encoder for the embedding-space memorisation ratio (default: the record's encoder; "
                        "'none' for pixels only)")
    p.add_argument("--no-memorisation", action="store_true", help="skip the nearest-neighbour ratios")
    p.add_argument("--no-scores", action="store_true", help="skip IS/FID")
    add_record_corpus_args(p)
    p.set_defaults(func=run)


def load_record_corpus(record, data_root: str | None = None, corpus: str | None = None):
    """The corpus a record was generated from, from the user's roots only (:func:`record_corpus`)."""
    return record_corpus(record, corpus, data_root)


def write_pictures(record, corpus, result: dict, out: Path, traces: int = 4, prefix: str = "") -> dict[str, str]:
    """All PNGs of one analysed record; returns {picture name: file name}."""
    import numpy as np

    from nps.analysis.entropy import entropy_map
    from nps.lab import plots
    files: dict[str, str] = {}

    def name(stem: str) -> Path:
        files[stem] = f"{prefix}{stem}.png"
        return out / files[stem]

    plots.save_sample_grid(record.images, name("grid"))
    plots.save_id_maps(record.source_index[:64], name("id_maps"))
    plots.save_class_maps(record.source_label[:64], name("class_maps"))
    window = result["entropy"]["class"]["window"]
    valid = record.source_index >= 0
    with warnings.catch_warnings():  # all-NaN border columns are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        maps = {f"class entropy (w={window})": np.nanmean(entropy_map(record.source_label, window, valid), 0),
                f"image-ID entropy (w={window})": np.nanmean(entropy_map(record.source_index, window, valid), 0)}
    plots.save_heatmaps(maps, name("entropy_maps"), colorbar="bits")
    pool = result["_pool"]
    plots.save_heatmaps({"mean log10 pool size": pool["log10_map"], "relaxed share": pool["relaxed_map"]},
                        name("pool_size"), colorbar="")
    plots.save_composition(record.source_index, name("composition"))
    if result.get("_memorisation_report") is not None:
        plots.save_memorisation(result["_memorisation_report"], name("memorisation"))
    for i in range(min(traces, len(record))):
        plots.save_trace(record, i, corpus.train, name(f"trace_{i}"))
    return files


def run(args: argparse.Namespace) -> int:
    from nps import NPSError, load_record
    from nps.analysis import analyse_record, jsonable
    from nps.baselines import is_baseline_file
    from nps.cache import write_text
    from nps.encoders import ENCODERS, get_encoder
    if args.encoder is not None and args.encoder not in (*ENCODERS, "none"):  # a typo, not a note after the run
        raise NPSError(f"--encoder '{args.encoder}' is unknown; use one of {', '.join(sorted(ENCODERS))} or none.")
    if is_baseline_file(args.record):  # learned-baseline samples: image metrics only (no provenance)
        from nps.baselines.evaluate import run_evaluate
        return run_evaluate(args)
    record = load_record(args.record)
    h, w = record.canvas_shape
    positive(args.entropy_window, "--entropy-window", 1, min(h, w))
    positive(args.traces, "--traces", 0)  # more than N draws N
    corpus = load_record_corpus(record, args.data_root, args.corpus)
    out = writable_dir(args.out)
    enc_name = args.encoder or record.config.get("encoder", "pca")
    encoder = None
    if not args.no_memorisation and enc_name != "none":
        try:
            encoder = get_encoder(enc_name, corpus)
        except NPSError as exc:
            print(f"note: embedding-space memorisation skipped ({exc})")
    result = analyse_record(record, corpus, window=args.entropy_window, encoder=encoder,
                            memorisation=not args.no_memorisation, scores=not args.no_scores)
    from nps.metrics.evaluation import format_lines, record_metrics  # FID/KID/PRDC/copying with intervals
    result["research"] = record_metrics(record, corpus, features=not args.no_scores,
                                        copying=not args.no_memorisation)
    result["pictures"] = write_pictures(record, corpus, result, out, args.traces)
    result["record"] = str(Path(args.record))
    write_text(out / "metrics.json", json.dumps(jsonable(result), indent=2, sort_keys=True) + "\n")
    _print_summary(result)
    if result["research"] is not None:
        print("\n".join(format_lines(result["research"])))
    print(f"wrote {out / 'metrics.json'} and {len(result['pictures'])} PNGs in {out}")
    return 0


def _print_summary(r: dict) -> None:
    e = r["entropy"]
    print(f"{r['n']} samples; provenance errors {r['provenance_errors']}; relaxed rate {r['relaxed_rate']:.4f}")
    print(f"class entropy {e['class']['mean']:.3f} ± {e['class']['std']:.3f} bits; "
          f"image-ID entropy {e['image_id']['mean']:.3f} ± {e['image_id']['std']:.3f} bits (w={e['class']['window']})")
    c = r["composition"]
    print(f"distinct sources {c['n_sources']['mean']:.1f}; top-1 share {c['top1_share']['mean']:.2f}; "
          f"largest copy island {c['largest_island']['mean']:.1f} px; label purity {c['label_purity']['mean']:.2f}")
    s = r.get("scores")
    if s:
        print(f"IS {s['samples']['is_mean']:.2f} ± {s['samples']['is_std']:.2f} (real {s['real']['is_mean']:.2f}); "
              f"FID {s['samples']['fid']:.2f} (real {s['real']['fid']:.2f})")
    m = r.get("memorisation")
    if m:
        parts = [f"{k} below 1/3 {v['fraction_below']:.1%} (real {v['real_fraction_below']:.1%})"
                 for k, v in m.items() if isinstance(v, dict)]
        print("memorisation: " + "; ".join(parts))
    for note in r.get("notes", []):
        print(f"note: {note}")
