"""PCA 2-D scatter of the embedding coloured by cluster (no t-SNE/UMAP dependency)."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def pca_2d(embedding: torch.Tensor) -> torch.Tensor:
    """Projection on the two leading principal components (via a thin SVD of the centred data)."""
    centred = embedding.double() - embedding.double().mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return centred @ v[:2].T


def save_embedding_pca(
    embedding: torch.Tensor, labels: torch.Tensor, path: str | os.PathLike[str], title: str = "CCGC embedding"
) -> Path:
    """Write a PNG scatter of the PCA projection, one colour per cluster (atomic write)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paperlab_core.logging import atomic_open

    points = pca_2d(embedding).numpy()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
    ax.scatter(points[:, 0], points[:, 1], c=labels.numpy(), cmap="tab10", s=4, linewidths=0)
    ax.set_title(title)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)
    return Path(path)
