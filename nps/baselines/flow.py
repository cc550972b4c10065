"""Rectified flow (Liu et al. 2023; flow matching, Lipman et al. 2023) with a small U-Net.

Path x_t = (1 - t) x0 + t x1 from noise x0 ~ N(0, I) to an image x1 (scaled to [-1, 1]),
t ~ U(0, 1); the velocity net v(x_t, t) regresses x1 - x0 with mean squared error.
Sampling integrates dx/dt = v from t = 0 to 1 with ``sample_steps`` Euler steps.

The velocity net is a U-Net-lite: three resolutions (H, H/2, H/4) with w, 2w, 4w
channels, one conv block each way, skip connections by concatenation, GroupNorm and
SiLU, and the time as a sinusoidal embedding added per block as a channel bias.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def _groups(ch: int) -> int:
    return math.gcd(ch, 8)


class _Block(nn.Module):
    """conv3x3 -> GroupNorm -> + time bias -> SiLU."""

    def __init__(self, cin: int, cout: int, tdim: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1)
        self.norm = nn.GroupNorm(_groups(cout), cout)
        self.time = nn.Linear(tdim, cout)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return F.silu(self.norm(self.conv(x)) + self.time(temb)[:, :, None, None])


class VelocityNet(nn.Module):
    """v(x, t): x (B,C,H,W) float32, t (B,) float32 in [0,1] -> (B,C,H,W)."""

    def __init__(self, channels: int, w: int) -> None:
        super().__init__()
        self.tdim = 4 * w
        self.temb = nn.Sequential(nn.Linear(w, self.tdim), nn.SiLU(), nn.Linear(self.tdim, self.tdim))
        self.w = w
        self.inp = nn.Conv2d(channels, w, 3, 1, 1)
        self.d1 = _Block(w, w, self.tdim)
        self.d2 = _Block(w, 2 * w, self.tdim, stride=2)
        self.d2b = _Block(2 * w, 2 * w, self.tdim)
        self.d3 = _Block(2 * w, 4 * w, self.tdim, stride=2)
        self.mid = _Block(4 * w, 4 * w, self.tdim)
        self.u2 = _Block(4 * w + 2 * w, 2 * w, self.tdim)
        self.u1 = _Block(2 * w + w, w, self.tdim)
        self.out = nn.Conv2d(w, channels, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _time_features(self, t: torch.Tensor) -> torch.Tensor:
        half = self.w // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / max(half, 1))
        ang = 1000.0 * t[:, None] * freqs[None]
        feats = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)
        return F.pad(feats, (0, self.w - feats.shape[1]))  # odd widths

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = self.temb(self._time_features(t))
        h1 = self.d1(self.inp(x), e)
        h2 = self.d2b(self.d2(h1, e), e)
        h3 = self.mid(self.d3(h2, e), e)
        u2 = self.u2(torch.cat([F.interpolate(h3, size=h2.shape[-2:], mode="nearest"), h2], 1), e)
        u1 = self.u1(torch.cat([F.interpolate(u2, size=h1.shape[-2:], mode="nearest"), h1], 1), e)
        return self.out(u1)


class Flow:
    """The velocity net, its optimiser, one training step and the Euler sampler.

    Args:
        hp: ``width``, ``lr``, ``sample_steps`` (see :data:`nps.baselines.DEFAULTS`).
        shape: (C,H,W) of the training images; H and W must be multiples of 4.
    """

    name = "flow"

    def __init__(self, hp: dict, shape: tuple[int, int, int]) -> None:
        self.shape = tuple(shape)
        self.steps = int(hp["sample_steps"])
        self.net = VelocityNet(shape[0], int(hp["width"]))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=float(hp["lr"]))

    def nets(self) -> dict[str, nn.Module]:
        return {"velocity": self.net}

    def train_nets(self) -> dict[str, nn.Module]:
        return self.nets()

    def step(self, x: torch.Tensor) -> dict[str, float]:
        """One Adam step on x (B,C,H,W) float32 in [0,1]; ``loss`` is the velocity MSE."""
        x1 = x * 2 - 1
        x0 = torch.randn_like(x1)
        t = torch.rand(len(x1))
        xt = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * x1
        loss = F.mse_loss(self.net(xt, t), x1 - x0)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.item()}

    @torch.no_grad()
    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """(n,C,H,W) float32 in [0,1]: Euler integration of the velocity from noise drawn from ``gen``."""
        x = torch.randn(n, *self.shape, generator=gen)
        dt = 1.0 / self.steps
        for i in range(self.steps):
            x = x + dt * self.net(x, torch.full((n,), i * dt))
        return ((x + 1) / 2).clamp(0, 1)


Model = Flow
