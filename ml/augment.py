"""Data augmentation on whole batches of images, drawn from an explicit generator.

Every function takes an N x H x W (or N x C x H x W) tensor, any dtype, and returns a new
tensor of the same shape and dtype; the input is never modified. Each image gets its own
random draw, but the work is a handful of tensor operations per batch, not a Python loop
over images: on a CPU that is what keeps augmentation far cheaper than the network.
The same generator state gives the same output, so training stays deterministic.

Apply them to the uint8 images before normalisation: padding and erasing then fill with 0,
the black background of Fashion-MNIST.
"""

from __future__ import annotations

import math

import torch


def _uniform(n: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator)


def hflip(images: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability p."""
    flip = _uniform(len(images), generator) < p
    mask = flip.view(-1, *([1] * (images.dim() - 1)))
    return torch.where(mask, images.flip(-1), images)


def random_crop(
    images: torch.Tensor, padding: int = 2, fill: float = 0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pad each image by `padding` pixels with `fill`, then cut a window of the original size
    at a random offset: a shift of up to `padding` pixels in each direction."""
    if padding <= 0:
        return images.clone()
    n, h, w = len(images), images.shape[-2], images.shape[-1]
    padded = torch.full((*images.shape[:-2], h + 2 * padding, w + 2 * padding), fill, dtype=images.dtype)
    padded[..., padding : padding + h, padding : padding + w] = images
    dy = (_uniform(n, generator) * (2 * padding + 1)).long().clamp_(max=2 * padding)
    dx = (_uniform(n, generator) * (2 * padding + 1)).long().clamp_(max=2 * padding)
    rows = (dy[:, None] + torch.arange(h)).view(n, *([1] * (images.dim() - 3)), h, 1)
    cols = (dx[:, None] + torch.arange(w)).view(n, *([1] * (images.dim() - 3)), 1, w)
    batch = torch.arange(n).view(n, *([1] * (images.dim() - 1)))
    if images.dim() == 3:
        return padded[batch, rows, cols]
    channels = torch.arange(images.shape[1]).view(1, -1, 1, 1)
    return padded[batch, channels, rows, cols]


def random_erase(
    images: torch.Tensor,
    p: float = 0.5,
    scale: tuple[float, float] = (0.02, 0.25),
    ratio: tuple[float, float] = (0.3, 3.3),
    fill: float = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """With probability p per image, fill one rectangle with `fill` (random erasing, Zhong et al. 2017).

    The rectangle covers a uniform fraction in `scale` of the image, its aspect ratio h/w is
    log-uniform in `ratio`, its position uniform among those that keep it inside the image."""
    n, h, w = len(images), images.shape[-2], images.shape[-1]
    area = _uniform(n, generator) * (scale[1] - scale[0]) + scale[0]
    log_r = _uniform(n, generator) * (math.log(ratio[1]) - math.log(ratio[0])) + math.log(ratio[0])
    aspect = log_r.exp()
    eh = (area * h * w * aspect).sqrt().round().long().clamp_(1, h)
    ew = (area * h * w / aspect).sqrt().round().long().clamp_(1, w)
    y0 = (_uniform(n, generator) * (h - eh + 1)).long().clamp_(max=h - 1)
    x0 = (_uniform(n, generator) * (w - ew + 1)).long().clamp_(max=w - 1)
    erase = _uniform(n, generator) < p
    r = torch.arange(h).view(1, h, 1)
    c = torch.arange(w).view(1, 1, w)
    inside = (
        (r >= y0.view(n, 1, 1)) & (r < (y0 + eh).view(n, 1, 1))
        & (c >= x0.view(n, 1, 1)) & (c < (x0 + ew).view(n, 1, 1))
        & erase.view(n, 1, 1)
    )
    if images.dim() == 4:
        inside = inside.unsqueeze(1)
    return images.masked_fill(inside, fill)


def augment_batch(
    images: torch.Tensor,
    generator: torch.Generator,
    crop_padding: int = 0,
    flip_p: float = 0.0,
    erase_p: float = 0.0,
) -> torch.Tensor:
    """The training recipe's augmentation: crop (shift), then flip, then erase; each off at 0."""
    if crop_padding > 0:
        images = random_crop(images, crop_padding, generator=generator)
    if flip_p > 0:
        images = hflip(images, flip_p, generator=generator)
    if erase_p > 0:
        images = random_erase(images, erase_p, generator=generator)
    return images
