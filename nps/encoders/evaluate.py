"""How good is a representation? kNN accuracy and a linear probe.

* ``knn_accuracy``: each test embedding takes the majority label of its k=20
  nearest train embeddings by cosine similarity (exact inner-product search with
  faiss on unit vectors; ties go to the label with the larger summed similarity).
* ``pool_purity``: the mean fraction of a test image's k=64 nearest train images
  that share its label: the class purity of the sampler's semantic pool, the
  quantity the representation constraint exists to deliver.
* ``linear_probe_accuracy``: top-1 test accuracy of a multinomial logistic
  regression (scikit-learn) trained on standardised train embeddings.

Both take (N,D) float32 embeddings and (N,) int64 labels.
"""

from __future__ import annotations

import logging

import numpy as np

from nps.encoders.base import l2_normalise

log = logging.getLogger(__name__)


def stratified_rows(labels: np.ndarray, n: int | None, seed: int = 0) -> np.ndarray:
    """Sorted rows of a class-stratified sample of size n (all rows when n is None or >= N)."""
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    from nps.corpora import _stratified_subset
    return _stratified_subset(labels, n, seed)


def knn_predict(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, k: int = 20) -> np.ndarray:
    """Majority vote of the k nearest train rows by cosine similarity.

    Args:
        train: (N,D) float32; test: (M,D) float32 (normalised here).
        train_labels: (N,) int64.
    Returns:
        (M,) int64 predicted labels.
    """
    sims, idx = _neighbours(train, test, k)
    k = idx.shape[1]
    labels = np.asarray(train_labels)[idx]                      # (M,k)
    n_classes = int(np.max(train_labels)) + 1
    votes = np.zeros((len(test), n_classes), np.float64)
    np.add.at(votes, (np.arange(len(test))[:, None], labels), 1.0)
    # Break ties by summed similarity: a tiny term that never outweighs one vote.
    tie = np.zeros_like(votes)
    np.add.at(tie, (np.arange(len(test))[:, None], labels), sims.astype(np.float64))
    return np.argmax(votes + tie / (2.0 * k + 1.0), axis=1).astype(np.int64)


def _neighbours(train: np.ndarray, test: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(D, I) of the k nearest train rows by cosine, each (M,k)."""
    import faiss

    train = np.ascontiguousarray(l2_normalise(train))
    index = faiss.IndexFlatIP(train.shape[1])
    index.add(train)
    return index.search(np.ascontiguousarray(l2_normalise(test)), min(k, len(train)))


def pool_purity(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray,
                k: int = 64) -> float:
    """Mean fraction of each test row's k nearest train rows (cosine) that share its label.

    Args:
        train: (N,D) float32; test: (M,D) float32; labels (N,) and (M,) int64.
    """
    _, idx = _neighbours(train, test, k)
    return float(np.mean(np.asarray(train_labels)[idx] == np.asarray(test_labels)[:, None]))


def knn_accuracy(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray,
                 k: int = 20) -> float:
    """Fraction of test rows whose kNN vote (k nearest by cosine) equals their label."""
    pred = knn_predict(train, train_labels, test, k)
    return float(np.mean(pred == np.asarray(test_labels)))


def linear_probe_accuracy(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray,
                          test_labels: np.ndarray, max_train: int | None = None, max_iter: int = 300,
                          seed: int = 0) -> float:
    """Top-1 test accuracy of logistic regression on (standardised) embeddings.

    Args:
        max_train: fit on a class-stratified sample of at most this many train rows
            (None: all of them).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = stratified_rows(train_labels, max_train, seed)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, C=1.0, random_state=seed))
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings():
        # A probe that stops at max_iter is still a fair (slightly pessimistic) measurement.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(np.asarray(train)[rows], np.asarray(train_labels)[rows])
    return float(clf.score(np.asarray(test), np.asarray(test_labels)))


def evaluate_embeddings(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray,
                        k: int = 20, probe: bool = True, probe_max_train: int | None = None,
                        pool_k: int = 64) -> dict[str, float]:
    """{"knn": kNN@k accuracy, "purity": pool purity at ``pool_k``, "probe": probe accuracy (if asked)}."""
    out = {"knn": knn_accuracy(train, train_labels, test, test_labels, k),
           "purity": pool_purity(train, train_labels, test, test_labels, pool_k)}
    if probe:
        out["probe"] = linear_probe_accuracy(train, train_labels, test, test_labels, probe_max_train)
    return out
