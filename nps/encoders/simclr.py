"""The SimCLR encoder: a small CNN trained by the project, shipped as safetensors.

Which weights file is used (see :mod:`nps.shipped` for the full rule): an explicit
``weights`` path; else the shipped ``nps/weights/simclr-<corpus>.safetensors``,
verified against ``nps/weights/MANIFEST.json``; else the user-trained
``<cache>/weights/simclr-<corpus>.safetensors``.  The file's metadata names the
backbone and the image shape it was trained on, and a JSON file beside it records
how it was trained and how well it does.  Embeddings are the backbone's pooled
features (before the projection head), L2-normalised.  Weights with a non-finite
value are refused at load and never written.
"""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path

import numpy as np
import torch

from nps.encoders.backbones import BACKBONES, build_backbone
from nps.encoders.base import Encoder
from nps.encoders.preprocess import normalise, to_chw
from nps.errors import DataMissingError, NPSError
from nps.shipped import file_digest, locate_weights, shipped_weights, trained_weights

log = logging.getLogger(__name__)

FORMAT = "nps-simclr-1"
ENCODE_BATCH = 256  # fixed, so the result never depends on how callers batch


def weights_path(corpus_name: str) -> Path:
    """Where the shipped weights for a corpus live (``nps/weights/simclr-<name>.safetensors``), present or not."""
    return shipped_weights("simclr", corpus_name)


def trained_path(corpus_name: str) -> Path:
    """Where user-trained weights for a corpus go by default (``<cache>/weights/simclr-<name>.safetensors``)."""
    return trained_weights("simclr", corpus_name)


def weights_status(corpus_name: str) -> tuple[str, str]:
    """(status, detail) of the SimCLR weights the lookup would use for a corpus.

    status is "shipped" (the verified tracked file), "trained" (a user-trained file in
    the cache), "absent", or "invalid" (a shipped file that fails verification; detail
    is the one-line reason and fix).
    """
    try:
        found = locate_weights("simclr", corpus_name)
    except NPSError as exc:
        return "invalid", str(exc)
    if found is None:
        return "absent", (f"no weights for {corpus_name}; train them with "
                          f"`python -m nps train-encoder --corpus {shlex.quote(str(corpus_name))}`")
    knn = read_report(found.path).get("knn20")
    return found.origin, f"{found.path.name}" + (f", kNN@20 {knn:.1%}" if isinstance(knn, float) else "")


def non_finite(state: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating tensor holding NaN or inf, or None."""
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None


def save_weights(path: Path, backbone: torch.nn.Module, meta: dict) -> None:
    """Write backbone weights and metadata (backbone, in_channels, width, image_shape, corpus) atomically.

    Raises:
        NPSError: a tensor holds NaN or inf (training diverged); nothing is written.
    """
    from safetensors.torch import save

    from nps.cache import atomic_write

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    bad = non_finite(tensors)
    if bad is not None:
        raise NPSError(f"the trained weights hold NaN or inf (in {bad}), so nothing was written to {path}; "
                       "lower --lr or raise --temperature and train again.")
    info = {k: json.dumps(v) for k, v in meta.items()}
    info["format"] = FORMAT
    path.parent.mkdir(parents=True, exist_ok=True)
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
    except Exception as exc:  # safetensors and json raise several types for damaged files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NPSError(f"cannot read SimCLR weights '{path}' ({first}); retrain with "
                       f"`python -m nps train-encoder`.") from None
    retrain = f"`python -m nps train-encoder --corpus {shlex.quote(str(meta.get('corpus', 'NAME')))}`"
    bad = non_finite(state)
    if bad is not None:
        raise NPSError(f"SimCLR weights '{path}' hold NaN or inf (in {bad}); restore the file or retrain with "
                       f"{retrain}.")
    try:
        # Bound what the metadata may ask to build before building it (a width of 10**6 is terabytes).
        width, shape = meta.get("width"), meta.get("image_shape", [])
        if meta["backbone"] not in BACKBONES or meta["in_channels"] not in (1, 3) or \
                meta.get("readout") not in (None, "avg", "max") or \
                not (width is None or (isinstance(width, int) and 1 <= width <= 512)) or \
                not (isinstance(shape, list) and all(isinstance(v, int) for v in shape)):
            raise ValueError("metadata names an unknown backbone, channel count, readout, width or image shape")
        net = build_backbone(meta["backbone"], int(meta["in_channels"]), width, meta.get("readout"))
        net.load_state_dict(state, strict=True)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NPSError(f"SimCLR weights '{path}' do not match the architecture ({first}); retrain with "
                       f"{retrain}.") from None
    return net.to(device).eval(), meta


class SimCLREncoder(Encoder):
    """Embeddings from a SimCLR-trained backbone.

    Args:
        weights: a ``.safetensors`` file; default: the lookup of :mod:`nps.shipped` for the
            corpus given to ``fit`` (shipped and verified, else trained in the cache).
        device: "cpu" or "cuda".

    Attributes (after fit):
        net_: the backbone in eval mode.  meta_: the file's metadata.
        weights_path_: the file used.  origin_: "explicit", "shipped" or "trained".
        digest_: its sha256 (part of ``identity``).
    """

    name = "simclr"

    def __init__(self, weights: str | Path | None = None, device: str = "cpu") -> None:
        self.weights = weights
        self.device = device

    def fit(self, corpus) -> SimCLREncoder:
        """Load the weights for ``corpus`` (no training happens here)."""
        from nps.encoders.hparams import check_device
        if self.weights:
            path, origin = Path(self.weights), "explicit"
            if not path.is_file():
                raise DataMissingError(f"no SimCLR weights at {path}; train them with "
                                       f"`python -m nps train-encoder --corpus {shlex.quote(corpus.name)} "
                                       f"--out {shlex.quote(str(path))}`.")
        else:
            found = locate_weights("simclr", corpus.name)
            if found is None:
                raise DataMissingError(
                    f"no SimCLR weights for corpus '{corpus.name}' (neither {weights_path(corpus.name).name} "
                    f"shipped nor {trained_path(corpus.name)} trained); train them with "
                    f"`python -m nps train-encoder --corpus {shlex.quote(corpus.name)}` or use --encoder pca.")
            path, origin = found.path, found.origin
        check_device(self.device)
        net, meta = load_backbone(path, self.device)
        want = tuple(meta.get("image_shape", ()))
        if want and want != tuple(corpus.image_shape):
            raise NPSError(f"SimCLR weights '{path.name}' were trained on images of shape {want}, but corpus "
                           f"'{corpus.name}' has {tuple(corpus.image_shape)}; train matching weights with "
                           f"`python -m nps train-encoder --corpus {shlex.quote(corpus.name)}`.")
        self.net_, self.meta_ = net, meta
        self.weights_path_, self.origin_ = path, origin
        self.digest_ = file_digest(path)
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
    """The JSON training report beside a weights file ({} when absent or unreadable)."""
    js = Path(path).with_suffix(".json")
    try:
        rep = json.loads(js.read_text()) if js.is_file() else {}
    except (OSError, ValueError, RecursionError):  # json raises RecursionError, not ValueError, for deep nesting
        return {}
    return rep if isinstance(rep, dict) else {}
