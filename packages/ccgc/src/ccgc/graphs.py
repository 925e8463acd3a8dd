"""Graph loaders and generators: Planetoid, ADGC ``.npy``, PyG ``Data`` files, and generated graphs (spec §3)."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ccgc.names import ADGC, DATASETS, PLANETOID, PLANETOID_SUFFIXES, dataset_root
from ccgc.smoothing import coalesce_edges, remove_self_loops, symmetrize, validate_edge_index
from paperlab_core.errors import ConfigError, MissingFileError


@dataclass
class Graph:
    """A node-attributed undirected graph: ``x`` (N, D), ``edge_index`` (2, E) without self-loops, ``y`` (N,)."""

    name: str
    x: torch.Tensor
    edge_index: torch.Tensor
    y: torch.Tensor | None
    num_clusters: int

    @property
    def num_nodes(self) -> int:
        return self.x.size(0)

    @property
    def num_undirected_edges(self) -> int:
        return self.edge_index.size(1) // 2


def make_graph(
    name: str,
    x: torch.Tensor,
    edge_index: torch.Tensor,
    y: torch.Tensor | None,
    num_clusters: int | None = None,
    symmetric: str = "error",
) -> Graph:
    """Validate and normalise a graph: float features, coalesced loop-free symmetric edges.

    ``symmetric``: ``"error"`` (raise on a directed input) or ``"symmetrize"`` (use A ∨ Aᵀ).
    """
    x = torch.as_tensor(x)
    if x.dim() != 2:
        raise ConfigError(
            f"{name}: features must be a 2-D (nodes × features) array, got shape {tuple(x.shape)}"
        )
    x = x.float()
    n = x.size(0)
    if not torch.isfinite(x).all():
        raise ConfigError(f"{name}: features contain NaN or infinite values")
    edge_index = torch.as_tensor(edge_index).long()
    if symmetric == "symmetrize":
        edge_index = symmetrize(edge_index, n)
    validate_edge_index(edge_index, n, name=f"{name}: edge_index")
    edge_index = coalesce_edges(remove_self_loops(edge_index), n)
    if y is not None:
        y = torch.as_tensor(y).long().reshape(-1)
        if y.numel() != n:
            raise ConfigError(f"{name}: {y.numel()} labels for {n} nodes (feature and label lengths differ)")
    if num_clusters is None:
        if y is None:
            raise ConfigError(
                f"{name}: no labels, so the number of clusters must be given (--data.num_clusters)"
            )
        num_clusters = int(torch.unique(y).numel())
    if num_clusters < 2 or num_clusters > n:
        raise ConfigError(f"{name}: number of clusters {num_clusters} must lie in [2, {n}] (N = {n})")
    return Graph(name, x, edge_index, y, int(num_clusters))


# ---------------------------------------------------------------- real datasets


def read_planetoid_raw(name: str, raw: str | os.PathLike[str]) -> Graph:
    """Parse the Planetoid raw files ``ind.<name>.{x,y,tx,ty,allx,ally,graph,test.index}`` (no writes).

    Same node order and conventions as ``torch_geometric.datasets.Planetoid``: nodes = allx rows then the test
    rows placed at their ``test.index`` positions; gaps in ``test.index`` (CiteSeer's 15 isolated nodes) are
    padded with all-zero features and an all-zero one-hot label (argmax → class 0). Edges from the ``graph``
    dict, symmetrised, without self-loops or duplicates.
    """
    import pickle

    key = name.lower()
    raw = Path(raw)
    for suffix in PLANETOID_SUFFIXES:
        path = raw / f"ind.{key}.{suffix}"
        if not path.is_file():
            raise MissingFileError(
                f"{PLANETOID.get(key, key)} file",
                path,
                f"expected the Planetoid raw files ind.{key}.{{{','.join(PLANETOID_SUFFIXES)}}} in {raw}",
            )

    def load(suffix: str) -> object:
        with open(raw / f"ind.{key}.{suffix}", "rb") as handle:
            return pickle.load(handle, encoding="latin1")

    def dense(value: object) -> np.ndarray:
        return np.asarray(value.todense() if hasattr(value, "todense") else value, dtype=np.float32)

    allx, ally, tx, ty = dense(load("allx")), dense(load("ally")), dense(load("tx")), dense(load("ty"))
    graph_dict = load("graph")
    test_index = np.loadtxt(raw / f"ind.{key}.test.index", dtype=np.int64).reshape(-1)
    if tx.shape[0] != test_index.size or ty.shape[0] != test_index.size:
        raise ConfigError(
            f"{key}: tx/ty have {tx.shape[0]}/{ty.shape[0]} rows but test.index has {test_index.size}"
        )
    sorted_index = np.sort(test_index)
    low, high = int(sorted_index[0]), int(sorted_index[-1])
    tx_full = np.zeros((high - low + 1, tx.shape[1]), dtype=np.float32)
    ty_full = np.zeros((high - low + 1, ty.shape[1]), dtype=np.float32)
    # row j of tx/ty belongs to node test_index[j]; nodes missing from test.index stay all-zero (as in PyG)
    tx_full[test_index - low] = tx
    ty_full[test_index - low] = ty
    x = np.concatenate([allx, tx_full])
    y = np.concatenate([ally, ty_full]).argmax(1)
    n = x.shape[0]
    if high >= n:
        raise ConfigError(f"{key}: test.index refers to node {high} but only {n} nodes are defined")
    rows = [u for u, nbrs in graph_dict.items() for _ in nbrs]
    cols = [v for nbrs in graph_dict.values() for v in nbrs]
    edges = torch.tensor([rows, cols], dtype=torch.long).reshape(2, -1)
    edges = edges[:, (edges[0] < n) & (edges[1] < n)]
    return make_graph(key, torch.from_numpy(x), edges, torch.from_numpy(y), symmetric="symmetrize")


def load_planetoid(name: str, root: str | os.PathLike[str] | None = None) -> Graph:
    """Cora/CiteSeer from a folder holding ``<Name>/raw/ind.<name>.*`` (or the raw files directly).

    The raw files are parsed directly (nothing is written next to them, so ``root`` may be read-only). When
    ``root`` is ``None`` the files are downloaded with ``torch_geometric.datasets.Planetoid`` into the paperlab
    cache (needs network).
    """
    key = name.lower()
    if key not in PLANETOID:
        raise ConfigError(f"unknown Planetoid dataset {name!r}; expected one of {sorted(PLANETOID)}")
    pretty = PLANETOID[key]
    if root is None:
        from torch_geometric.datasets import Planetoid

        from paperlab_core.data import OfflineError, resolve_data_root

        root = resolve_data_root(None, "ccgc") / "planetoid"
        if not (Path(root) / pretty / "raw" / f"ind.{key}.graph").is_file():
            try:
                Planetoid(str(root), pretty)
            except Exception as err:  # PyG raises URLError/OSError subclasses when offline
                raise OfflineError(Path(root) / pretty / "raw", None, f"download failed: {err}") from err
    raw = Path(root) / pretty / "raw"
    if not raw.is_dir() and (Path(root) / f"ind.{key}.x").exists():
        raw = Path(root)
    return read_planetoid_raw(key, raw)


def _dense_adjacency_to_edges(adj: np.ndarray, block: int = 2048) -> torch.Tensor:
    rows, cols = [], []
    for start in range(0, adj.shape[0], block):
        r, c = np.nonzero(np.asarray(adj[start : start + block]))
        rows.append(r + start)
        cols.append(c)
    return torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)]).astype(np.int64))


def load_adgc(name: str, root: str | os.PathLike[str]) -> Graph:
    """ADGC ``<root>/<name>/<name>_{feat,label,adj}.npy`` (dense symmetric 0/1 adjacency, read memory-mapped)."""
    key = name.lower()
    folder = Path(root) / key
    if not folder.is_dir() and (Path(root) / f"{key}_feat.npy").exists():
        folder = Path(root)
    arrays = {}
    for part in ("feat", "label", "adj"):
        path = folder / f"{key}_{part}.npy"
        if not path.is_file():
            raise MissingFileError(
                f"{key.upper()} file",
                path,
                f"ADGC files are distributed via Google Drive from yueliu1999/Awesome-Deep-Graph-Clustering; "
                f"place {key}_{{feat,label,adj}}.npy in {folder}",
            )
        arrays[part] = np.load(path, mmap_mode="r" if part == "adj" else None)
    adj = arrays["adj"]
    n = arrays["feat"].shape[0]
    if adj.ndim != 2 or adj.shape != (n, n):
        raise ConfigError(f"{key}_adj.npy: expected a ({n}, {n}) matrix, got {adj.shape}")
    edges = _dense_adjacency_to_edges(adj)
    return make_graph(
        key,
        torch.from_numpy(np.asarray(arrays["feat"], dtype=np.float32)),
        edges,
        torch.from_numpy(np.asarray(arrays["label"]).astype(np.int64)),
    )


def load_pyg_file(path: str | os.PathLike[str], num_clusters: int | None = None, name: str = "pyg") -> Graph:
    """A ``torch.save``d ``torch_geometric.data.Data`` with ``x``, ``edge_index`` and optional ``y``."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            "pyg: data file", path, "--data.path takes a torch.save'd torch_geometric Data"
        )
    data = torch.load(path, weights_only=False)
    return graph_from_data(data, num_clusters=num_clusters, name=name)


