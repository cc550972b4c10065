"""``python -m nps evaluate`` for baseline sample files: the image metrics only.

A baseline sample has no provenance, so the class/image-ID entropies, composition,
pool sizes and provenance checks do not exist for it; they are listed under
``skipped`` with a note.  What is scored is what depends on the images alone:
IS and classifier FID (:func:`nps.metrics.scores.classifier_report`, with the real
test images as the ceiling) and the nearest-neighbour memorisation ratios
(:func:`nps.analysis.memorisation.memorisation`), exactly as for a record.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from nps.errors import NPSError

SKIPPED = ("entropy", "composition", "pool", "relaxed_rate", "provenance_errors", "traces")


def analyse_samples(images: np.ndarray, config: dict, corpus, *, encoder=None,
                    memorisation: bool = True, scores: bool = True, classifier=None) -> dict:
    """The image metrics of baseline samples (N,H,W[,C]) uint8 drawn for ``corpus``.

    Returns:
        dict with ``n``, ``config``, ``kind`` ("baseline"), ``scores`` (or None),
        ``memorisation`` (or None), ``skipped`` (provenance-based metrics) and ``notes``;
        ``_memorisation_report`` holds the report object for the pictures.
    """
    if images.shape[1:] != corpus.train.shape[1:]:
        raise NPSError(f"samples of shape {images.shape[1:]} do not match corpus '{corpus.name}' images "
                       f"{corpus.train.shape[1:]}.")
    notes = [f"baseline samples ({config.get('model')}) carry no provenance: "
             f"{', '.join(SKIPPED)} are skipped."]
    out: dict = {"n": len(images), "kind": "baseline", "config": config, "scores": None, "memorisation": None,
                 "skipped": list(SKIPPED), "notes": notes}
    from nps.analysis import image_memorisation, image_scores
    if scores:
        out["scores"] = image_scores(images, corpus, notes, classifier)
    if memorisation:
        if encoder is None:
            notes.append("memorisation in pixel space only; pass --encoder NAME for the embedding space.")
        out["memorisation"], out["_memorisation_report"] = image_memorisation(images, corpus, encoder)
    return out


def run_evaluate(args: argparse.Namespace) -> int:
    """The ``evaluate`` command for a baseline file: metrics.json, a sample grid, memorisation PNG."""
    from nps.analysis import jsonable
    from nps.baselines import load_samples
    from nps.cli._common import writable_dir
    from nps.corpora import load_corpus
    from nps.encoders import get_encoder
    from nps.lab import plots

    images, config = load_samples(args.record)
    out = writable_dir(args.out)
    corpus = load_corpus(config.get("corpus", "mnist"), data_root=args.data_root)
    encoder = None
    if not args.no_memorisation and args.encoder and args.encoder != "none":
        try:
            encoder = get_encoder(args.encoder, corpus)
        except NPSError as exc:
            print(f"note: embedding-space memorisation skipped ({exc})")
    result = analyse_samples(images, config, corpus, encoder=encoder, memorisation=not args.no_memorisation,
                             scores=not args.no_scores)
    pictures = {"grid": "grid.png"}
    plots.save_sample_grid(images[:64], out / "grid.png")
    if result.get("_memorisation_report") is not None:
        plots.save_memorisation(result["_memorisation_report"], out / "memorisation.png")
        pictures["memorisation"] = "memorisation.png"
    result["pictures"] = pictures
    result["record"] = str(Path(args.record))
    from nps.cache import write_text
    write_text(out / "metrics.json", json.dumps(jsonable(result), indent=2, sort_keys=True) + "\n")
    print(f"{result['n']} {config.get('model')} baseline samples (no provenance)")
    s = result.get("scores")
    if s:
        print(f"IS {s['samples']['is_mean']:.2f} ± {s['samples']['is_std']:.2f} (real {s['real']['is_mean']:.2f}); "
              f"FID {s['samples']['fid']:.2f} (real {s['real']['fid']:.2f})")
    m = result.get("memorisation")
    if m:
        parts = [f"{k} below 1/3 {v['fraction_below']:.1%} (real {v['real_fraction_below']:.1%})"
                 for k, v in m.items() if isinstance(v, dict)]
        print("memorisation: " + "; ".join(parts))
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"wrote {out / 'metrics.json'} and {len(pictures)} PNGs in {out}")
    return 0
