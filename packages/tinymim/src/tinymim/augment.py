"""Batched, device-side augmentations (one op per batch, so CPU runs are not dominated by Python overhead).

The distillation pipeline (spec §2.8): one shared RandomResizedCrop(scale 0.2–1) + horizontal flip for both
views; the student view additionally gets ColorJitter(0.4, 0.4, 0.4) (brightness, contrast, saturation; hue 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_resized_crop_boxes(
    batch: int,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Crop boxes ``(cx, cy, w, h)`` in normalised [0, 1] coordinates, one per image.

    Area fraction ~ U(scale), log aspect ratio ~ U(log ratio); boxes that do not fit are clamped to the image
    (torchvision retries 10 times and then falls back to a centre crop; clamping is the batched equivalent).
    """
    area = torch.empty(batch).uniform_(*scale, generator=generator)
    log_r = torch.empty(batch).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = log_r.exp()
    w = (area * aspect).sqrt().clamp(max=1.0)
    h = (area / aspect).sqrt().clamp(max=1.0)
    cx = w / 2 + torch.rand(batch, generator=generator) * (1 - w)
    cy = h / 2 + torch.rand(batch, generator=generator) * (1 - h)
    return torch.stack([cx, cy, w, h], dim=1)


def crop_and_flip(
    images: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor, size: int, mode: str = "bilinear"
) -> torch.Tensor:
    """Resample each image's box to ``size × size`` (bilinear/bicubic), mirrored where ``flips`` is True."""
    batch = images.shape[0]
    boxes = boxes.to(images.device, images.dtype)
    sign = 1.0 - 2.0 * flips.to(images.device, images.dtype)
    theta = torch.zeros(batch, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = boxes[:, 2] * sign
    theta[:, 0, 2] = boxes[:, 0] * 2 - 1
    theta[:, 1, 1] = boxes[:, 3]
    theta[:, 1, 2] = boxes[:, 1] * 2 - 1
    grid = F.affine_grid(theta, [batch, images.shape[1], size, size], align_corners=False)
    out = F.grid_sample(images, grid, mode=mode, padding_mode="border", align_corners=False)
    return out.clamp(0.0, 1.0)


def random_shift(
    images: torch.Tensor, pixels: int = 1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift every image by an integer offset in [−pixels, pixels]² with zero fill (digits protocol)."""
    batch, _, height, width = images.shape
    padded = F.pad(images, (pixels, pixels, pixels, pixels))
    offsets = torch.randint(0, 2 * pixels + 1, (batch, 2), generator=generator)
    rows = (offsets[:, 0, None] + torch.arange(height)[None]).to(images.device)
    cols = (offsets[:, 1, None] + torch.arange(width)[None]).to(images.device)
    idx_b = torch.arange(batch, device=images.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_b, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def _grey(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:
        return images
    weights = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype)
    return (images * weights[None, :, None, None]).sum(dim=1, keepdim=True)


def color_jitter(
    images: torch.Tensor,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-image ColorJitter in [0, 1] space: factors ~ U(1 − s, 1 + s), operations in a random order."""
    batch = images.shape[0]

    def factor(strength: float) -> torch.Tensor:
        f = torch.empty(batch).uniform_(max(0.0, 1 - strength), 1 + strength, generator=generator)
        return f.to(images.device, images.dtype)[:, None, None, None]

    ops = []
    if brightness > 0:
        ops.append(lambda x, f=factor(brightness): x * f)
    if contrast > 0:
        ops.append(lambda x, f=factor(contrast): f * x + (1 - f) * _grey(x).mean(dim=(2, 3), keepdim=True))
    if saturation > 0 and images.shape[1] == 3:
        ops.append(lambda x, f=factor(saturation): f * x + (1 - f) * _grey(x))
    for index in torch.randperm(len(ops), generator=generator).tolist():
        images = ops[index](images).clamp(0.0, 1.0)
    return images


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean, device=images.device, dtype=images.dtype)[None, :, None, None]
    s = torch.tensor(std, device=images.device, dtype=images.dtype)[None, :, None, None]
    return (images - m) / s


def random_erasing(
    images: torch.Tensor, prob: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Erase one random rectangle (area 2–33 %, aspect 0.3–3.3) per image with probability ``prob`` (uniform noise)."""
    batch, _, height, width = images.shape
    boxes = random_resized_crop_boxes(batch, (0.02, 1 / 3), (0.3, 1 / 0.3), generator)
    apply = torch.rand(batch, generator=generator) < prob
    ys = (torch.arange(height, dtype=images.dtype) + 0.5) / height
    xs = (torch.arange(width, dtype=images.dtype) + 0.5) / width
    inside_y = (ys[None] - boxes[:, 1:2]).abs() <= boxes[:, 3:4] / 2
    inside_x = (xs[None] - boxes[:, 0:1]).abs() <= boxes[:, 2:3] / 2
    region = (inside_y[:, :, None] & inside_x[:, None, :] & apply[:, None, None]).to(images.device)
    noise = torch.rand(images.shape, generator=generator).to(images.device, images.dtype)
    return torch.where(region[:, None], noise, images)
