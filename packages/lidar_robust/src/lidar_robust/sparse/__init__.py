"""Sparse 3-D convolution (spec §2.10): a pure-PyTorch backend (default, the reference; CPU and CUDA) and an
optional spconv backend behind the same modules."""

from lidar_robust.sparse.modules import (
    BACKENDS,
    SparseBatchNorm,
    SparseConv3d,
    SparseInverseConv3d,
    SparseReLU,
    SubMConv3d,
)
from lidar_robust.sparse.tensor import SparseTensor, devoxelize, voxelize

__all__ = [
    "BACKENDS",
    "SparseBatchNorm",
    "SparseConv3d",
    "SparseInverseConv3d",
    "SparseReLU",
    "SparseTensor",
    "SubMConv3d",
    "devoxelize",
    "voxelize",
]
