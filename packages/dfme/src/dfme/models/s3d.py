"""S3D-lite: a separable 3D Inception network (S3D layout of Xie et al., ECCV 2018) without feature gating.

Every k×k×k convolution is a 1×k×k spatial convolution followed by a k×1×1 temporal one (each with BN + ReLU).
The "lite" variant multiplies S3D's Inception widths by ``lite`` (0.25) and then by ``width_mult``; it is a light
stand-in for the I3D/S3D family of the DFME baselines, not parameter-matched to any published model.
"""

from __future__ import annotations

import torch
from torch import nn

from dfme.models.video_resnet import scaled

#: (b0, b1 reduce, b1, b2 reduce, b2, b3) of S3D's Mixed blocks 3b … 5c
INCEPTION_WIDTHS = {
    "3b": (64, 96, 128, 16, 32, 32),
    "3c": (128, 128, 192, 32, 96, 64),
    "4b": (192, 96, 208, 16, 48, 64),
    "4c": (160, 112, 224, 24, 64, 64),
    "4d": (128, 128, 256, 24, 64, 64),
    "4e": (112, 144, 288, 32, 64, 64),
    "4f": (256, 160, 320, 32, 128, 128),
    "5b": (256, 160, 320, 32, 128, 128),
    "5c": (384, 192, 384, 48, 128, 128),
}


class BasicConv3d(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: tuple, stride: tuple, padding: tuple) -> None:
        super().__init__(
            nn.Conv3d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm3d(cout), nn.ReLU(True)
        )


class SepConv3d(nn.Sequential):
    """1×k×k spatial conv (stride (1, s, s)) then k×1×1 temporal conv (stride (s, 1, 1))."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1) -> None:
        pad = k // 2
        super().__init__(
            BasicConv3d(cin, cout, (1, k, k), (1, stride, stride), (0, pad, pad)),
            BasicConv3d(cout, cout, (k, 1, 1), (stride, 1, 1), (pad, 0, 0)),
        )


class InceptionBlock(nn.Module):
    """Four branches: 1×1×1; 1×1×1 → sep 3; 1×1×1 → sep 3; 3×3×3 max-pool → 1×1×1; concatenated."""

    def __init__(self, cin: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        b0, b1r, b1, b2r, b2, b3 = widths
        self.branch0 = BasicConv3d(cin, b0, (1, 1, 1), (1, 1, 1), (0, 0, 0))
        self.branch1 = nn.Sequential(
            BasicConv3d(cin, b1r, (1, 1, 1), (1, 1, 1), (0, 0, 0)), SepConv3d(b1r, b1, 3)
        )
        self.branch2 = nn.Sequential(
            BasicConv3d(cin, b2r, (1, 1, 1), (1, 1, 1), (0, 0, 0)), SepConv3d(b2r, b2, 3)
        )
        self.branch3 = nn.Sequential(
            nn.MaxPool3d(3, 1, 1), BasicConv3d(cin, b3, (1, 1, 1), (1, 1, 1), (0, 0, 0))
        )
        self.out_channels = b0 + b1 + b2 + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


class S3DLite(nn.Module):
    """(B, 3, T, H, W) → (B, num_classes)."""

    def __init__(
        self, num_classes: int = 7, width_mult: float = 1.0, dropout: float = 0.5, lite: float = 0.25
    ) -> None:
        super().__init__()
        w = lite * width_mult

        def c(n: int) -> int:
            return scaled(n, w)

        layers: list[nn.Module] = [
            SepConv3d(3, c(64), 7, stride=2),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            BasicConv3d(c(64), c(64), (1, 1, 1), (1, 1, 1), (0, 0, 0)),
            SepConv3d(c(64), c(192), 3),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        ]
        channels = c(192)
        for name, widths in INCEPTION_WIDTHS.items():
            if name == "4b":
                layers.append(nn.MaxPool3d(3, 2, 1))
            if name == "5b":
                layers.append(nn.MaxPool3d(2, 2, ceil_mode=True))
            block = InceptionBlock(channels, tuple(c(v) for v in widths))
            layers.append(block)
            channels = block.out_channels
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        self.num_features = channels

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))
