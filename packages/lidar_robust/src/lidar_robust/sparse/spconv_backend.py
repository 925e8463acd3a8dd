"""Optional spconv backend (extras ``lidar-robust[spconv-cu120]``/``[spconv-cu126]`` on CUDA, or the CPU wheel).

Two CPU pitfalls of spconv 2.3.x are handled here (spec §2.10, ENVIRONMENT.md):

* backward calls ``torch.cuda.current_stream()`` unconditionally and crashes without CUDA:
  :func:`enable_spconv_cpu_workarounds` replaces spconv's ``get_current_stream`` by one that returns 0 then;
* with more than one CPU thread spconv's CPU gather–GEMM–scatter silently returns wrong results: every CPU call
  runs inside :func:`one_thread`, which pins torch to one thread and restores the previous count afterwards.

Weights stay in this package's (k³, C_in, C_out) layout and are permuted to spconv's (C_out, k, k, k, C_in).
The spconv kernel maps live in ``SparseTensor.indice_dict["spconv"]``, shared along the network. spconv also reads
raw pointers without looking at strides, so coordinates and features are made contiguous before every call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from lidar_robust.sparse.tensor import SparseTensor

_PATCHED = False
_MODULES: dict[tuple, Any] = {}


def available() -> bool:
    try:
        import spconv.pytorch  # noqa: F401
    except Exception:  # ImportError, or a CUDA build without its libraries
        return False
    return True


def require() -> None:
    if not available():
        from paperlab_core.errors import ConfigError

        raise ConfigError(
            "sparse backend 'spconv' needs spconv (pip install 'lidar-robust[spconv-cu126]' on CUDA 12.6, "
            "[spconv-cu120] on CUDA 12.0, or the CPU wheel `spconv`)"
        )


def enable_spconv_cpu_workarounds() -> None:
    """Make spconv's backward work without CUDA (its stream query returns 0 when CUDA is unavailable)."""
    global _PATCHED
    if _PATCHED:
        return
    import spconv.pytorch.cppcore as cppcore
    import spconv.pytorch.ops as ops

    original = getattr(cppcore, "get_current_stream", None)

    def get_current_stream() -> int:
        if not torch.cuda.is_available():
            return 0
        return original() if original is not None else torch.cuda.current_stream().cuda_stream

    for module in (ops, cppcore):
        if hasattr(module, "get_current_stream"):
            module.get_current_stream = get_current_stream
    _PATCHED = True


@contextlib.contextmanager
def one_thread(device: torch.device) -> Iterator[None]:
    """Pin torch to one CPU thread around a spconv CPU call (more threads give wrong results)."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _to_spconv(x: SparseTensor) -> Any:
    import spconv.pytorch as spconv

    # spconv reads raw pointers and ignores strides: non-contiguous inputs (e.g. ``nonzero().int()``) give silently
    # wrong results, so both tensors are made contiguous here
    tensor = spconv.SparseConvTensor(
        x.feats.contiguous(), x.coords.int().contiguous(), list(x.spatial_shape), x.batch_size
    )
    tensor.indice_dict = x.indice_dict.setdefault("spconv", {})
    return tensor


def _from_spconv(t: Any, x: SparseTensor) -> SparseTensor:
    x.indice_dict["spconv"] = (
        t.indice_dict
    )  # spconv copies the dict and adds this layer's kernel map to the copy
    return SparseTensor(
        t.indices, t.features, tuple(int(s) for s in t.spatial_shape), x.batch_size, x.indice_dict
    )


def _module(kind: str, weight: torch.Tensor, **kwargs: Any) -> Any:
    import spconv.pytorch as spconv

    k3, c_in, c_out = weight.shape
    kernel = round(k3 ** (1 / 3))
    key = (kind, c_in, c_out, kernel, tuple(sorted(kwargs.items())), weight.device)
    if key not in _MODULES:
        cls = {"subm": spconv.SubMConv3d, "conv": spconv.SparseConv3d, "inverse": spconv.SparseInverseConv3d}[
            kind
        ]
        _MODULES[key] = cls(c_in, c_out, kernel, bias=False, **kwargs).to(weight.device)
    return _MODULES[key]


def _run(kind: str, x: SparseTensor, weight: torch.Tensor, **kwargs: Any) -> SparseTensor:
    if x.feats.device.type == "cpu":
        enable_spconv_cpu_workarounds()
    module = _module(kind, weight, **kwargs)
    k = module.weight.shape[1]
    spconv_weight = (
        weight.reshape(k, k, k, weight.shape[1], weight.shape[2]).permute(4, 0, 1, 2, 3).contiguous()
    )
    if tuple(module.weight.shape) != tuple(spconv_weight.shape):  # an older layout (k, k, k, C_in, C_out)
        spconv_weight = weight.reshape(tuple(module.weight.shape))
    with one_thread(x.feats.device):
        out = torch.func.functional_call(module, {"weight": spconv_weight}, (_to_spconv(x),))
    return _from_spconv(out, x)


def subm_conv(
    x: SparseTensor, weight: torch.Tensor, indice_key: str | None, dilation: int = 1
) -> SparseTensor:
    return _run("subm", x, weight, dilation=dilation, indice_key=indice_key)


def sparse_conv(
    x: SparseTensor, weight: torch.Tensor, stride: int, padding: int, indice_key: str | None
) -> SparseTensor:
    return _run("conv", x, weight, stride=stride, padding=padding, indice_key=indice_key)


def inverse_conv(x: SparseTensor, weight: torch.Tensor, indice_key: str) -> SparseTensor:
    return _run("inverse", x, weight, indice_key=indice_key)
