"""``mnist-deformed:N``: MNIST grown to N images by smooth random deformations.

In the manner of InfiMNIST / MNIST-8M (Loosli, Canu, Bottou 2007), **not** a bit-for-bit
copy of it: image ``i`` is a deterministic function of ``i`` alone:

* ``i < 60000``: MNIST training image ``i`` itself, unchanged.  So ``mnist-deformed:60000``
  holds exactly MNIST's train split, and a scaling study over N compares real data
  first and adds deformations only beyond it.
* ``i >= 60000``: training image ``i mod 60000`` warped by a smooth random elastic
  displacement field plus a small random shift, resampled bilinearly (``torch``'s
  ``grid_sample``).  The field is a random combination of the 4x4 lowest-frequency
  2-D cosine modes (amplitude falling with frequency), so it is smooth by
  construction; its random coefficients and the shift come from a generator seeded by
  the 4096-image *block* holding ``i``, always drawn for the whole block.  Every step is
  elementwise per image, so image ``i`` is the same whatever chunks it is made in.

Labels are the source image's; the test split is MNIST's 10k test images.  Built chunk by
chunk into the corpus store (:mod:`nps.store`), never N images in memory; the sizes take
suffixes (``240k``, ``1M``, ``8M``).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import torch

from nps.errors import NPSError

BASE = 60000
BLOCK = 4096  # images per generator draw: fixed, so image i never depends on how a build is chunked
MODES = 4  # cosine modes per axis of the displacement field
ALPHA = 2.2  # displacement scale in pixels of the lowest mode
MAX_SHIFT = 1.5  # pixels, each axis
MAX_N = 16_000_000
DEFORM_VERSION = 1  # bump when the deformation changes: it is in the store key
PREFIX = "mnist-deformed:"


def parse_size(text: str) -> int:
    """``1000``, ``4k``, ``1.5M``, ``8M`` -> an int (k = 1000, M = 1,000,000)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", str(text))
    if not m:
        raise NPSError(f"'{text}' is not a size; write e.g. 1000, 4k, 240k or 1M.")
    value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2).lower()]
    if value != int(value) or value < 1:
        raise NPSError(f"'{text}' is not a whole number of images >= 1.")
    return int(value)


def parse_name(name: str) -> int:
    """N from ``mnist-deformed:N`` (1 <= N <= :data:`MAX_N`)."""
    if not name.startswith(PREFIX):
        raise NPSError(f"'{name}' is not a deformed-MNIST name; write {PREFIX}N, e.g. {PREFIX}1M.")
    n = parse_size(name[len(PREFIX):])
    if n > MAX_N:
        raise NPSError(f"{name}: at most {MAX_N:,} images (the store would hold {n * 784 / 2**30:.1f} GB).")
    return n


def _cosine_modes(size: int = 28) -> torch.Tensor:
    """(MODES, size) float32 cosine modes cos(pi u (t + 1/2) / size), u = 0 .. MODES-1."""
    t = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    return torch.stack([torch.cos(np.pi * u * t) for u in range(MODES)]).float()


_DAMP = torch.tensor([[1.0 / (1.0 + u + v) for v in range(MODES)] for u in range(MODES)])  # amplitude per mode


def _block_seed(block: int) -> int:
    return int.from_bytes(hashlib.sha256(f"mnist-deformed/{DEFORM_VERSION}/{block}".encode()).digest()[:8], "little")


