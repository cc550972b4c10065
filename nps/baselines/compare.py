"""NPS against the learned baselines in the ablation report: same metrics, same n, with intervals.

:func:`evaluate_baselines` samples each baseline at the ablation's n and seed, times the
sampling in this process, and scores the images with the very calls the ablation makes
for its records (:func:`nps.metrics.evaluation.sample_metrics` for FID, KID,
precision/recall, density/coverage and memorisation with 95 % bootstrap intervals;
:func:`nps.analysis.image_scores` for IS), against the whole corpus the baselines were
trained on.  :func:`comparison_section` renders the report's Table 4 from the ablation's
configurations and these entries; :func:`add_to_ablation` does both for a finished
ablation folder (``python -m nps baselines compare DIR``), so the table can be rebuilt
from the records and ``metrics.json`` that ``nps ablate`` wrote, without regenerating.

A baseline entry (JSON-able) has the keys of an ablation configuration that the table
reads (``label``, ``n``, ``scores``, ``research``) plus ``model``, ``weights``,
``weights_sha256``, ``sampling_ms_per_image`` (this run), ``training`` (from the weights'
JSON card: ``train_seconds``, ``epochs_completed``, ``steps``, ``stop_reason``,
``command``, ``load_average``, ``sampling_ms_per_image`` right after training) and
``load_average`` (when it was sampled and scored).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from nps.errors import NPSError

log = logging.getLogger(__name__)

LABELS = {"vae": "VAE (MLP)", "gan": "DCGAN", "flow": "rectified flow (U-Net-lite, 32 Euler steps)"}
# (metric key, column header, digits, percentage): the research metrics, as in the report's Table 3.
COLUMNS = (("fid", "FID", 1, False), ("kid", "KID", 1, False), ("precision", "precision", 0, True),
           ("recall", "recall", 0, True), ("density", "density", 2, False), ("coverage", "coverage", 0, True),
           ("memorisation", "memorised", 1, True))
CARD_KEYS = ("command", "train_seconds", "epochs_completed", "steps", "stop_reason", "load_average",
             "sampling_ms_per_image", "machine")


def select_models(spec: str | None, corpus: str) -> list[str]:
    """The baselines to compare: ``auto`` (None) = every one with weights for ``corpus``; ``none`` = [].

    Raises:
        NPSError: an unknown name, or a named model without weights (says how to train it).
    """
    from nps.baselines import MODELS
    from nps.baselines.io import kind
    from nps.shipped import locate_weights
    spec = "auto" if spec is None else spec.strip()
    if spec == "none":
        return []
    if spec == "auto":
        return [m for m in MODELS if locate_weights(kind(m), corpus) is not None]
    names = [s.strip() for s in spec.split(",")]
    bad = [s for s in names if s not in MODELS]
    if bad or not names:
        raise NPSError(f"--baselines {spec!r} names {f'an unknown model {bad[0]!r}' if bad else 'none'}; give "
                       f"auto, none or a comma list of {', '.join(MODELS)}.")
    for m in names:
        if locate_weights(kind(m), corpus) is None:
            raise NPSError(f"--baselines: no {m} weights for '{corpus}'; train them with `python -m nps baselines "
                           f"train --corpus {corpus} --model {m}` or leave {m} out.")
    return list(dict.fromkeys(names))


def _card(path: Path) -> dict:
    card = path.with_suffix(".json")
    try:
        data = json.loads(card.read_text())
    except (OSError, ValueError):
        return {}
    return {k: data.get(k) for k in CARD_KEYS}


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def evaluate_baselines(models: list[str], corpus, n: int, seed: int, classifier=None) -> dict[str, dict]:
    """Sample, time and score each baseline at n samples (seed ``seed``) on ``corpus``.

    Args:
        models: names from :func:`select_models`.
        corpus: the whole corpus the baselines were trained on (its train split is the
            memorisation memory, its test split the real reference).
        n: samples per model: the ablation's n, so every row has the same sample size.
        classifier: the ablation's classifier (default: the corpus's shipped one).
    Returns:
        {"baseline:<model>": entry} (module docstring), in ``models`` order.
    """
    from nps.analysis import image_scores
    from nps.baselines.io import load_model, locate, sample_images
    from nps.metrics.evaluation import sample_metrics
    out: dict[str, dict] = {}
    for name in models:
        path = locate(name, corpus.name)
        model = load_model(path)  # images of another shape are refused by sample_metrics, one line
        sample_images(model, min(n, 8), seed)  # warm-up: the first call pays torch's start-up
        t0 = time.perf_counter()
        images = sample_images(model, n, seed)
        ms = (time.perf_counter() - t0) * 1000 / n
        notes: list[str] = []
        entry = {"label": LABELS.get(name, name), "model": name, "kind": "baseline", "n": len(images),
                 "weights": path.name, "weights_sha256": model.sha256_, "sampling_ms_per_image": round(ms, 3),
                 "training": _card(path), "seed": seed, "notes": notes,
                 "scores": image_scores(images, corpus, notes, classifier),
                 "research": sample_metrics(images, corpus, classifier=classifier, per_class=False) if n >= 6 else
                 {"n": n, "metrics": {}, "notes": [f"research metrics skipped: they need 6 samples, n = {n}"]},
                 "load_average": _load_average()}
        log.info("baseline %s: %d samples, %.3f ms/image", name, n, ms)
        out[f"baseline:{name}"] = entry
    return out


def _interval(m: dict | None, digits: int, pct: bool) -> str:
    from nps.lab.report import _interval as fmt
    return fmt(m, digits, pct)


def _encoder_training(config: dict) -> str:
    """What the NPS row was trained on: nothing for the sampler; the SimCLR encoder's card if it used one."""
    enc = (config or {}).get("encoder")
    ssl = "ssl" in ((config or {}).get("constraints") or [])
    if not ssl or enc != "simclr":
        return "none" + (f" ({enc} fit in seconds)" if ssl and enc == "pca" else "")
    from nps.shipped import WEIGHTS_DIR
    card = WEIGHTS_DIR / f"simclr-{config.get('corpus')}.json"
    try:
        secs = json.loads(card.read_text())["train_seconds"]
    except (OSError, ValueError, KeyError):
        return "none (sampler); SimCLR encoder: see its card"
    return f"none (sampler); SimCLR encoder {secs / 60:.0f} min"