def graph_from_data(data: object, num_clusters: int | None = None, name: str = "pyg") -> Graph:
    """Any PyG ``Data`` (directed inputs are symmetrised; self-loops dropped)."""
    for attr in ("x", "edge_index"):
        if getattr(data, attr, None) is None:
            raise ConfigError(f"{name}: the Data object has no '{attr}'")
    y = getattr(data, "y", None)
    return make_graph(name, data.x, data.edge_index, y, num_clusters, symmetric="symmetrize")


# ---------------------------------------------------------------- generated graphs


def sparse_sbm(
    num_nodes: int,
    num_edges: int,
    num_clusters: int,
    homophily: float = 0.8,
    num_features: int = 128,
    feature_signal: float = 1.0,
    seed: int = 0,
) -> Graph:
    """Sparse stochastic-block-model-like generator with O(E) memory (spec §3a ``sbm``).

    Each of ``num_edges`` draws picks a uniform source node; with probability ``homophily`` the target is a
    uniform node of the same class, otherwise a uniform node of a different class. Self-loops and duplicates are
    dropped, then edges are symmetrised (so slightly fewer than ``num_edges`` undirected edges remain).
    Features: class mean (standard normal, scaled by ``feature_signal``) + unit Gaussian noise.
    """
    if num_clusters > num_nodes:
        raise ConfigError(f"sbm: {num_clusters} clusters for {num_nodes} nodes")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    y = torch.arange(num_nodes) % num_clusters
    y = y[torch.randperm(num_nodes, generator=gen)]
    order = torch.argsort(y)
    counts = torch.bincount(y, minlength=num_clusters)
    offsets = torch.cumsum(counts, 0) - counts
    src = torch.randint(num_nodes, (num_edges,), generator=gen)
    same = torch.rand(num_edges, generator=gen) < homophily
    shift = torch.randint(1, num_clusters, (num_edges,), generator=gen)
    target_class = torch.where(same, y[src], (y[src] + shift) % num_clusters)
    pick = (torch.rand(num_edges, generator=gen) * counts[target_class]).long()
    dst = order[offsets[target_class] + pick]
    edges = torch.stack([src, dst])
    edges = symmetrize(remove_self_loops(edges), num_nodes)
    means = torch.randn(num_clusters, num_features, generator=gen) * feature_signal
    x = means[y] + torch.randn(num_nodes, num_features, generator=gen)
    return make_graph("sbm", x, edges, y)