def _block_draws(block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Coefficients (BLOCK,2,MODES^2) and shifts (BLOCK,2) float32 for images block*BLOCK ... ."""
    g = torch.Generator().manual_seed(_block_seed(block))
    coeff = torch.randn((BLOCK, 2, MODES * MODES), generator=g, dtype=torch.float32) * ALPHA
    coeff[:, :, 0] = 0.0  # the constant mode is a shift, drawn separately
    shift = (torch.rand((BLOCK, 2), generator=g, dtype=torch.float32) * 2 - 1) * MAX_SHIFT
    return coeff, shift


def deform(images: np.ndarray, coeff: torch.Tensor, shift: torch.Tensor) -> np.ndarray:
    """Warp (S,H,W) uint8 images by the fields of ``coeff`` (S,2,MODES^2) and ``shift`` (S,2) px.

    Returns:
        (S,H,W) uint8; pixels sampled from outside the source are 0 (MNIST's background).
    """
    s, h, w = images.shape
    cy, cx = _cosine_modes(h), _cosine_modes(w)
    # field[s,y,x] = sum_u sum_v cy[u,y] A[s,u,v] cx[v,x], done separably as elementwise
    # multiply-adds (no reduction whose order could depend on the batch or the threads).
    a = coeff.reshape(s, 2, MODES, MODES) * _DAMP
    fields = []
    for c in range(2):
        inner = torch.zeros((s, MODES, w))
        for v in range(MODES):
            inner.addcmul_(a[:, c, :, v, None], cx[v])
        field = torch.zeros((s, h, w))
        for u in range(MODES):
            field.addcmul_(inner[:, u, None, :], cy[u][None, :, None])
        fields.append(field)
    dy, dx = fields
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    sy = ys + dy + shift[:, 0, None, None]
    sx = xs + dx + shift[:, 1, None, None]
    # grid_sample's normalised coordinates (align_corners=True: -1 and 1 are the edge pixel centres).
    grid = torch.stack([sx / (w - 1) * 2 - 1, sy / (h - 1) * 2 - 1], dim=-1)
    src = torch.from_numpy(np.ascontiguousarray(images)).float()[:, None]
    out = torch.nn.functional.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out[:, 0].round_().clamp_(0, 255).to(torch.uint8).numpy()


def deformed_rows(train: np.ndarray, labels: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, ...]:
    """Rows ``start..stop-1`` of the deformed corpus over ``train`` (60000,H,W) uint8.

    Returns:
        images (S,H,W) uint8, labels (S,) int64, source ids (S,) int64 (``i mod 60000``).
    """
    base = len(train)
    idx = np.arange(start, stop, dtype=np.int64)
    src = idx % base
    out = np.asarray(train[src]).copy()
    warp = np.flatnonzero(idx >= base)
    for block in np.unique(idx[warp] // BLOCK):
        rows = warp[(idx[warp] // BLOCK) == block]
        coeff, shift = _block_draws(int(block))
        pos = torch.from_numpy(idx[rows] - block * BLOCK)
        out[rows] = deform(out[rows], coeff[pos], shift[pos])
    return out, np.asarray(labels, np.int64)[src], src


def load_deformed(name: str, data_root: str | None = None, progress: bool = True):  # Corpus
    """The ``mnist-deformed:N`` corpus from the store (built once, in chunks, with a progress bar).

    Opening a built store reads no MNIST at all (the test split is stored too), so a Ray
    worker or a scaling run pays only for the rows it touches.  The store key names the
    deformation and N; the manifest's content hash covers the data itself.
    """
    from nps.cache import content_key
    from nps.corpora import MNIST_CLASSES, load_corpus
    from nps.store import StoreSpec, open_store, store_root, stored
    n = parse_name(name)
    key = content_key("mnist-deformed", DEFORM_VERSION, BLOCK, MODES, ALPHA, MAX_SHIFT, n)
    folder = store_root() / f"corpus-{key}"
    if (folder / "manifest.json").is_file():
        try:
            return open_store(folder, key)
        except NPSError:
            pass  # damaged: rebuilt below (stored() logs it)
    mnist = load_corpus("mnist", None, data_root)
    if len(mnist) != BASE or mnist.image_shape != (28, 28):
        raise NPSError(f"mnist-deformed needs MNIST's 60000 28x28 train images; found {len(mnist)} "
                       f"{mnist.image_shape} in {mnist.source}.")
    spec = StoreSpec(key, f"{PREFIX}{n}", n, (28, 28), np.asarray(mnist.test), np.asarray(mnist.test_labels),
                     MNIST_CLASSES, f"deformed {mnist.source}")
    return stored(spec, lambda s, e: deformed_rows(mnist.train, mnist.train_labels, s, e), progress=progress)
