"""LightningDataModule: loads or generates a graph, applies the t-layer filter once and serves one full batch."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from ccgc.graphs import Graph, load_graph
from ccgc.names import ADGC, DATASETS, GENERATED, PLANETOID, default_root
from ccgc.smoothing import smooth
from paperlab_core.errors import ConfigError

__all__ = ["ADGC", "DATASETS", "GENERATED", "PLANETOID", "CCGCDataModule", "default_root", "load_graph"]


def graph_hash(graph: Graph) -> str:
    """sha256 of features, edges and labels (the key of the smoothed-feature cache)."""
    digest = hashlib.sha256()
    for tensor in (graph.x, graph.edge_index, graph.y if graph.y is not None else torch.empty(0)):
        digest.update(tensor.contiguous().cpu().numpy().tobytes())
        digest.update(str(tuple(tensor.shape)).encode())
    return digest.hexdigest()[:16]


def smoothed_features(graph: Graph, t: int, cache_dir: str | os.PathLike[str] | None = None) -> torch.Tensor:
    """X̃ = H^t X, cached on disk under ``cache_dir/<graph hash>-t<t>.pt`` when a folder is given."""
    if cache_dir is None:
        return smooth(graph.edge_index, graph.x, t)
    from paperlab_core.logging import save_torch_atomic

    path = Path(cache_dir) / f"{graph.name}-{graph_hash(graph)}-t{t}.pt"
    if path.is_file():
        return torch.load(path)
    x_smooth = smooth(graph.edge_index, graph.x, t)
    save_torch_atomic(x_smooth, path)
    return x_smooth


class _FullGraph(Dataset):
    """A dataset of one item: the whole graph (full-batch training)."""

    def __init__(self, batch: dict[str, Any]) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.batch


class CCGCDataModule(LightningDataModule):
    """Graph + Laplacian-smoothed features X̃ = H^t X (spec §2.2), served as one full batch per epoch."""

    def __init__(
        self,
        dataset: str = "rpg",
        root: str | None = None,
        path: str | None = None,
        t: int = 4,
        num_clusters: int | None = None,
        graph_seed: int = 0,
        rpg_class_sep: float = 0.5,
        sbm_nodes: int = 400,
        sbm_edges: int = 2000,
        sbm_homophily: float = 0.8,
        sbm_features: int = 50,
        sbm_signal: float = 0.35,
        cache_smoothed: bool = False,
    ) -> None:
        """
        Args:
            dataset: rpg | sbm | digits | karate | cora | citeseer | bat | eat | uat | amap | pyg.
            root: folder of the real files (Planetoid: holds ``<Name>/raw``; ADGC: holds ``<name>/``; or a folder
                with ``planetoid/`` and ``adgc/`` subfolders such as ``../shared/data``). Must exist when given;
                default ``../shared/data`` when present, else the paperlab cache.
            path: a ``torch.save``d PyG ``Data`` file for ``dataset=pyg``.
            t: number of Laplacian filter layers (official default 4).
            num_clusters: K; defaults to the number of label values.
            graph_seed: seed of generated graphs (rpg, sbm).
            rpg_class_sep: ``make_classification`` class separation of the rpg features.
            sbm_nodes: nodes of the generated sparse SBM.
            sbm_edges: edge draws of the sparse SBM (before de-duplication and symmetrisation).
            sbm_homophily: probability that an SBM edge stays inside its class.
            sbm_features: SBM feature dimension.
            sbm_signal: scale of the SBM class means (noise has unit variance).
            cache_smoothed: cache X̃ on disk in the paperlab cache, keyed by (graph hash, t).
        """
        super().__init__()
        if dataset.lower() not in DATASETS:
            raise ConfigError(f"unknown dataset {dataset!r} (expected one of {', '.join(DATASETS)})")
        if root is not None:
            from paperlab_core.data import require_dir

            require_dir(root, "data root", "data.root must be an existing folder holding the dataset files")
        self.dataset = dataset
        self.root = root
        self.path = path
        self.t = t
        self.num_clusters = num_clusters
        self.graph_seed = graph_seed
        self.rpg_class_sep = rpg_class_sep
        self.sbm = (sbm_nodes, sbm_edges, sbm_homophily, sbm_features, sbm_signal)
        self.cache_smoothed = cache_smoothed
        self.graph: Graph | None = None
        self.x_smooth: torch.Tensor | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.graph is not None:
            return
        nodes, edges, homophily, features, signal = self.sbm
        self.graph = load_graph(
            self.dataset,
            self.root,
            self.path,
            self.num_clusters,
            self.graph_seed,
            self.rpg_class_sep,
            nodes,
            edges,
            homophily,
            features,
            signal,
        )
        if self.num_clusters is not None:
            self.graph.num_clusters = self.num_clusters
        cache = None
        if self.cache_smoothed:
            from paperlab_core.data import resolve_data_root

            cache = resolve_data_root(None, "ccgc") / "smoothed"
        self.x_smooth = smoothed_features(self.graph, self.t, cache)

    def data_fingerprint(self) -> str:
        """Hash of the graph (features, edges, labels) and t: stored in checkpoints, compared by ``evaluate``."""
        self.setup()
        assert self.graph is not None
        return f"{graph_hash(self.graph)}-t{self.t}"

    @property
    def in_features(self) -> int:
        self.setup()
        assert self.graph is not None
        return self.graph.x.size(1)

    def _loader(self) -> DataLoader:
        self.setup()
        assert self.graph is not None
        batch = {"x": self.x_smooth, "y": self.graph.y if self.graph.y is not None else torch.empty(0)}
        return DataLoader(_FullGraph(batch), batch_size=None, shuffle=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def test_dataloader(self) -> DataLoader:
        return self._loader()

    def predict_dataloader(self) -> DataLoader:
        return self._loader()
