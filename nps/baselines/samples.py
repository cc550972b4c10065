"""Baseline sample files: record-like ``.npz`` with images and a config, no provenance.

========================  ======================  ==============================================
key                       shape, dtype            meaning
========================  ======================  ==============================================
``images``                (N,H,W[,C]) uint8       the samples
``config``                0-d str                 JSON: model, corpus, weights sha256, seed, n ...
``baseline_version``      0-d int64               :data:`BASELINE_VERSION`; marks the file kind
========================  ======================  ==============================================

Written with :func:`nps.cache.atomic_write` and read with ``allow_pickle=False``.  The
``baseline_version`` key is what ``python -m nps evaluate`` looks for to score the
file on the image metrics instead of as a provenance record.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from nps.errors import NPSError

BASELINE_VERSION = 1
KEYS = ("images", "config", "baseline_version")


def save_samples(path: str | Path, images: np.ndarray, config: dict) -> Path:
    """Write ``images`` (N,H,W[,C]) uint8 and ``config`` atomically to ``path`` (.npz).

    Raises:
        NPSError: wrong suffix, missing folder, unwritable path, or images that are not uint8.
    """
    from nps.cache import atomic_write
    path = Path(path)
    if path.suffix != ".npz":
        raise NPSError(f"output '{path}' must end in .npz.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise NPSError(f"cannot write '{path}': folder '{folder}' does not exist; create it first.")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise NPSError(f"baseline samples must be (N,H,W[,C]) uint8, got {images.dtype} {images.shape}.")
    arrays = {"images": images, "config": np.array(json.dumps(config, sort_keys=True)),
              "baseline_version": np.array(BASELINE_VERSION, np.int64)}
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def is_baseline_file(path: str | Path) -> bool:
    """Whether ``path`` is an .npz holding a ``baseline_version`` key (reads the zip index only)."""
    try:
        with zipfile.ZipFile(path) as z:
            return "baseline_version.npy" in z.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def load_samples(path: str | Path) -> tuple[np.ndarray, dict]:
    """``(images, config)`` of a baseline sample file: images (N,H,W[,C]) uint8, config a dict.

    Raises:
        NPSError: one line when the file is missing, unreadable, of a newer version, or
            its arrays do not have the layout of the module docstring.
    """
    path = Path(path)
    if not path.is_file():
        raise NPSError(f"sample file '{path}' does not exist; make one with "
                       f"`python -m nps baselines sample --out {path}`.")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise NPSError(f"'{path}' is not a baseline sample file: missing {', '.join(missing)}.")
            images, raw, version = z["images"], z["config"], z["baseline_version"]
    except NPSError:
        raise
    except Exception as exc:
        raise NPSError(f"'{path}' is not a readable .npz sample file ({type(exc).__name__}).") from None
    if version.shape != () or not np.issubdtype(version.dtype, np.integer):
        raise NPSError(f"'{path}': baseline_version must be a 0-d integer.")
    if int(version) > BASELINE_VERSION:
        raise NPSError(f"'{path}' has baseline version {int(version)}, newer than this nps "
                       f"({BASELINE_VERSION}); upgrade nps.")
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or len(images) < 1:
        raise NPSError(f"'{path}': images must be (N,H,W[,C]) uint8 with N >= 1, got {images.dtype} {images.shape}.")
    try:
        config = json.loads(str(raw)) if raw.shape == () else None
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise NPSError(f"'{path}': config is not a JSON object; rewrite the file with `nps baselines sample`.")
    if config.get("n", len(images)) != len(images):
        raise NPSError(f"'{path}': config says n={config.get('n')} but the file holds {len(images)} images.")
    return images, config
