"""MinkUNet-style sparse UNet (MinkowskiNet family, Choy et al. 2019; SPVNAS/torchsparse layout, spec §2.11).

Stem 2 × SubM 3³ (in → 32·cr); 4 encoder stages (stride-2 conv 2³ + 2 residual SubM blocks; 32, 64, 128, 256 ·cr);
4 decoder stages (inverse conv 2³ + skip concatenation + 2 residual blocks; 256, 128, 96, 96 ·cr); a linear
classifier to 20 logits. Input: points → voxels (mean of x, y, z, intensity); output: every point takes its
voxel's logits. ``voxelization="cylindrical"`` partitions (ρ, φ, z) instead of (x, y, z) (Cylinder3D-like grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lidar_robust.sparse import (
    SparseBatchNorm,
    SparseConv3d,
    SparseInverseConv3d,
    SparseReLU,
    SparseTensor,
    SubMConv3d,
    devoxelize,
    voxelize,
)

VOXELIZATIONS = ("cartesian", "cylindrical")


@dataclass(frozen=True)
class GridConfig:
    """Voxel grid: cartesian (x, y, z) or cylindrical (ρ, φ, z) bounds and cell sizes."""

    voxelization: str = "cartesian"
    voxel_size: float = 0.15
    xy_range: float = 50.0
    z_min: float = -4.0
    z_max: float = 2.0
    cylinder_shape: tuple[int, int, int] = (480, 360, 32)

    def __post_init__(self) -> None:
        if self.voxelization not in VOXELIZATIONS:
            raise ValueError(
                f"unknown voxelization {self.voxelization!r} (expected one of {', '.join(VOXELIZATIONS)})"
            )
        if self.voxel_size <= 0:
            raise ValueError(f"voxel_size must be > 0, got {self.voxel_size}")

    def layout(self) -> tuple[tuple[float, float, float], tuple[float, float, float], tuple[int, int, int]]:
        """(lower corner, cell size, shape), each shape entry rounded up to a multiple of 16 (4 stride-2 levels)."""
        if self.voxelization == "cartesian":
            lower = (-self.xy_range, -self.xy_range, self.z_min)
            extent = (2 * self.xy_range, 2 * self.xy_range, self.z_max - self.z_min)
            shape = tuple(math.ceil(e / self.voxel_size) for e in extent)
            size = (self.voxel_size,) * 3
        else:
            lower = (0.0, -math.pi, self.z_min)
            extent = (self.xy_range, 2 * math.pi, self.z_max - self.z_min)
            shape = self.cylinder_shape
            size = tuple(e / s for e, s in zip(extent, shape, strict=True))
        shape = tuple(-(-s // 16) * 16 for s in shape)
        return lower, size, shape  # type: ignore[return-value]

    def coordinates(self, xyz: torch.Tensor) -> torch.Tensor:
        if self.voxelization == "cartesian":
            return xyz
        rho = torch.linalg.vector_norm(xyz[:, :2], dim=1)
        phi = torch.atan2(xyz[:, 1], xyz[:, 0])
        return torch.stack([rho, phi, xyz[:, 2]], 1)


class ConvBNReLU(nn.Module):
    def __init__(self, conv: nn.Module, channels: int) -> None:
        super().__init__()
        self.conv, self.bn, self.relu = conv, SparseBatchNorm(channels), SparseReLU()

    def forward(self, x: SparseTensor) -> SparseTensor:
        return self.relu(self.bn(self.conv(x)))


class ResidualBlock(nn.Module):
    """SubM-BN-ReLU-SubM-BN + shortcut (a linear map when the width changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, key: str, backend: str) -> None:
        super().__init__()
        self.conv1 = SubMConv3d(c_in, c_out, 3, indice_key=key, backend=backend)
        self.bn1 = SparseBatchNorm(c_out)
        self.conv2 = SubMConv3d(c_out, c_out, 3, indice_key=key, backend=backend)
        self.bn2 = SparseBatchNorm(c_out)
        self.shortcut = nn.Identity() if c_in == c_out else nn.Linear(c_in, c_out, bias=False)
        self.shortcut_bn = nn.Identity() if c_in == c_out else nn.BatchNorm1d(c_out)

    def forward(self, x: SparseTensor) -> SparseTensor:
        y = self.bn2(self.conv2(SparseReLU()(self.bn1(self.conv1(x)))))
        return y.replace_feature(torch.relu(y.feats + self.shortcut_bn(self.shortcut(x.feats))))


class MinkUNet(nn.Module):
    """Sparse UNet on points: ``forward(points (M, 4), batch (M,), batch_size) -> logits (M, num_classes)``."""

    def __init__(self, in_channels: int = 4, num_classes: int = 20, cr: float = 0.5,
                 grid: GridConfig | None = None, backend: str = "torch") -> None:  # fmt: skip
        super().__init__()
        self.grid = grid or GridConfig()
        widths = [max(4, int(round(c * cr))) for c in (32, 32, 64, 128, 256, 256, 128, 96, 96)]
        self.stem = nn.Sequential(
            ConvBNReLU(SubMConv3d(in_channels, widths[0], 3, indice_key="l0", backend=backend), widths[0]),
            ConvBNReLU(SubMConv3d(widths[0], widths[0], 3, indice_key="l0", backend=backend), widths[0]),
        )
        self.down = nn.ModuleList()
        self.encoder = nn.ModuleList()
        for level in range(4):
            c_in, c_out = widths[level], widths[level + 1]
            self.down.append(
                ConvBNReLU(SparseConv3d(c_in, c_in, 2, 2, indice_key=f"s{level}", backend=backend), c_in)
            )
            key = f"l{level + 1}"
            self.encoder.append(nn.Sequential(ResidualBlock(c_in, c_out, key, backend),
                                              ResidualBlock(c_out, c_out, key, backend)))  # fmt: skip
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        previous = widths[4]
        for stage in range(4):
            level = 3 - stage  # the resolution we go back to
            c_out, skip = widths[5 + stage], widths[level]
            self.up.append(
                ConvBNReLU(SparseInverseConv3d(previous, c_out, 2, f"s{level}", backend=backend), c_out)
            )
            key = f"l{level}"
            self.decoder.append(nn.Sequential(ResidualBlock(c_out + skip, c_out, key, backend),
                                              ResidualBlock(c_out, c_out, key, backend)))  # fmt: skip
            previous = c_out
        self.classifier = nn.Linear(previous, num_classes)

    def voxelize(self, points: torch.Tensor, batch: torch.Tensor, batch_size: int):
        lower, size, shape = self.grid.layout()
        coords = self.grid.coordinates(points[:, :3])
        return voxelize(coords, points, batch, batch_size, lower, size, shape)

    def forward(self, points: torch.Tensor, batch: torch.Tensor, batch_size: int) -> torch.Tensor:
        vox = self.voxelize(points, batch, batch_size)
        x = self.stem(vox.tensor)
        skips = [x]
        for down, enc in zip(self.down, self.encoder, strict=True):
            x = enc(down(x))
            skips.append(x)
        for stage, (up, dec) in enumerate(zip(self.up, self.decoder, strict=True)):
            x = up(x)
            skip = skips[3 - stage]
            x = dec(x.replace_feature(torch.cat([x.feats, skip.feats], 1)))
        return devoxelize(self.classifier(x.feats), vox.point_to_voxel)
