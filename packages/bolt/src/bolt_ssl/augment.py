"""Batched image augmentations as tensor ops on images in [0, 1] (they run wherever the batch lives).

* ``shared`` (BOLT default, ours): horizontal flip + a ±1-px shift, one draw per image for both views;
* ``independent`` (ours, the prototype's v2): flips + random affine (±15°, scale 0.85–1.15, ±10 % shift);
* :func:`byol_views` (pixel BYOL, spec §2.7): random resized crop (scale 0.5–1), h/v flips, rotation ±15°,
  colour jitter (0.4, 0.4, 0.2, 0.05) with p = 0.8, Gaussian blur (kernel 3) with p = 0.2;
* :func:`finetune_aug` (spec §2.8): flips + random affine (±15°, scale 0.9–1.1, ±10 % shift).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IMAGE_AUGS = ("none", "shared", "independent")


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def _flip_sign(n: int, p: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.where(torch.rand(n, generator=g, device=device) < p, -1.0, 1.0)


def affine(
    x: torch.Tensor, angle: torch.Tensor, scale_x: torch.Tensor, scale_y: torch.Tensor, shift: torch.Tensor,
    mode: str = "bilinear",
) -> torch.Tensor:  # fmt: skip
    """Sample ``x`` (B, C, H, W) through per-image affine maps: output pixel u reads input A·u + shift
    (normalised coordinates; a scale < 1 zooms in). Out-of-image samples read the border."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos * scale_x, -sin * scale_y, shift[:, 0]], 1),
         torch.stack([sin * scale_x, cos * scale_y, shift[:, 1]], 1)], 1,
    )  # fmt: skip
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)


