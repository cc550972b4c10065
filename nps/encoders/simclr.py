"""The SimCLR encoder: a small CNN trained by the project, shipped as safetensors.

Weights live in ``nps/weights/simclr-<corpus>.safetensors``; the file's
metadata names the backbone and the image shape it was trained on, and a JSON
file beside it records how it was trained and how well it does.  Embeddings are
the backbone's pooled features (before the projection head), L2-normalised.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from nps.cache import file_sha256
from nps.encoders.backbones import build_backbone
from nps.encoders.base import Encoder
from nps.encoders.preprocess import normalise, to_chw
from nps.errors import DataMissingError, NPSError
from nps.shipped import shipped_weights

log = logging.getLogger(__name__)

FORMAT = "nps-simclr-1"
ENCODE_BATCH = 256  # fixed, so the result never depends on how callers batch


def weights_path(corpus_name: str) -> Path:
    """Where the shipped weights for a corpus live (``nps/weights/simclr-<name>.safetensors``)."""
    return shipped_weights("simclr", corpus_name)


def save_weights(path: Path, backbone: torch.nn.Module, meta: dict) -> None:
    """Write backbone weights and metadata (backbone, in_channels, width, image_shape, corpus) atomically."""
    from safetensors.torch import save

    from nps.cache import atomic_write

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    info = {k: json.dumps(v) for k, v in meta.items()}
    info["format"] = FORMAT
    data = save(tensors, metadata=info)
    atomic_write(path, lambda f: f.write(data))  # fsynced, umask mode (0644 under the usual 022)


def read_metadata(path: Path) -> dict:
    """The metadata dict stored in a weights file (values JSON-decoded)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata() or {}
    if raw.get("format") != FORMAT:
        raise NPSError(f"'{path}' is not an NPS SimCLR weights file (format {raw.get('format')!r}); "
                       "train one with `python -m nps train-encoder`.")
    return {k: json.loads(v) for k, v in raw.items() if k != "format"}


def load_backbone(path: Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Build the backbone named in the file and load its weights (eval mode).

    Raises:
        NPSError: the file is unreadable or its tensors do not fit the architecture.
    """
    from safetensors.torch import load_file

    try:
        meta = read_metadata(path)
        state = load_file(str(path), device="cpu")
    except NPSError:
        raise
    except Exception as exc:  # safetensors raises several types for damaged files
        raise NPSError(f"cannot read SimCLR weights '{path}' ({exc}); retrain with "
                       f"`python -m nps train-encoder`.") from None
    try:
        net = build_backbone(meta["backbone"], int(meta["in_channels"]), meta.get("width"), meta.get("readout"))
        net.load_state_dict(state, strict=True)
    except (KeyError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NPSError(f"SimCLR weights '{path}' do not match the architecture ({first}); retrain with "
                       f"`python -m nps train-encoder --corpus {meta.get('corpus', 'NAME')}`.") from None
    return net.to(device).eval(), meta


class SimCLREncoder(Encoder):
    """Embeddings from a SimCLR-trained backbone.

    Args:
        weights: a ``.safetensors`` file; default: the shipped weights for the corpus
            given to ``fit`` (``nps/weights/simclr-<corpus>.safetensors``).
        device: "cpu" or "cuda".

    Attributes (after fit):
        net_: the backbone in eval mode.  meta_: the file's metadata.
        weights_path_: the file used.  digest_: its sha256 (part of ``identity``).
    """

    name = "simclr"

    def __init__(self, weights: str | Path | None = None, device: str = "cpu") -> None:
        self.weights = weights
        self.device = device

    def fit(self, corpus) -> SimCLREncoder:
        """Load the weights for ``corpus`` (no training happens here)."""
        path = Path(self.weights) if self.weights else weights_path(corpus.name)
        if not path.is_file():
            raise DataMissingError(f"no SimCLR weights for corpus '{corpus.name}' at {path}; train them with "
                                   f"`python -m nps train-encoder --corpus {corpus.name}` or use --encoder pca.")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise NPSError("--device cuda was asked for but CUDA is not available here; use --device cpu.")
        net, meta = load_backbone(path, self.device)
        want = tuple(meta.get("image_shape", ()))
        if want and want != tuple(corpus.image_shape):
            raise NPSError(f"SimCLR weights '{path.name}' were trained on images of shape {want}, but corpus "
                           f"'{corpus.name}' has {tuple(corpus.image_shape)}; train matching weights with "
                           f"`python -m nps train-encoder --corpus {corpus.name}`.")
        self.net_, self.meta_ = net, meta
        self.weights_path_ = path
        self.digest_ = file_sha256(path)
        self.dim_ = int(net.out_dim)
        return self

    @property
    def identity(self) -> str:
        return f"simclr-{self.digest_[:16]}"

    @property
    def dim(self) -> int:
        return self.dim_

    @torch.no_grad()
    def _encode(self, images: np.ndarray) -> np.ndarray:
        x = to_chw(torch.from_numpy(np.array(images, dtype=np.uint8)))
        parts = []
        for i in range(0, len(x), ENCODE_BATCH):
            xb = normalise(x[i:i + ENCODE_BATCH]).to(self.device)
            parts.append(self.net_(xb).float().cpu().numpy())
        return np.concatenate(parts).astype(np.float32)


def read_report(path: Path) -> dict:
    """The JSON training report beside a weights file ({} when absent)."""
    js = Path(path).with_suffix(".json")
    return json.loads(js.read_text()) if js.is_file() else {}
