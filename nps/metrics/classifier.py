"""A small CNN classifier for MNIST-like (grayscale, 10-class) corpora.

It is the "Inception network" of this project for grayscale corpora: its class
probabilities give the Inception Score and its penultimate (128-d) features give a
classifier-feature Fréchet distance (see :mod:`nps.metrics.scores`).

Which weights :func:`load_classifier` uses (the rule of :mod:`nps.shipped`): the shipped
``nps/weights/classifier-<corpus>.safetensors``, verified against ``nps/weights/MANIFEST.json``;
else a user-trained ``<cache>/weights/classifier-<corpus>.safetensors`` (what
``train-classifier`` writes by default); else, for ``digits`` (8x8, nothing shipped), the
same architecture trained on the fly at its native input size (seconds) and cached in
``cache/``.  Each file has a JSON beside it (command, epochs, wall time, machine, test
accuracy).  Inputs of any size are resized to ``input_size`` (bilinear) inside the network.
Weights or losses holding NaN or inf are refused.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nps.errors import DataMissingError, NPSError
from nps.machine import machine_description
from nps.shipped import locate_weights, shipped_weights, trained_weights

log = logging.getLogger(__name__)

INPUT_SIZE = 28
FEATURE_DIM = 128
#: Corpora trained on the fly (tiny) instead of shipping weights.
ON_THE_FLY = {"digits": {"epochs": 15, "batch_size": 64, "lr": 3e-3, "input_size": 8}}


def weights_path(corpus_name: str) -> Path:
    """``nps/weights/classifier-<corpus>.safetensors`` (the shipped file), present or not."""
    return shipped_weights("classifier", corpus_name)


def trained_path(corpus_name: str) -> Path:
    """``<cache>/weights/classifier-<corpus>.safetensors``, where ``train-classifier`` writes by default."""
    return trained_weights("classifier", corpus_name)


def _non_finite(state: dict) -> str | None:
    import torch
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None


def _build_net(n_classes: int, channels: int = 1, input_size: int = INPUT_SIZE):  # torch type, imported lazily
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        """conv32-pool-conv64-pool-fc128-fc(n_classes); ~0.42M parameters at 28x28."""

        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(64 * (input_size // 4) ** 2, FEATURE_DIM), nn.ReLU(),
            )
            self.drop = nn.Dropout(0.3)
            self.head = nn.Linear(FEATURE_DIM, n_classes)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[-2:] != (input_size, input_size):
                x = nn.functional.interpolate(x, size=(input_size, input_size), mode="bilinear",
                                              align_corners=False)
            return self.body(x)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.drop(self.features(x)))

    return SmallCNN()


def _to_tensor(images: np.ndarray):
    """(N,H,W[,C]) uint8 -> (N,C,H,W) float32 in [-1, 1]."""
    import torch
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[:, None]
    else:
        x = np.moveaxis(x, -1, 1)
    return torch.from_numpy(x.astype(np.float32) / 127.5 - 1.0)


class Classifier:
    """A fitted SmallCNN, scikit-learn style.

    Args:
        n_classes: number of labels.
        epochs, batch_size, lr, seed: training parameters (Adam, one-cycle schedule).
        augment: random +-2 px shifts during training (helps Fashion-MNIST a little).
        input_size: side the network resizes its inputs to (28; 8 for ``digits``).

    Attributes (after ``fit`` or ``load``):
        net_: the torch module (eval mode).
        meta_: dict of training facts (command, epochs, wall time, machine, test accuracy).
    """

    def __init__(self, n_classes: int = 10, channels: int = 1, epochs: int = 3, batch_size: int = 128,
                 lr: float = 3e-3, seed: int = 0, augment: bool = False,
                 input_size: int = INPUT_SIZE) -> None:
        self.n_classes = n_classes
        self.channels = channels
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.augment = augment
        self.input_size = input_size

    # ------------------------------------------------------------------ training
    def fit(self, images: np.ndarray, labels: np.ndarray,
            progress: Callable[[int, int, float], None] | None = None) -> Classifier:
        """Train on (N,H,W[,C]) uint8 images and (N,) int labels; returns self.

        ``progress(epoch, step, loss)`` is called every 50 steps.
        """
        import torch

        from nps.encoders.hparams import check_classifier_params
        check_classifier_params(self.epochs, self.batch_size, self.lr, self.seed)
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        net = _build_net(self.n_classes, self.channels, self.input_size)
        x_all = _to_tensor(images)
        y_all = torch.from_numpy(np.array(labels, np.int64))
        steps_per_epoch = int(np.ceil(len(x_all) / self.batch_size))
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, epochs=self.epochs,
                                                    steps_per_epoch=steps_per_epoch)
        net.train()
        for epoch in range(self.epochs):
            perm = torch.from_numpy(rng.permutation(len(x_all)))
            for step in range(steps_per_epoch):
                rows = perm[step * self.batch_size:(step + 1) * self.batch_size]
                xb = x_all[rows]
                if self.augment:
                    dy, dx = (int(v) for v in rng.integers(-2, 3, size=2))
                    xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
                loss = torch.nn.functional.cross_entropy(net(xb), y_all[rows])
                if not bool(torch.isfinite(loss)):
                    raise NPSError(f"the classifier loss became {loss.item()} at epoch {epoch + 1}, step "
                                   f"{step + 1}, so training stopped and nothing was written; lower --lr "
                                   f"(now {self.lr}).")
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                if progress is not None and step % 50 == 0:
                    progress(epoch, step, loss.item())
        net.eval()
        self.net_ = net
        self.meta_ = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "seed": self.seed,
                      "augment": self.augment, "n_classes": self.n_classes, "channels": self.channels,
                      "input_size": self.input_size}
        return self

    # ------------------------------------------------------------------ inference
    def _batched(self, images: np.ndarray, fn: Callable) -> np.ndarray:
        import torch
        self._check_fitted()
        images = np.asarray(images)
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), 512):
                out.append(fn(_to_tensor(images[i:i + 512])).double().numpy())
        if not out:
            return np.zeros((0, 0))
        return np.concatenate(out)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N,H,W[,C]) uint8 -> (N,n_classes) float64 softmax probabilities."""
        import torch
        return self._batched(images, lambda x: torch.softmax(self.net_(x), dim=1))

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N,) int64 predicted labels."""
        return self.predict_proba(images).argmax(1).astype(np.int64)

    def features(self, images: np.ndarray) -> np.ndarray:
        """(N,H,W[,C]) uint8 -> (N,128) float64 penultimate activations (for FID)."""
        return self._batched(images, self.net_.features)

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        return float((self.predict(images) == np.asarray(labels)).mean())

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NPSError("the classifier is not fitted; call fit() or load() first.")

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, meta: dict | None = None) -> Path:
        """Write ``path`` (.safetensors) and ``path.with_suffix('.json')`` with the metadata, each atomically.

        Raises:
            NPSError: a weight holds NaN or inf; nothing is written.
        """
        from safetensors.torch import save

        from nps.cache import atomic_write, write_text
        from nps.shipped import SHIPPED_MODE
        self._check_fitted()
        path = Path(path)
        info = dict(self.meta_)
        info.update(meta or {})
        state = {k: v.detach().contiguous() for k, v in self.net_.state_dict().items()}
        bad = _non_finite(state)
        if bad is not None:
            raise NPSError(f"the trained classifier holds NaN or inf (in {bad}), so nothing was written to "
                           f"{path}; lower --lr and train again.")
        self.meta_ = info
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = save(state, metadata={"nps": json.dumps(info, sort_keys=True)})
        atomic_write(path, lambda f: f.write(blob), SHIPPED_MODE)
        write_text(path.with_suffix(".json"), json.dumps(info, indent=2, sort_keys=True) + "\n", SHIPPED_MODE)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Classifier:
        """Load weights written by :meth:`save`.

        Raises:
            DataMissingError: no file.  NPSError: the file is damaged, names an impossible
                network, does not fit it, or holds NaN/inf (one line naming the file).
        """
        from safetensors import safe_open
        from safetensors.torch import load_file
        path = Path(path)
        retrain = "retrain with `python -m nps train-classifier --corpus NAME`"
        if not path.is_file():
            raise DataMissingError(f"classifier weights '{path}' are missing; train them with "
                                   "`python -m nps train-classifier --corpus NAME`.")
        try:
            with safe_open(str(path), framework="pt") as f:
                info = json.loads((f.metadata() or {}).get("nps", "{}"))
            state = load_file(str(path))
        except Exception as exc:  # safetensors raises several types for damaged files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise NPSError(f"cannot read classifier weights '{path}' ({first}); {retrain}.") from None
        try:
            n_classes, channels = int(info.get("n_classes", 10)), int(info.get("channels", 1))
            input_size = int(info.get("input_size", INPUT_SIZE))
            # Bound what the metadata may ask to build before building it.
            if not (1 <= n_classes <= 1000 and channels in (1, 3) and 4 <= input_size <= 256):
                raise ValueError(f"n_classes {n_classes}, channels {channels}, input_size {input_size}")
            clf = cls(n_classes=n_classes, channels=channels, input_size=input_size)
            net = _build_net(clf.n_classes, clf.channels, clf.input_size)
            net.load_state_dict(state)
        except (AttributeError, ValueError, TypeError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise NPSError(f"classifier weights '{path}' do not fit the network ({first}); {retrain}.") from None
        bad = _non_finite(state)
        if bad is not None:
            raise NPSError(f"classifier weights '{path}' hold NaN or inf (in {bad}); restore the file or {retrain}.")
        net.eval()
        clf.net_, clf.meta_ = net, info
        return clf

    @property
    def identity(self) -> str:
        """Names the weights (for cache keys)."""
        from nps.cache import content_key
        self._check_fitted()
        arrays = [v.detach().numpy() for v in self.net_.state_dict().values()]
        return f"smallcnn-{content_key(*arrays)}"


def train_classifier(corpus, epochs: int = 3, batch_size: int = 128, lr: float = 3e-3, seed: int = 0,
                     augment: bool = False, progress: Callable[[int, int, float], None] | None = None,
                     command: str = "", input_size: int = INPUT_SIZE) -> Classifier:
    """Train on ``corpus.train`` and record the test accuracy and provenance in ``meta_``."""
    t0 = time.perf_counter()
    clf = Classifier(n_classes=len(corpus.class_names), channels=corpus.channels, epochs=epochs,
                     batch_size=batch_size, lr=lr, seed=seed, augment=augment, input_size=input_size)
    clf.fit(corpus.train, corpus.train_labels, progress=progress)
    wall = time.perf_counter() - t0
    clf.meta_.update(
        corpus=corpus.name, corpus_hash=corpus.content_hash, n_train=len(corpus),
        test_accuracy=round(clf.accuracy(corpus.test, corpus.test_labels), 5),
        wall_time_s=round(wall, 1), command=command,
        machine=machine_description(),
        created=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    return clf


def load_classifier(corpus_name: str) -> Classifier:
    """The classifier for ``corpus_name``: shipped (verified), else user-trained in the cache, else (digits)
    trained on the fly and cached.

    Raises:
        DataMissingError: no weights for this corpus; the message says how to train them.
        NPSError: the shipped file fails its manifest check, or a file is damaged.
    """
    found = locate_weights("classifier", corpus_name)
    if found is not None:
        return Classifier.load(found.path)
    if corpus_name in ON_THE_FLY:
        return _on_the_fly(corpus_name)
    raise DataMissingError(
        f"no classifier for corpus '{corpus_name}' ({weights_path(corpus_name).name} is neither shipped nor "
        f"trained in {trained_path(corpus_name).parent}); train one with "
        f"`python -m nps train-classifier --corpus {shlex.quote(str(corpus_name))}` "
        "(IS and classifier FID need a 10-class grayscale corpus).")


def _on_the_fly(corpus_name: str) -> Classifier:
    """Train the tiny-corpus classifier once and keep it in the cache (deterministic)."""
    import torch

    from nps.cache import cache_root, content_key, file_lock, read_only
    from nps.corpora import load_corpus
    corpus = load_corpus(corpus_name)
    params = ON_THE_FLY[corpus_name]
    key = content_key("classifier", corpus.content_hash, sorted(params.items()), FEATURE_DIM)
    path = cache_root() / f"classifier-{corpus_name}-{key}.safetensors"
    if read_only() and not path.is_file():  # a read-only host stores nothing, and training per request would burn CPU
        raise DataMissingError(f"the {corpus_name} classifier is not built on this read-only server; the host "
                               f"builds it once with `python -c \"from nps.metrics.classifier import load_classifier; "
                               f"load_classifier('{corpus_name}')\"`.")
    with file_lock(path):
        if path.is_file():
            try:
                return Classifier.load(path)
            except Exception as exc:  # a corrupt cache file is rebuilt
                log.warning("rebuilding corrupt cached classifier %s (%s)", path.name, exc)
        log.info("training the %s classifier on the fly (%s)", corpus_name, params)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # deterministic and polite on shared cores
        try:
            clf = train_classifier(corpus, command="nps.metrics.classifier.load_classifier", **params)
        finally:
            torch.set_num_threads(threads)
        clf.save(path)  # atomic, weights and JSON each
        return clf
