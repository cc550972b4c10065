"""``python -m nps cache ls|clear|pin|unpin``: inspect, empty and pin the derived-artefact cache."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from nps.errors import NPSError

# Bookkeeping fields of an entry's meta; the rest says what the entry was built from.
_BOOKKEEPING = ("key", "kind", "sha256", "arrays", "created", "built_s")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cache", help="list (ls), remove (clear) or pin cached embeddings, indexes and fitted encoders",
        description="The cache (cache/ at the project root, or $NPS_CACHE_DIR) holds derived artefacts only: "
                    "embeddings, faiss indexes, PCA fits. Every entry is keyed by a hash of what it was built "
                    "from, validated before use and rebuilt when missing, so clearing it is always safe. "
                    "It is kept under $NPS_CACHE_QUOTA_MB (default 2048; 'off' for none) by evicting the "
                    "least recently used entries; pinned entries are never evicted.")
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
    for name, verb in (("pin", "never evict"), ("unpin", "allow evicting again")):
        sp = actions.add_parser(name, help=f"{verb} the entries matching KEY (or --all)",
                                description=f"{verb.capitalize()} cache entries under the quota. KEY matches the "
                                            "start of an entry's key or file name, as for `clear`.")
        w = sp.add_mutually_exclusive_group()
        w.add_argument("key", nargs="?", default=None, metavar="KEY", help="key (or key prefix) from `cache ls`")
        w.add_argument("--all", action="store_true", help="every entry")
        sp.set_defaults(func=run_pin, pin=name == "pin")
    p.set_defaults(func=_no_action)


def _no_action(args: argparse.Namespace) -> int:
    raise NPSError("choose an action: `python -m nps cache ls`, `python -m nps cache clear [--all | KEY]` or "
                   "`python -m nps cache pin|unpin [--all | KEY]`.")


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


def _quota_text(used: int) -> str:
    from nps.cache_quota import quota_bytes
    quota = quota_bytes()
    return f"{human_size(used)} used, no quota" if quota is None else \
        f"{human_size(used)} used of a {human_size(quota)} quota ({100 * used / quota:.0f}%)"


def _ago(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h" if s < 172800 else f"{s // 86400}d"


def run_ls(args: argparse.Namespace) -> int:
    from nps.cache import cache_root
    from nps.cache_quota import is_pinned, list_entries, temp_files, usage

    root = cache_root()
    footer = _quota_text(usage(root))  # first: a bad NPS_CACHE_QUOTA_MB is one line, not a half table
    entries = list_entries(root)
    temps = temp_files(root)
    now = time.time()
    if args.json:
        for e in entries:
            print(json.dumps({"file": e.path.name, "kind": e.kind, "key": e.key, "size": e.size,
                              "pinned": is_pinned(e.path), "last_used": e.mtime,
                              "meta": {k: v for k, v in e.meta.items() if k != "sha256"}}, default=str))
        for t in temps:
            print(json.dumps({"file": t.path.name, "kind": "temp", "size": t.size, "age_s": round(t.age_s, 1),
                              "writer_pid": t.pid, "stale": t.stale}))
        return 0
    if entries:
        # An entry's meta is file content: no escape codes or newlines reach the terminal.
        from nps.corpora.image_folder import shown
        rows = [tuple(shown(c)[:300] for c in (
                    e.kind + (" (pinned)" if is_pinned(e.path) else ""), e.key, human_size(e.size),
                    str(e.meta.get("created", "?")), _ago(now - e.mtime) + " ago", built_from(e.meta)))
                for e in entries]
        head = ("KIND", "KEY", "SIZE", "CREATED", "LAST USED", "BUILT FROM")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
        for r in [head, *rows]:
            print("  ".join(c.ljust(w) if i != 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r[:5], widths)))
                  + "  " + r[5])
    else:
        print(f"cache {root} is empty.")
    if temps:
        print(f"\n{len(temps)} temp file{'' if len(temps) == 1 else 's'} (hidden; never read as entries):")
        for t in temps:
            state = ("stale: its writer is gone, removed on the next build or by `cache clear --all`" if t.stale
                     else "a write in progress" + (f" by pid {t.pid}" if t.pid else ""))
            print(f"  {t.path.name}  {human_size(t.size)}  {_ago(t.age_s)} old  ({state})")
    print(f"\n{len(entries)} entries, {footer} in {root}")
    return 0


def _matching(root, key: str | None) -> list:
    from nps.cache_quota import list_entries
    return [e for e in list_entries(root) if key is None or e.key.startswith(key) or e.path.name.startswith(key)]


def _key_arg(args: argparse.Namespace, action: str) -> str | None:
    """``None`` for --all, else the stripped KEY; one line when neither or an empty KEY is given."""
    if args.all:
        return None
    if args.key is None:
        raise NPSError(f"say what to {action}: pass --all for every entry, or a KEY from `python -m nps cache ls`.")
    key = args.key.strip()
    if not key:
        raise NPSError("KEY is empty; pass a key from `python -m nps cache ls`, or --all.")
    return key


def run_clear(args: argparse.Namespace) -> int:
    from nps.cache import cache_root
    from nps.cache_quota import clear

    root = cache_root()
    key = _key_arg(args, "remove")
    removed = clear(key, root)
    if key is not None and not removed:
        raise NPSError(f"no cache entry matches '{key}'; `python -m nps cache ls` lists the keys.")
    for p in removed:
        print(f"removed {p.name}")
    print(f"{len(removed)} entr{'y' if len(removed) == 1 else 'ies'} removed from {root}")
    return 0


def run_pin(args: argparse.Namespace) -> int:
    from nps.cache import cache_root, read_only
    from nps.cache_quota import pin, unpin

    root = cache_root()
    action = "pin" if args.pin else "unpin"
    key = _key_arg(args, action)
    if read_only():
        raise NPSError(f"the cache {root} is read-only here (NPS_CACHE_READONLY or NPS_APP_READONLY is set); "
                       f"unset it to {action} entries.")
    entries = _matching(root, key)
    if key is not None and not entries:
        raise NPSError(f"no cache entry matches '{key}'; `python -m nps cache ls` lists the keys.")
    try:
        for e in entries:
            if args.pin:
                pin(e.path)
            else:
                unpin(e.path)
            print(f"{action}ned {e.path.name}")
    except OSError as exc:
        raise NPSError(f"cannot {action} '{e.path.name}' ({exc.strerror or type(exc).__name__}); the cache "
                       "folder is not writable by this user.") from None
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} {action}ned in {root}")
    return 0
