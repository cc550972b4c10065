"""Backbones for the SimCLR encoder.

* :class:`SmallCNN` for grayscale digits and glyphs (28x28 MNIST-like, and the
  8x8 ``digits`` corpus used in tests): three conv stages and a global average
  pool, so any input size of at least 4x4 works.
* :class:`CifarResNet18` for 32x32 colour images: the CIFAR variant of
  ResNet-18 (3x3 stem, no max-pool), as in the SimCLR paper's CIFAR runs.

Both take (B,C,H,W) float32 and return (B,D) float32 features (before the
projection head). ``build_backbone(name, in_channels)`` makes one by name so
that a weights file can name its architecture in its metadata.
"""

from __future__ import annotations

import torch
from torch import nn

BACKBONES = ("small_cnn", "resnet18")


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """A small VGG-style CNN sized for a 2-core CPU: (B,C,H,W) -> (B,8*width).

    conv(w) - pool - conv(2w) - pool - conv(4w) - conv(8w) - global pool,
    each conv 3x3 with batch norm and ReLU.  The wide layers run at 7x7 so the
    28x28 full-resolution work stays small.  Pooling is skipped once the map is
    smaller than 4x4, so the 8x8 ``digits`` corpus works too.

    Args:
        readout: "avg" or "max" global pooling of the last map.  Max pooling keeps
            more of where strokes are (the last layer's receptive field spans the
            whole 28x28 image), which kNN on centred glyphs rewards.
    """

    def __init__(self, in_channels: int = 1, width: int = 16, readout: str = "avg") -> None:
        super().__init__()
        if readout not in ("avg", "max"):
            raise ValueError(f"unknown readout {readout!r}; use avg or max")
        self.readout = readout
        w = width
        self.conv1 = _conv_bn(in_channels, w)
        self.conv2 = _conv_bn(w, 2 * w)
        self.conv3 = _conv_bn(2 * w, 4 * w)
        self.conv4 = _conv_bn(4 * w, 8 * w)
        self.out_dim = 8 * w

    @staticmethod
    def _pool(x: torch.Tensor) -> torch.Tensor:
        return nn.functional.max_pool2d(x, 2) if min(x.shape[-2:]) >= 4 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._pool(self.conv1(x))
        x = self._pool(self.conv2(x))
        x = self.conv4(self.conv3(x))
        pool = nn.functional.adaptive_max_pool2d if self.readout == "max" else nn.functional.adaptive_avg_pool2d
        return torch.flatten(pool(x, 1), 1)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs and a shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return nn.functional.relu(out + self.shortcut(x))


class CifarResNet18(nn.Module):
    """CIFAR-style ResNet-18: (B,C,32,32) -> (B,512). 3x3 stem, no max-pool."""

    def __init__(self, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        layers, cin = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


def build_backbone(name: str, in_channels: int, width: int | None = None, readout: str | None = None) -> nn.Module:
    """A backbone by name ("small_cnn" or "resnet18"); ``out_dim`` gives its feature size.

    ``readout`` ("avg" or "max") is the small CNN's global pooling; the ResNet always averages.
    """
    if name == "small_cnn":
        return SmallCNN(in_channels, width or 16, readout or "avg")
    if name == "resnet18":
        return CifarResNet18(in_channels, width or 64)
    raise ValueError(f"unknown backbone {name!r}; choose one of {BACKBONES}")


def default_backbone(image_shape: tuple[int, ...]) -> str:
    """small_cnn for grayscale images, resnet18 for colour ones."""
    return "resnet18" if len(image_shape) == 3 and image_shape[2] > 1 else "small_cnn"
