"""Baseline weights (safetensors + metadata) and sampling from them.

A weights file holds the tensors of the modules sampling needs (``<module>.<param>``)
and metadata: ``format`` (:data:`FORMAT`), ``model``, ``hparams`` and ``image_shape``
(JSON), ``corpus``.  Lookup for a model and corpus without an explicit file, as for
every weights kind (:mod:`nps.shipped`): the shipped
``nps/weights/baseline-<model>-<corpus>.safetensors`` (verified against the manifest),
else ``<cache>/weights/baseline-<model>-<corpus>.safetensors``.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import torch

from nps.baselines import check_model
from nps.errors import NPSError

FORMAT = "nps-baseline-1"
SAMPLE_CHUNK = 256  # images generated per forward pass; fixed, so a seed and n give the same images


def kind(model: str) -> str:
    """The weights kind of a baseline in :mod:`nps.shipped` (``baseline-vae`` ...)."""
    return f"baseline-{model}"


def save_weights(path: str | Path, model, meta: dict) -> Path:
    """Write ``model.nets()`` and ``meta`` (model, hparams, image_shape, corpus) atomically.

    Raises:
        NPSError: a tensor holds NaN or inf; nothing is written.
    """
    from safetensors.torch import save

    from nps.cache import atomic_write
    tensors = {f"{k}.{p}": v.detach().cpu().contiguous()
               for k, m in model.nets().items() for p, v in m.state_dict().items()}
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise NPSError(f"refusing to write '{path}': {bad[0]} holds NaN or inf (training diverged).")
    md = {"format": FORMAT, "model": meta["model"], "corpus": meta["corpus"],
          "hparams": json.dumps(meta["hparams"], sort_keys=True), "image_shape": json.dumps(meta["image_shape"])}
    data = save(tensors, metadata=md)
    return atomic_write(Path(path), lambda f: f.write(data))


def locate(model: str, corpus: str) -> Path:
    """The weights file the lookup picks for ``model`` on ``corpus``.

    Raises:
        NPSError: none exists (says how to train one), or the shipped file fails verification.
    """
    from nps.shipped import locate_weights
    choice = locate_weights(kind(check_model(model)), corpus)
    if choice is None:
        raise NPSError(f"no {model} baseline weights for '{corpus}'; train them with "
                       f"`python -m nps baselines train --corpus {shlex.quote(str(corpus))} --model {model}`, "
                       "or pass --weights.")
    return choice.path


def load_model(path: str | Path):
    """The baseline model stored in ``path``, ready to sample (shipped files are verified first).

    Returns:
        the model instance (see :mod:`nps.baselines.vae` ...), with ``meta_`` (the metadata)
        and ``sha256_`` (of the file) attached.
    Raises:
        NPSError: missing or unreadable file, another format, shapes that do not fit.
    """
    from safetensors import SafetensorError, safe_open

    from nps.baselines.train import model_class
    from nps.shipped import file_digest, is_shipped_path, verify_shipped
    path = Path(path)
    if not path.is_file():
        raise NPSError(f"baseline weights '{path}' do not exist; train them with `python -m nps baselines train`.")
    if is_shipped_path(path):
        verify_shipped(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable
        if md.get("format") != FORMAT:
            raise NPSError(f"'{path}' is not an NPS baseline weights file (format {md.get('format')!r}); "
                           "train one with `python -m nps baselines train`.")
        name = check_model(md.get("model"))
        hp, shape = json.loads(md["hparams"]), tuple(json.loads(md["image_shape"]))
        model = model_class(name)(hp, shape)
        for k, m in model.nets().items():
            m.load_state_dict({p[len(k) + 1:]: v for p, v in tensors.items() if p.startswith(k + ".")})
    except NPSError:
        raise
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise NPSError(f"cannot load baseline weights '{path}' ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); retrain them.") from None
    model.meta_ = {**md, "hparams": hp, "image_shape": list(shape)}
    model.sha256_ = file_digest(path)
    return model


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N,C,H,W) float in [0,1] -> (N,H,W) uint8 (one channel) or (N,H,W,C)."""
    a = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return a[:, 0] if a.shape[1] == 1 else a.transpose(0, 2, 3, 1).copy()


def sample_images(model, n: int, seed: int) -> np.ndarray:
    """``n`` samples (N,H,W[,C]) uint8 from ``model``; the same seed and n give identical images.

    The noise comes from one ``torch.Generator`` seeded with ``seed`` and is drawn chunk by
    chunk (:data:`SAMPLE_CHUNK`), so no global random state is touched.
    """
    from nps.encoders.hparams import SEED_MAX, check_number
    check_number("--n", n, 1, 1_000_000, integer=True)
    check_number("--seed", seed, 0, SEED_MAX, integer=True)
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    with torch.no_grad():
        for start in range(0, n, SAMPLE_CHUNK):
            out.append(to_uint8(model.sample(min(SAMPLE_CHUNK, n - start), gen)))
    return np.concatenate(out)
