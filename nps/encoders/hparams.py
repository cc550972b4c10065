"""Up-front checks of training hyper-parameters and devices (no torch at import).

Every check runs before any data is loaded or any step is taken, and a bad value
gives one :class:`~nps.errors.NPSError` line naming the flag, the value and the
range.  The ranges are what training can use, not taste: NT-Xent divides cosine
similarities by the temperature (0 gives NaN weights), a learning rate must be a
positive finite number, SimCLR needs two images per batch to have a negative, and
the seed feeds ``seed * 100003 + epoch`` into a 64-bit torch generator.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from nps.errors import NPSError

AUGMENT_RECIPES = ("glyph", "garment", "colour")
READOUTS = ("avg", "max")
BACKBONE_NAMES = ("small_cnn", "resnet18")  # nps.encoders.backbones.BACKBONES, without importing torch
SEED_MAX = 2**32 - 1


def check_number(flag: str, value: object, lo: float, hi: float, *, integer: bool = False,
                 lo_open: bool = False, why: str = "") -> None:
    """Refuse ``value`` unless it is a finite number in [lo, hi] (or (lo, hi] with ``lo_open``).

    Args:
        flag: the name shown to the user, e.g. ``--lr``.
        integer: also require an int (bools are refused).
        why: an optional clause saying what the bound protects.
    """
    ok_type = isinstance(value, Integral) if integer else isinstance(value, Real)
    if isinstance(value, bool) or not ok_type:
        kind = "an integer" if integer else "a number"
        raise NPSError(f"{flag} must be {kind}, got {value!r}.")
    v = float(value)
    in_range = math.isfinite(v) and (lo < v if lo_open else lo <= v) and v <= hi
    if not in_range:
        left = "(" if lo_open else "["
        lo_s, hi_s = (f"{int(b)}" if integer else f"{b:g}" for b in (lo, hi))
        raise NPSError(f"{flag} {value!r} is out of range; give {'an integer' if integer else 'a number'} in "
                       f"{left}{lo_s}, {hi_s}]" + (f" ({why})" if why else "") + ".")


def check_device(device: str) -> None:
    """``cpu``, ``cuda`` or ``cuda:N`` where CUDA is available; anything else is one line."""
    if not isinstance(device, str) or not (device == "cpu" or device == "cuda"
                                           or (device.startswith("cuda:") and device[5:].isdigit())):
        raise NPSError(f"unknown device {device!r}; use cpu or cuda.")
    if device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise NPSError("--device cuda was asked for but CUDA is not available here; use --device cpu.")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise NPSError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s).")


def check_threads(threads: int | None) -> None:
    if threads is not None:
        check_number("--threads", threads, 1, 256, integer=True)


def check_simclr_config(cfg) -> None:  # nps.encoders.train.TrainConfig (imports torch)
    """Refuse a :class:`~nps.encoders.train.TrainConfig` that training cannot use, before any work."""
    check_number("--epochs", cfg.epochs, 1, 10_000, integer=True)
    check_number("--batch-size", cfg.batch_size, 2, 8192, integer=True,
                 why="SimCLR needs at least 2 images per batch, one positive pair and its negatives")
    check_number("--lr", cfg.lr, 0, 1, lo_open=True)
    check_number("weight_decay", cfg.weight_decay, 0, 1)
    check_number("--temperature", cfg.temperature, 0.01, 10,
                 why="NT-Xent divides similarities by it; 0 gives NaN weights")
    check_number("warmup_steps", cfg.warmup_steps, 0, 1_000_000, integer=True)
    check_number("proj_dim", cfg.proj_dim, 1, 4096, integer=True)
    if cfg.width is not None:
        check_number("--width", cfg.width, 1, 512, integer=True)
    if cfg.backbone is not None and cfg.backbone not in BACKBONE_NAMES:
        raise NPSError(f"--backbone {cfg.backbone!r} is unknown; choose one of {', '.join(BACKBONE_NAMES)}.")
    if cfg.readout not in READOUTS:
        raise NPSError(f"--readout {cfg.readout!r} is unknown; choose avg or max.")
    if cfg.augment is not None and cfg.augment not in AUGMENT_RECIPES:
        raise NPSError(f"--augment {cfg.augment!r} is unknown; choose one of {', '.join(AUGMENT_RECIPES)}.")
    check_number("--aug-group", cfg.aug_group, 1, 8192, integer=True)
    check_number("--seed", cfg.seed, 0, SEED_MAX, integer=True)
    check_number("monitor_train", cfg.monitor_train, 0, 10_000_000, integer=True)
    check_number("monitor_test", cfg.monitor_test, 0, 10_000_000, integer=True)
    if cfg.max_steps_per_epoch is not None:
        check_number("max_steps_per_epoch", cfg.max_steps_per_epoch, 1, 10_000_000, integer=True)
    check_device(cfg.device)


def check_classifier_params(epochs: int, batch_size: int, lr: float, seed: int) -> None:
    """Refuse classifier training parameters that cannot work, before any work."""
    check_number("--epochs", epochs, 1, 1000, integer=True)
    check_number("--batch-size", batch_size, 1, 8192, integer=True)
    check_number("--lr", lr, 0, 1, lo_open=True)
    check_number("--seed", seed, 0, SEED_MAX, integer=True)