def _training(entry: dict) -> str:
    t = entry.get("training") or {}
    if not t.get("train_seconds"):
        return "— (no card)"
    return f"{t['train_seconds'] / 60:.1f} min, {t.get('epochs_completed', 0):g} epochs"


def _is(entry: dict) -> str:
    s = (entry.get("scores") or {}).get("samples")
    return f"{s['is_mean']:.2f} ± {s['is_std']:.2f}" if s else "—"


def _row(label: str, entry: dict, training: str, ms: float | None) -> list[str]:
    res = entry.get("research") or {}
    m = res.get("metrics") or {}
    return [label, str(res.get("n", entry.get("n", "—"))), _is(entry),
            *(_interval(m.get(k), d, pct) for k, _, d, pct in COLUMNS),
            _interval(m.get("reference_own_nearest"), 0, True), training,
            "—" if ms is None else (f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}")]


def _disjoint(a: dict, b: dict) -> tuple[list[str], list[str]]:
    sep, over = [], []
    for k, h, _, _ in COLUMNS:
        ma, mb = (a.get("metrics") or {}).get(k), (b.get("metrics") or {}).get(k)
        if ma and mb:
            (sep if ma["high"] < mb["low"] or mb["high"] < ma["low"] else over).append(h)
    return sep, over


def comparison_section(cfgs: dict, baselines: dict) -> list[str]:
    """Table 4 of the ablation report: every NPS configuration and every baseline, same columns.

    Args:
        cfgs: the ablation's configurations (slug -> result with ``label``, ``research``,
            ``scores``, ``config``, ``time_per_image_s``).
        baselines: :func:`evaluate_baselines` entries.
    Returns:
        markdown lines (empty when there are no baselines).
    """
    from nps.lab.report import _table
    if not baselines:
        return []
    rows = [_row(r["label"], r, _encoder_training(r.get("config") or {}),
                 None if r.get("time_per_image_s") is None else 1000 * r["time_per_image_s"])
            for r in cfgs.values() if (r.get("research") or {}).get("metrics")]
    rows += [_row(b["label"], b, _training(b), b.get("sampling_ms_per_image")) for b in baselines.values()]
    ceiling = next((r["research"].get("ceiling") for r in cfgs.values() if (r.get("research") or {}).get("ceiling")),
                   None)
    if ceiling:  # n real test images scored the same way: what a perfect generator would get at this n
        c = {"research": {"n": next(iter(ceiling.values()))["n"], "metrics": ceiling}}
        rows.append(_row("real test images (ceiling, half B)", c, "—", None))
    header = ["model", "n", "IS (10 splits)", *(h for _, h, _, _ in COLUMNS), "nearest = own reference",
              "training", "sampling ms/image (this run)"]
    lines = ["## Table 4: NPS against learned baselines, same metrics, 95 % bootstrap intervals", "",
             *_table(header, rows), ""]
    ns = {str((e.get("research") or {}).get("n")) for e in [*cfgs.values(), *baselines.values()]
          if (e.get("research") or {}).get("metrics")}
    first = next(iter(baselines.values()))
    lines += [f"Every row is n = {', '.join(sorted(ns))} samples (seed {first.get('seed', 0)}), scored by the same "
              "call (`nps.metrics.evaluation.sample_metrics`) against the same halves of the test split. "
              "Memorised: share of samples closer to one training image than the 1st percentile of 1,000 real "
              "test images' nearest-train distances, against the run's training images (the 300-image subset "
              "for the subset rows; the whole corpus for the whole-corpus rows and the baselines, which were "
              "trained on it). Nearest = own reference: NPS only (a baseline has no reference). Training: from "
              "each baseline's JSON card (`nps/weights/baseline-<model>-<corpus>.json`). Sampling: NPS rows are "
              "the wall time of the ablation's generate call per image (pool building included, configurations "
              "run one after another); baselines were sampled in one batch after a warm-up, load average "
              + "; ".join(f"{b['model']} {b.get('load_average')}" for b in baselines.values()) + ".", ""]
    main = cfgs.get("full:ssd+loc+ssl") or cfgs.get("ssd+loc+ssl")
    if main and (main.get("research") or {}).get("metrics"):
        for b in baselines.values():
            sep, over = _disjoint(main["research"], b.get("research") or {})
            lines.append(f"- {main['label']} vs {b['label']}: intervals disjoint for {', '.join(sep) or 'no metric'}; "
                         f"overlapping for {', '.join(over) or 'none'}.")
        lines.append("")
    return lines


def plan_order(slug: str) -> tuple:
    """The order ``nps ablate`` runs its configurations in, from a slug (its metrics.json sorts keys).

    SSD only, SSD + loc, SSD + loc + SSL (main encoder, then the others by name), then
    the whole-corpus rows the same way.
    """
    full, _, rest = slug.rpartition(":")
    base, _, encoder = rest.partition("/")
    sets = ("ssd", "ssd+loc", "ssd+loc+ssl")
    return (bool(full), sets.index(base) if base in sets else len(sets), bool(encoder), encoder)


def add_to_ablation(folder: str | Path, spec: str | None = None, data_root: str | None = None,
                    docs_copy: str | Path | None = None, rescore: bool = False) -> tuple[Path, dict]:
    """Score the baselines beside a finished ablation and rewrite its ``report.md`` and ``metrics.json``.

    The n, seed and corpus are the ablation's own (from its ``metrics.json``); the NPS rows
    are read, not regenerated.  With ``docs_copy`` a copy of the report without the
    per-configuration pictures is written there too (Figure 2 linked as
    ``<stem>-figure2.png`` beside it).  Baseline rows already in ``metrics.json`` at the
    same n (``ablate --baselines``) are reused unless ``rescore``; then only the report is
    rendered again.

    Returns:
        (path of report.md, the baseline entries).
    """
    from nps.analysis import jsonable
    from nps.cache import write_text
    from nps.corpora import load_corpus
    from nps.lab.report import write_report
    from nps.metrics.classifier import load_classifier
    folder = Path(folder)
    path = folder / "metrics.json"
    try:
        results = json.loads(path.read_text())
        results["configs"] = cfgs = {k: results["configs"][k] for k in sorted(results["configs"], key=plan_order)}
        n = next(int(r["n"]) for r in cfgs.values())
        seed = int(next(iter(cfgs.values()))["config"]["seed"])
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        raise NPSError(f"'{path}' is not the metrics.json of an ablation; run `python -m nps ablate --out "
                       f"{folder}` first.") from None
    corpus_name = results.get("corpus", "mnist")
    models = select_models(spec, corpus_name)
    if not models:
        raise NPSError(f"no baseline has weights for '{corpus_name}'; train one with `python -m nps baselines "
                       f"train --corpus {corpus_name} --model vae`.")
    have = results.get("baselines") or {}
    if rescore or [m for m in models if (have.get(f"baseline:{m}") or {}).get("n") != n]:
        corpus = load_corpus(corpus_name, data_root=data_root)
        results["baselines"] = jsonable(evaluate_baselines(models, corpus, n, seed, load_classifier(corpus_name)))
        results.setdefault("notes", []).append(
            f"Table 4's baseline rows were added by `python -m nps baselines compare {folder}` on "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} (the NPS rows are the ablation's own).")
        write_text(path, json.dumps(results, indent=2, sort_keys=True) + "\n")
    else:  # the ablation scored them already at this n (ablate --baselines): reuse, only re-render
        results["baselines"] = {f"baseline:{m}": have[f"baseline:{m}"] for m in models}
        log.info("reusing the baseline rows in %s", path)
    report = write_report(results, folder)
    if docs_copy is not None:
        write_docs_copy(results, folder, Path(docs_copy))
    return report, results["baselines"]


def write_docs_copy(results: dict, folder: Path, target: Path) -> Path:
    """The report without per-configuration pictures at ``target`` (Figure 2 copied beside it as
    ``<target stem>-figure2.png``, so that two reports in one folder keep their own)."""
    import shutil
    import tempfile

    from nps.cache import write_text
    from nps.lab.report import write_report
    slim = {**results, "configs": {k: {**v, "pictures": {}} for k, v in results["configs"].items()},
            "notes": [*results.get("notes", []), f"This copy, without the per-configuration pictures, was "
                      f"rendered from {folder / 'metrics.json'} by `python -m nps baselines compare {folder} "
                      f"--docs {target}`; every figure is the ablation command's (above)."]}
    if results.get("figure2") and (folder / results["figure2"]).is_file():
        figure = f"{target.stem}-figure2.png"  # docs/ablation.md -> ablation-figure2.png; one per report
        shutil.copyfile(folder / results["figure2"], target.parent / figure)
        slim["figure2"] = figure
    with tempfile.TemporaryDirectory() as tmp:  # write_report names its file; render there, then copy
        text = write_report(slim, tmp).read_text()
    return write_text(target, text)


__all__ = ["COLUMNS", "LABELS", "add_to_ablation", "comparison_section", "evaluate_baselines", "plan_order",
           "select_models", "write_docs_copy"]
