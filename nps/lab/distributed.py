"""Distributed generation on Ray: shards of sample ids as tasks, merged exactly.

Generation is a pure function of (config, corpus, sample ids) (see :mod:`nps.engine.sampler`),
so a run of ``n`` samples is cut into shards of consecutive ids, each shard runs as one
Ray task on one CPU, and :func:`nps.record.merge` joins them.  Shards are cut at
multiples of ``batch_size``, so every batch holds exactly the samples it holds in a
single-process run and the merged record is bit-identical to it (``tests/test_distributed.py``).

How the pieces travel:

* **The corpus** never travels as arrays.  The driver writes it once into the corpus store
  (:mod:`nps.store`; a no-op for ``mnist-deformed:N``, which lives there) and sends its key;
  each worker memory-maps that store (shared storage, ``NPS_STORE_DIR``), or where its node
  lacks it, rebuilds it from its name with :func:`nps.corpora.load_corpus`.  A worker
  refuses to run if the content hash differs from the driver's.
* **Threads**: each task takes ``num_cpus=1`` and pins torch, faiss and OpenMP to one
  thread, so N tasks on N cores do not oversubscribe them.
* **Processes**: Ray's workers are fresh Python processes started by the raylet (an
  exec, not a fork of the driver), so faiss's OpenMP pool is never inherited across a
  fork - the hang the issue warns of cannot happen.  Nothing here forks.

Without an address a local Ray is started (``ray.init(num_cpus=..., include_dashboard=False)``)
and shut down afterwards; with one (``auto`` or ``ray://host:10001`` or ``host:6379``) the
driver joins that cluster (see the README, "Running on a Ray cluster").
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nps.config import GenerationConfig
from nps.corpora import Corpus
from nps.errors import NPSError
from nps.record import ProvenanceRecord, merge

log = logging.getLogger(__name__)

# Variables a worker must see as the driver does: the cache and data locations, the quota,
# read-only switches, engine threads.
_FORWARD_ENV = ("NPS_CACHE_DIR", "NPS_STORE_DIR", "NPS_DATA_ROOT", "NPS_CACHE_QUOTA_MB", "NPS_CACHE_READONLY",
                "NPS_APP_READONLY")


def shard_ids(n: int, batch_size: int, shards: int) -> list[np.ndarray]:
    """Split ``arange(n)`` into at most ``shards`` runs of consecutive ids, cut at batch boundaries.

    Returns:
        a list of (S_i,) int64 arrays covering 0..n-1 in order; each but the last holds a
        multiple of ``batch_size`` ids, so batches are the single-process run's batches.
    """
    if n < 1 or batch_size < 1 or shards < 1:
        raise NPSError(f"cannot shard n={n} samples in batches of {batch_size} over {shards} shards.")
    n_batches = -(-n // batch_size)
    per = -(-n_batches // min(shards, n_batches))
    out = []
    for b0 in range(0, n_batches, per):
        out.append(np.arange(b0 * batch_size, min(n, (b0 + per) * batch_size), dtype=np.int64))
    return out


def _pin_threads() -> None:
    """One thread for torch, faiss and OpenMP in this worker (it owns one CPU)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["NPS_THREADS"] = "1"
    import torch
    torch.set_num_threads(1)
    try:
        import faiss
        faiss.omp_set_num_threads(1)
    except ImportError:  # faiss is a dependency; a node without it fails later with a clear error
        pass


_OPENED: dict[str, Corpus] = {}  # per worker process: a store is opened once, not once per task
# Per worker process: the run's sampler (pools, step geometry, band indices) is set up by the
# first shard and reused by the next ones; sampling is a pure function of the ids, so this is exact.
_SAMPLERS: dict[tuple[str, str], object] = {}


def worker_corpus(cfg: GenerationConfig, content_hash: str, store_key: str | None) -> Corpus:
    """The run's corpus on this node: the store the driver named (a memory map, instant), else by name."""
    if content_hash in _OPENED:
        return _OPENED[content_hash]
    corpus = None
    if store_key is not None:
        from nps.store import open_store, store_root
        folder = store_root() / f"corpus-{store_key}"
        if (folder / "manifest.json").is_file():
            try:
                corpus = open_store(folder, store_key)
            except NPSError as exc:
                log.warning("%s; loading '%s' by name instead", exc, cfg.corpus)
    if corpus is None or corpus.content_hash != content_hash:
        from nps.corpora import load_corpus
        corpus = load_corpus(cfg.corpus, cfg.subset, cfg.data_root)  # not in this node's store: by name
    _OPENED[content_hash] = corpus
    return corpus


def run_shard(config: dict, content_hash: str, ids: np.ndarray, store_key: str | None = None) -> ProvenanceRecord:
    """The body of one task: open the corpus (store or name), check its hash, generate ``ids``.

    Args:
        config: :meth:`GenerationConfig.to_dict` of the whole run.
        content_hash: the driver's :attr:`Corpus.content_hash`.
        ids: (S,) int64 sample ids.
        store_key: the driver's store of the corpus (:func:`nps.store.store_corpus`), if any.
    Raises:
        NPSError: the corpus on this node is not the driver's.
    """
    _pin_threads()
    import torch

    from nps.engine.sampler import Sampler
    key = (json.dumps(config, sort_keys=True), content_hash)
    sampler = _SAMPLERS.get(key)
    if sampler is None:
        cfg = GenerationConfig.from_dict(config)
        corpus = worker_corpus(cfg, content_hash, store_key)
        if corpus.content_hash != content_hash:
            _OPENED.pop(content_hash, None)
            raise NPSError(f"corpus '{cfg.corpus}' on Ray node {os.uname().nodename} has content hash "
                           f"{corpus.content_hash}, the driver's has {content_hash}; give every node the same data "
                           "(put the store on shared storage, NPS_STORE_DIR).")
        sampler = Sampler(cfg, corpus)
        while len(_SAMPLERS) >= 2:
            _SAMPLERS.pop(next(iter(_SAMPLERS)))
        _SAMPLERS[key] = sampler
    torch.manual_seed(sampler.config.seed)  # as nps.engine.sampler.generate does
    return sampler.run(ids)


