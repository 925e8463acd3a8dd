"""Pure-PyTorch sparse convolution: sorted linear keys, ``searchsorted`` neighbour lookup, gather-GEMM-scatter.

A kernel map is a list, one entry per kernel offset, of (input rows, output rows) pairs. Within one offset every
output row appears at most once (submanifold, ``k == stride`` and inverse convolutions), so the per-offset
``index_add_`` never adds twice into the same row: results are deterministic on CUDA too, without atomics races.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from lidar_robust.sparse.tensor import SparseTensor, linear_keys


@dataclass
class KernelMap:
    """Pairs per kernel offset (index into the flattened k³ kernel), plus the output coordinates."""

    pairs: list[tuple[torch.Tensor, torch.Tensor]]  # (input rows, output rows) per offset
    out_coords: torch.Tensor
    out_shape: tuple[int, int, int]
    in_coords: torch.Tensor
    in_shape: tuple[int, int, int]


def kernel_offsets(kernel: int, device: torch.device) -> torch.Tensor:
    """(k³, 3) offsets in C order (x slowest), matching ``weight.reshape(k, k, k, ...)`` and dense conv3d."""
    grid = list(itertools.product(range(kernel), repeat=3))
    return torch.tensor(grid, dtype=torch.long, device=device)


def _lookup(
    sorted_keys: torch.Tensor, order: torch.Tensor, query: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows holding ``query`` keys: (found mask, row index)."""
    pos = torch.searchsorted(sorted_keys, query)
    pos_c = pos.clamp_max(sorted_keys.numel() - 1)
    found = (pos < sorted_keys.numel()) & (sorted_keys[pos_c] == query)
    return found, order[pos_c]


