"""Laplacian smoothing filter of CCGC/SCGC (spec §2.2), as sparse propagation.

X̃ = H^t X with H = I − L̃ = D̂^{-1/2}(A + I)D̂^{-1/2} (reg = 1 in the official code). H is never built densely:
it is a sparse CSR matrix applied t times.
"""

from __future__ import annotations

import warnings

import torch

from paperlab_core.errors import ConfigError


def remove_self_loops(edge_index: torch.Tensor) -> torch.Tensor:
    """Drop entries (i, i) of a ``2 × E`` edge index."""
    keep = edge_index[0] != edge_index[1]
    return edge_index[:, keep]


def coalesce_edges(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Sort and de-duplicate the edges of a ``2 × E`` index (entries of A are binary)."""
    if edge_index.numel() == 0:
        return edge_index.reshape(2, 0).long()
    key = edge_index[0].long() * num_nodes + edge_index[1].long()
    key = torch.unique(key)
    return torch.stack([key // num_nodes, key % num_nodes])


def validate_edge_index(edge_index: torch.Tensor, num_nodes: int, name: str = "edge_index") -> None:
    """Raise :class:`ConfigError` (a ``ValueError``) if ``edge_index`` is malformed, out of range or not symmetric."""
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ConfigError(f"{name}: expected shape (2, E), got {tuple(edge_index.shape)}")
    if edge_index.numel() == 0:
        return
    low, high = int(edge_index.min()), int(edge_index.max())
    if low < 0 or high >= num_nodes:
        raise ConfigError(f"{name}: node ids must lie in [0, {num_nodes - 1}], found [{low}, {high}]")
    edges = coalesce_edges(edge_index, num_nodes)
    reverse = coalesce_edges(edges.flip(0), num_nodes)
    if edges.shape != reverse.shape or not torch.equal(edges, reverse):
        raise ConfigError(
            f"{name}: the adjacency is not symmetric (CCGC needs an undirected graph); "
            "symmetrise it first, e.g. torch_geometric.utils.to_undirected, or pass symmetrize=True"
        )


def symmetrize(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """A ∨ Aᵀ as a coalesced edge index."""
    return coalesce_edges(torch.cat([edge_index, edge_index.flip(0)], dim=1), num_nodes)


def normalized_adjacency(
    edge_index: torch.Tensor, num_nodes: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """H = D̂^{-1/2}(A + I)D̂^{-1/2} as a sparse CSR tensor (spec §2.2 steps 1–4).

    Self-loops of the input are removed first and duplicates merged, so A is binary; every node then has
    degree ≥ 1 in Â, so isolated nodes are well defined (their row of H is the unit vector e_i).
    """
    edges = coalesce_edges(remove_self_loops(edge_index.long().cpu()), num_nodes)
    loops = torch.arange(num_nodes).repeat(2, 1)
    full = coalesce_edges(torch.cat([edges, loops], dim=1), num_nodes)
    row, col = full
    degree = torch.bincount(row, minlength=num_nodes).to(torch.float64)
    inv_sqrt = degree.pow(-0.5)
    values = (inv_sqrt[row] * inv_sqrt[col]).to(dtype)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        return (
            torch.sparse_coo_tensor(full, values, (num_nodes, num_nodes), check_invariants=False)
            .coalesce()
            .to_sparse_csr()
        )


def smooth(
    edge_index: torch.Tensor,
    x: torch.Tensor,
    t: int = 4,
    num_nodes: int | None = None,
    check_symmetric: bool = True,
) -> torch.Tensor:
    """X̃ = H^t X by ``t`` sparse–dense products (spec §2.2 step 5). Memory O(E + N·D)."""
    if t < 0:
        raise ConfigError(f"t must be >= 0, got {t}")
    n = x.size(0) if num_nodes is None else num_nodes
    if x.size(0) != n:
        raise ConfigError(f"features have {x.size(0)} rows but the graph has {n} nodes")
    if check_symmetric:
        validate_edge_index(edge_index, n)
    out = x
    if t == 0:
        return out.clone()
    h = normalized_adjacency(edge_index, n, dtype=x.dtype if x.is_floating_point() else torch.float32)
    h = h.to(x.device)
    out = out.to(h.dtype)
    for _ in range(t):
        out = torch.sparse.mm(h, out)
    return out
