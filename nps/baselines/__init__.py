"""Learned baselines beside NPS: a VAE, a DCGAN and a rectified-flow model.

They are the black-box models a user would pick instead of non-parametric sampling,
trained by the project on the CPU (nothing downloaded) and shipped as small
safetensors files with a JSON card each (``nps/weights/baseline-<model>-<corpus>.*``).

One table of defaults and one registry (torch-fidelity style): :data:`DEFAULTS`
holds every hyper-parameter of every model, :data:`MODELS` maps a name to the module
that implements it.  This module imports no torch, so the CLI can validate flags and
``evaluate`` can recognise a sample file cheaply.

Public API:

* :func:`defaults`, :func:`check_hparams`: the hyper-parameters of a model, validated;
* :func:`nps.baselines.train.train_baseline`: train one model;
* :func:`nps.baselines.io.load_model` / :func:`nps.baselines.io.sample_images`: sample;
* :func:`save_samples`, :func:`load_samples`, :func:`is_baseline_file`: the sample files.
"""

from __future__ import annotations

from nps.baselines.samples import BASELINE_VERSION, is_baseline_file, load_samples, save_samples

# Every hyper-parameter of every model, in one place.  ``None`` in COMMON means "the model's own".
COMMON = {"epochs": None, "batch_size": None, "lr": None, "seed": 0, "threads": 1,
          "max_minutes": 9.0, "max_steps": None}
DEFAULTS: dict[str, dict] = {
    # MLP VAE, Bernoulli decoder: negative ELBO in nats per image.
    "vae": {"epochs": 40, "batch_size": 128, "lr": 1e-3, "latent": 16, "width": 256},
    # DCGAN (Radford et al. 2016), non-saturating loss; width = generator/discriminator base channels.
    "gan": {"epochs": 5, "batch_size": 64, "lr": 2e-4, "latent": 32, "width": 32},
    # Rectified flow (Liu et al. 2023) with a small U-Net velocity net, Euler sampler.
    # Batch 64: on a shared CPU the number of steps, not the batch, limits a short flow-matching run.
    "flow": {"epochs": 10, "batch_size": 64, "lr": 2e-3, "width": 16, "sample_steps": 32},
}
MODELS = {"vae": "nps.baselines.vae", "gan": "nps.baselines.gan", "flow": "nps.baselines.flow"}
# Ranges of the model-specific hyper-parameters: (lo, hi, why).
RANGES = {"latent": (1, 1024, "latent dimensions"), "width": (1, 512, "base channels or hidden units"),
          "sample_steps": (1, 1000, "Euler steps from noise to image")}

__all__ = [
    "BASELINE_VERSION",
    "COMMON",
    "DEFAULTS",
    "MODELS",
    "check_hparams",
    "check_model",
    "defaults",
    "is_baseline_file",
    "load_samples",
    "save_samples",
]


def check_model(name: object) -> str:
    """The model name, or one NPSError line listing the known ones."""
    from nps.errors import NPSError
    if name not in MODELS:
        raise NPSError(f"--model {name!r} is unknown; choose one of {', '.join(MODELS)}.")
    return str(name)


def defaults(model: str) -> dict:
    """Every hyper-parameter of ``model`` (the common ones included) at its default."""
    check_model(model)
    hp = {**COMMON, **DEFAULTS[model]}
    return hp


def check_hparams(model: str, given: dict) -> dict:
    """Merge flags ``given`` (None = default) over the defaults and validate every value.

    Raises:
        NPSError: one line naming the flag: unknown model, a value out of range, or a
            flag that the model does not have (e.g. ``--sample-steps`` for the VAE).
    """
    from nps.encoders.hparams import SEED_MAX, check_number, check_threads
    from nps.errors import NPSError
    hp = defaults(model)
    for key, value in given.items():
        if value is None:
            continue
        if key not in hp:
            flag = "--" + key.replace("_", "-")
            owners = [m for m, d in DEFAULTS.items() if key in d]
            raise NPSError(f"{flag} does not apply to the {model} baseline"
                           + (f" (only to {', '.join(owners)})" if owners else "") + "; drop it.")
        hp[key] = value
    check_number("--epochs", hp["epochs"], 1, 10_000, integer=True)
    check_number("--batch-size", hp["batch_size"], 2, 8192, integer=True,
                 why="batch statistics need two images")
    check_number("--lr", hp["lr"], 0, 1, lo_open=True)
    check_number("--seed", hp["seed"], 0, SEED_MAX, integer=True)
    check_threads(hp["threads"])
    check_number("--max-minutes", hp["max_minutes"], 0, 24 * 60, lo_open=True, why="the wall-time budget")
    if hp["max_steps"] is not None:
        check_number("--max-steps", hp["max_steps"], 1, 10**9, integer=True)
    for key, (lo, hi, why) in RANGES.items():
        if key in hp:
            check_number("--" + key.replace("_", "-"), hp[key], lo, hi, integer=True, why=why)
    return hp
