"""A small DCGAN (Radford et al. 2016) with the non-saturating loss.

Generator: z (``latent``) -> linear -> 2w x H/4 x W/4 -> BN, ReLU -> transposed conv to
w x H/2 x W/2 -> BN, ReLU -> transposed conv to C x H x W -> tanh.  Discriminator: two
stride-2 4x4 convolutions (w, 2w; LeakyReLU 0.2, BN on the second) and a linear logit.
Adam(lr, betas 0.5/0.999) for both, one D and one G step per batch.  Only the
generator is saved; it samples in eval mode (BatchNorm running statistics), so an
image does not depend on the other images of its batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _generator(latent: int, w: int, shape: tuple[int, int, int]) -> nn.Module:
    c, h, wd = shape
    return nn.Sequential(
        nn.Linear(latent, 2 * w * (h // 4) * (wd // 4)), nn.Unflatten(1, (2 * w, h // 4, wd // 4)),
        nn.BatchNorm2d(2 * w), nn.ReLU(),
        nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        nn.ConvTranspose2d(w, c, 4, 2, 1), nn.Tanh())


def _discriminator(w: int, shape: tuple[int, int, int]) -> nn.Module:
    c, h, wd = shape
    return nn.Sequential(
        nn.Conv2d(c, w, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(2 * w * (h // 4) * (wd // 4), 1))


class GAN:
    """Generator, discriminator, their optimisers and one training step.

    Args:
        hp: ``latent``, ``width``, ``lr`` (see :data:`nps.baselines.DEFAULTS`).
        shape: (C,H,W) of the training images; H and W must be multiples of 4.
    """

    name = "gan"

    def __init__(self, hp: dict, shape: tuple[int, int, int]) -> None:
        self.shape, self.latent = tuple(shape), int(hp["latent"])
        w = int(hp["width"])
        self.generator = _generator(self.latent, w, self.shape)
        self.discriminator = _discriminator(w, self.shape)
        for m in (*self.generator.modules(), *self.discriminator.modules()):
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)  # DCGAN's initialisation
        lr = float(hp["lr"])
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))

    def nets(self) -> dict[str, nn.Module]:
        return {"generator": self.generator}

    def train_nets(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def step(self, x: torch.Tensor) -> dict[str, float]:
        """One D and one G step on x (B,C,H,W) float32 in [0,1]; ``loss`` is the generator's."""
        real = x * 2 - 1
        z = torch.randn(len(x), self.latent)
        fake = self.generator(z)
        d_real, d_fake = self.discriminator(real), self.discriminator(fake.detach())
        loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        g_out = self.discriminator(fake)
        loss_g = F.binary_cross_entropy_with_logits(g_out, torch.ones_like(g_out))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        return {"loss": loss_g.item(), "loss_d": loss_d.item()}

    @torch.no_grad()
    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """(n,C,H,W) float32 in [0,1] from z ~ N(0, I) drawn from ``gen``, generator in eval mode."""
        z = torch.randn(n, self.latent, generator=gen)
        self.generator.eval()
        try:
            return (self.generator(z) + 1) / 2
        finally:
            self.generator.train()


Model = GAN
