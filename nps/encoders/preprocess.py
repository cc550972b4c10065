"""Pixels to network input, shared by training and inference.

Kept apart from :mod:`nps.encoders.augment` so that embedding with shipped weights
never imports torchvision (about 2.5 s of a cold app start).
"""

from __future__ import annotations

import torch

MEAN, STD = 0.5, 0.5  # inputs are mapped to (x/255 - 0.5) / 0.5


def normalise(x: torch.Tensor) -> torch.Tensor:
    """uint8 (..,C,H,W) -> float32 in about [-1, 1], exactly as the augmentations do."""
    return (x.to(torch.float32) / 255.0 - MEAN) / STD


def to_chw(images: torch.Tensor) -> torch.Tensor:
    """(N,H,W) or (N,H,W,C) uint8 -> (N,C,H,W) uint8."""
    if images.ndim == 3:
        return images.unsqueeze(1)
    return images.permute(0, 3, 1, 2).contiguous()