def _worker_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in _FORWARD_ENV if k in os.environ}
    env.update(OMP_NUM_THREADS="1", NPS_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return env


def _check_reachable(address: str) -> None:
    """Refuse in seconds a ``host:port`` / ``ray://host:port`` nobody answers at (Ray itself retries for minutes)."""
    import socket
    if address == "auto":
        return  # Ray finds the local cluster itself, and says so at once when there is none
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise NPSError(f"--ray address '{address}' is not HOST:PORT, ray://HOST:PORT or auto; e.g. --ray auto "
                       "on a node of a running cluster.")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as exc:
        raise NPSError(f"nothing answers at Ray address {address} ({exc.strerror or exc}); start the head with "
                       "`ray start --head` there, or drop the address for a local Ray.") from None


def start_ray(address: str | None, num_cpus: int | None = None):  # returns the ray module
    """Connect to ``address`` or start a local Ray with ``num_cpus`` CPUs; returns (ray, started_here)."""
    try:
        import ray
    except ImportError:
        raise NPSError("--ray needs the ray package; install the project's requirements "
                       "(`./lab.sh test` or `.venv/bin/pip install -r requirements.txt`).") from None
    if address not in (None, "", "local"):
        _check_reachable(address)  # also when Ray is up already: a wrong address is the user's to hear about
    if ray.is_initialized():
        return ray, False
    env = _worker_env()
    root = str(Path(__file__).resolve().parents[2])
    t0 = time.perf_counter()
    try:
        if address in (None, "", "local"):
            # A local cluster runs this checkout: put it on the workers' path (a real
            # cluster installs nps on every node with ./lab.sh instead).
            env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     runtime_env={"env_vars": env}, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(address=address, runtime_env={"env_vars": env}, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NPSError(f"cannot start or reach Ray at {address or 'a new local cluster'} ({first}); "
                       "start one with `ray start --head` or drop the address for a local one.") from None
    log.info("ray ready in %.1fs: %s", time.perf_counter() - t0, ray.cluster_resources())
    return ray, True


def _store_key(corpus: Corpus) -> str | None:
    """The store key of ``corpus`` (writing it there if needed), or None where no store can be written."""
    train = corpus.train
    if isinstance(train, np.memmap) and train.filename is not None and corpus.subset is None:
        folder = Path(train.filename).parent  # already stored (mnist-deformed:N): never copy it
        if folder.name.startswith("corpus-") and (folder / "manifest.json").is_file():
            return folder.name.removeprefix("corpus-")
    from nps.cache import read_only
    if read_only():
        return None
    from nps.store import store_corpus
    try:
        twin = store_corpus(corpus)
    except NPSError as exc:  # over the quota, unwritable: workers load it by name instead
        log.warning("not storing corpus '%s' for the Ray workers (%s); each loads it by name", corpus.name, exc)
        return None
    return Path(twin.train.filename).parent.name.removeprefix("corpus-") if isinstance(twin.train, np.memmap) \
        else None


def generate_on_ray(config: GenerationConfig, corpus: Corpus, address: str | None = None,
                    num_cpus: int | None = None, shards: int | None = None,
                    progress: Callable[[int], None] | None = None, use_store: bool = True) -> ProvenanceRecord:
    """Generate ``config.n`` samples as Ray tasks and merge them; bit-identical to :func:`nps.engine.sampler.generate`.

    Args:
        config: the run (checked here).
        corpus: the driver's corpus; workers load the same one by name and check its hash.
        address: a Ray cluster to join; None starts (and afterwards stops) a local one.
        num_cpus: CPUs of a local Ray (default: all cores).
        shards: how many tasks (default: 2 per CPU of the cluster, fewer if there are
            fewer batches), so a slow node does not hold up the end of the run; each worker
            sets the sampler up once and reuses it for its later shards.
        progress: called with the number of samples finished after each shard.
        use_store: write the corpus into the store once (:func:`nps.store.store_corpus`) so
            workers memory-map it instead of each reading and decoding it; a node whose store
            lacks it (no shared storage) loads it by name.  Either way its hash is checked.
    Raises:
        NPSError: Ray cannot start, or a task failed (its one-line reason).
    """
    config.check(len(corpus), corpus.image_shape, set(np.unique(corpus.train_labels).tolist()))
    ray, started = start_ray(address, num_cpus)
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        parts = shard_ids(config.n, config.batch_size, shards or 2 * cpus)
        task = ray.remote(num_cpus=1, max_retries=0)(run_shard)
        cfg_ref = ray.put(config.to_dict())
        key = _store_key(corpus) if use_store else None
        pending = {task.remote(cfg_ref, corpus.content_hash, ids, key): len(ids) for ids in parts}
        log.info("ray: %d samples in %d shards on %d CPUs", config.n, len(parts), cpus)
        records, done = [], 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            try:
                records.append(ray.get(ready[0]))
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, NPSError):
                    raise NPSError(str(cause)) from None
                raise NPSError(f"a Ray task failed ({type(cause or exc).__name__}: "
                               f"{str(cause or exc).strip().splitlines()[-1]}).") from None
            done += pending.pop(ready[0])
            if progress is not None:
                progress(done)
        return merge(records)
    finally:
        if started:
            ray.shutdown()
