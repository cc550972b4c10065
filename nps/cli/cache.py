"""``python -m nps cache ls|clear``: inspect and empty the derived-artefact cache."""

from __future__ import annotations

import argparse
import json

import numpy as np

from nps.errors import NPSError

# Bookkeeping fields of an entry's meta; the rest says what the entry was built from.
_BOOKKEEPING = ("key", "kind", "sha256", "arrays", "created", "built_s")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cache", help="list (ls) or remove (clear) cached embeddings, indexes and fitted encoders",
        description="The cache (cache/ at the project root, or $NPS_CACHE_DIR) holds derived artefacts only: "
                    "embeddings, faiss indexes, PCA fits. Every entry is keyed by a hash of what it was built "
                    "from, validated before use and rebuilt when missing, so clearing it is always safe.")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    ls = actions.add_parser("ls", help="list entries: kind, key, size, created, built from",
                            description="List cache entries, newest first, with what each was built from.")
    ls.add_argument("--json", action="store_true", help="print one JSON object per entry instead of a table")
    ls.set_defaults(func=run_ls)
    clear = actions.add_parser("clear", help="remove every entry (--all) or those matching KEY",
                               description="Remove cache entries. KEY matches the start of an entry's key or "
                                           "of its file name (so `clear embeddings` removes every embedding "
                                           "table). Entries are rebuilt on next use.")
    which = clear.add_mutually_exclusive_group()
    which.add_argument("key", nargs="?", default=None, metavar="KEY", help="key (or key prefix) from `cache ls`")
    which.add_argument("--all", action="store_true", help="remove every entry and leftover temp/lock files")
    clear.set_defaults(func=run_clear)
    p.set_defaults(func=_no_action)


def _no_action(args: argparse.Namespace) -> int:
    raise NPSError("choose an action: `python -m nps cache ls` or `python -m nps cache clear [--all | KEY]`.")


def human_size(n: int) -> str:
    """Bytes as a short human-readable figure (1023 B, 1.5 KB, 12.3 MB ...)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _dtype_name(code: object) -> str:
    try:
        return np.dtype(str(code)).name
    except TypeError:
        return str(code)


def built_from(meta: dict) -> str:
    """The meta fields that say what an entry was built from, as ``k=v`` pairs."""
    if not meta:
        return "(no readable meta: damaged or foreign; it will be rebuilt)"
    parts = [f"{k}={v}" for k, v in sorted(meta.items()) if k not in _BOOKKEEPING and v is not None]
    arrays = meta.get("arrays") or {}
    shapes = ", ".join(f"{name} {'x'.join(map(str, a.get('shape', [])))} {_dtype_name(a.get('dtype'))}"
                       for name, a in sorted(arrays.items()) if isinstance(a, dict))
    if shapes:
        parts.append(f"[{shapes}]")
    return " ".join(parts) or "-"


def run_ls(args: argparse.Namespace) -> int:
    from nps.cache import cache_root, list_entries

    root = cache_root()
    entries = list_entries(root)
    if args.json:
        for e in entries:
            print(json.dumps({"file": e.path.name, "kind": e.kind, "key": e.key, "size": e.size,
                              "meta": {k: v for k, v in e.meta.items() if k != "sha256"}}, default=str))
        return 0
    if not entries:
        print(f"cache {root} is empty.")
        return 0
    rows = [(e.kind, e.key, human_size(e.size), str(e.meta.get("created", "?")), built_from(e.meta))
            for e in entries]
    head = ("KIND", "KEY", "SIZE", "CREATED", "BUILT FROM")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) if i != 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r[:4], widths)))
              + "  " + r[4])
    total = sum(e.size for e in entries)
    print(f"\n{len(entries)} entries, {human_size(total)} in {root}")
    return 0


def run_clear(args: argparse.Namespace) -> int:
    from nps.cache import cache_root, clear

    root = cache_root()
    if not args.all and not args.key:
        raise NPSError("say what to remove: pass --all for every entry, or a KEY from `python -m nps cache ls`.")
    if args.all:
        removed = clear(None, root)
    else:
        key = args.key.strip()
        if not key:
            raise NPSError("KEY is empty; pass a key from `python -m nps cache ls`, or --all.")
        removed = clear(key, root)
        if not removed:
            raise NPSError(f"no cache entry matches '{key}'; `python -m nps cache ls` lists the keys.")
    for p in removed:
        print(f"removed {p.name}")
    print(f"{len(removed)} entr{'y' if len(removed) == 1 else 'ies'} removed from {root}")
    return 0
