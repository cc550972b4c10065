"""A small MLP VAE (Kingma & Welling 2014) with a Bernoulli decoder.

Encoder x (C*H*W) -> width -> (mu, logvar) of ``latent`` dims; decoder z -> width ->
C*H*W logits.  Trained on pixels in [0, 1] with binary cross-entropy, so the loss is
the negative ELBO in nats per image.  Only the decoder is saved: sampling draws
z ~ N(0, I) and returns the decoder's Bernoulli means.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class VAE:
    """The model, its optimiser and one training step.

    Args:
        hp: hyper-parameters (``latent``, ``width``, ``lr``), see :data:`nps.baselines.DEFAULTS`.
        shape: (C,H,W) of the training images.
    """

    name = "vae"

    def __init__(self, hp: dict, shape: tuple[int, int, int]) -> None:
        self.shape, self.latent = tuple(shape), int(hp["latent"])
        d, w = shape[0] * shape[1] * shape[2], int(hp["width"])
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(d, w), nn.ReLU(), nn.Linear(w, 2 * self.latent))
        self.decoder = nn.Sequential(nn.Linear(self.latent, w), nn.ReLU(), nn.Linear(w, d))
        params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        self.opt = torch.optim.Adam(params, lr=float(hp["lr"]))

    def nets(self) -> dict[str, nn.Module]:
        """The modules sampling needs (saved in the weights file)."""
        return {"decoder": self.decoder}

    def train_nets(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    def step(self, x: torch.Tensor) -> dict[str, float]:
        """One Adam step on a batch x (B,C,H,W) float32 in [0,1]; returns ``{"loss": -ELBO per image}``."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        logits = self.decoder(z)
        rec = F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="sum") / len(x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)
        loss = rec + kl
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.item(), "reconstruction": rec.item(), "kl": kl.item()}

    @torch.no_grad()
    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """(n,C,H,W) float32 in [0,1]: decoder means of z ~ N(0, I) drawn from ``gen``."""
        z = torch.randn(n, self.latent, generator=gen)
        return torch.sigmoid(self.decoder(z)).view(n, *self.shape)


Model = VAE