def submanifold_map(
    coords: torch.Tensor, shape: tuple[int, int, int], kernel: int = 3, dilation: int = 1
) -> KernelMap:
    """Output = input sites; pair (j → i) for offset o when ``c_j = c_i + dilation·(o − k//2)``.

    Keys are computed on the grid padded by the kernel's reach, so a neighbour's key is the site's key plus a
    constant per offset (out-of-grid neighbours land in the padding, where no site lives), and all offsets are
    looked up in one ``searchsorted``."""
    reach = (kernel // 2) * dilation
    padded = tuple(d + 2 * reach for d in shape)
    c = coords.long()
    keys = (
        ((c[:, 0] * padded[0] + c[:, 1] + reach) * padded[1] + c[:, 2] + reach) * padded[2] + c[:, 3] + reach
    )
    sorted_keys, order = torch.sort(keys)
    n = c.shape[0]
    offsets = (kernel_offsets(kernel, c.device) - kernel // 2) * dilation  # (K, 3)
    shift = (offsets[:, 0] * padded[1] + offsets[:, 1]) * padded[2] + offsets[:, 2]  # (K,)
    query = keys[None] + shift[:, None]
    pos = torch.searchsorted(sorted_keys, query.reshape(-1)).reshape(query.shape).clamp_max(n - 1)
    found = sorted_keys[pos] == query
    rows = torch.arange(n, device=c.device)
    pairs = []
    centre = (offsets == 0).all(1)
    for k in range(offsets.shape[0]):
        if bool(centre[k]):
            pairs.append((rows, rows))
            continue
        hit = found[k]
        pairs.append((order[pos[k][hit]], rows[hit]))
    return KernelMap(pairs, coords, shape, coords, shape)


def strided_map(
    coords: torch.Tensor, shape: tuple[int, int, int], kernel: int = 2, stride: int = 2, padding: int = 0
) -> KernelMap:
    """Regular (non-submanifold) convolution: output site p receives input site ``stride·p − padding + o``."""
    c = coords.long()
    out_shape = tuple((s + 2 * padding - kernel) // stride + 1 for s in shape)
    if kernel == stride and padding == 0:  # each input belongs to exactly one output, offset = c mod stride
        out_shape = tuple(-(-s // stride) for s in shape)  # keep the border voxels of odd sizes
        out_spatial = c[:, 1:] // stride
        full = torch.cat([c[:, :1], out_spatial], 1)
        out_keys = linear_keys(full, out_shape)
        unique_keys, inverse = torch.unique(out_keys, return_inverse=True)
        out_coords = _coords_from_keys(unique_keys, out_shape)
        local = c[:, 1:] % stride
        flat = (local[:, 0] * kernel + local[:, 1]) * kernel + local[:, 2]
        rows = torch.arange(c.shape[0], device=c.device)
        pairs = [(rows[flat == k], inverse[flat == k]) for k in range(kernel**3)]
        return KernelMap(pairs, out_coords, out_shape, coords, shape)
    bounds = torch.tensor(out_shape, device=c.device)
    offsets = kernel_offsets(kernel, c.device)
    candidates = []
    for offset in offsets:
        num = c[:, 1:] + padding - offset
        p = torch.div(num, stride, rounding_mode="floor")
        ok = ((num % stride) == 0).all(1) & ((p >= 0) & (p < bounds)).all(1)
        candidates.append(torch.cat([c[ok, :1], p[ok]], 1))
    out_keys = torch.unique(linear_keys(torch.cat(candidates), out_shape))
    out_coords = _coords_from_keys(out_keys, out_shape)
    rows = torch.arange(c.shape[0], device=c.device)
    pairs = []
    for offset in offsets:
        num = c[:, 1:] + padding - offset
        p = torch.div(num, stride, rounding_mode="floor")
        ok = ((num % stride) == 0).all(1) & ((p >= 0) & (p < bounds)).all(1)
        keys = linear_keys(torch.cat([c[ok, :1], p[ok]], 1), out_shape)
        dst = torch.searchsorted(out_keys, keys)
        pairs.append((rows[ok], dst))
    return KernelMap(pairs, out_coords, out_shape, coords, shape)


def _coords_from_keys(keys: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    z = keys % shape[2]
    rest = keys // shape[2]
    y = rest % shape[1]
    rest = rest // shape[1]
    x = rest % shape[0]
    return torch.stack([rest // shape[0], x, y, z], 1).int()


def apply_pairs(
    feats: torch.Tensor, weight: torch.Tensor, pairs: list[tuple[torch.Tensor, torch.Tensor]], n_out: int,
    transpose: bool = False,
) -> torch.Tensor:  # fmt: skip
    """``out[dst] += feats[src] @ W[k]`` for every offset k (``transpose`` swaps src and dst)."""
    order = list(range(len(pairs)))
    centre = len(pairs) // 2
    identity = (
        not transpose
        and len(pairs) % 2 == 1
        and pairs[centre][0].numel() == feats.shape[0] == n_out
        and bool((pairs[centre][0] == pairs[centre][1]).all())
    )
    if identity:  # the centre of a submanifold kernel: a plain GEMM starts the sum (no gather, no scatter)
        out = feats @ weight[centre]
        order.remove(centre)
    else:
        out = feats.new_zeros(n_out, weight.shape[-1])
    for k in order:
        src, dst = pairs[k]
        if transpose:
            src, dst = dst, src
        if src.numel():
            out.index_add_(0, dst, feats[src] @ weight[k])
    return out


def subm_conv(
    x: SparseTensor, weight: torch.Tensor, indice_key: str | None = None, dilation: int = 1
) -> SparseTensor:
    """Submanifold convolution, weight (k³, C_in, C_out); the kernel map is cached under ``indice_key``."""
    kernel = round(weight.shape[0] ** (1 / 3))
    key = f"subm:{indice_key}:{kernel}:{dilation}" if indice_key else None
    kmap = x.indice_dict.get(key) if key else None
    if kmap is None:
        kmap = submanifold_map(x.coords, x.spatial_shape, kernel, dilation)
        if key:
            x.indice_dict[key] = kmap
    return x.replace_feature(apply_pairs(x.feats, weight, kmap.pairs, x.num_voxels))


def sparse_conv(
    x: SparseTensor, weight: torch.Tensor, stride: int, padding: int = 0, indice_key: str | None = None
) -> SparseTensor:
    """Strided sparse convolution; its kernel map is cached (for the matching inverse convolution)."""
    kernel = round(weight.shape[0] ** (1 / 3))
    kmap = strided_map(x.coords, x.spatial_shape, kernel, stride, padding)
    if indice_key:
        x.indice_dict[f"down:{indice_key}"] = kmap
    feats = apply_pairs(x.feats, weight, kmap.pairs, kmap.out_coords.shape[0])
    return SparseTensor(kmap.out_coords, feats, kmap.out_shape, x.batch_size, x.indice_dict)


def inverse_conv(x: SparseTensor, weight: torch.Tensor, indice_key: str) -> SparseTensor:
    """Inverse of the strided convolution stored under ``indice_key``: its pairs reversed, back to its inputs."""
    kmap = x.indice_dict.get(f"down:{indice_key}")
    if kmap is None:
        raise KeyError(
            f"no strided convolution with indice_key {indice_key!r} ran before this inverse convolution"
        )
    feats = apply_pairs(x.feats, weight, kmap.pairs, kmap.in_coords.shape[0], transpose=True)
    return SparseTensor(kmap.in_coords, feats, kmap.in_shape, x.batch_size, x.indice_dict)
