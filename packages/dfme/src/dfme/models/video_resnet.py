"""R3D-18, MC3-18 and R(2+1)D-18 (Tran et al., CVPR 2018), written from the paper's definitions.

Layout as torchvision's ``VideoResNet`` (stem without max-pool, layers 2–4 with stride 2), so the parameter counts
equal the published K400 builders at ``width_mult=1``; ``dfme`` never imports torchvision. R(2+1)D factorises each
3×3×3 convolution into a 1×3×3 spatial and a 3×1×1 temporal convolution with ``M`` intermediate channels chosen so
that the parameter count matches the 3D convolution (Tran et al., §3.5):

    M = ⌊ t d² N_{i−1} N_i / (d² N_{i−1} + t N_i) ⌋,   t = d = 3.

torchvision computes ``M`` once per BasicBlock from ``(inplanes, planes)`` and reuses it for the block's second
convolution (whose input is ``planes``); ``legacy_torchvision_midplanes=True`` reproduces that quirk.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

#: base channel counts of the four ResNet-18 stages
STAGE_CHANNELS = (64, 128, 256, 512)


def scaled(channels: int, width_mult: float) -> int:
    """Channel count scaled by ``width_mult`` (at least 1)."""
    return max(1, int(round(channels * width_mult)))


def midplanes(in_channels: int, out_channels: int, t: int = 3, d: int = 3) -> int:
    """Parameter-matched intermediate channels of a (2+1)D convolution (Tran et al. 2018, §3.5)."""
    return (t * d * d * in_channels * out_channels) // (d * d * in_channels + t * out_channels)


class Conv2Plus1D(nn.Sequential):
    """1×3×3 spatial conv (stride (1, s, s)) → BN → ReLU → 3×1×1 temporal conv (stride (s, 1, 1))."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv3d(in_channels, mid_channels, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
            nn.BatchNorm3d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid_channels, out_channels, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False),
        )


def conv3x3x3(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    return nn.Conv3d(in_channels, out_channels, 3, stride, 1, bias=False)


def conv1x3x3(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """MC3's 2D convolution inside a 3D network (no temporal extent, no temporal stride)."""
    return nn.Conv3d(in_channels, out_channels, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)


ConvMaker = Callable[[int, int, int, int], nn.Module]
"""``(in_channels, out_channels, stride, block_midplanes) -> conv`` (block_midplanes: torchvision's shared M)."""


class BasicBlock(nn.Module):
    """Two convolutions with BN, ReLU and an identity (or 1×1×1 projection) shortcut."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, conv: ConvMaker, temporal_stride: bool
    ) -> None:
        super().__init__()
        shared_mid = midplanes(in_channels, out_channels)
        self.conv1 = nn.Sequential(
            conv(in_channels, out_channels, stride, shared_mid), nn.BatchNorm3d(out_channels), nn.ReLU(True)
        )
        self.conv2 = nn.Sequential(
            conv(out_channels, out_channels, 1, shared_mid), nn.BatchNorm3d(out_channels)
        )
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            ds_stride = (stride, stride, stride) if temporal_stride else (1, stride, stride)
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, ds_stride, bias=False), nn.BatchNorm3d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


class VideoResNet(nn.Module):
    """ResNet-18 for clips (B, 3, T, H, W) → logits (B, num_classes).

    Args:
        stem: the stem module (returns ``stem_channels`` channels).
        convs: one :data:`ConvMaker` per stage.
        temporal_strides: per stage, whether the stride also applies in time (affects the shortcut).
        num_classes: outputs of the linear head (7 emotions, or the AU vocabulary size).
        width_mult: scales every channel count (1.0 = the published models).
        dropout: dropout before the linear head.
    """

    def __init__(
        self,
        stem: nn.Module,
        stem_channels: int,
        convs: tuple[ConvMaker, ConvMaker, ConvMaker, ConvMaker],
        temporal_strides: tuple[bool, bool, bool, bool],
        num_classes: int = 7,
        width_mult: float = 1.0,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.stem = stem
        layers = []
        in_channels = stem_channels
        for index, (base, conv, temporal) in enumerate(
            zip(STAGE_CHANNELS, convs, temporal_strides, strict=True)
        ):
            out_channels = scaled(base, width_mult)
            stride = 1 if index == 0 else 2
            layers.append(
                nn.Sequential(
                    BasicBlock(in_channels, out_channels, stride, conv, temporal),
                    BasicBlock(out_channels, out_channels, 1, conv, temporal),
                )
            )
            in_channels = out_channels
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes)
        self.num_features = in_channels
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.pool(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


def _r3d_stem(channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv3d(3, channels, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
        nn.BatchNorm3d(channels),
        nn.ReLU(inplace=True),
    )


def _plain(conv: Callable[[int, int, int], nn.Module]) -> ConvMaker:
    return lambda cin, cout, stride, _mid: conv(cin, cout, stride)


def r3d_18(num_classes: int = 7, width_mult: float = 1.0, dropout: float = 0.5) -> VideoResNet:
    """R3D-18: every convolution 3×3×3."""
    stem = scaled(64, width_mult)
    maker = _plain(conv3x3x3)
    return VideoResNet(_r3d_stem(stem), stem, (maker,) * 4, (True,) * 4, num_classes, width_mult, dropout)


def mc3_18(num_classes: int = 7, width_mult: float = 1.0, dropout: float = 0.5) -> VideoResNet:
    """MC3-18: 3D convolutions in layer1, 2D (1×3×3) convolutions in layers 2–4."""
    stem = scaled(64, width_mult)
    convs = (_plain(conv3x3x3), _plain(conv1x3x3), _plain(conv1x3x3), _plain(conv1x3x3))
    return VideoResNet(
        _r3d_stem(stem), stem, convs, (True, False, False, False), num_classes, width_mult, dropout
    )


def r2plus1d_18(
    num_classes: int = 7,
    width_mult: float = 1.0,
    dropout: float = 0.5,
    legacy_torchvision_midplanes: bool = False,
) -> VideoResNet:
    """R(2+1)D-18 with per-convolution parameter-matched ``M`` (default) or torchvision's shared ``M``."""
    stem_mid, stem = scaled(45, width_mult), scaled(64, width_mult)
    stem_module = nn.Sequential(
        nn.Conv3d(3, stem_mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
        nn.BatchNorm3d(stem_mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(stem_mid, stem, (3, 1, 1), (1, 1, 1), (1, 0, 0), bias=False),
        nn.BatchNorm3d(stem),
        nn.ReLU(inplace=True),
    )

    def maker(cin: int, cout: int, stride: int, shared_mid: int) -> nn.Module:
        mid = shared_mid if legacy_torchvision_midplanes else midplanes(cin, cout)
        return Conv2Plus1D(cin, cout, mid, stride)

    return VideoResNet(stem_module, stem, (maker,) * 4, (True,) * 4, num_classes, width_mult, dropout)
