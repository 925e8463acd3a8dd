"""SalsaNext-style range-image CNN (Cortinhal et al. 2020; layout details unverified, spec §2.11).

Spherical projection H × W with fov_up 3°, fov_down −25°; the nearest point wins a pixel; input channels
(range, x, y, z, remission) standardised with fixed constants; encoder of residual context blocks and dilated
residual blocks with average-pool downsampling; decoder with pixel-shuffle upsampling and skips; dropout 0.2.
Every point takes the logits of its pixel (no KNN post-processing in this package).
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: (range, x, y, z, remission) standardisation constants (typical KITTI-like statistics)
MEANS = (12.0, 0.0, 0.0, -1.0, 0.3)
STDS = (12.0, 12.0, 9.0, 1.5, 0.15)


def project(points: torch.Tensor, batch: torch.Tensor, batch_size: int, height: int, width: int,
            fov_up: float = 3.0, fov_down: float = -25.0) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(B, 5, H, W) image and the flat pixel index of every point (nearest point wins each pixel)."""
    depth = torch.linalg.vector_norm(points[:, :3], dim=1).clamp_min(1e-6)
    yaw = torch.atan2(points[:, 1], points[:, 0])
    pitch = torch.asin((points[:, 2] / depth).clamp(-1, 1))
    down, fov = math.radians(fov_down), math.radians(fov_up - fov_down)
    u = (0.5 * (1.0 - yaw / math.pi) * width).floor().long().clamp(0, width - 1)
    v = ((1.0 - (pitch - down) / fov) * height).floor().long().clamp(0, height - 1)
    pixel = (batch.long() * height + v) * width + u
    total = batch_size * height * width
    nearest = depth.new_full((total,), float("inf")).scatter_reduce(0, pixel, depth, "amin")
    winner = depth <= nearest[pixel]
    index = torch.arange(len(depth), device=depth.device)
    owner = torch.full((total,), -1, device=depth.device, dtype=torch.long)
    owner = owner.scatter_reduce(0, pixel[winner], index[winner], "amax")
    feats = torch.cat([depth[:, None], points[:, :4]], 1)
    feats = (feats - feats.new_tensor(MEANS)) / feats.new_tensor(STDS)
    image = feats.new_zeros(total, 5)
    filled = owner >= 0
    image[filled] = feats[owner[filled]]
    return image.reshape(batch_size, height, width, 5).permute(0, 3, 1, 2), pixel


class ResContextBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.LeakyReLU())
        self.body = nn.Sequential(
            nn.Conv2d(c_out, c_out, 3, padding=1), nn.LeakyReLU(), nn.BatchNorm2d(c_out),
            nn.Conv2d(c_out, c_out, 3, padding=2, dilation=2), nn.LeakyReLU(), nn.BatchNorm2d(c_out),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.shortcut(x)
        return s + self.body(s)


class ResBlock(nn.Module):
    """Dilated residual block; ``pool`` = average-pool downsampling after dropout."""

    def __init__(self, c_in: int, c_out: int, pool: bool = True, dropout: float = 0.2) -> None:
        super().__init__()
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.LeakyReLU())
        self.b1 = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(), nn.BatchNorm2d(c_out))
        self.b2 = nn.Sequential(
            nn.Conv2d(c_out, c_out, 3, padding=2, dilation=2), nn.LeakyReLU(), nn.BatchNorm2d(c_out)
        )
        self.b3 = nn.Sequential(
            nn.Conv2d(c_out, c_out, 2, padding=1, dilation=2), nn.LeakyReLU(), nn.BatchNorm2d(c_out)
        )
        self.merge = nn.Sequential(nn.Conv2d(3 * c_out, c_out, 1), nn.LeakyReLU(), nn.BatchNorm2d(c_out))
        self.dropout = nn.Dropout2d(dropout)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1) if pool else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.b1(x)
        b = self.b2(a)
        c = self.b3(b)
        skip = self.shortcut(x) + self.merge(torch.cat([a, b, c], 1))
        out = self.dropout(skip)
        return (self.pool(out) if self.pool is not None else out), skip


class UpBlock(nn.Module):
    """Pixel-shuffle ×2, concatenation with the skip, 3 convolutions merged (SalsaNext decoder)."""

    def __init__(self, c_in: int, c_skip: int, c_out: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.shuffle = nn.PixelShuffle(2)
        c_cat = c_in // 4 + c_skip
        self.c1 = nn.Sequential(nn.Conv2d(c_cat, c_out, 3, padding=1), nn.LeakyReLU(), nn.BatchNorm2d(c_out))
        self.c2 = nn.Sequential(
            nn.Conv2d(c_out, c_out, 3, padding=2, dilation=2), nn.LeakyReLU(), nn.BatchNorm2d(c_out)
        )
        self.merge = nn.Sequential(nn.Conv2d(2 * c_out, c_out, 1), nn.LeakyReLU(), nn.BatchNorm2d(c_out))
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.shuffle(x)
        x = x[..., : skip.shape[-2], : skip.shape[-1]]
        x = torch.cat([x, skip], 1)
        a = self.c1(x)
        return self.dropout(self.merge(torch.cat([a, self.c2(a)], 1)))


class SalsaNext(nn.Module):
    """``forward(points, batch, batch_size) -> per-point logits``; ``cr`` scales the widths (32, 64, 128, 256)."""

    def __init__(self, height: int = 64, width: int = 512, num_classes: int = 20, cr: float = 0.5) -> None:
        super().__init__()
        self.height, self.width = height, width
        w = [max(4, int(round(c * cr))) for c in (32, 64, 128, 256)]
        self.context = nn.Sequential(
            ResContextBlock(5, w[0]), ResContextBlock(w[0], w[0]), ResContextBlock(w[0], w[0])
        )
        self.enc = nn.ModuleList([ResBlock(w[0], w[1]), ResBlock(w[1], w[2]), ResBlock(w[2], w[3]),
                                  ResBlock(w[3], w[3]), ResBlock(w[3], w[3], pool=False)])  # fmt: skip
        self.dec = nn.ModuleList([UpBlock(w[3], w[3], w[2]), UpBlock(w[2], w[3], w[2]), UpBlock(w[2], w[2], w[1]),
                                  UpBlock(w[1], w[1], w[0])])  # fmt: skip
        self.head = nn.Conv2d(w[0], num_classes, 1)

    def forward(self, points: torch.Tensor, batch: torch.Tensor, batch_size: int) -> torch.Tensor:
        image, pixel = project(points, batch, batch_size, self.height, self.width)
        x = self.context(image)
        skips = []
        for block in self.enc[:-1]:
            x, skip = block(x)
            skips.append(skip)
        x, _ = self.enc[-1](x)
        for block, skip in zip(self.dec, reversed(skips), strict=True):
            x = block(x, skip)
        logits = self.head(x)  # (B, C, H, W)
        return logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])[pixel]
