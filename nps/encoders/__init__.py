"""A registry of encoders, in the manner of torch-fidelity's feature extractors.

``get_encoder(name, corpus)`` returns a fitted encoder.  Encoders register a
factory under a name; the sampler only ever sees the :class:`Encoder` interface.
Every factory is called the same way, ``factory(device=..., **kw)``: one that runs
only on the CPU accepts ``device`` and ignores it, so nothing here names an encoder.
"""

from __future__ import annotations

from collections.abc import Callable

from nps.encoders.base import Encoder, l2_normalise
from nps.errors import NPSError

ENCODERS: dict[str, Callable[..., Encoder]] = {}


def register_encoder(name: str, factory: Callable[..., Encoder]) -> None:
    """Add an encoder: ``factory(device="cpu", **kw)`` returns an unfitted :class:`Encoder`."""
    ENCODERS[name] = factory


def _pca(device: str = "cpu", **kw) -> Encoder:  # fitted with numpy on the CPU whatever the device
    from nps.encoders.pca import PCAEncoder
    return PCAEncoder(**kw)


def _pixels(device: str = "cpu", **kw) -> Encoder:  # no model to place on a device
    from nps.encoders.pixels import PixelEncoder
    return PixelEncoder(**kw)


def _simclr(**kw) -> Encoder:
    from nps.encoders.simclr import SimCLREncoder
    return SimCLREncoder(**kw)


register_encoder("pca", _pca)
register_encoder("pixels", _pixels)
register_encoder("simclr", _simclr)


def get_encoder(name: str, corpus, device: str = "cpu", **kw) -> Encoder:
    """A fitted encoder for ``corpus``.

    Args:
        name: a registered name, or "auto" (:func:`nps.config.resolve_encoder`).
    Raises:
        NPSError: unknown name, or weights missing or not matching the corpus.
    """
    from nps.config import resolve_encoder
    name = resolve_encoder(name, corpus.name)
    if name not in ENCODERS:
        raise NPSError(f"unknown encoder '{name}'; choose auto or one of {', '.join(sorted(ENCODERS))}.")
    return ENCODERS[name](device=device, **kw).fit(corpus)


__all__ = ["ENCODERS", "Encoder", "get_encoder", "l2_normalise", "register_encoder"]
