"""Sparse-convolution modules with a backend switch: ``torch`` (default, reference) or ``spconv`` (optional).

Weights are stored as (k³, C_in, C_out) in both cases; the spconv adapter permutes them to spconv's
(C_out, k, k, k, C_in) layout on the fly, so a checkpoint works with either backend.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lidar_robust.sparse import torch_backend
from lidar_robust.sparse.tensor import SparseTensor

BACKENDS = ("torch", "spconv")


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown sparse backend {backend!r} (expected one of {', '.join(BACKENDS)})")
    if backend == "spconv":
        from lidar_robust.sparse import spconv_backend

        spconv_backend.require()
    return backend


class _SparseConvBase(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, bias: bool, backend: str
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.backend = _check_backend(backend)
        self.weight = nn.Parameter(torch.empty(kernel_size**3, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        bound = 1.0 / math.sqrt(in_channels * kernel_size**3)
        nn.init.uniform_(self.weight, -bound, bound)

    def _bias(self, x: SparseTensor) -> SparseTensor:
        return x if self.bias is None else x.replace_feature(x.feats + self.bias)


class SubMConv3d(_SparseConvBase):
    """Submanifold convolution (outputs at the input sites)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1,
                 bias: bool = False, indice_key: str | None = None, backend: str = "torch") -> None:  # fmt: skip
        super().__init__(in_channels, out_channels, kernel_size, bias, backend)
        self.dilation, self.indice_key = dilation, indice_key

    def forward(self, x: SparseTensor) -> SparseTensor:
        if self.backend == "spconv":
            from lidar_robust.sparse import spconv_backend

            return self._bias(spconv_backend.subm_conv(x, self.weight, self.indice_key, self.dilation))
        return self._bias(torch_backend.subm_conv(x, self.weight, self.indice_key, self.dilation))


class SparseConv3d(_SparseConvBase):
    """Regular strided sparse convolution (default k = 2, stride 2: 8 grouped GEMMs, no neighbour search)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, stride: int = 2, padding: int = 0,
                 bias: bool = False, indice_key: str | None = None, backend: str = "torch") -> None:  # fmt: skip
        super().__init__(in_channels, out_channels, kernel_size, bias, backend)
        self.stride, self.padding, self.indice_key = stride, padding, indice_key

    def forward(self, x: SparseTensor) -> SparseTensor:
        if self.backend == "spconv":
            from lidar_robust.sparse import spconv_backend

            out = spconv_backend.sparse_conv(x, self.weight, self.stride, self.padding, self.indice_key)
            return self._bias(out)
        return self._bias(
            torch_backend.sparse_conv(x, self.weight, self.stride, self.padding, self.indice_key)
        )


class SparseInverseConv3d(_SparseConvBase):
    """Inverse of the :class:`SparseConv3d` with the same ``indice_key``: back to that convolution's input sites."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, indice_key: str = "",
                 bias: bool = False, backend: str = "torch") -> None:  # fmt: skip
        super().__init__(in_channels, out_channels, kernel_size, bias, backend)
        if not indice_key:
            raise ValueError("SparseInverseConv3d needs the indice_key of its strided convolution")
        self.indice_key = indice_key

    def forward(self, x: SparseTensor) -> SparseTensor:
        if self.backend == "spconv":
            from lidar_robust.sparse import spconv_backend

            return self._bias(spconv_backend.inverse_conv(x, self.weight, self.indice_key))
        return self._bias(torch_backend.inverse_conv(x, self.weight, self.indice_key))


class SparseBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the active voxels' features."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.replace_feature(super().forward(x.feats))


class SparseReLU(nn.ReLU):
    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.replace_feature(torch.relu(x.feats))
