"""One training loop for every baseline: deterministic order, a wall-time budget, no NaN weights.

Determinism: ``torch.manual_seed(seed)`` before the model is built (initial weights and
every noise draw in the steps), and the batch order of epoch e is a permutation drawn
from ``numpy.random.default_rng([seed, e])``.  With the same flags, threads and
``--max-steps`` (the wall-time budget is not reproducible; the card records the steps
reached) a run gives bit-identical weights.

A non-finite loss stops training: the weights go back to the last snapshot (taken
every :data:`SNAPSHOT_EVERY` steps, and at step 0), and the report says so.  A
failure before the first good snapshot is an NPSError, so no useless weights are saved.
"""

from __future__ import annotations

import copy
import importlib
import logging
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from nps.baselines import MODELS, check_hparams
from nps.errors import NPSError

log = logging.getLogger(__name__)
SNAPSHOT_EVERY = 100
TAIL = 100  # the final loss is the mean of the last TAIL steps


def model_class(name: str) -> type:
    """The class implementing baseline ``name`` (``Model`` of its module)."""
    return importlib.import_module(MODELS[name]).Model


def image_tensor(images: np.ndarray) -> torch.Tensor:
    """(N,H,W[,C]) uint8 -> (N,C,H,W) float32 in [0,1]."""
    x = torch.from_numpy(np.array(images, dtype=np.float32)).div_(255.0)  # a writable copy
    return x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


def check_shape(name: str, image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(C,H,W) of a corpus's images; the convolutional models need H and W multiples of 4."""
    h, w = int(image_shape[0]), int(image_shape[1])
    c = 1 if len(image_shape) == 2 else int(image_shape[2])
    if name in ("gan", "flow") and (h % 4 or w % 4):
        raise NPSError(f"the {name} baseline halves the image twice, so it needs sides that are multiples of 4; "
                       f"this corpus has {h}x{w} images.")
    return c, h, w


def train_baseline(name: str, train_images: np.ndarray, flags: dict | None = None,
                   progress: Callable[[dict], None] | None = None) -> tuple[object, dict]:
    """Train baseline ``name`` on ``train_images`` (N,H,W[,C]) uint8.

    Args:
        flags: hyper-parameters to override (None = default); validated first.
        progress: called with a dict (epoch, step, loss, seconds) after every epoch.
    Returns:
        (model, report): the model instance (``.nets()`` holds what sampling needs) and a
        JSON-able dict: hparams, steps, epochs (completed, fractional), wall seconds,
        stop reason, per-epoch mean losses, final losses (mean of the last TAIL steps).
    Raises:
        NPSError: a bad flag or shape, or a non-finite loss before any good step.
    """
    hp = check_hparams(name, flags or {})
    shape = check_shape(name, train_images.shape[1:])
    torch.set_num_threads(int(hp["threads"]))
    torch.manual_seed(int(hp["seed"]))
    model = model_class(name)(hp, shape)
    x_all = image_tensor(train_images)
    n = len(x_all)
    if n < 2:
        raise NPSError("baselines need at least 2 training images; use a larger --subset.")
    batch = min(int(hp["batch_size"]), n)
    per_epoch = n // batch  # drop the last partial batch: BatchNorm needs full, equal batches
    budget = float(hp["max_minutes"]) * 60.0
    max_steps = hp["max_steps"]

    def snapshot() -> dict:
        return {k: copy.deepcopy(m.state_dict()) for k, m in model.train_nets().items()}

    good, good_step = snapshot(), 0
    history: list[dict] = []
    tail: list[dict[str, float]] = []
    step, stop = 0, "epochs"
    t0 = time.perf_counter()
    for epoch in range(int(hp["epochs"])):
        order = torch.from_numpy(np.random.default_rng([int(hp["seed"]), epoch]).permutation(n))
        sums: dict[str, float] = {}
        done = 0
        for b in range(per_epoch):
            losses = model.step(x_all[order[b * batch:(b + 1) * batch]])
            if not all(math.isfinite(v) for v in losses.values()):
                if good_step == 0:
                    raise NPSError(f"the {name} loss became non-finite at step {step + 1}, before any good "
                                   f"snapshot; lower --lr (now {hp['lr']}).")
                for k, m in model.train_nets().items():
                    m.load_state_dict(good[k])
                stop = f"non-finite loss at step {step + 1}; kept the weights of step {good_step}"
                log.warning("%s: %s", name, stop)
                break
            step += 1
            done += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            tail = ([*tail, losses])[-TAIL:]
            if step % SNAPSHOT_EVERY == 0:
                good, good_step = snapshot(), step
            if max_steps is not None and step >= max_steps:
                stop = f"--max-steps {max_steps}"
                break
            if time.perf_counter() - t0 > budget:
                stop = f"--max-minutes {hp['max_minutes']} wall-time budget"
                break
        if done:
            history.append({"epoch": epoch + 1, "steps": done, "seconds": round(time.perf_counter() - t0, 1),
                            **{k: round(v / done, 5) for k, v in sums.items()}})
            if progress:
                progress(history[-1])
        if stop != "epochs":
            break
    if stop.startswith("non-finite"):
        step = good_step
        tail = []
    final = {k: round(float(np.mean([t[k] for t in tail])), 5) for k in tail[0]} if tail else None
    report = {"model": name, "hparams": hp, "image_shape": list(shape), "train_images": n, "batch_size": batch,
              "steps": step, "steps_per_epoch": per_epoch, "epochs_completed": round(step / per_epoch, 3),
              "train_seconds": round(time.perf_counter() - t0, 1), "stop_reason": stop,
              "history": history, "final_loss": final, "final_loss_over_steps": len(tail),
              "parameters": sum(p.numel() for m in model.nets().values() for p in m.parameters())}
    return model, report
