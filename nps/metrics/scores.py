"""Inception Score and Fréchet distance, computed with the project's classifier.

* Inception Score (Salimans et al. 2016): IS = exp E_x[KL(p(y|x) || p(y))], where p(y)
  is the mean prediction of the split; the images are cut into 10 splits and the
  score is reported as mean +- std over splits.  Its range is [1, n_classes].
* Fréchet distance (Heusel et al. 2017) between Gaussians fitted to classifier
  penultimate features (128-d): |mu1-mu2|^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2),
  computed through symmetric eigendecompositions so it is real and stable.

:func:`classifier_report` gives both for a set of samples and, as the ceiling, for
the same number of real test images.  Protocol: the test split is cut (seeded) into
two disjoint halves; the reference statistics come from half A, the real-data
ceiling uses ``n`` images of half B, so samples and ceiling have the same sample
size (IS and FID both depend on it) and the ceiling is not scored against itself.
"""

from __future__ import annotations

import numpy as np

from nps.errors import NPSError


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Inception Score of class probabilities.

    Args:
        probs: (N,C) float, rows are p(y|x) (normalised here).
        splits: number of equal splits (min(splits, N) are used).
    Returns:
        (mean, std) over splits; std is 0 for a single split.
    """
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise NPSError(f"inception_score needs (N,C) probabilities with N >= 1, got shape {p.shape}.")
    p = p / p.sum(1, keepdims=True)
    splits = max(1, min(splits, len(p)))
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(0, keepdims=True)
        # 0 * log 0 = 0: mask zero probabilities instead of adding an epsilon that biases IS.
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(py)), 0.0).sum(1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D,D) float64 of (N,D) features (N >= 2)."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise NPSError(f"Fréchet distance needs at least 2 feature rows, got shape {f.shape}.")
    return f.mean(0), np.cov(f, rowvar=False)


def _sqrtm_psd(s: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((s + s.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, s1) and N(mu2, s2) (>= 0)."""
    r1 = _sqrtm_psd(s1)
    m = r1 @ s2 @ r1
    tr_cross = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_cross, 0.0))


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between two (N,D) feature sets."""
    return frechet_distance(*feature_stats(a), *feature_stats(b))


def _split_test(n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n_test)
    half = n_test // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


def test_outputs(classifier, corpus) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (M,C) and features (M,128) float64 of the whole test split, cached.

    The real side of every report is the same for a given classifier and test split, so
    it is computed once and kept in ``cache/`` (keyed by weights and test images).
    """
    from nps.cache import cached_arrays, content_key
    key = content_key("classifier-test", classifier.identity, corpus.name, corpus.test)

    def build() -> dict[str, np.ndarray]:
        return {"probs": classifier.predict_proba(corpus.test), "features": classifier.features(corpus.test)}

    arrays = cached_arrays("classifier-test", key, build, meta={"corpus": corpus.name})
    return arrays["probs"], arrays["features"]


def classifier_report(images: np.ndarray, corpus_name: str, *, corpus=None, classifier=None,
                      splits: int = 10, seed: int = 0, references: np.ndarray | None = None) -> dict:
    """IS and classifier FID of samples, with the real test images' scores as the ceiling.

    Args:
        images: (N,H,W[,C]) uint8 samples, N >= 2.
        corpus_name: corpus whose classifier and test split to use.
        corpus: the loaded corpus (default: ``load_corpus(corpus_name)``).
        classifier: a fitted :class:`~nps.metrics.classifier.Classifier` (default: shipped one).
        references: (N,) train ids of each sample's reference (-1: none); when given, the
            share of samples classified as their reference's label is reported.
    Returns:
        dict with ``samples`` and ``real`` (each ``is_mean``, ``is_std`` over ``splits``, ``is_all``
        over one split of all images, ``fid``, ``n``),
        ``real_full`` (IS of the whole test split), the class histogram of the samples,
        ``label_agreement`` (or None), the classifier accuracy and the protocol in words.
    """
    from nps.corpora import load_corpus
    from nps.metrics.classifier import load_classifier
    images = np.asarray(images)
    if len(images) < 2:
        raise NPSError("IS/FID need at least 2 samples; generate more (--n).")
    corpus = corpus if corpus is not None else load_corpus(corpus_name)
    clf = classifier if classifier is not None else load_classifier(corpus_name)
    if images.shape[1:] != corpus.test.shape[1:]:
        raise NPSError(f"samples of shape {images.shape[1:]} do not match corpus '{corpus_name}' "
                       f"images {corpus.test.shape[1:]}.")
    a_rows, b_rows = _split_test(len(corpus.test), seed)
    n = len(images)
    if n > len(b_rows):
        b_rows = np.concatenate([b_rows, a_rows])[:n]  # more samples than half the test split
    b_rows = b_rows[np.random.default_rng(seed + 1).permutation(len(b_rows))[:n]]
    test_probs, test_feat = test_outputs(clf, corpus)
    ref_stats = feature_stats(test_feat[a_rows])
    probs = clf.predict_proba(images)
    is_s, is_s_std = inception_score(probs, splits)
    is_r, is_r_std = inception_score(test_probs[b_rows], splits)
    is_f, is_f_std = inception_score(test_probs, splits)
    fid_s = frechet_distance(*feature_stats(clf.features(images)), *ref_stats)
    fid_r = frechet_distance(*feature_stats(test_feat[b_rows]), *ref_stats)
    pred = probs.argmax(1)
    agreement = None
    if references is not None:
        ref = np.asarray(references)
        has = ref >= 0
        if has.any():
            agreement = float((pred[has] == corpus.train_labels[ref[has]]).mean())
    return {
        # is_all: one split of all n images, less capped than 10 splits when n is small (IS <= split size).
        "samples": {"is_mean": is_s, "is_std": is_s_std, "is_all": inception_score(probs, 1)[0], "fid": fid_s, "n": n},
        "real": {"is_mean": is_r, "is_std": is_r_std, "is_all": inception_score(test_probs[b_rows], 1)[0],
                 "fid": fid_r, "n": len(b_rows)},
        "real_full": {"is_mean": is_f, "is_std": is_f_std, "n": len(corpus.test)},
        "class_histogram": np.bincount(pred, minlength=probs.shape[1]).tolist(),
        "label_agreement": agreement,
        "classifier": {"test_accuracy": clf.meta_.get("test_accuracy"), "identity": clf.identity},
        "protocol": (f"IS: exp E[KL(p(y|x)||p(y))], {splits} splits, mean+-std; FID: Fréchet distance of the "
                     f"classifier's 128-d penultimate features to half A ({len(a_rows)} images) of the test split; "
                     f"the real ceiling scores {len(b_rows)} images of the disjoint half B the same way."),
    }
