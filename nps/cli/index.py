"""``python -m nps index``: build (or find cached) the whole-corpus window index of a corpus.

``--search exact|approx`` serves whole-corpus (and ``--label``) steps from a window index
in ``cache/`` (:mod:`nps.engine.search_index`).  Corpora of more than
:data:`~nps.engine.window_cache.BUILD_ON_USE` windows (all 60k MNIST) never build one on use
(about a minute and 1 GB), so without this command they silently take the dense scan.

The index is built through the sampler itself (``Sampler.exact_search(build=True)``, as
``python -m nps bench`` does), so its key, the engine's padding included, is the one a
``generate`` run looks up.  A corpus has two indexes (:mod:`nps.engine.window_cache`): the local one
for runs with locality (the default) and, with ``--no-loc``, the global one for runs without it.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from nps.errors import NPSError


def register(sub: argparse._SubParsersAction) -> None:
    from nps.cli._common import add_corpus_args, add_field_arg
    from nps.config import FIELDS

    p = sub.add_parser(
        "index", help="build (or find cached) the window index that --search exact|approx uses",
        description="Build the whole-corpus window index of a corpus and window (the unique windows of every "
                    "position in k-d order, with boxes; nps/engine/search_index.py) into the cache, or find it "
                    "there, and print one summary: corpus, images, unique / total windows, size, build time, "
                    "path. `generate --search exact|approx` uses it for every step whose candidates are the "
                    "whole corpus or a --label pool; corpora above 5M windows (all 60k MNIST: about a minute, "
                    "1 GB) only use an index already built. The index is one cache entry under "
                    "$NPS_CACHE_QUOTA_MB (default 2048); --pin keeps it from being evicted.")
    add_corpus_args(p)
    add_field_arg(p, FIELDS["window"])
    p.add_argument("--no-loc", action="store_true",
                   help="build the global index instead: the one that runs without locality (SSD alone) "
                        "search; the default, local one serves runs with locality (their k-d splits differ, "
                        "their results do not: nps/engine/search_splits.py)")
    p.add_argument("--approx", action="store_true",
                   help="also build the group centroids that --search approx ranks (cached beside the index; "
                        "about 50 s for 60k MNIST)")
    p.add_argument("--pin", action="store_true",
                   help="pin the index (and the centroids) so the cache quota never evicts it "
                        "(`python -m nps cache unpin KEY` undoes it)")
    p.set_defaults(func=run)


def index_command(corpus: str, subset: int | None, window: int, data_root: str | None,
                  extra: tuple[str, ...] = ()) -> str:
    """The ``python -m nps index`` command line that builds the index a run with these fields looks up."""
    from nps.config import DEFAULTS
    from nps.engine.window_cache import INDEX_COMMAND
    parts = [INDEX_COMMAND, "--corpus", shlex.quote(corpus)]
    if subset is not None:
        parts += ["--subset", str(subset)]
    if window != DEFAULTS["window"]:
        parts += ["--window", str(window)]
    if data_root is not None:
        parts += ["--data-root", shlex.quote(str(data_root))]
    return " ".join([*parts, *extra])


def missing_index_line(cfg, corpus, index: str | None = None) -> str | None:
    """The hint ``generate`` prints when its run would search the window index and none is cached, else None.

    Looks at file names only: builds, loads and validates nothing.  None when the run does not
    use the index (brute search, k-NN pools, no ``ssd``) or the corpus builds its own on first use.
    ``index``: the run's :func:`nps.lab.cost.index_state`, when the caller has it.
    """
    from nps.engine.window_cache import missing_index_hint
    from nps.lab.cost import index_state
    if cfg.search == "brute" or (index or index_state(cfg, corpus)) != "missing":
        return None
    from nps.engine.window_cache import local_splits
    extra = ("--approx",) if cfg.search == "approx" else ()  # its centroids too (else built on first use)
    extra += () if local_splits(cfg) else ("--no-loc",)
    return "hint: " + missing_index_hint(len(corpus), index_command(cfg.corpus, cfg.subset, cfg.window,
                                                                     cfg.data_root, extra))


def centroids_path(corpus_hash: str, window: int, shape: tuple[int, ...], local: bool = True) -> Path:
    """Where the approximate search's group centroids of that (local or global) index live in the cache."""
    from nps.engine import search_approx
    from nps.engine.window_cache import index_key
    return search_approx.centroids_path(index_key(corpus_hash, window, shape, local))


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _mb(n: int) -> str:
    from nps.cli.cache import human_size
    return human_size(n)


def _entry_bytes(arrays: dict) -> int:
    return int(sum(a.nbytes for a in arrays.values()))