def shared_aug(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Horizontal flip (p = 0.5) and an integer shift of −1, 0 or +1 px per axis."""
    b, dev = x.shape[0], x.device
    pixels = torch.randint(-1, 2, (b, 2), generator=g, device=dev).to(x.dtype)
    shift = pixels * 2.0 / torch.tensor([x.shape[-1], x.shape[-2]], device=dev, dtype=x.dtype)
    flip = _flip_sign(b, 0.5, g, dev)
    zero = torch.zeros(b, device=dev)
    return affine(x, zero, flip, torch.ones(b, device=dev), shift, mode="nearest")


def random_affine(
    x: torch.Tensor, g: torch.Generator, degrees: float, scale: tuple[float, float], translate: float,
    flips: bool = True,
) -> torch.Tensor:  # fmt: skip
    """Rotation ±degrees, isotropic zoom, shift ±translate (fraction of size), and h/v flips when ``flips``."""
    b, dev = x.shape[0], x.device
    angle = _uniform(b, -degrees, degrees, g, dev) * math.pi / 180
    zoom = 1.0 / _uniform(b, scale[0], scale[1], g, dev)  # output scale s shows 1/s of the field
    shift = (torch.rand(b, 2, generator=g, device=dev) * 2 - 1) * translate * 2
    hsign = _flip_sign(b, 0.5, g, dev) if flips else torch.ones(b, device=dev)
    vsign = _flip_sign(b, 0.5, g, dev) if flips else torch.ones(b, device=dev)
    return affine(x, angle, zoom * hsign, zoom * vsign, shift)


def independent_aug(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return random_affine(x, g, degrees=15.0, scale=(0.85, 1.15), translate=0.10)


def finetune_aug(x: torch.Tensor, g: torch.Generator, flips: bool = True) -> torch.Tensor:
    """Fine-tuning augmentation (spec §2.8); ``flips=False`` for data whose labels are not flip-invariant
    (digits)."""
    return random_affine(x, g, degrees=15.0, scale=(0.9, 1.1), translate=0.10, flips=flips)


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def colour_jitter(
    x: torch.Tensor, g: torch.Generator, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.2,
    hue: float = 0.05, p: float = 0.8,
) -> torch.Tensor:  # fmt: skip
    """Brightness, contrast, saturation and hue (a YIQ chroma rotation) factors per image, applied with
    probability ``p``; grey images get brightness and contrast only."""
    b, dev = x.shape[0], x.device
    apply = (torch.rand(b, generator=g, device=dev) < p).view(-1, 1, 1, 1)
    bf = _uniform(b, 1 - brightness, 1 + brightness, g, dev).view(-1, 1, 1, 1)
    cf = _uniform(b, 1 - contrast, 1 + contrast, g, dev).view(-1, 1, 1, 1)
    sf = _uniform(b, 1 - saturation, 1 + saturation, g, dev).view(-1, 1, 1, 1)
    hf = _uniform(b, -hue, hue, g, dev) * 2 * math.pi
    y = (x * bf).clamp(0, 1)
    mean = _grey(y).mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - mean) * cf + mean).clamp(0, 1)
    if x.shape[1] == 3:
        grey = _grey(y)
        y = ((y - grey) * sf + grey).clamp(0, 1)
        to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                              device=dev, dtype=x.dtype)  # fmt: skip
        from_yiq = torch.linalg.inv(to_yiq)
        cos, sin = torch.cos(hf), torch.sin(hf)
        rot = torch.zeros(b, 3, 3, device=dev, dtype=x.dtype)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
        mat = from_yiq @ rot @ to_yiq  # (B, 3, 3)
        y = torch.einsum("bij,bjhw->bihw", mat, y).clamp(0, 1)
    return torch.where(apply, y, x)


def gaussian_blur(
    x: torch.Tensor, g: torch.Generator, p: float = 0.2, sigma: tuple[float, float] = (0.1, 2.0)
) -> torch.Tensor:
    """3×3 Gaussian blur with σ ~ U(0.1, 2) per image, applied with probability ``p`` (separable, depthwise)."""
    b, c, dev = x.shape[0], x.shape[1], x.device
    s = _uniform(b, sigma[0], sigma[1], g, dev)
    taps = torch.exp(-(torch.tensor([-1.0, 0.0, 1.0], device=dev)[None] ** 2) / (2 * s[:, None] ** 2))
    taps = (taps / taps.sum(dim=1, keepdim=True)).to(x.dtype)  # (B, 3)
    k2 = taps[:, :, None] * taps[:, None, :]  # (B, 3, 3)
    weight = k2.repeat_interleave(c, dim=0)[:, None]  # (B·C, 1, 3, 3)
    blurred = F.conv2d(F.pad(x.reshape(1, b * c, *x.shape[2:]), (1, 1, 1, 1), mode="replicate"), weight,
                       groups=b * c).reshape_as(x)  # fmt: skip
    apply = (torch.rand(b, generator=g, device=dev) < p).view(-1, 1, 1, 1)
    return torch.where(apply, blurred, x)


def random_resized_crop(
    x: torch.Tensor, g: torch.Generator, scale: tuple[float, float] = (0.5, 1.0), degrees: float = 15.0
) -> torch.Tensor:
    """Area fraction U(scale), aspect ratio log-U(3/4, 4/3), a random position inside the image, h/v flips and a
    rotation ±degrees — one affine resample."""
    b, dev = x.shape[0], x.device
    area = _uniform(b, scale[0], scale[1], g, dev)
    log_ratio = _uniform(b, math.log(3 / 4), math.log(4 / 3), g, dev)
    ratio = torch.exp(log_ratio)
    sx = torch.sqrt(area * ratio).clamp(max=1.0)
    sy = torch.sqrt(area / ratio).clamp(max=1.0)
    shift = torch.stack([(1 - sx), (1 - sy)], 1) * (torch.rand(b, 2, generator=g, device=dev) * 2 - 1)
    angle = _uniform(b, -degrees, degrees, g, dev) * math.pi / 180
    return affine(x, angle, sx * _flip_sign(b, 0.5, g, dev), sy * _flip_sign(b, 0.5, g, dev), shift)


def byol_view(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One pixel-BYOL view of images in [0, 1]."""
    return gaussian_blur(colour_jitter(random_resized_crop(x, g), g), g)


def image_views(x: torch.Tensor, mode: str, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The images BOLT embeds: (x', None) for ``none``/``shared`` (one image, both views), or two
    independently augmented images for ``independent``."""
    if mode == "none":
        return x, None
    if mode == "shared":
        return shared_aug(x, g), None
    if mode == "independent":
        return independent_aug(x, g), independent_aug(x, g)
    raise ValueError(f"image_aug {mode!r}: expected one of {', '.join(IMAGE_AUGS)}")
