"""SimCLR augmentations, per corpus, built from ``torchvision.transforms.v2``.

Two random views of each image are the positive pair.  The choice follows the
kind of image:

* digits and glyphs (grayscale): a mild random resized crop, a small affine
  transform (rotation, shift, shear) and sometimes a blur.  No flips: a flipped
  2 is not a 2.
* garments (Fashion-MNIST): the glyph recipe plus a horizontal flip (a mirrored
  shirt is still a shirt) and brightness/contrast jitter.  The jitter plays the
  part colour jitter plays in SimCLR: without it two views of one garment are
  matched by their grey level and print, not their shape.
* colour images: crop, horizontal flip, colour jitter and random grayscale
  (the SimCLR CIFAR recipe, without blur at 32x32).

A pipeline maps one (C,H,W) uint8 tensor to a (C,H,W) float32 tensor,
normalised to about [-1, 1].  :func:`two_views` applies it to every image of a
batch separately (v2 transforms draw one set of parameters per call), drawing
from torch's global generator, which the trainer seeds per epoch.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from nps.encoders.preprocess import MEAN, STD, normalise, to_chw  # noqa: F401 - re-exported


def is_colour(image_shape: tuple[int, ...]) -> bool:
    """(H,W) or (H,W,1) is grayscale; (H,W,3) is colour."""
    return len(image_shape) == 3 and image_shape[2] > 1


def glyph_augment(size: int, garment: bool = False) -> v2.Compose:
    """Digits and glyphs: mild crop, small affine, sometimes a blur; no flips.

    ``garment=True`` adds a horizontal flip and brightness/contrast jitter.
    """
    blur_kernel = 3 if size < 16 else 5
    extra = [v2.RandomHorizontalFlip(), v2.RandomApply([v2.ColorJitter(0.4, 0.4)], p=0.8)] if garment else []
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.5, 1.0), ratio=(0.8, 1.25), antialias=True),
        *extra,
        v2.RandomAffine(degrees=15, translate=(0.1, 0.1), shear=10),
        v2.RandomApply([v2.GaussianBlur(blur_kernel, sigma=(0.1, 1.0))], p=0.5),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([MEAN], [STD]),
    ])


def colour_augment(size: int, channels: int = 3) -> v2.Compose:
    """Colour images: crop, flip, colour jitter, grayscale (SimCLR's CIFAR recipe)."""
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        v2.RandomGrayscale(p=0.2),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([MEAN] * channels, [STD] * channels),
    ])


RECIPES = ("glyph", "garment", "colour")
GARMENTS = ("fashion-mnist",)  # grayscale corpora whose classes survive a mirror image


def default_recipe(image_shape: tuple[int, ...], corpus_name: str = "") -> str:
    """colour for (H,W,3) images, garment for Fashion-MNIST, glyph otherwise."""
    if is_colour(image_shape):
        return "colour"
    return "garment" if corpus_name in GARMENTS else "glyph"


def make_augment(image_shape: tuple[int, ...], corpus_name: str = "", recipe: str | None = None) -> v2.Compose:
    """The pipeline for a corpus with images of shape (H,W) or (H,W,C); ``recipe`` overrides the default."""
    size = int(image_shape[0])
    recipe = recipe or default_recipe(image_shape, corpus_name)
    if recipe == "colour":
        return colour_augment(size, int(image_shape[2]) if len(image_shape) == 3 else 1)
    if recipe in ("glyph", "garment"):
        return glyph_augment(size, garment=recipe == "garment")
    raise ValueError(f"unknown augmentation recipe {recipe!r}; choose one of {RECIPES}")


def two_views(batch: torch.Tensor, augment: v2.Compose, group: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent augmentations of each image.

    Args:
        batch: (B,C,H,W) uint8.
        group: images that share one draw of augmentation parameters.  1 is the
            textbook per-image SimCLR; a few (e.g. 8) cut the Python overhead of
            v2 transforms several-fold on CPU.  The two views of an image always
            come from independent draws, so positives still differ.
    Returns:
        two (B,C,H,W) float32 tensors.
    """
    group = max(1, int(group))

    def view() -> torch.Tensor:
        return torch.cat([augment(batch[i:i + group]) for i in range(0, len(batch), group)])

    # The ops are tiny; intra-op threads only add overhead (5x slower on a busy 2-core box).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return view(), view()
    finally:
        torch.set_num_threads(threads)