def run(args: argparse.Namespace) -> int:
    from nps.cache import cache_root, probe_writable, read_only
    from nps.cache_quota import is_pinned, pin, quota_bytes
    from nps.config import GenerationConfig
    from nps.corpora import load_corpus
    from nps.engine.sampler import Sampler
    from nps.engine.window_cache import index_path, local_splits, padded_shape

    cfg = GenerationConfig.make(corpus=args.corpus, subset=args.subset, data_root=args.data_root,
                                window=args.window, constraints="ssd" if args.no_loc else "ssd,loc", n=1, batch_size=1,
                                search="approx" if args.approx else "exact")
    cfg.check()  # parameter errors before any loading
    quota = quota_bytes()  # a bad NPS_CACHE_QUOTA_MB is one line before any work
    if read_only():
        raise NPSError("the cache is read-only here (NPS_CACHE_READONLY or NPS_APP_READONLY is set), so an index "
                       "would be built and thrown away; unset it to build one.")
    root = cache_root()
    probe_writable(root / "windowindex-probe.npz")  # a real file: os.access says yes to root on a read-only mount
    corpus = load_corpus(cfg.corpus, cfg.subset, cfg.data_root)
    cfg = cfg.fit_canvas(corpus.image_shape, seed_size_given=False)  # 8x8 digits: a smaller seed, as generate
    cfg.check(len(corpus), corpus.image_shape, set(corpus.train_labels.tolist()))
    h, w = corpus.image_shape[:2]
    shape = padded_shape(len(corpus), corpus.image_shape, cfg.window)
    local = local_splits(cfg)  # the rule every run's lookup uses (--no-loc made cfg SSD alone)
    path = index_path(corpus.content_hash, cfg.window, shape, local)
    flags = (("--no-loc", args.no_loc), ("--approx", args.approx), ("--pin", args.pin))
    command = index_command(args.corpus, args.subset, cfg.window, args.data_root, tuple(f for f, on in flags if on))
    floor = len(corpus) * h * w * 4  # its (HW,N) int32 image-to-window map alone
    if quota is not None and floor > quota:
        raise NPSError(f"the window index of {len(corpus)} images takes more than {_mb(floor)}, above the whole "
                       f"cache quota ({_mb(quota)}), so it would be built and dropped; rerun with a larger quota, "
                       f"e.g. NPS_CACHE_QUOTA_MB={_suggest_mb(floor * 6)} {command}.")
    most = largest_bytes(len(corpus), h, w, shape[1], cfg.window)
    if quota is not None and most > quota and not path.is_file():
        print(f"note: if its windows are mostly distinct this index takes up to about {_mb(most)}, more than the "
              f"{_mb(quota)} cache quota, and would be built and not kept; to be sure, stop and rerun with "
              f"NPS_CACHE_QUOTA_MB={_suggest_mb(most)} {command}.", flush=True)
    before = _inode(path)
    t0 = time.perf_counter()
    sampler = Sampler(cfg, corpus)
    search = sampler.exact_search(build=True)
    elapsed = time.perf_counter() - t0
    if search is None:  # pragma: no cover - ssd,loc over the whole corpus always searches the index
        raise NPSError("this configuration does not use the window index.")
    index = search.index
    stored = path.is_file()
    if not stored:
        size = _entry_bytes(vars(index))
        if quota is not None and size > quota:
            raise NPSError(f"the window index ({_mb(size)}) is larger than the whole cache quota ({_mb(quota)}), so "
                           f"it was built but not kept (pinning cannot keep it); rerun with a larger quota, e.g. "
                           f"NPS_CACHE_QUOTA_MB={_suggest_mb(size * 2)} {command}.")
        raise NPSError(f"the window index was built but could not be written to {root} (see the warning above); "
                       "free disk space or set NPS_CACHE_DIR to a writable folder.")
    if args.approx and not centroids_path(corpus.content_hash, cfg.window, shape, local).is_file():
        raise NPSError(f"the index is cached ({path.name}) but its centroids were built and not kept (see the "
                       f"warning above); raise NPS_CACHE_QUOTA_MB or free disk space, then rerun {command}.")
    built = _inode(path) != before  # a hit keeps the file; a (re)build renames a new one into place
    entries = [path, centroids_path(corpus.content_hash, cfg.window, shape, local)] if args.approx else [path]
    if args.pin:
        try:
            for e in entries:
                if e.is_file():
                    pin(e)
        except OSError as exc:
            raise NPSError(f"cannot pin '{e.name}' ({exc.strerror or type(exc).__name__}); the cache folder is "
                           "not writable by this user.") from None
    unique, total = len(index.rep), int(index.uid.size)
    name = cfg.corpus + (f" (subset {cfg.subset})" if cfg.subset is not None else "")
    size = path.stat().st_size
    how = f"built in {elapsed:.1f} s" if built else f"already cached (loaded and validated in {elapsed:.1f} s)"
    extra = f" + centroids {_mb(entries[1].stat().st_size)}" if args.approx else ""
    print(f"{'local' if local else 'global'} window index of {name}: {len(corpus)} images, window {cfg.window}: "
          f"{unique:,} unique windows of "
          f"{total:,} ({100 * unique / total:.0f}%), {_mb(size)} on disk{extra}, {how}"
          f"{', pinned' if is_pinned(path) else ''}; {path}")
    if quota is not None and not is_pinned(path) and size > quota // 4:
        print(f"note: it takes {100 * size / quota:.0f}% of the {_mb(quota)} cache quota; later entries may evict "
              f"it (least recently used first): rerun with --pin, or `python -m nps cache pin {path.name}`.")
    return 0


def largest_bytes(images: int, height: int, width: int, channels: int, window: int) -> int:
    """About the largest a window index gets: every window distinct (MNIST's are 53 % distinct at 60k).

    The (HW,N) int32 map, three int32 per unique window, and per leaf two uint8 boxes of D =
    w*w*C bytes and an int64 offset, at the 5.5 unique windows per leaf of the digits index
    (leaves hold at most LEAF = 8); groups add about 1/16 of the leaves' boxes.
    """
    windows = images * height * width
    d = window * window * channels
    leaves = windows / 5.5
    return int(4 * windows + 12 * windows + leaves * (2 * d + 8) * (1 + 1 / 16))


def _suggest_mb(n: int) -> int:
    """A round quota in MiB of at least ``n`` bytes."""
    mb = max(1, -(-n // 2**20))
    return -(-mb // 512) * 512
