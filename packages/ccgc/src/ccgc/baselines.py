"""Baselines of spec §2.11: k-means(X), k-means(X̃), spherical k-means(rownorm X̃), SCGC."""

from __future__ import annotations

from typing import Any

import torch

from ccgc.engine import CCGCConfig, train_ccgc
from ccgc.evaluate import clustering_metrics
from ccgc.graphs import Graph
from ccgc.kmeans import kmeans
from ccgc.smoothing import smooth
from paperlab_core.errors import UserError

# official SCGC train.py per-dataset settings (t, lr)
SCGC_SETTINGS = {
    "cora": (3, 1e-3),
    "citeseer": (2, 5e-5),
    "amap": (5, 1e-5),
    "bat": (3, 1e-3),
    "eat": (5, 1e-3),
    "uat": (3, 1e-3),
}


def edges_with_self_loops(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Nonzeros of Â = A + I (input must be loop-free and coalesced, as :class:`Graph` guarantees)."""
    loops = torch.arange(num_nodes, device=edge_index.device).repeat(2, 1)
    return torch.cat([edge_index, loops], dim=1)


def kmeans_baselines(
    graph: Graph, x_smooth: torch.Tensor, seed: int = 0, n_init: int = 4
) -> dict[str, dict[str, float]]:
    """k-means(X), k-means(X̃), spherical k-means(rownorm X̃) with the same k-means implementation."""
    if graph.y is None:
        raise UserError(f"{graph.name}: the graph has no labels, so the baselines cannot be scored")
    out = {}
    for name, features, spherical in (
        ("kmeans_x", graph.x, False),
        ("kmeans_xs", x_smooth, False),
        ("spherical_kmeans_xs", x_smooth, True),
    ):
        gen = torch.Generator(device=features.device).manual_seed(seed)
        result = kmeans(features, graph.num_clusters, n_init=n_init, generator=gen, spherical=spherical)
        out[name] = clustering_metrics(graph.y, result.labels)
    return out


def run_scgc(
    graph: Graph,
    seed: int = 0,
    t: int | None = None,
    lr: float | None = None,
    epochs: int = 400,
    legacy_accumulate_grads: bool = False,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """SCGC (Liu et al., IEEE TNNLS 2023) with its official per-dataset t and lr; same protocol as CCGC."""
    default_t, default_lr = SCGC_SETTINGS.get(graph.name, (3, 1e-3))
    t = default_t if t is None else t
    lr = default_lr if lr is None else lr
    x_smooth = smooth(graph.edge_index, graph.x, t).to(device)
    cfg = CCGCConfig(method="scgc", lr=lr, epochs=epochs, legacy_accumulate_grads=legacy_accumulate_grads)
    edges_hat = edges_with_self_loops(graph.edge_index, graph.num_nodes).to(device)
    y = graph.y.to(device) if graph.y is not None else None
    result = train_ccgc(x_smooth, graph.num_clusters, y, cfg, seed=seed, edge_index_hat=edges_hat)
    return {**result.to_dict(), "t": t, "lr": lr}
