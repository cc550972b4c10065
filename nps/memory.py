"""How much memory a run needs and has: the up-front refusal of a run that would not fit."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from nps.errors import NPSError

if TYPE_CHECKING:
    from nps.config import GenerationConfig


def estimate_run_bytes(config: GenerationConfig, corpus_size: int, image_shape: tuple[int, ...]) -> int:
    """A generous estimate of the memory a run needs (bytes), from n, the canvas and the batch.

    The record is 5 int64 maps, a bool map and the images per pixel, and the per-step
    uniforms are float64; batches are concatenated, so the whole is held twice.  A batch
    holds its padded canvases and, with per-sample semantic pools, the pool images in
    float32 with their squares (the largest working set of the engine).
    """
    h, w = image_shape[:2]
    c = image_shape[2] if len(image_shape) > 2 else 1
    per_sample = h * w * (c + 5 * 8 + 1 + 8)
    b = min(config.batch_size, config.n)
    hp, wp = h + config.window - 1, w + config.window - 1
    batch = b * (c * hp * wp * 4 + h * w * 8 * 6)
    if config.per_sample_pools():
        batch += 2 * b * hp * wp * (c + 1) * min(config.k, corpus_size) * 4
    else:
        batch += 64 << 20  # chunked distances to a shared pool (nps.engine.sampler_scores.CHUNK_SCORES) and their masks
    return int(2 * config.n * per_sample + batch)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(config: GenerationConfig, corpus_size: int, image_shape: tuple[int, ...]) -> None:
    """Refuse up front (one line) a run whose estimated memory exceeds what is available."""
    need = estimate_run_bytes(config, corpus_size, image_shape)
    have = available_memory()
    if have is not None and need > have:
        h, w = image_shape[:2]
        raise NPSError(f"this run needs about {need / 1e9:.1f} GB of memory ({config.n} samples of {h}x{w}, "
                       f"batch {min(config.batch_size, config.n)}) but {have / 1e9:.1f} GB is available; "
                       "lower --n or --batch-size.")



@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None (another C library, or no ctypes)."""
    try:
        import ctypes
        import ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError, ImportError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_freed() -> None:
    """Hand memory that the process has freed back to the system (glibc; a no-op elsewhere).

    glibc raises its mmap threshold each time a large block is freed (up to 32 MB), so a
    step's big temporaries (the near-threshold gathers of the certifier, scores of millions
    of candidates) later come from the heap, and the heap keeps their pages after ``free``:
    on 60k MNIST, SSD + representation without locality at batch 64 grew from 1.1 to 3.3 GB
    over the border steps with 1.1 GB live.  The sampler calls this every 16 steps (about a
    millisecond each); RSS then stays at the live size.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
