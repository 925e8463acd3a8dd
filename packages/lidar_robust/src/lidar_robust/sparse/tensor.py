"""``SparseTensor`` and voxelisation with native ``torch.unique`` + ``scatter_reduce_`` (no torch_scatter)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class SparseTensor:
    """Active voxels: ``coords`` int32 (N, 4) = [batch, x, y, z] (non-negative, inside ``spatial_shape``),
    ``feats`` (N, C). ``indice_dict`` caches kernel maps by ``indice_key`` and is shared by derived tensors."""

    coords: torch.Tensor
    feats: torch.Tensor
    spatial_shape: tuple[int, int, int]
    batch_size: int
    indice_dict: dict[str, Any] = field(default_factory=dict)

    def replace_feature(self, feats: torch.Tensor) -> SparseTensor:
        return SparseTensor(self.coords, feats, self.spatial_shape, self.batch_size, self.indice_dict)

    @property
    def num_voxels(self) -> int:
        return int(self.coords.shape[0])

    def keys(self) -> torch.Tensor:
        """int64 linear keys ((b·X + x)·Y + y)·Z + z (sorted order = lexicographic order of coords)."""
        return linear_keys(self.coords, self.spatial_shape)

    def dense(self) -> torch.Tensor:
        """(B, C, X, Y, Z) dense copy (tests and small grids only)."""
        out = self.feats.new_zeros(self.batch_size, self.feats.shape[1], *self.spatial_shape)
        c = self.coords.long()
        out[c[:, 0], :, c[:, 1], c[:, 2], c[:, 3]] = self.feats
        return out


def linear_keys(coords: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    c = coords.long()
    return ((c[:, 0] * shape[0] + c[:, 1]) * shape[1] + c[:, 2]) * shape[2] + c[:, 3]


@dataclass
class Voxelization:
    """Result of :func:`voxelize`: the sparse tensor and, per point, the index of its voxel."""

    tensor: SparseTensor
    point_to_voxel: torch.Tensor


def voxelize(
    coords_float: torch.Tensor,
    feats: torch.Tensor,
    batch: torch.Tensor,
    batch_size: int,
    lower: tuple[float, float, float],
    voxel_size: tuple[float, float, float],
    spatial_shape: tuple[int, int, int],
    reduce: str = "mean",
) -> Voxelization:
    """Points (M, 3) in the voxel frame's units → voxels; coordinates outside the grid are clamped onto its border
    (so every point keeps a prediction). ``reduce`` = ``mean`` or ``first`` per voxel."""
    low = coords_float.new_tensor(lower)
    size = coords_float.new_tensor(voxel_size)
    grid = torch.floor((coords_float - low) / size).long()
    upper = torch.tensor(spatial_shape, device=grid.device) - 1
    grid = torch.minimum(grid.clamp_min(0), upper)
    full = torch.cat([batch.long()[:, None], grid], 1)
    keys = linear_keys(full, spatial_shape)
    unique_keys, inverse = torch.unique(keys, return_inverse=True)
    n = unique_keys.shape[0]
    z = unique_keys % spatial_shape[2]
    rest = unique_keys // spatial_shape[2]
    y = rest % spatial_shape[1]
    rest = rest // spatial_shape[1]
    x = rest % spatial_shape[0]
    b = rest // spatial_shape[0]
    coords = torch.stack([b, x, y, z], 1).int()
    index = inverse[:, None].expand_as(feats)
    if reduce == "mean":
        pooled = feats.new_zeros(n, feats.shape[1]).scatter_reduce_(
            0, index, feats, "mean", include_self=False
        )
    elif reduce == "first":
        position = torch.arange(len(inverse), device=inverse.device)
        first = torch.full((n,), len(inverse), device=inverse.device).scatter_reduce_(
            0, inverse, position, "amin"
        )
        pooled = feats[first]
    else:
        raise ValueError(f"unknown reduce {reduce!r} (expected mean or first)")
    return Voxelization(SparseTensor(coords, pooled, tuple(spatial_shape), batch_size), inverse)


def devoxelize(voxel_values: torch.Tensor, point_to_voxel: torch.Tensor) -> torch.Tensor:
    """Per-point values: each point takes its voxel's row."""
    return voxel_values[point_to_voxel]