def random_partition_graph(
    num_classes: int = 4,
    nodes_per_class: int = 200,
    homophily: float = 0.85,
    average_degree: float = 8.0,
    num_channels: int = 32,
    class_sep: float = 0.5,
    n_informative: int = 8,
    seed: int = 0,
) -> Graph:
    """PyG ``RandomPartitionGraphDataset`` structure under a fresh temporary root (its cache key ignores the seed).

    Features are drawn here with ``make_classification`` exactly as PyG would (sorted by class), because PyG 2.8
    passes ``weights`` as a tensor, which scikit-learn ≥ 1.8 rejects. ``n_clusters_per_class=1``,
    ``n_informative`` informative dimensions, the rest noise.
    """
    from sklearn.datasets import make_classification
    from torch_geometric.datasets import RandomPartitionGraphDataset

    with (
        tempfile.TemporaryDirectory(prefix="ccgc-rpg-") as root,
        torch.random.fork_rng(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        torch.manual_seed(seed)
        dataset = RandomPartitionGraphDataset(
            root,
            num_classes=num_classes,
            num_nodes_per_class=nodes_per_class,
            node_homophily_ratio=homophily,
            average_degree=average_degree,
        )
        data = dataset[0]
    n = num_classes * nodes_per_class
    x, y_unsorted = make_classification(
        n_samples=n,
        n_features=num_channels,
        n_informative=n_informative,
        n_redundant=0,
        n_classes=num_classes,
        n_clusters_per_class=1,
        weights=[1.0 / num_classes] * num_classes,
        class_sep=class_sep,
        random_state=seed,
    )
    x = torch.from_numpy(x[np.argsort(y_unsorted, kind="stable")]).float()
    return make_graph("rpg", x, data.edge_index, data.y)


def digits_knn(k: int = 10) -> Graph:
    """scikit-learn digits (1797 × 64, 10 classes) with a symmetric Euclidean kNN graph, no self-loops."""
    from sklearn.datasets import load_digits
    from sklearn.neighbors import NearestNeighbors

    data = load_digits()
    x = data.data.astype(np.float32)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(x)
    _, idx = nn.kneighbors(x)
    rows = np.repeat(np.arange(x.shape[0]), k)
    cols = idx[:, 1:].reshape(-1)
    edges = symmetrize(torch.from_numpy(np.stack([rows, cols])).long(), x.shape[0])
    return make_graph("digits", torch.from_numpy(x), edges, torch.from_numpy(data.target))


def karate() -> Graph:
    """Zachary's karate club: PyG ``KarateClub`` structure, X = I₃₄, the two real factions as labels."""
    import networkx as nx
    from torch_geometric.datasets import KarateClub

    data = KarateClub()[0]
    clubs = nx.karate_club_graph().nodes(data="club")
    y = torch.tensor([0 if club == "Mr. Hi" else 1 for _, club in sorted(clubs)])
    return make_graph("karate", torch.eye(data.num_nodes), data.edge_index, y)


# ---------------------------------------------------------------- any dataset by name


def load_graph(
    dataset: str,
    root: str | os.PathLike[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    num_clusters: int | None = None,
    graph_seed: int = 0,
    rpg_class_sep: float = 0.5,
    sbm_nodes: int = 400,
    sbm_edges: int = 2000,
    sbm_homophily: float = 0.8,
    sbm_features: int = 50,
    sbm_signal: float = 0.35,
) -> Graph:
    """One of :data:`DATASETS` (see the README for each); ``root`` as in :func:`ccgc.names.dataset_root`."""
    key = dataset.lower()
    if key == "rpg":
        return random_partition_graph(class_sep=rpg_class_sep, seed=graph_seed)
    if key == "sbm":
        k = num_clusters or 4
        return sparse_sbm(sbm_nodes, sbm_edges, k, sbm_homophily, sbm_features, sbm_signal, seed=graph_seed)
    if key == "digits":
        return digits_knn()
    if key == "karate":
        return karate()
    if key in PLANETOID:
        return load_planetoid(key, dataset_root(key, root))
    if key in ADGC:
        return load_adgc(key, dataset_root(key, root))
    if key == "pyg":
        if path is None:
            raise ConfigError(
                "--data.dataset pyg needs --data.path FILE (a torch.save'd torch_geometric Data)"
            )
        return load_pyg_file(path, num_clusters)
    raise ConfigError(f"unknown dataset {dataset!r} (expected one of {', '.join(DATASETS)})")
