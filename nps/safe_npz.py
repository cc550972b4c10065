"""Reading untrusted ``.npz`` files (records from the CLI and the app's uploads) with bounded memory.

``np.load(allow_pickle=False)`` refuses object arrays, but it decompresses whatever a
member declares, and it reads every member, wanted or not: a 4.7 MB file of deflated
zeros made the record reader allocate 1 GB (deflate reaches about 1000:1, so a 50 MB
upload could declare 50 GB).  :func:`read_npz` therefore looks at the zip directory
and at each wanted member's ``.npy`` header before it reads any data:

* at most :data:`MAX_MEMBERS` members, no two with the same name (a zip may hold
  duplicates, and two readers would then see different arrays);
* only the wanted members are read; others are never decompressed;
* each wanted member's declared size (zip directory) and its array's size (shape x
  itemsize from the ``.npy`` header) must fit the byte budget, summed over members;
  ``zipfile`` never inflates a member past its declared size, so the budget bounds
  the memory the read can take;
* no object dtypes (no pickles), checked from the header before reading.

Every failure is one :class:`~nps.errors.NPSError` line naming the file.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from nps.errors import NPSError

#: A record has 15 members; anything with far more was not written by ``np.savez`` of a record.
MAX_MEMBERS = 64


def _header(f) -> tuple[tuple[int, ...], np.dtype]:  # a zipfile.ZipExtFile
    """(shape, dtype) from a ``.npy`` header, without reading the data."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = fmt.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    return tuple(int(s) for s in shape), np.dtype(dtype)


def read_npz(source: str | Path | bytes, names: Iterable[str], max_bytes: int, what: str,
             fix: str = "") -> dict[str, np.ndarray]:
    """The arrays ``names`` of an ``.npz`` (those present), read within ``max_bytes`` of memory.

    Args:
        source: a path or the file's bytes.
        names: the member names wanted (``images``, not ``images.npy``); absent ones are skipped.
        max_bytes: the most the wanted arrays may take once unpacked (summed).
        what: how messages name the file (e.g. ``"record 'a.npz'"``).
        fix: the hint ending each message (what to do instead).
    Returns:
        {name: array} for the wanted names present in the file.
    Raises:
        NPSError: not a zip, too many or duplicate members, an object array, a member
            that unpacks past the budget, or damaged data (one line each).
    """
    wanted = set(names)
    tail = f"; {fix}" if fix else "."

    def fail(msg: str) -> NPSError:
        return NPSError(f"{what} {msg}{tail}")

    try:
        zf = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes | bytearray) else source)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise fail(f"is not a readable .npz record ({type(exc).__name__})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise fail(f"holds {len(infos)} members (a record has about 15, at most {MAX_MEMBERS} are read)")
        seen: set[str] = set()
        for info in infos:
            if info.filename in seen:
                raise fail(f"holds two members named '{info.filename[:80]}'")
            seen.add(info.filename)
        budget = max_bytes
        out: dict[str, np.ndarray] = {}
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if name not in wanted or name in out:
                continue
            if info.file_size > budget:
                raise fail(f"unpacks to more than {max_bytes / 2**20:.0f} MB (member '{name}' declares "
                           f"{info.file_size / 2**20:.0f} MB)")
            try:
                with zf.open(info) as f:
                    shape, dtype = _header(f)
                if dtype.hasobject:
                    raise fail(f"holds an object array '{name}' (that would need a pickle; none are read)")
                nbytes = math.prod(shape) * dtype.itemsize
                if nbytes > budget or nbytes > info.file_size:
                    raise fail(f"member '{name}' declares a {shape} {dtype} array that does not fit "
                               f"{'its data' if nbytes <= budget else f'{max_bytes / 2**20:.0f} MB'}")
                with zf.open(info) as f:
                    out[name] = np.lib.format.read_array(f, allow_pickle=False)
            except NPSError:
                raise
            except Exception as exc:  # a damaged member surfaces as many types (zlib, CRC, EOF ...)
                raise fail(f"has a damaged member '{name}' ({type(exc).__name__})") from None
            budget -= max(nbytes, 1)
        return out
